"""A small z-buffer rasteriser for procedural hands (and synthetic COCO's people), drawn in the
camera frame (metres) from **capsules** (a segment swept by a sphere whose radius varies linearly:
phalanges, thenar eminence, the palm's rim, forearm) and **triangles** (the palm slab's faces).

Each pixel keeps the nearest surface, so fingers occlude each other as their depths say, in the
buffers the dataset writers need: depth (RHD's depth maps, joint visibility), part id (RHD's class
masks, FreiHAND's hand mask), which hand, surface normal (shading) and coverage (anti-aliased
compositing).

Part ids within a hand follow RHD's mask layout, so RHD ids are a fixed offset away: three per
finger, tip to palm (thumb 1-3, index 4-6, middle 7-9, ring 10-12, pinky 13-15), 16 palm, 17 arm."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .hand_model import HandPose, HandShape, forward_kinematics

PALM_PART = 16
FOREARM_PART = 17


def finger_part(finger: int, segment_from_tip: int) -> int:
    """Part id of a finger segment: finger 0 (thumb) .. 4 (pinky), segment 0 = distal."""
    return 1 + 3 * finger + segment_from_tip


@dataclass
class Capsule:
    a: np.ndarray
    b: np.ndarray
    ra: float
    rb: float
    part: int
    material: int = 0  # 0 skin, 1 fingernail


@dataclass
class Triangle:
    p: np.ndarray  # (3, 3) vertices
    part: int


@dataclass
class HandGeometry:
    """A posed hand (or COCO person) in the camera frame: joints and the primitives that draw it."""

    joints: np.ndarray  # (21, 3) metres, camera frame, HAND21 order (a person: COCO-17)
    joint_radius: np.ndarray  # (21,) how deep each joint sits under the skin
    capsules: list[Capsule] = field(default_factory=list)
    triangles: list[Triangle] = field(default_factory=list)
    side: str = "right"


def build_hand(shape: HandShape, pose: HandPose, rotation: np.ndarray, translation: np.ndarray,
               side: str = "right", forearm: bool = True) -> HandGeometry:
    """Pose a hand (``rotation``, ``translation``: hand frame -> camera frame)."""
    local = forward_kinematics(shape, pose, side)
    mirror = -1.0 if side == "left" else 1.0
    to_cam = lambda p: np.asarray(p) @ rotation.T + translation
    joints = to_cam(local)

    r0 = shape.finger_radius
    caps: list[Capsule] = []
    radius = np.full(21, r0)
    # Fingers taper from the knuckle to the tip; the little finger is slimmer, the thumb thicker
    # and wider at its base. The fingers are drawn before the thumb (the order settles depth ties).
    rt = 1.12 * r0
    for f in (1, 2, 3, 4, 0):
        base = 1 + 4 * f
        r = rt if f == 0 else r0 * (0.85 if f == 4 else 1.0)
        taper = (1.35 if f == 0 else 1.0, 0.88, 0.78, 0.7)
        for k in range(3):
            caps.append(Capsule(joints[base + k], joints[base + k + 1], r * taper[k],
                                r * taper[k + 1], finger_part(f, 2 - k)))
            radius[base + k] = r * taper[k]
        radius[base + 3] = r * taper[3]
    # A fleshy thenar capsule from the wrist to the thumb's MCP.
    caps.append(Capsule(to_cam(local[0] * 0.3 + local[1] * 0.7), joints[2], 1.45 * rt, 1.05 * rt,
                        finger_part(0, 2)))
    radius[1] = 1.45 * rt
    # Fingernails on the back of each distal phalanx: they show which side of the hand we see.
    # The palm normal is +z in the hand frame for both sides (a left hand mirrors x only).
    back = -(rotation @ np.array([0.0, 0.0, 1.0]))
    for f in range(5):
        tip = 4 + 4 * f
        r_tip = radius[tip]
        a = joints[tip - 1] + 0.45 * (joints[tip] - joints[tip - 1])
        b = joints[tip] - 0.25 * (joints[tip] - joints[tip - 1])
        off = back * r_tip * 0.55
        caps.append(Capsule(a + off, b + off, r_tip * 0.6, r_tip * 0.6, finger_part(f, 0), 1))

    # Palm: a slab between two parallel faces, with a rounded rim of capsules.
    half = shape.palm_thickness / 2
    mcp = local[[5, 9, 13, 17]]
    outline2d = np.array([
        [mirror * 0.021, 0.004],  # wrist, thumb side
        [local[1][0] + mirror * 0.004, local[1][1] + 0.006],  # thumb CMC
        mcp[0, :2] + [mirror * 0.005, -0.004], mcp[1, :2] + [0, 0.001], mcp[2, :2] + [0, 0.0],
        mcp[3, :2] + [-mirror * 0.006, -0.003],
        [mcp[3, 0] - mirror * 0.006, 0.032],  # hypothenar edge
        [-mirror * 0.023, 0.004],  # wrist, little-finger side
    ])
    rim = np.c_[outline2d, np.zeros(len(outline2d))]  # the outline in the palm's mid-plane
    centre = np.r_[outline2d.mean(0), 0.0]
    tris = []
    for face in (+1, -1):
        ring = rim + [0, 0, face * half]
        c = centre + [0, 0, face * half]
        for a, b in zip(ring, np.roll(ring, -1, axis=0)):
            tris.append(Triangle(to_cam(np.stack([c, a, b])), PALM_PART))
    for a, b in zip(rim, np.roll(rim, -1, axis=0)):
        caps.append(Capsule(to_cam(a), to_cam(b), half, half, PALM_PART))
    # Knuckle bumps at the MCPs so fingers join the palm smoothly.
    for f in range(4):
        j = 5 + 4 * f
        caps.append(Capsule(joints[j], to_cam(local[j] * 0.8), r0 * 1.05, half, PALM_PART))
    radius[0] = half
    radius[[5, 9, 13, 17]] = np.maximum(radius[[5, 9, 13, 17]] * 1.05, half)
    if forearm:
        w = to_cam([0, -0.01, 0])
        elbow = to_cam([mirror * -0.004, -0.26, 0.0])
        r_wrist = 0.024 * (shape.palm_thickness / 0.013)
        caps.append(Capsule(w, elbow, r_wrist, 0.033, FOREARM_PART))
        radius[0] = r_wrist
    return HandGeometry(joints, radius, caps, tris, side)


class Canvas:
    """Per-pixel buffers for drawing hands with a depth test. Pixel centres are integers (as in
    ``uv = K xyz`` and ``imshow``): pixel (v, u) covers [u-0.5, u+0.5] x [v-0.5, v+0.5]."""

    def __init__(self, height: int, width: int, K: np.ndarray):
        self.h, self.w = height, width
        self.K = np.asarray(K, float)
        self.depth = np.full((height, width), np.inf, np.float32)
        self.normal = np.zeros((height, width, 3), np.float32)
        self.part = np.zeros((height, width), np.uint8)
        self.hand = np.full((height, width), -1, np.int8)
        self.cover = np.zeros((height, width), np.float32)
        self.material = np.zeros((height, width), np.uint8)

    def _project(self, p):
        p = np.asarray(p, float)
        return (self.K @ p)[:2] / p[2]

    def _box(self, lo, hi):
        x0, y0 = max(int(np.floor(lo[0])), 0), max(int(np.floor(lo[1])), 0)
        x1, y1 = min(int(np.ceil(hi[0])) + 1, self.w), min(int(np.ceil(hi[1])) + 1, self.h)
        return x0, y0, x1, y1

    def _write(self, y0, y1, x0, x1, inside, z, n, cover, part, hand, material=0):
        sub = self.depth[y0:y1, x0:x1]
        win = inside & (z < sub)
        sub[win] = z[win]
        self.normal[y0:y1, x0:x1][win] = n[win]
        self.part[y0:y1, x0:x1][win] = part
        self.hand[y0:y1, x0:x1][win] = hand
        self.material[y0:y1, x0:x1][win] = material
        c = self.cover[y0:y1, x0:x1]
        np.maximum(c, np.where(inside, cover, 0), out=c)

    def capsule(self, cap: Capsule, hand: int = 0) -> None:
        a, b = np.asarray(cap.a, float), np.asarray(cap.b, float)
        if a[2] <= 1e-3 or b[2] <= 1e-3:
            return  # behind or at the camera: nothing to draw
        f = self.K[0, 0]
        pa, pb = self._project(a), self._project(b)
        rpa, rpb = cap.ra * f / a[2], cap.rb * f / b[2]
        pad = max(rpa, rpb) + 1
        x0, y0, x1, y1 = self._box(np.minimum(pa, pb) - pad, np.maximum(pa, pb) + pad)
        if x0 >= x1 or y0 >= y1:
            return
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        d = pb - pa
        dd = max(float(d @ d), 1e-9)
        t = np.clip(((xs - pa[0]) * d[0] + (ys - pa[1]) * d[1]) / dd, 0.0, 1.0)
        cx, cy = pa[0] + t * d[0], pa[1] + t * d[1]
        rp = rpa + t * (rpb - rpa)
        ox, oy = xs - cx, ys - cy
        dist = np.sqrt(ox * ox + oy * oy)
        cover = np.clip(rp + 0.5 - dist, 0.0, 1.0)
        inside = cover > 0
        if not inside.any():
            return
        q = np.clip(dist / np.maximum(rp, 1e-6), 0.0, 1.0)
        h = np.sqrt(1.0 - q * q)
        r3 = cap.ra + t * (cap.rb - cap.ra)
        z = (a[2] + t * (b[2] - a[2]) - r3 * h).astype(np.float32)
        rp_safe = np.maximum(rp, 1e-6)
        n = np.stack([ox / rp_safe, oy / rp_safe, -h], axis=-1)
        n /= np.linalg.norm(n, axis=-1, keepdims=True) + 1e-9
        self._write(y0, y1, x0, x1, inside, z, n, cover, cap.part, hand, cap.material)

    def triangle(self, tri: Triangle, hand: int = 0) -> None:
        p = np.asarray(tri.p, float)
        if np.any(p[:, 2] <= 1e-3):
            return
        uv = np.stack([self._project(q) for q in p])
        x0, y0, x1, y1 = self._box(uv.min(0) - 1, uv.max(0) + 1)
        if x0 >= x1 or y0 >= y1:
            return
        (ax, ay), (bx, by), (cx, cy) = uv
        den = (by - cy) * (ax - cx) + (cx - bx) * (ay - cy)
        if abs(den) < 1e-9:
            return  # seen edge-on: the rim capsules draw it
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        w0 = ((by - cy) * (xs - cx) + (cx - bx) * (ys - cy)) / den
        w1 = ((cy - ay) * (xs - cx) + (ax - cx) * (ys - cy)) / den
        w2 = 1.0 - w0 - w1
        # Signed distance to the nearest edge, in pixels, for anti-aliased edges.
        edge_len = np.array([np.hypot(bx - cx, by - cy), np.hypot(cx - ax, cy - ay),
                             np.hypot(ax - bx, ay - by)])
        heights = 2 * abs(den) / 2 / np.maximum(edge_len, 1e-9)
        sd = np.minimum(np.minimum(w0 * heights[0], w1 * heights[1]), w2 * heights[2])
        cover = np.clip(sd + 0.5, 0.0, 1.0)
        inside = cover > 0
        if not inside.any():
            return
        # Perspective-correct depth: 1/z is linear in screen space.
        inv_z = w0 / p[0, 2] + w1 / p[1, 2] + w2 / p[2, 2]
        z = (1.0 / np.maximum(inv_z, 1e-6)).astype(np.float32)
        nrm = np.cross(p[1] - p[0], p[2] - p[0])
        nrm /= np.linalg.norm(nrm) + 1e-12
        if nrm[2] > 0:  # face the camera
            nrm = -nrm
        n = np.broadcast_to(nrm.astype(np.float32), (*xs.shape, 3))
        self._write(y0, y1, x0, x1, inside, z, n, cover, tri.part, hand)

    def draw(self, geometry: HandGeometry, hand: int = 0) -> None:
        for tri in geometry.triangles:
            self.triangle(tri, hand)
        for cap in geometry.capsules:
            self.capsule(cap, hand)

    def joint_visibility(self, geometry: HandGeometry, tolerance: float = 0.004) -> np.ndarray:
        """Per-joint visibility: inside the image and not hidden behind another surface. A joint
        sits inside its own capsule, ``joint_radius`` under the skin; it is visible when the
        nearest surface at its pixel is no more than that (plus ``tolerance``) in front of it."""
        uv = np.stack([self._project(p) for p in geometry.joints])
        u = np.round(uv[:, 0]).astype(int)
        v = np.round(uv[:, 1]).astype(int)
        inside = (u >= 0) & (u < self.w) & (v >= 0) & (v < self.h)
        vis = np.zeros(len(uv), bool)
        idx = np.flatnonzero(inside)
        front = self.depth[v[idx], u[idx]]
        z = geometry.joints[idx, 2] - geometry.joint_radius[idx] - tolerance
        vis[idx] = z <= front
        return vis


@dataclass
class Skin:
    """How a hand looks: base colour (RGB in 0..1), a lighter palm side and a sleeve colour."""

    color: np.ndarray
    palm_tint: float = 1.08
    sleeve: np.ndarray | None = None


# Skin tones from light to dark (sRGB, 0..1), sampled with jitter.
SKIN_TONES = np.array([[0.96, 0.80, 0.69], [0.92, 0.72, 0.58], [0.85, 0.64, 0.50],
                       [0.76, 0.55, 0.42], [0.62, 0.43, 0.31], [0.46, 0.31, 0.22],
                       [0.33, 0.22, 0.16]])


def sample_skin(rng: np.random.Generator) -> Skin:
    base = SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.92, 1.06, 3)
    sleeve = rng.uniform(0.05, 0.9, 3) if rng.uniform() < 0.5 else None
    return Skin(np.clip(base, 0, 1), rng.uniform(1.0, 1.12), sleeve)


def shade(canvas: Canvas, skins: list[Skin], rng: np.random.Generator) -> np.ndarray:
    """Lambert + Blinn-Phong shading of the hand pixels. Returns (H, W, 3) float RGB in 0..1."""
    # Direction towards the light: in front of the hand (-z, towards the camera) and above it.
    to_light = np.array([rng.uniform(-0.6, 0.6), rng.uniform(-0.9, -0.1), -1.0])
    to_light /= np.linalg.norm(to_light)
    ambient = rng.uniform(0.3, 0.45)
    diffuse = np.clip(canvas.normal @ to_light, 0, None)
    half = to_light + np.array([0, 0, -1.0])  # halfway between the light and the viewer
    half /= np.linalg.norm(half)
    spec = np.clip(canvas.normal @ half, 0, None) ** 24 * rng.uniform(0.05, 0.25)
    albedo = np.zeros((canvas.h, canvas.w, 3), np.float32)
    for i, skin in enumerate(skins):
        on = canvas.hand == i
        albedo[on] = skin.color
        if skin.sleeve is not None:
            albedo[on & (canvas.part == FOREARM_PART)] = skin.sleeve
        albedo[on & (canvas.part == PALM_PART)] *= skin.palm_tint
        albedo[on & (canvas.material == 1)] = skin.color * 0.35 + np.array([0.62, 0.52, 0.5])
    return np.clip(albedo * (ambient + (1 - ambient) * diffuse)[..., None] + spec[..., None], 0, 1)
