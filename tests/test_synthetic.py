"""The embedded default dataset: layout, annotations, determinism and that it looks like a hand."""

import json

import numpy as np
import pytest

from handpose_utils import load_freihand, make_freihand, read_image
from handpose_utils.camera import project
from handpose_utils.datasets.freihand import synthetic_meta
from handpose_utils.synthetic.freihand import ensure_synthetic_freihand
from handpose_utils.synthetic.hand_model import (
    GESTURE_NAMES,
    forward_kinematics,
    gesture_pose,
    sample_shape,
)
from handpose_utils.synthetic.render import Canvas
from handpose_utils.synthetic.scene import place_hand, render_hands, sample_camera, sample_hand


def test_native_layout(synthetic_root):
    root = synthetic_root
    n, versions = 6, 4
    for name in ("training_xyz.json", "training_K.json", "training_scale.json",
                 "evaluation_xyz.json", "evaluation_K.json", "evaluation_scale.json"):
        assert (root / name).is_file(), name
    rgb = sorted(p.name for p in (root / "training" / "rgb").iterdir())
    assert rgb == [f"{i:08d}.jpg" for i in range(n * versions)]  # id = idx + N * version
    masks = sorted(p.name for p in (root / "training" / "mask").iterdir())
    assert masks == [f"{i:08d}.jpg" for i in range(n)]
    assert len(list((root / "evaluation" / "rgb").iterdir())) == 2
    xyz = np.array(json.load(open(root / "training_xyz.json")))
    K = np.array(json.load(open(root / "training_K.json")))
    scale = np.array(json.load(open(root / "training_scale.json")))
    assert xyz.shape == (n, 21, 3) and K.shape == (n, 3, 3) and scale.shape == (n,)
    np.testing.assert_allclose(scale, np.linalg.norm(xyz[:, 9] - xyz[:, 10], axis=-1), atol=2e-6)
    assert read_image(root / "training" / "rgb" / "00000000.jpg").shape == (224, 224, 3)


def test_camera_and_points_like_freihand(synthetic_root):
    xyz = np.array(json.load(open(synthetic_root / "training_xyz.json")))
    K = np.array(json.load(open(synthetic_root / "training_K.json")))
    assert (xyz[..., 2] > 0.1).all()  # in front of the camera
    assert np.allclose(K[:, 0, 0], K[:, 1, 1]) and (K[:, 0, 0] > 300).all()
    assert np.allclose(K[:, 2], [0, 0, 1]) and (np.abs(K[:, :2, 2] - 111.5) < 10).all()
    uv = project(xyz, K)
    assert (uv > -1).all() and (uv < 225).all()  # the whole hand is in the image
    # FreiHAND's training_scale is about 3 cm: the middle finger's proximal phalanx.
    scale = np.linalg.norm(xyz[:, 9] - xyz[:, 10], axis=-1)
    assert (scale > 0.03).all() and (scale < 0.06).all()


def test_deterministic_and_prefix_stable(tmp_path, synthetic_root):
    other = make_freihand(tmp_path / "again", n_poses=6, seed=3, n_eval_poses=2, progress=False)
    a = json.load(open(synthetic_root / "training_xyz.json"))
    assert a == json.load(open(other / "training_xyz.json"))
    img = lambda r, i: read_image(r / "training" / "rgb" / f"{i:08d}.jpg")
    assert np.array_equal(img(synthetic_root, 7), img(other, 7))
    # The first k poses of a bigger set are the same poses (each pose has its own seed).
    small = make_freihand(tmp_path / "small", n_poses=2, seed=3, n_eval_poses=1, progress=False)
    assert json.load(open(small / "training_xyz.json")) == a[:2]
    different = make_freihand(tmp_path / "seed4", n_poses=2, seed=4, n_eval_poses=1, progress=False)
    assert json.load(open(different / "training_xyz.json")) != a[:2]


