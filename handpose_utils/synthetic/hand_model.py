"""A kinematic hand: 21 joints in HAND21 (FreiHAND/MediaPipe) order, built by forward kinematics.

The hand's own frame (metres) for a **right** hand: the wrist at the origin, fingers along +y, the
thumb on the +x side, and the palm normal along +z (for a right hand, palm normal = thumb direction
x finger direction). A left hand is the mirror image (x -> -x). Each finger is a chain MCP -> PIP
-> DIP -> tip. Flexion bends a finger towards the palm (a rotation about the finger's lateral
axis), abduction spreads it within the palm plane. The thumb has its own degrees of freedom: CMC
flexion (across the palm) and abduction (out of the palm plane), a pronation twist, MCP, IP."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEG = np.pi / 180.0

# Anthropometric means in metres for an adult hand (metacarpal heads relative to the wrist, and
# phalanx lengths). Per-sample variation scales these (overall size and per-bone jitter).
_MCP_XY = np.array([[0.024, 0.084], [0.003, 0.088], [-0.016, 0.083], [-0.033, 0.073]])
# proximal, middle, distal (to the fingertip) of index, middle, ring, pinky
_PHALANX = np.array([[0.040, 0.024, 0.021], [0.044, 0.027, 0.022], [0.041, 0.026, 0.022],
                     [0.032, 0.019, 0.019]])
_THUMB_CMC = np.array([0.021, 0.024, 0.004])
_THUMB = np.array([0.042, 0.031, 0.027])  # CMC->MCP, MCP->IP, IP->tip

# Joint limits in degrees: (low, high).
FINGER_LIMITS = {"mcp": (-20, 90), "abd": (-18, 18), "pip": (0, 105), "dip": (0, 80)}
THUMB_LIMITS = {"cmc_flex": (-25, 55), "cmc_abd": (-5, 65), "mcp": (-15, 60), "ip": (-15, 80)}


def rot_x(a):
    """Right-handed rotation by ``a`` radians about the x axis (``rot_y``, ``rot_z``: y, z)."""
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rot_y(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def rot_z(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


@dataclass
class HandShape:
    """Bone geometry of one hand, in metres."""

    mcp: np.ndarray  # (4, 3) metacarpal heads of index..pinky
    phalanx: np.ndarray  # (4, 3) proximal/middle/distal lengths of index..pinky
    thumb_cmc: np.ndarray  # (3,)
    thumb: np.ndarray  # (3,) CMC->MCP, MCP->IP, IP->tip
    finger_radius: float  # capsule radius of the fingers at the proximal phalanx
    palm_thickness: float


def sample_shape(rng: np.random.Generator) -> HandShape:
    """An adult hand with overall size +-12% and each bone jittered by +-6%."""
    size = rng.uniform(0.88, 1.12)
    jitter = lambda shape: rng.uniform(0.94, 1.06, size=shape)
    mcp = np.zeros((4, 3))
    mcp[:, :2] = _MCP_XY * size * jitter((4, 2))
    return HandShape(mcp=mcp, phalanx=_PHALANX * size * jitter((4, 3)),
                     thumb_cmc=_THUMB_CMC * size * jitter(3), thumb=_THUMB * size * jitter(3),
                     finger_radius=0.0095 * size * rng.uniform(0.9, 1.12),
                     palm_thickness=0.013 * size * rng.uniform(0.9, 1.1))


@dataclass
class HandPose:
    """Joint angles in degrees. ``fingers`` is (4, 4): for index..pinky, (MCP flexion, abduction,
    PIP flexion, DIP flexion). ``thumb`` is (5,): CMC flexion, CMC abduction, twist, MCP, IP."""

    fingers: np.ndarray
    thumb: np.ndarray

    def clipped(self) -> HandPose:
        f = self.fingers.copy()
        for col, key in enumerate(("mcp", "abd", "pip", "dip")):
            f[:, col] = np.clip(f[:, col], *FINGER_LIMITS[key])
        t = self.thumb.copy()
        for i, key in ((0, "cmc_flex"), (1, "cmc_abd"), (3, "mcp"), (4, "ip")):  # 2: the twist
            t[i] = np.clip(t[i], *THUMB_LIMITS[key])
        return HandPose(f, t)


# Gesture templates: (finger flexion level per index..pinky in [0, 1], spread, thumb pose).
# Flexion level 0 is straight, 1 a closed fist. Thumb: (cmc_flex, cmc_abd, twist, mcp, ip).
_THUMB_OUT = (-10, 20, 0, 0, 0)
_THUMB_TUCK = (45, 25, 0, 40, 50)
_THUMB_SIDE = (15, 10, 0, 10, 10)
GESTURES = {
    "open": ((0.0, 0.0, 0.0, 0.0), 1.0, _THUMB_OUT),
    "fist": ((1.0, 1.0, 1.0, 1.0), 0.0, _THUMB_TUCK),
    "point": ((0.0, 1.0, 1.0, 1.0), 0.0, _THUMB_TUCK),
    "peace": ((0.0, 0.0, 1.0, 1.0), 1.0, _THUMB_TUCK),
    "three": ((0.0, 0.0, 0.0, 1.0), 0.8, _THUMB_TUCK),
    "four": ((0.0, 0.0, 0.0, 0.0), 0.6, _THUMB_TUCK),
    "thumbs_up": ((1.0, 1.0, 1.0, 1.0), 0.0, (-20, 10, -30, 0, 0)),
    "call": ((1.0, 1.0, 1.0, 0.0), 0.5, _THUMB_OUT),
    "rock": ((0.0, 1.0, 1.0, 0.0), 0.8, _THUMB_TUCK),
    "ok": ((0.55, 0.1, 0.05, 0.0), 0.5, (30, 40, 0, 25, 25)),
    "pinch": ((0.45, 0.2, 0.2, 0.2), 0.2, (25, 40, 0, 20, 15)),
    "claw": ((0.5, 0.5, 0.5, 0.5), 0.7, _THUMB_SIDE),
    "flat": ((0.0, 0.0, 0.0, 0.0), 0.0, _THUMB_SIDE),
}
GESTURE_NAMES = tuple(GESTURES)


def gesture_pose(name: str, rng: np.random.Generator | None = None, noise: float = 1.0) -> HandPose:
    """The pose of a named gesture, with natural variation when ``rng`` is given."""
    levels, spread, thumb = GESTURES[name]
    levels = np.asarray(levels, float)
    if rng is not None:
        levels = np.clip(levels + rng.normal(0, 0.08 * noise, 4), 0, 1)
        spread = float(np.clip(spread + rng.normal(0, 0.2 * noise), 0, 1.2))
    # Columns: MCP flexion, abduction (spread away from the middle finger), PIP flexion, and
    # DIP following PIP (tendon coupling, about 2/3).
    fingers = np.stack([85 * levels, spread * np.array([-12, -3, 5, 13]), 100 * levels,
                        65 * levels], axis=1)
    thumb = np.asarray(thumb, float)
    if rng is not None:
        fingers += rng.normal(0, 5 * noise, fingers.shape)
        thumb = thumb + rng.normal(0, 6 * noise, 5)
    return HandPose(fingers, thumb).clipped()


def random_pose(rng: np.random.Generator) -> HandPose:
    """An arbitrary pose within the joint limits, with DIP coupled to PIP."""
    fingers = np.zeros((4, 4))
    # A shared "grip" level makes neighbouring fingers move together, as real hands do.
    grip = rng.uniform(0, 1)
    levels = np.clip(grip + rng.normal(0, 0.35, 4), 0, 1)
    fingers[:, 0] = rng.uniform(-15, 90, 4) * 0.4 + 85 * levels * 0.6
    fingers[:, 2] = 100 * np.clip(levels + rng.normal(0, 0.15, 4), 0, 1)
    fingers[:, 3] = fingers[:, 2] * rng.uniform(0.5, 0.8, 4)
    fingers[:, 1] = rng.uniform(0, 1) * np.array([-12, -3, 5, 13]) + rng.normal(0, 3, 4)
    thumb = np.array([rng.uniform(*THUMB_LIMITS["cmc_flex"]), rng.uniform(*THUMB_LIMITS["cmc_abd"]),
                      rng.uniform(-30, 20), rng.uniform(*THUMB_LIMITS["mcp"]),
                      rng.uniform(*THUMB_LIMITS["ip"])])
    return HandPose(fingers, thumb).clipped()


def sample_pose(rng: np.random.Generator, gesture_fraction: float = 0.6) -> tuple[HandPose, str]:
    """A named gesture with variation (``gesture_fraction`` of the time) or a random pose."""
    if rng.uniform() < gesture_fraction:
        name = GESTURE_NAMES[rng.integers(len(GESTURE_NAMES))]
        return gesture_pose(name, rng), name
    return random_pose(rng), "random"


def forward_kinematics(shape: HandShape, pose: HandPose, side: str = "right") -> np.ndarray:
    """Joint positions (21, 3) in the hand's own frame, in metres, HAND21 order."""
    joints = np.zeros((21, 3))
    # Thumb: CMC -> MCP -> IP -> tip.
    cmc_flex, cmc_abd, twist, mcp_flex, ip_flex = pose.thumb * DEG
    # At rest the thumb leaves the CMC at 50 deg from the fingers towards +x, tilted 25 deg out of
    # the palm plane towards the palm side, and pronated so that it flexes across the palm.
    R = rot_z(-50 * DEG + cmc_flex) @ rot_x(25 * DEG + cmc_abd) @ rot_y(-60 * DEG + twist)
    joints[1] = shape.thumb_cmc
    bend = (0.0, mcp_flex, ip_flex)
    for k in range(3):
        R = R @ rot_x(bend[k])
        joints[2 + k] = joints[1 + k] + R @ np.array([0.0, shape.thumb[k], 0.0])
    # Fingers: metacarpal head (MCP) then three phalanges.
    for f in range(4):
        mcp, abd, pip, dip = pose.fingers[f] * DEG
        base = 1 + 4 * (f + 1)
        joints[base] = shape.mcp[f]
        # Fingers fan out slightly from the palm: follow the metacarpal direction a little.
        fan = np.arctan2(-shape.mcp[f, 0], shape.mcp[f, 1]) * 0.35
        R = rot_z(fan + abd) @ rot_x(mcp)
        for k, angle in enumerate((0.0, pip, dip)):
            R = R @ rot_x(angle)
            joints[base + k + 1] = joints[base + k] + R @ np.array([0.0, shape.phalanx[f, k], 0.0])
    if side == "left":
        joints[:, 0] *= -1
    elif side != "right":
        raise ValueError(f"side must be 'right' or 'left', got {side!r}")
    return joints


def hand_to_camera(spin: float, tilt: float, roll: float) -> np.ndarray:
    """Hand frame -> camera frame: fingers (+y) up in the image (-y), palm normal (+z) towards the
    camera (-z); then a ``spin`` about the finger axis, a ``tilt``, an in-plane ``roll`` (rad)."""
    base = np.array([[1.0, 0, 0], [0, -1, 0], [0, 0, -1]])
    return rot_z(roll) @ rot_x(tilt) @ base @ rot_y(spin)


def random_rotation(rng: np.random.Generator, max_roll_deg: float = 120.0,
                    max_tilt_deg: float = 60.0) -> np.ndarray:
    """:func:`hand_to_camera` with any spin (palm or back of the hand visible) and a tilt and a
    roll of up to ``max_tilt_deg`` and ``max_roll_deg`` either way."""
    return hand_to_camera(rng.uniform(-np.pi, np.pi),
                          rng.uniform(-max_tilt_deg, max_tilt_deg) * DEG,
                          rng.uniform(-max_roll_deg, max_roll_deg) * DEG)
