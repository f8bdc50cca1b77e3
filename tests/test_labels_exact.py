"""The synthetic datasets' labels are exact: every keypoint marked visible lies on its own hand's
pixels (a fingertip on its own finger's), and every hidden one's pixel shows something other than
its own skin, whatever the geometry. Checked on a few hundred in-memory renders, then through the
native files that the FreiHAND, RHD and OUHANDS writers write and the public readers read back."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import handpose_utils as hp
from handpose_utils.camera import project
from handpose_utils.datasets.ouhands import load_landmark_files
from handpose_utils.datasets.rhd import read_mask
from handpose_utils.landmarks import landmarks_to_pixels
from handpose_utils.skeletons import RHD_MASK_LEFT, RHD_MASK_RIGHT
from handpose_utils.synthetic import ouhands as synthetic_ouhands
from handpose_utils.synthetic.freihand import render_pose
from handpose_utils.synthetic.render import FOREARM_PART, PALM_PART, finger_part
from handpose_utils.synthetic.style import RenderStyle

N_SCENES = 300
SIZE = 224  # FreiHAND's image size
WRIST = 0
TIPS = {4 + 4 * f: f for f in range(5)}  # HAND21 fingertip joint -> finger (0 thumb .. 4 pinky)
RHD_PERSON = 1  # RHD's mask class of the body; the synthetic forearm is drawn as it


def own_finger_parts(finger: int) -> set[int]:
    return {finger_part(finger, s) for s in range(3)}


def freihand_scene(i: int, style: RenderStyle) -> dict:
    """One pose as the FreiHAND writer draws it (``render_pose``: with ``style``'s geometry and
    occluders), and what the rendering holds at each joint's pixel."""
    rng, K, spec, geometry, rendering = render_pose(12345, "training", i, SIZE, style)
    # Pixel centres are at integers: a joint lies on the pixel its projection rounds to.
    u, v = np.round(project(geometry.joints, K)).astype(int).T
    inside = (u >= 0) & (u < SIZE) & (v >= 0) & (v < SIZE)
    uc, vc = np.clip(u, 0, SIZE - 1), np.clip(v, 0, SIZE - 1)
    return {"scene": i, "gesture": spec.gesture, "inside": inside, "z": geometry.joints[:, 2],
            "skin": geometry.joints[:, 2] - geometry.joint_radius,
            "visible": rendering.visible[0], "hand": rendering.hand[vc, uc],
            "part": rendering.part[vc, uc], "depth": rendering.depth[vc, uc]}


@pytest.fixture(scope="module", params=["default", "plain"])
def scenes(request) -> list[dict]:
    """The course's renderer (flesh geometry, objects and second hands in front) and the plain one."""
    style = RenderStyle() if request.param == "default" else RenderStyle.plain()
    return [freihand_scene(i, style) for i in range(N_SCENES)]


def test_scenes_show_visible_and_hidden_fingertips(scenes):
    """The checks below are not vacuous: most fingertips are visible, and occlusion hides many."""
    tips = np.array([s["visible"][list(TIPS)] for s in scenes])
    assert tips.mean() > 0.4, f"only {tips.mean():.0%} of {tips.size} fingertips are visible"
    assert (~tips).mean() > 0.1, f"only {(~tips).mean():.0%} of {tips.size} fingertips are hidden"


def test_visible_joints_lie_on_their_hand(scenes):
    wrong = [(s["scene"], j, int(s["hand"][j]), int(s["part"][j])) for s in scenes
             for j in np.flatnonzero(s["visible"])
             if not (s["inside"][j] and s["hand"][j] == 0 and 1 <= s["part"][j] <= FOREARM_PART)]
    assert not wrong, ("visible joints not on a pixel of their hand, as (scene, joint, hand at "
                       f"the pixel, part at the pixel): {wrong[:10]} ({len(wrong)} in all)")