def test_four_versions_share_the_hand_but_not_the_background(synthetic_root):
    n = 6
    imgs = [read_image(synthetic_root / "training" / "rgb" / f"{1 + n * v:08d}.jpg").astype(float)
            for v in range(4)]
    mask = read_image(synthetic_root / "training" / "mask" / "00000001.jpg", mode="L") > 127
    assert 0.03 < mask.mean() < 0.6  # a hand, not an empty or full frame
    bg = ~mask
    # Backgrounds differ between versions ...
    assert np.abs(imgs[0][bg] - imgs[2][bg]).mean() > 20
    # ... while the hand stays (versions 0 and 2 are not colour-harmonised).
    assert np.abs(imgs[0][mask] - imgs[2][mask]).mean() < 12
    # Version 0 is the green screen.
    g = imgs[0][bg].mean(0)
    assert g[1] > g[0] + 40 and g[1] > g[2] + 40


def test_hand_pixels_under_visible_joints(synthetic_root):
    recs = load_freihand(synthetic_root)
    n_vis = n_on_hand = 0
    for r in recs[:6]:
        mask = read_image(synthetic_root / "training" / "mask" / f"{r['pose_id']:08d}.jpg", "L") > 60
        uv = np.round(np.array(r["keypoints"]).reshape(21, 2)).astype(int)
        for (u, v), vis in zip(uv, r["visible"]):
            if vis and 0 <= u < 224 and 0 <= v < 224:
                n_vis += 1
                n_on_hand += mask[max(v - 1, 0):v + 2, max(u - 1, 0):u + 2].any()
    assert n_vis > 60 and n_on_hand / n_vis > 0.9


def test_bone_lengths_are_anthropometric():
    rng = np.random.default_rng(0)
    for _ in range(20):
        shape = sample_shape(rng)
        j = forward_kinematics(shape, gesture_pose("open"))
        bones = {"index proximal": (5, 6), "middle proximal": (9, 10), "thumb metacarpal": (1, 2)}
        for a, b in bones.values():
            assert 0.02 < np.linalg.norm(j[a] - j[b]) < 0.06
        hand_length = np.linalg.norm(j[12] - j[0])  # wrist to middle tip: ~17-21 cm for adults
        assert 0.15 < hand_length < 0.23


def test_flexion_curls_fingers_towards_the_palm():
    shape = sample_shape(np.random.default_rng(1))
    open_hand = forward_kinematics(shape, gesture_pose("open"))
    fist = forward_kinematics(shape, gesture_pose("fist"))
    # A fist brings the fingertips back near the palm and to the palm side (+z).
    for tip in (8, 12, 16, 20):
        assert np.linalg.norm(fist[tip] - fist[0]) < 0.75 * np.linalg.norm(open_hand[tip] - open_hand[0])
        assert fist[tip, 2] > 0.01
    # The right hand's thumb is on +x; a left hand mirrors it.
    assert open_hand[4, 0] > 0.03
    assert forward_kinematics(shape, gesture_pose("open"), side="left")[4, 0] < -0.03


def test_occlusion_hides_joints_behind_others():
    # A fist seen from the back hides some fingertips; an open hand facing us hides none of them.
    rng = np.random.default_rng(0)
    hidden = []
    for gesture in GESTURE_NAMES:
        spec = sample_hand(rng, gesture=gesture)
        K = sample_camera(rng, 224, 224)
        g = place_hand(spec, K, 224, 224, rng)
        r = render_hands([g], [spec.skin], K, 224, 224, rng)
        hidden.append((~r.visible[0]).sum())
    assert max(hidden) >= 3 and min(hidden) <= 2


