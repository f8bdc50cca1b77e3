"""The keypoint conventions, pinned against the documented orders (seeds_formats.md)."""

import numpy as np

from handpose_utils import skeletons as sk


def test_hand21_order_matches_freihand_and_mediapipe():
    names = sk.HAND21_NAMES
    assert len(names) == 21 and names[0] == "wrist"
    assert names[1:5] == ("thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip")
    for f, finger in enumerate(("index", "middle", "ring", "pinky")):
        assert names[5 + 4 * f: 9 + 4 * f] == tuple(f"{finger}_{j}" for j in ("mcp", "pip", "dip", "tip"))
    assert names[sk.MIDDLE_MCP] == "middle_mcp" and sk.MIDDLE_MCP == 9


def test_hand21_bones_form_a_tree_rooted_at_the_wrist():
    bones = sk.HAND21_BONES
    assert len(bones) == 20
    children = [c for _, c in bones]
    assert sorted(children) == list(range(1, 21))  # every joint but the wrist has one parent
    assert {p for p, c in bones if c in (1, 5, 9, 13, 17)} == {0}  # fingers start at the wrist
    assert (3, 4) in bones and (19, 20) in bones
    assert sk.HAND21_PARENTS[0] == -1 and sk.HAND21_PARENTS[12] == 11


def test_rhd_permutation_reverses_fingers_and_is_its_own_inverse():
    perm = np.array(sk.RHD_TO_HAND21)
    assert perm.tolist() == [0, 4, 3, 2, 1, 8, 7, 6, 5, 12, 11, 10, 9, 16, 15, 14, 13, 20, 19, 18, 17]
    assert (perm[perm] == np.arange(21)).all()
    # RHD joint 12 is the middle MCP (fingers tip->palm); HAND21 index 9 must read it.
    assert perm[9] == 12
    rhd = np.arange(42)[:, None] * np.ones((1, 3))
    left, right = (sk.rhd_hand_to_hand21(rhd[side]) for side in (sk.RHD_LEFT, sk.RHD_RIGHT))
    assert left[4, 0] == 1 and left[1, 0] == 4  # thumb tip in RHD slot 1 -> HAND21 4
    assert right[0, 0] == 21 and right[9, 0] == 33


def test_rhd_mask_ids():
    assert sk.RHD_MASK_LEFT == tuple(range(2, 18)) and sk.RHD_MASK_LEFT_PALM == 17
    assert sk.RHD_MASK_RIGHT == tuple(range(18, 34)) and sk.RHD_MASK_RIGHT_PALM == 33


def test_coco17_names_skeleton_flip_and_sigmas():
    assert sk.COCO17_NAMES[0] == "nose" and sk.COCO17_NAMES[16] == "right_ankle"
    assert sk.COCO_SKELETON_1BASED[0] == (16, 14) and len(sk.COCO_SKELETON_1BASED) == 19
    assert sk.COCO_SKELETON[0] == (15, 13)  # 0-based
    assert all(0 <= a < 17 and 0 <= b < 17 for a, b in sk.COCO_SKELETON)
    flip = np.array(sk.COCO_FLIP_INDEX)
    assert (flip[flip] == np.arange(17)).all() and flip[0] == 0
    for a, b in sk.COCO_FLIP_PAIRS:  # every pair is left_x <-> right_x
        assert sk.COCO17_NAMES[a].replace("left_", "") == sk.COCO17_NAMES[b].replace("right_", "")
    np.testing.assert_allclose(sk.COCO_OKS_SIGMAS[[0, 5, 11, 15]], [0.026, 0.079, 0.107, 0.089])
    cat = sk.coco_category()
    assert cat["skeleton"][0] == [16, 14] and len(cat["keypoints"]) == 17


def test_hand_flip_index_is_identity():
    # A hand has no left/right joint pairs: flipping keeps indices (and makes it a left hand).
    assert sk.HAND21_FLIP_INDEX == tuple(range(21))
