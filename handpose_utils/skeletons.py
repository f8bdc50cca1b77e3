"""Keypoint conventions: joint orders, names, bones, flip pairs and OKS sigmas, for **HAND21**
(FreiHAND's and MediaPipe's order, the course's own: 0 wrist, then each finger palm -> tip, thumb
first, so 9 is the middle MCP), **RHD42** (the Rendered Hand Pose dataset: left hand 0-20, right
hand 21-41, each finger *tip -> palm*, so 12 is the middle MCP) and **COCO17** (COCO persons)."""

from __future__ import annotations

import numpy as np

# HAND21: FreiHAND / MediaPipe ---------------------------------------------------------------------
FINGERS = ("thumb", "index", "middle", "ring", "pinky")
HAND21_NAMES = (
    "wrist",
    "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip",
    "index_mcp", "index_pip", "index_dip", "index_tip",
    "middle_mcp", "middle_pip", "middle_dip", "middle_tip",
    "ring_mcp", "ring_pip", "ring_dip", "ring_tip",
    "pinky_mcp", "pinky_pip", "pinky_dip", "pinky_tip",
)  # fmt: skip
NUM_HAND_JOINTS = 21
ROOT_JOINT = 0  # wrist
MIDDLE_MCP = 9  # root of FreiHAND's root-relative targets; |xyz[9]-xyz[10]| is training_scale

# Bones as (parent, child): wrist to the first joint of each finger (1 + 4 f), then along it.
HAND21_BONES = tuple((0 if k == 0 else 1 + 4 * f + k - 1, 1 + 4 * f + k)
                     for f in range(5) for k in range(4))
HAND21_PARENTS = (-1,) + tuple(p for p, _ in HAND21_BONES)

# One colour per finger, used by every plot (the wrist is grey).
FINGER_COLORS = {"thumb": "#e6194b", "index": "#f58231", "middle": "#ffe119", "ring": "#3cb44b",
                 "pinky": "#4363d8"}


def hand21_bone_colors() -> list[str]:
    """A colour per bone in ``HAND21_BONES``: its finger's colour."""
    return [FINGER_COLORS[f] for f in FINGERS for _ in range(4)]


def hand21_joint_colors() -> list[str]:
    """A colour per HAND21 joint: its finger's colour, grey for the wrist."""
    return ["#808080"] + hand21_bone_colors()


# A hand has no left/right keypoint pairs: a horizontal flip keeps every joint index but turns a
# right hand into a left hand. The flip permutation is therefore the identity.
HAND21_FLIP_INDEX = tuple(range(NUM_HAND_JOINTS))

# RHD42: Rendered Hand Pose dataset ----------------------------------------------------------------
RHD_LEFT, RHD_RIGHT = slice(0, 21), slice(21, 42)  # RHD's 42 keypoints: two hands
# Within one RHD hand: 0 wrist, then per finger tip->palm. Reversing each finger gives HAND21.
# The permutation is its own inverse, so it converts both ways.
RHD_TO_HAND21 = (0, 4, 3, 2, 1, 8, 7, 6, 5, 12, 11, 10, 9, 16, 15, 14, 13, 20, 19, 18, 17)
HAND21_TO_RHD = RHD_TO_HAND21

# RHD mask class ids: 0 background, 1 person, 2-17 left hand, 18-33 right hand. Within a hand:
# three ids per finger, tip->palm (thumb first), then the palm.
RHD_MASK_LEFT, RHD_MASK_RIGHT = tuple(range(2, 18)), tuple(range(18, 34))
RHD_MASK_LEFT_PALM, RHD_MASK_RIGHT_PALM = 17, 33


def rhd_hand_to_hand21(keypoints: np.ndarray) -> np.ndarray:
    """Reorder one RHD hand (21, ...) into HAND21 order."""
    keypoints = np.asarray(keypoints)
    if keypoints.shape[0] != 21:
        raise ValueError(f"expected one RHD hand with 21 keypoints, got shape {keypoints.shape}")
    return keypoints[list(RHD_TO_HAND21)]


# COCO17: COCO person keypoints --------------------------------------------------------------------
COCO17_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
NUM_COCO_KEYPOINTS = 17

# Exactly as in person_keypoints_*.json categories[0]["skeleton"]: 1-based.
COCO_SKELETON_1BASED = (
    (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8),
    (7, 9), (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7),
)  # fmt: skip
COCO_SKELETON = tuple((a - 1, b - 1) for a, b in COCO_SKELETON_1BASED)

# Left/right pairs, swapped by a horizontal flip.
COCO_FLIP_PAIRS = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
_MIRROR = {**dict(COCO_FLIP_PAIRS), **{b: a for a, b in COCO_FLIP_PAIRS}}
COCO_FLIP_INDEX = tuple(_MIRROR.get(i, i) for i in range(NUM_COCO_KEYPOINTS))  # each one's mirror

# Per-keypoint OKS sigmas used by pycocotools' COCOeval (cocoeval.py, Params.kpt_oks_sigmas).
COCO_OKS_SIGMAS = np.array([0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62,
                            1.07, 1.07, 0.87, 0.87, 0.89, 0.89]) / 10.0


def coco_part_side(name: str) -> str:
    """'left', 'right' or 'center', for colouring COCO skeletons."""
    return next((side for side in ("left", "right") if name.startswith(f"{side}_")), "center")


def coco_category() -> dict:
    """The person category as COCO's files write it (1-based skeleton)."""
    return {"supercategory": "person", "id": 1, "name": "person", "keypoints": list(COCO17_NAMES),
            "skeleton": [list(p) for p in COCO_SKELETON_1BASED]}