def test_depth_test_keeps_the_nearest_surface():
    from handpose_utils.synthetic.render import Capsule

    K = np.array([[200.0, 0, 50], [0, 200, 50], [0, 0, 1]])
    c = Canvas(100, 100, K)
    far = Capsule(np.array([-0.1, 0, 1.0]), np.array([0.1, 0, 1.0]), 0.02, 0.02, part=5)
    near = Capsule(np.array([0, -0.1, 0.5]), np.array([0, 0.1, 0.5]), 0.01, 0.01, part=9)
    c.capsule(near)
    c.capsule(far)  # drawn later but further away: must not overwrite the crossing
    assert c.part[50, 50] == 9 and c.part[50, 35] == 5
    assert 0.48 < c.depth[50, 50] < 0.5 and 0.97 < c.depth[50, 35] < 1.0


def test_ensure_reuses_and_regenerates(tmp_path):
    root = tmp_path / "synthetic_freihand"
    ensure_synthetic_freihand(root, 2, seed=0, progress=False)
    stamp = (root / "synthetic_meta.json").stat().st_mtime_ns
    ensure_synthetic_freihand(root, 2, seed=0, progress=False)
    assert (root / "synthetic_meta.json").stat().st_mtime_ns == stamp  # reused
    ensure_synthetic_freihand(root, 3, seed=0, progress=False)
    assert synthetic_meta(root)["n_poses"] == 3
    assert len(list((root / "training" / "rgb").iterdir())) == 12
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary left over (the .lock file stays)


def test_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="n_poses"):
        make_freihand(tmp_path, 0)
    with pytest.raises(ValueError, match="versions"):
        make_freihand(tmp_path, 1, versions=5)


_RACER = """
import sys, time
from pathlib import Path
from handpose_utils.synthetic.freihand import ensure_synthetic_freihand
root, ready, go = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
ready.touch()
while not go.exists():
    time.sleep(0.01)
ensure_synthetic_freihand(root, 2, seed=1, progress=False)
print((root / "synthetic_meta.json").stat().st_mtime_ns)
"""


def test_two_processes_making_one_dataset_both_succeed(tmp_path):
    """Two notebooks ask for the same missing dataset at once: both get it whole, made once."""
    import subprocess
    import sys
    import time

    root, go = tmp_path / "synthetic_freihand", tmp_path / "go"
    ready = [tmp_path / f"ready{i}" for i in range(2)]
    procs = [subprocess.Popen([sys.executable, "-c", _RACER, str(root), str(r), str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for r in ready]
    deadline = time.monotonic() + 120
    while not all(r.exists() for r in ready) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()  # both start at once
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    assert outs[0][0] == outs[1][0]  # the second reused the first's dataset: one stamp
    assert synthetic_meta(root)["n_poses"] == 2
    assert len(load_freihand(root)) == 8 and len(load_freihand(root, "evaluation")) == 1
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary folder left over


def test_ensure_dataset_keeps_a_finished_dataset_until_the_new_one_is_whole(tmp_path):
    """A build that fails half-way leaves the dataset made with other settings in place and no
    temporary; a finished build replaces it and says why."""
    from handpose_utils.synthetic.jobs import ensure_dataset, stamp_dataset, start_dataset

    root = tmp_path / "data"

    def make(folder, progress, n):  # the generator is this module, version 1
        folder, start = start_dataset(folder, "images")
        (folder / "images" / "a.txt").write_text(str(n))
        if n < 0:
            raise RuntimeError("killed half-way")
        stamp_dataset(folder, start, __name__, 1, n=n)

    logs = []
    ensure_dataset(root, make, 1, log=logs.append, n=1)
    with pytest.raises(RuntimeError, match="half-way"):
        ensure_dataset(root, make, 1, log=logs.append, n=-1)
    assert synthetic_meta(root)["n"] == 1 and (root / "images" / "a.txt").read_text() == "1"
    assert ensure_dataset(root, make, 1, log=logs.append, n=2) == root
    assert synthetic_meta(root)["n"] == 2 and (root / "images" / "a.txt").read_text() == "2"
    assert "n 1 -> 2" in logs[-1]
    assert not list(tmp_path.glob(".*.tmp"))