def own_parts(joint: int) -> set[int]:
    """The parts whose skin covers ``joint``: its finger's; the palm's for the wrist, the thumb's
    CMC and the knuckles, which sit inside the palm; the forearm's for the wrist."""
    parts = own_finger_parts(max(joint - 1, 0) // 4)
    if joint in (0, 1, 2, 5, 9, 13, 17):
        parts |= {PALM_PART}
    return parts | {FOREARM_PART} if joint == WRIST else parts


def test_hidden_joints_show_something_else_at_their_pixel(scenes):
    """Hidden means the camera does not see the joint's own skin at its pixel: another hand, an
    object, another part of the hand, or its own finger folded over it (a surface in front of
    the joint's skin; the joint sits ``joint_radius`` under it)."""
    wrong = [(s["scene"], j, int(s["part"][j]), float(s["depth"][j]), float(s["skin"][j]))
             for s in scenes for j in np.flatnonzero(~s["visible"] & s["inside"])
             if s["hand"][j] == 0 and s["part"][j] in own_parts(j)
             and not s["depth"][j] < s["skin"][j]]
    assert not wrong, ("hidden joints whose pixel shows their own skin, as (scene, joint, part, "
                       f"depth at the pixel, skin depth): {wrong[:10]} ({len(wrong)} in all)")


def test_visible_fingertips_lie_on_their_own_finger(scenes):
    wrong = [(s["scene"], s["gesture"], j, int(s["part"][j])) for s in scenes
             for j, finger in TIPS.items()
             if s["visible"][j] and not (s["hand"][j] == 0
                                         and s["part"][j] in own_finger_parts(finger))]
    assert not wrong, ("visible fingertips not on their own finger, as (scene, gesture, joint, "
                       f"part at the pixel): {wrong[:10]} ({len(wrong)} in all)")


def pixels(keypoints) -> np.ndarray:
    """(21, 2) integer pixels (column, row) of flat ``[x1, y1, ...]`` keypoints."""
    return np.round(np.asarray(keypoints, float).reshape(21, 2)).astype(int)


@pytest.fixture(scope="module")
def freihand_root(tmp_path_factory):
    return hp.make_freihand(tmp_path_factory.mktemp("labels") / "freihand", n_poses=40,
                            n_eval_poses=1, versions=1, progress=False)


def test_freihand_visible_keypoints_lie_in_the_mask_file(freihand_root):
    records = hp.load_freihand(freihand_root, "training")
    assert len(records) == 40
    wrong, checked = [], 0
    for r in records:
        mask_path = freihand_root / "training" / "mask" / f"{r['pose_id']:08d}.jpg"
        mask = np.asarray(Image.open(mask_path).convert("L"))
        uv = pixels(r["keypoints"])
        # FreiHAND's mask holds the hand without the forearm, and the wrist joint sits where they
        # meet, often on the forearm's pixels: the wrist is checked in-memory and in RHD's mask.
        for j in np.flatnonzero(r["visible"]):
            if j == WRIST:
                continue
            checked += 1
            value = int(mask[uv[j, 1], uv[j, 0]])
            if value < 128:  # a JPEG: compression blurs the 0/255 mask a little
                wrong.append((mask_path.name, int(j), value))
    assert checked > 40 * 20 / 4  # not vacuous: a quarter of the joints at least
    assert not wrong, f"visible keypoints outside the hand mask (file, joint, value): {wrong[:10]}"


def test_rhd_visible_keypoints_lie_on_their_hand_classes(tmp_path):
    root = hp.make_rhd(tmp_path / "rhd", n_train=30, n_eval=2, progress=False)
    records = hp.load_rhd(root, "training")
    wrong, wrong_tips, checked = [], [], 0
    for r in records:
        mask = read_mask(r["mask_path"])
        ids = RHD_MASK_LEFT if r["hand_side"] == "left" else RHD_MASK_RIGHT
        to_rhd_class = ids[0] - 1  # RHD class = renderer part id + this, within the hand
        uv = pixels(r["keypoints"])
        for j in np.flatnonzero(r["visible"]):
            checked += 1
            cls = int(mask[uv[j, 1], uv[j, 0]])
            # The wrist may lie on the forearm, which RHD's mask draws as the person.
            allowed = set(ids) | ({RHD_PERSON} if j == WRIST else set())
            if cls not in allowed:
                wrong.append((r["sample_id"], r["hand_side"], int(j), cls))
            if j in TIPS and cls not in {p + to_rhd_class for p in own_finger_parts(TIPS[j])}:
                wrong_tips.append((r["sample_id"], r["hand_side"], int(j), cls))
    assert checked > 30 * 21 / 4
    assert not wrong, ("visible keypoints off their hand's mask classes (sample, side, joint, "
                       f"class): {wrong[:10]}")
    assert not wrong_tips, ("visible fingertips off their own finger's mask classes (sample, "
                            f"side, joint, class): {wrong_tips[:10]}")


def test_ouhands_landmark_files_lie_on_the_hand(tmp_path, monkeypatch):
    """OUHANDS' synthetic files hold no mask: the renderings are caught as the writer composites
    them, and found again by the image each landmark file points to (PNG: lossless)."""
    renderings = {}
    composite = synthetic_ouhands.composite

    def keep_rendering(rendering, *args, **kwargs):
        image = composite(rendering, *args, **kwargs)
        renderings[image.tobytes()] = rendering
        return image

    monkeypatch.setattr(synthetic_ouhands, "composite", keep_rendering)
    root = hp.make_ouhands(tmp_path / "ouhands", n_subjects=1, n_test_subjects=0,
                           samples_per_class=1, workers=1, progress=False)
    records = load_landmark_files(root / "landmarks", "train")
    assert len(records) == 10
    wrong, checked = [], 0
    for r in records:
        rendering = renderings[np.asarray(Image.open(r["image_path"]).convert("RGB")).tobytes()]
        height, width = rendering.hand.shape
        landmarks = np.array([[p["x"], p["y"]] for p in r["landmarks"]])
        uv = np.round(landmarks_to_pixels(landmarks, (width, height))).astype(int)
        for j in np.flatnonzero(rendering.visible[0]):
            checked += 1
            u, v = uv[j]
            hit = 0 <= u < width and 0 <= v < height
            if not (hit and rendering.hand[v, u] == 0 and 1 <= rendering.part[v, u]):
                wrong.append((r["landmark_file"], int(j)))
    assert checked > 10 * 21 / 4
    assert not wrong, f"visible landmarks off the hand (file, joint): {wrong[:10]}"


def test_labels_do_not_depend_on_the_backgrounds(freihand_root, tmp_path):
    """A pose's labels and mask are drawn before its backgrounds: writing four background versions
    instead of one changes none of them (and the first k poses equal a set of k)."""
    four = hp.make_freihand(tmp_path / "four", n_poses=8, n_eval_poses=1, versions=4,
                            progress=False)
    one = hp.load_freihand(freihand_root, "training")[:8]
    for version in range(4):
        records = [r for r in hp.load_freihand(four, "training") if r["version"] == version]
        for key in ("keypoints", "visible", "xyz", "K"):
            assert [r[key] for r in records] == [r[key] for r in one], (key, version)
    for idx in range(8):
        name = f"training/mask/{idx:08d}.jpg"
        assert (four / name).read_bytes() == (freihand_root / name).read_bytes(), name
