"""The renderer's realism switches (:mod:`handpose_utils.synthetic.style`): the plain style is the
first renderer bit for bit, scene and camera switches never touch labels, every switch is wired,
hands are framed as FreiHAND's photos, sleeves end above the wrist, objects are held and second
hands reach in, occluders only hide joints and stay out of the hand mask, and every writer
stamps its style."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from handpose_utils.camera import project
from handpose_utils.synthetic.coco import ensure_synthetic_coco
from handpose_utils.synthetic.freihand import ensure_synthetic_freihand, make_freihand, render_pose
from handpose_utils.synthetic.ouhands import ensure_synthetic_ouhands
from handpose_utils.synthetic.render import (
    FOREARM_PART,
    PALM_PART,
    Canvas,
    Skin,
    sample_skin,
    skin_albedo,
)
from handpose_utils.synthetic.rhd import ensure_synthetic_rhd
from handpose_utils.synthetic.scene import (
    OBJECT_PART,
    place_hand,
    sample_camera,
    sample_hand,
    sample_occluders,
)
from handpose_utils.synthetic.style import SCENE_SWITCHES, RenderStyle, as_style

REPO = Path(__file__).resolve().parent.parent
BEFORE_STYLES = "e79ce76"  # the last commit before the realism switches: the first renderer
# scene and camera switches that draw nothing over the hand (occluders do, and hide joints)
LABEL_NEUTRAL = tuple(s for s in SCENE_SWITCHES if s != "occluders")


def meta(root: Path) -> dict:
    return json.loads((root / "synthetic_meta.json").read_text())


def images(root: Path) -> dict[str, bytes]:
    """Every image (JPEG, PNG) under ``root``, by its path relative to ``root``."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.suffix in (".jpg", ".png")}


# --- the plain style is the first renderer ---

def test_plain_style_renders_exactly_what_the_first_renderer_did(tmp_path):
    git = ["git", "-C", str(REPO)]
    if subprocess.run([*git, "cat-file", "-e", f"{BEFORE_STYLES}^{{commit}}"],
                      capture_output=True).returncode != 0:
        pytest.skip(f"commit {BEFORE_STYLES} (the first renderer) is not in this clone's history "
                    "(a shallow clone?)")
    old_code = tmp_path / "old_code"
    old_code.mkdir()
    archive = subprocess.run([*git, "archive", BEFORE_STYLES, "handpose_utils"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(old_code)], input=archive, check=True)
    old, new = tmp_path / "old", tmp_path / "new"
    script = ("import sys, handpose_utils\n"
              f"assert handpose_utils.__file__.startswith({str(old_code)!r}), handpose_utils.__file__\n"
              "from handpose_utils.synthetic.freihand import make_freihand\n"
              f"make_freihand({str(old)!r}, 3, versions=4, progress=False)\n")
    env = dict(os.environ, PYTHONPATH=str(old_code))
    subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, check=True)
    make_freihand(new, 3, versions=4, progress=False, style=RenderStyle.plain())

    old_images, new_images = images(old), images(new)
    assert len(old_images) == 3 * 4 + 1 + 3  # training versions, evaluation, training masks
    assert new_images.keys() == old_images.keys()
    changed = [name for name in old_images if new_images[name] != old_images[name]]
    assert not changed, f"the plain style draws these differently from the first renderer: {changed}"
    # labels too (visibility is left out: the first renderer's had a bug since fixed)
    for split in ("training", "evaluation"):
        for key in ("xyz", "K", "scale"):
            name = f"{split}_{key}.json"
            assert json.loads((new / name).read_text()) == json.loads((old / name).read_text()), name


# --- labels: what each switch may and may not change ---

def test_scene_and_camera_switches_never_change_labels():
    default, without = RenderStyle(), RenderStyle.without(*LABEL_NEUTRAL)
    for idx in range(20):
        _, K, spec, geometry, rendering = render_pose(0, "training", idx, 224, default)
        _, K2, spec2, geometry2, rendering2 = render_pose(0, "training", idx, 224, without)
        np.testing.assert_array_equal(geometry2.joints, geometry.joints, err_msg=f"pose {idx}")
        np.testing.assert_array_equal(K2, K, err_msg=f"pose {idx}")
        assert spec2.gesture == spec.gesture, f"pose {idx}"
        np.testing.assert_array_equal(rendering2.visible[0], rendering.visible[0],
                                      err_msg=f"pose {idx}")


def test_occluders_only_ever_hide_joints():
    hidden = 0
    for idx in range(24):
        with_them = render_pose(0, "training", idx, 224, RenderStyle())
        without = render_pose(0, "training", idx, 224, RenderStyle.without("occluders"))
        np.testing.assert_array_equal(with_them[3].joints, without[3].joints)
        seen, seen_without = with_them[4].visible[0], without[4].visible[0]
        assert not (seen & ~seen_without).any(), \
            f"pose {idx}: occluders made joints {np.flatnonzero(seen & ~seen_without)} visible"
        hidden += int((seen_without & ~seen).sum())
    assert hidden > 0, "no occluder hid a joint in 24 poses: are occluders drawn at all?"


def test_each_switch_turned_off_alone_changes_the_images(tmp_path):
    """Every switch is wired: a small dataset (the writer's own JPEG step included) changes."""
    settings = dict(n_poses=3, n_eval_poses=3, versions=2, image_size=64, progress=False)
    base = images(make_freihand(tmp_path / "all", **settings))
    unwired = []
    for switch in RenderStyle.switches():
        other = images(make_freihand(tmp_path / switch, style=RenderStyle.without(switch),
                                     **settings))
        assert other.keys() == base.keys()
        if all(other[name] == base[name] for name in base if "/rgb/" in name):
            unwired.append(switch)
    assert not unwired, f"turning off {unwired} changes no image"


def finger_angles(style: RenderStyle | None, n: int = 600) -> tuple[np.ndarray, np.ndarray]:
    """In-image angle from upright and out-of-image tilt (degrees) of the fingers' direction
    (the hand frame's +y) of ``n`` sampled hands."""
    rng = np.random.default_rng(3)
    d = np.array([sample_hand(rng, style=style).rotation @ [0.0, 1.0, 0.0] for _ in range(n)])
    roll = np.degrees(np.arctan2(d[:, 0], -d[:, 1]))  # 0: fingers up in the image
    tilt = np.degrees(np.arcsin(np.clip(np.abs(d[:, 2]), 0, 1)))
    return roll, tilt


def test_viewpoints_keep_hands_near_upright_and_never_edge_on():
    """The course's hands come within 75 degrees of upright, tilted at most 45 degrees, spread
    over that range; without the switch, the first renderer's 120 and 60."""
    roll, tilt = finger_angles(RenderStyle())
    assert np.abs(roll).max() <= 75 + 1e-6 and tilt.max() <= 45 + 1e-6
    counts = np.histogram(roll, bins=6, range=(-75, 75))[0]
    assert counts.min() >= 0.5 * len(roll) / 6, f"rolls not spread over +-75 degrees: {counts}"
    roll_off, tilt_off = finger_angles(RenderStyle.without("viewpoints"))
    assert np.abs(roll_off).max() <= 120 + 1e-6 and np.abs(roll_off).max() > 100
    assert tilt_off.max() > 50


def test_framing_draws_freihand_hands_at_the_real_photos_size():
    """The real FreiHAND photos' keypoint boxes span 38 % of the image (85 of 224 px): the course's
    crops range around that, 28-50 %; without the switch, the first renderer's 35-70 %."""
    def spans(style):
        poses = [render_pose(0, "training", i, 224, style) for i in range(40)]
        return np.array([np.ptp(project(p[3].joints, p[1]), axis=0).max() / 224 for p in poses])
    framed, larger = spans(RenderStyle()), spans(RenderStyle.without("framing"))
    # place_hand's fit under perspective is approximate: a few percent either way
    assert 0.25 <= framed.min() and framed.max() <= 0.53, (framed.min(), framed.max())
    assert 0.33 <= np.median(framed) <= 0.45, np.median(framed)
    assert 0.32 <= larger.min() and larger.max() <= 0.74 and np.median(larger) > 0.45


def test_sleeves_end_above_the_wrist_in_clothes_colours():
    rng = np.random.default_rng(0)
    clothes = [sample_skin(rng, clothes=True) for _ in range(400)]
    sleeves = [s for s in clothes if s.sleeve is not None]
    assert 150 < len(sleeves) < 250  # about half the arms wear one
    cuffs = np.array([s.cuff for s in sleeves])
    assert cuffs.min() >= 0.05 and cuffs.max() <= 0.45, "the wrist and a bit of arm stay bare"
    chroma = lambda c: float(np.max(c) - np.min(c))
    any_colour = [sample_skin(rng).sleeve for _ in range(400)]
    muted = lambda colours: np.mean([chroma(c) < 0.3 for c in colours if c is not None])
    assert muted([s.sleeve for s in sleeves]) > 0.75 > muted(any_colour) + 0.2
    # drawn: the forearm is skin from the wrist up to the cuff, then sleeve
    skin = Skin(np.array([0.8, 0.6, 0.5]), 1.0, sleeve=np.array([0.1, 0.2, 0.9]), cuff=0.3)
    spec = sample_hand(np.random.default_rng(1), style=RenderStyle())
    spec.skin = skin
    K = sample_camera(np.random.default_rng(2), 224, 224)
    geometry = place_hand(spec, K, 224, 224, np.random.default_rng(3), size_range=(0.3, 0.4))
    canvas = Canvas(224, 224, K)
    canvas.draw(geometry)
    albedo = skin_albedo(canvas, [skin], np.random.default_rng(4))
    arm = (canvas.part == FOREARM_PART) & (canvas.hand == 0)
    bare, covered = arm & (canvas.along < 0.28), arm & (canvas.along > 0.32)
    assert bare.sum() > 20 and covered.sum() > 20
    blue = lambda px: albedo[px][:, 2] - albedo[px][:, 0]
    assert (blue(covered) > 0.5).all() and (blue(bare) < 0).all()


def test_held_objects_lie_in_the_grasp_and_second_hands_reach_in_from_the_edge():
    held, reaching = 0, 0
    for idx in range(200):
        _, K, spec, geometry, _ = render_pose(0, "training", idx, 224, RenderStyle())
        rng = np.random.default_rng(idx)
        others, _ = sample_occluders(geometry, K, 224, 224, rng, object_p=1.0, hand_p=1.0,
                                     style=RenderStyle())
        thing, other = others
        cap = thing.capsules[0]
        # held: the object's surface comes within 1 cm of the skin over a joint (the joint's
        # depth under the skin is its joint_radius), not floating in front of the hand
        t = np.clip(((geometry.joints - cap.a) @ (cap.b - cap.a)) /
                    max(float((cap.b - cap.a) @ (cap.b - cap.a)), 1e-12), 0, 1)
        axis_gap = np.linalg.norm(cap.a + t[:, None] * (cap.b - cap.a) - geometry.joints, axis=1)
        held += (axis_gap - cap.ra - geometry.joint_radius).min() <= 0.01
        # the second hand's forearm points away from the first hand, out of the picture
        centre = project(geometry.joints, K).mean(0)
        arm = next(c for c in other.capsules if c.part == FOREARM_PART)
        wrist, elbow = project(np.stack([arm.a, arm.b]), K)
        reaching += np.linalg.norm(elbow - centre) > np.linalg.norm(wrist - centre)
    assert held == 200, f"only {held} of 200 objects touch the hand"
    assert reaching >= 190, f"only {reaching} of 200 second hands reach in from the edge"


# --- the FreiHAND mask is the labelled hand only ---

def test_hand_mask_leaves_out_occluding_objects_and_other_hands(tmp_path):
    found = {}  # "object" / "hand" -> (pose, pixels of that occluder in front)
    for idx in range(60):
        rendering = render_pose(0, "training", idx, 224, RenderStyle())[4]
        others = rendering.hand > 0
        # a second hand's fingers or palm (its forearm is never in a mask)
        is_hand = (rendering.part > 0) & (rendering.part <= PALM_PART)
        is_object = rendering.part == OBJECT_PART
        for kind, pixels in (("object", others & is_object), ("hand", others & is_hand)):
            if kind not in found and pixels.sum() > 200:
                # the labelled hand's own pixels (its forearm is not part of the mask)
                hand = (rendering.hand == 0) & is_hand & (rendering.cover > 0.5)
                found[kind] = idx, pixels, rendering.hand == 0, hand
        if len(found) == 2:
            break
    assert found.keys() == {"object", "hand"}, f"only {sorted(found)} drawn in 60 poses"
    root = make_freihand(tmp_path / "fh", max(v[0] for v in found.values()) + 1, versions=1,
                         n_eval_poses=1, progress=False)
    for kind, (idx, pixels, labelled, hand) in found.items():
        mask = np.asarray(Image.open(root / "training" / "mask" / f"{idx:08d}.jpg")) > 127
        # 2 px away from the labelled hand, where the mask's JPEG edges cannot reach
        near = np.zeros_like(labelled)
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                near |= np.roll(labelled, (dy, dx), axis=(0, 1))
        inside = pixels & ~near
        assert inside.sum() > 100
        assert not mask[inside].any(), \
            f"pose {idx}: the mask covers {mask[inside].sum()} pixels of the {kind} in front"
        assert mask[hand].mean() > 0.95, f"pose {idx}: the mask misses the labelled hand"


# --- as_style and without ---

def test_as_style_accepts_none_a_style_or_its_dict():
    assert as_style(None) == RenderStyle()
    style = RenderStyle.without("noise", "flesh")
    assert as_style(style) is style
    assert as_style(style.as_dict()) == style
    assert as_style(RenderStyle.plain().as_dict()).is_plain()


def test_as_style_names_unknown_switches_and_wrong_types():
    with pytest.raises(ValueError, match="sparkle") as err:
        as_style({"noise": False, "sparkle": True})
    assert "vignette" in str(err.value)  # it lists the real switches
    with pytest.raises(TypeError, match="RenderStyle"):
        as_style("plain")


def test_without_an_unknown_switch_lists_the_switches():
    with pytest.raises(ValueError, match="nope") as err:
        RenderStyle.without("noise", "nope")
    for switch in RenderStyle.switches():
        assert switch in str(err.value)


def test_plain_and_without():
    assert not any(RenderStyle.plain().as_dict().values())
    assert all(RenderStyle().as_dict().values())
    style = RenderStyle.without("jpeg", "rooms")
    assert [k for k, v in style.as_dict().items() if not v] == ["rooms", "jpeg"]


# --- the stamp: every writer records its style and re-renders for another ---

WRITERS = {
    "freihand": lambda root, style: ensure_synthetic_freihand(
        root, 2, versions=1, image_size=64, progress=False, style=style),
    "rhd": lambda root, style: ensure_synthetic_rhd(
        root, 2, n_eval=1, image_size=64, progress=False, style=style),
    "ouhands": lambda root, style: ensure_synthetic_ouhands(
        root, n_subjects=1, n_test_subjects=0, samples_per_class=1, progress=False, style=style),
    "coco": lambda root, style: ensure_synthetic_coco(
        root, 1, 1, width=64, height=64, max_people=1, progress=False, style=style),
}


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_writers_stamp_their_style_and_remake_for_another(writer, tmp_path, capsys):
    ensure = WRITERS[writer]
    root = tmp_path / writer
    ensure(root, RenderStyle.plain())
    assert meta(root)["style"] == RenderStyle.plain().as_dict()
    plain_images = images(root)
    stamp = (root / "synthetic_meta.json").stat()
    capsys.readouterr()

    ensure(root, RenderStyle.plain().as_dict())  # the same style, as a stamp's dict: reused
    again = (root / "synthetic_meta.json").stat()
    assert (again.st_ino, again.st_mtime_ns) == (stamp.st_ino, stamp.st_mtime_ns), "re-rendered"
    assert "made otherwise" not in capsys.readouterr().out

    ensure(root, None)  # the default look: made anew, and the log says why
    log = capsys.readouterr().out
    assert "made otherwise" in log and "style" in log, log
    assert meta(root)["style"] == RenderStyle().as_dict()
    assert as_style(meta(root)["style"]) == RenderStyle()
    new_images = images(root)
    assert new_images.keys() == plain_images.keys()
    assert any(new_images[k] != plain_images[k] for k in plain_images), "the style is not drawn"


# --- prepare: the plain dataset is a dataset of its own ---

def test_prepare_synthetic_plain_is_separate_from_synthetic(tmp_path):
    from handpose_utils.prepare import prepare_freihand, prepare_splits, splits_dir

    root = prepare_freihand("synthetic_plain", data_root=tmp_path, n_poses=4, progress=False)
    assert root == tmp_path / "synthetic_freihand_plain"
    assert as_style(meta(root)["style"]).is_plain()

    settings = dict(data_root=tmp_path, n_poses=4, fractions=(0.5, 0.25, 0.25), log=None)
    plain = prepare_splits("synthetic_plain", **settings)
    default = prepare_splits("synthetic", **settings)
    assert meta(tmp_path / "synthetic_freihand")["style"] == RenderStyle().as_dict()
    assert meta(root)["style"] == RenderStyle.plain().as_dict()  # untouched by "synthetic"
    assert splits_dir("synthetic_plain", tmp_path) != splits_dir("synthetic", tmp_path)
    for dataset, parts, folder in (("synthetic_plain", plain, "synthetic_freihand_plain"),
                                   ("synthetic", default, "synthetic_freihand")):
        records = [r for part in parts for r in part]
        assert len(records) == 4 * 4  # 4 poses x 4 versions
        assert all(Path(r["image_path"]).parent.parent.parent.name == folder for r in records)
        split_meta = json.loads((splits_dir(dataset, tmp_path) / "split_meta.json").read_text())
        assert split_meta["dataset"] == dataset
        assert (splits_dir(dataset, tmp_path) / split_meta["root"]).resolve() == \
            (tmp_path / folder).resolve()
