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
from .style import RenderStyle

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
    bulge: float = 0.0  # > 0: the normal tilts outwards away from vertex 0 (a rounded palm)


@dataclass
class HandGeometry:
    """A posed hand (or COCO person) in the camera frame: joints and the primitives that draw it."""

    joints: np.ndarray  # (21, 3) metres, camera frame, HAND21 order (a person: COCO-17)
    joint_radius: np.ndarray  # (21,) how deep each joint sits under the skin
    capsules: list[Capsule] = field(default_factory=list)
    triangles: list[Triangle] = field(default_factory=list)
    side: str = "right"
    palm_normal: np.ndarray | None = None  # camera frame: the direction the palm faces


def build_hand(shape: HandShape, pose: HandPose, rotation: np.ndarray, translation: np.ndarray,
               side: str = "right", forearm: bool = True, flesh: bool = False) -> HandGeometry:
    """Pose a hand (``rotation``, ``translation``: hand frame -> camera frame). ``flesh``: the
    proportions of a real hand (fingers that touch at their base, a palm as thick as a finger with
    a rounded face, the web between thumb and index); without it, the slimmer first model."""
    local = forward_kinematics(shape, pose, side)
    mirror = -1.0 if side == "left" else 1.0
    to_cam = lambda p: np.asarray(p) @ rotation.T + translation
    joints = to_cam(local)

    r0 = shape.finger_radius * (1.2 if flesh else 1.0)
    caps: list[Capsule] = []
    radius = np.full(21, r0)
    # Fingers taper from the knuckle to the tip; the little finger is slimmer, the thumb thicker
    # and wider at its base. The fingers are drawn before the thumb (the order settles depth ties).
    rt = 1.12 * r0
    for f in (1, 2, 3, 4, 0):
        base = 1 + 4 * f
        r = rt if f == 0 else r0 * (0.85 if f == 4 else 1.0)
        taper = (1.35 if f == 0 else 1.0, 0.92, 0.84, 0.78) if flesh else \
            (1.35 if f == 0 else 1.0, 0.88, 0.78, 0.7)
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
    half = shape.palm_thickness / 2 * (1.6 if flesh else 1.0)
    mcp = local[[5, 9, 13, 17]]
    wide = 0.5 * r0 if flesh else 0.0  # a real palm reaches past the outer knuckles' centres
    outline2d = np.array([
        [mirror * (0.021 + wide), 0.004],  # wrist, thumb side
        [local[1][0] + mirror * (0.004 + wide), local[1][1] + 0.006],  # thumb CMC
        mcp[0, :2] + [mirror * (0.005 + wide), -0.004], mcp[1, :2] + [0, 0.001],
        mcp[2, :2] + [0, 0.0], mcp[3, :2] + [-mirror * (0.006 + wide), -0.003],
        [mcp[3, 0] - mirror * (0.006 + wide), 0.032],  # hypothenar edge
        [-mirror * (0.023 + wide), 0.004],  # wrist, little-finger side
    ])
    if flesh:  # round the corners (Chaikin's cut): a palm's outline has no sharp vertices
        nxt = np.roll(outline2d, -1, axis=0)
        outline2d = np.stack([0.75 * outline2d + 0.25 * nxt, 0.25 * outline2d + 0.75 * nxt],
                             axis=1).reshape(-1, 2)
    rim = np.c_[outline2d, np.zeros(len(outline2d))]  # the outline in the palm's mid-plane
    centre = np.r_[outline2d.mean(0), 0.0]
    tris = []
    for face in (+1, -1):
        ring = rim + [0, 0, face * half]
        c = centre + [0, 0, face * half * (1.6 if flesh else 1.0)]  # a flesh palm domes
        for a, b in zip(ring, np.roll(ring, -1, axis=0)):
            tris.append(Triangle(to_cam(np.stack([c, a, b])), PALM_PART, 0.7 if flesh else 0.0))
    if flesh:  # skin webs join the fingers' first third: a finger starts well past its knuckle
        for f in range(1, 4):
            a, b = 1 + 4 * f, 5 + 4 * f  # MCPs of neighbouring fingers
            qa, qb = joints[a] + 0.4 * (joints[a + 1] - joints[a]), \
                joints[b] + 0.4 * (joints[b + 1] - joints[b])
            tris.append(Triangle(np.stack([joints[a], joints[b], qa]), PALM_PART))
            tris.append(Triangle(np.stack([joints[b], qb, qa]), PALM_PART))
            caps.append(Capsule(qa, qb, 0.5 * r0, 0.5 * r0, PALM_PART))
        # and the web between the thumb and the index finger, on both faces
        web = np.stack([local[1], local[2] * 0.6 + local[1] * 0.4, local[5]])
        for face in (+1, -1):
            tris.append(Triangle(to_cam(web + [0, 0, face * half * 0.6]), PALM_PART))
        caps.append(Capsule(to_cam(local[2] * 0.6 + local[1] * 0.4), joints[5], 0.45 * rt,
                            0.6 * r0, PALM_PART))
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
    palm_normal = rotation @ np.array([0.0, 0.0, 1.0])
    return HandGeometry(joints, radius, caps, tris, side, palm_normal)


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
        self.along = np.zeros((height, width), np.float32)  # 0..1 from a capsule's a to its b
        self.palm_normals: dict[int, np.ndarray] = {}  # per hand index

    def crop(self, y0: int, y1: int, x0: int, x1: int) -> Canvas:
        """The canvas inside rows y0:y1 and columns x0:x1: views of the same buffers (writing to
        one writes to the other) and intrinsics moved to the crop's origin."""
        out = Canvas.__new__(Canvas)
        out.h, out.w = y1 - y0, x1 - x0
        out.K = self.K.copy()
        out.K[:2, 2] -= (x0, y0)
        for name in ("depth", "normal", "part", "hand", "cover", "material", "along"):
            setattr(out, name, getattr(self, name)[y0:y1, x0:x1])
        out.palm_normals = self.palm_normals
        return out

    def _project(self, p):
        p = np.asarray(p, float)
        return (self.K @ p)[:2] / p[2]

    def _box(self, lo, hi):
        x0, y0 = max(int(np.floor(lo[0])), 0), max(int(np.floor(lo[1])), 0)
        x1, y1 = min(int(np.ceil(hi[0])) + 1, self.w), min(int(np.ceil(hi[1])) + 1, self.h)
        return x0, y0, x1, y1

    def _write(self, y0, y1, x0, x1, inside, z, n, cover, part, hand, material=0, along=None):
        sub = self.depth[y0:y1, x0:x1]
        win = inside & (z < sub)
        sub[win] = z[win]
        if along is not None:
            self.along[y0:y1, x0:x1][win] = along[win]
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
        self._write(y0, y1, x0, x1, inside, z, n, cover, cap.part, hand, cap.material, t)

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
        if tri.bulge > 0:  # tilt towards the rim: the further from vertex 0, the more
            out = (w1[..., None] * p[1] + w2[..., None] * p[2]) - (w1 + w2)[..., None] * p[0]
            out -= (out @ nrm)[..., None] * nrm  # within the face
            n = n + tri.bulge * out / (np.linalg.norm(p[1:] - p[0], axis=1).mean() + 1e-9)
            n = (n / (np.linalg.norm(n, axis=-1, keepdims=True) + 1e-9)).astype(np.float32)
        self._write(y0, y1, x0, x1, inside, z, n, cover, tri.part, hand)

    def draw(self, geometry: HandGeometry, hand: int = 0) -> None:
        if geometry.palm_normal is not None:
            self.palm_normals[hand] = np.asarray(geometry.palm_normal, float)
        for tri in geometry.triangles:
            self.triangle(tri, hand)
        for cap in geometry.capsules:
            self.capsule(cap, hand)

    def joint_visibility(self, geometry: HandGeometry, tolerance: float = 0.004,
                         hand: int = 0) -> np.ndarray:
        """Per-joint visibility: inside the image and not hidden behind another surface. A joint
        sits inside its own capsule, ``joint_radius`` under the skin. A hand's joint is visible
        when its pixel shows its own skin (its finger's, the palm's; ``hand``'s) no more than
        ``tolerance`` in front of that depth: where a neighbour's surface touches the skin, the
        pixel decides, as it does for an annotator. A person's joint (COCO-17) is visible when
        nothing at its pixel is nearer than its skin."""
        uv = np.array([self._project(p) for p in geometry.joints]).reshape(-1, 2)
        u = np.round(uv[:, 0]).astype(int)
        v = np.round(uv[:, 1]).astype(int)
        inside = (u >= 0) & (u < self.w) & (v >= 0) & (v < self.h)
        vis = np.zeros(len(uv), bool)
        idx = np.flatnonzero(inside)
        front = self.depth[v[idx], u[idx]]
        part = self.part[v[idx], u[idx]].astype(int)
        finger = np.maximum(idx - 1, 0) // 4  # HAND21: joints 1-4 thumb, 5-8 index, ...
        in_palm = np.isin(idx, (0, 1, 2, 5, 9, 13, 17))  # wrist, CMC, MCPs: inside the palm
        own = in_palm & (part == PALM_PART) | ((part - 1) // 3 == finger) & (part >= 1) & (part <= 15)
        own |= (idx == 0) & (part == FOREARM_PART)
        own &= self.hand[v[idx], u[idx]] == hand
        z = geometry.joints[idx, 2] - geometry.joint_radius[idx] - np.where(own, tolerance, 0.0)
        is_hand = len(uv) == 21  # HAND21; a COCO person has 17 joints and no own-skin rule
        vis[idx] = (z <= front) & (own | (not is_hand))
        return vis


@dataclass
class Skin:
    """How a hand looks: base colour (RGB in 0..1), a lighter palm side and a sleeve colour."""

    color: np.ndarray
    palm_tint: float = 1.08
    sleeve: np.ndarray | None = None
    cuff: float = 0.0  # the share of the forearm left bare above the wrist, under the sleeve's end


# Skin tones from light to dark (sRGB, 0..1), sampled with jitter.
SKIN_TONES = np.array([[0.96, 0.80, 0.69], [0.92, 0.72, 0.58], [0.85, 0.64, 0.50],
                       [0.76, 0.55, 0.42], [0.62, 0.43, 0.31], [0.46, 0.31, 0.22],
                       [0.33, 0.22, 0.16]])


# Clothes' colours (sRGB, 0..1): black, white, greys, navy, denim, olive, maroon, beige, light blue.
SLEEVE_COLOURS = np.array([[0.08, 0.08, 0.09], [0.9, 0.9, 0.88], [0.5, 0.5, 0.52], [0.25, 0.25, 0.28],
                           [0.14, 0.18, 0.32], [0.3, 0.4, 0.55], [0.35, 0.37, 0.25],
                           [0.45, 0.16, 0.16], [0.72, 0.65, 0.52], [0.55, 0.6, 0.7]])


def sample_skin(rng: np.random.Generator, clothes: bool = False) -> Skin:
    """A skin tone, and half the time a sleeve: with ``clothes`` (``RenderStyle.sleeves``) in
    clothes' colours (mostly muted, sometimes any) ending 5-45 % of the forearm above the wrist, as
    sleeves do; else any colour, down to the wrist."""
    base = SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.92, 1.06, 3)
    if not clothes:
        sleeve = rng.uniform(0.05, 0.9, 3) if rng.uniform() < 0.5 else None
        return Skin(np.clip(base, 0, 1), rng.uniform(1.0, 1.12), sleeve)
    sleeve, cuff = None, 0.0
    if rng.uniform() < 0.5:
        pick = SLEEVE_COLOURS[rng.integers(len(SLEEVE_COLOURS))] if rng.uniform() < 0.85 else \
            rng.uniform(0.05, 0.9, 3)
        sleeve = np.clip(pick * rng.uniform(0.85, 1.15) * rng.uniform(0.95, 1.05, 3), 0, 1)
        cuff = rng.uniform(0.05, 0.45)
    return Skin(np.clip(base, 0, 1), rng.uniform(1.0, 1.12), sleeve, cuff)


def shade(canvas: Canvas, skins: list[Skin], rng: np.random.Generator,
          style: RenderStyle | None = None) -> np.ndarray:
    """The hands' pixels, (H, W, 3) float RGB in 0..1: :func:`shade_plain` without a ``style``
    (or a plain one), else skin, lights and shadows as its switches say."""
    if style is None or not (style.flesh or style.skin or style.shadows or style.lighting):
        return shade_plain(canvas, skins, rng)
    rgb = np.zeros((canvas.h, canvas.w, 3), np.float32)
    rows, cols = np.flatnonzero(np.isfinite(canvas.depth).any(1)), \
        np.flatnonzero(np.isfinite(canvas.depth).any(0))
    if len(rows):  # the work is done in the box around what was drawn (and a margin)
        y0, y1 = max(rows[0] - 4, 0), min(rows[-1] + 5, canvas.h)
        x0, x1 = max(cols[0] - 4, 0), min(cols[-1] + 5, canvas.w)
        rgb[y0:y1, x0:x1] = _shade_styled(canvas.crop(y0, y1, x0, x1), skins, rng, style)
    return rgb


def _shade_styled(canvas: Canvas, skins: list[Skin], rng: np.random.Generator,
                  style: RenderStyle) -> np.ndarray:
    if style.flesh:
        smooth_normals(canvas)
    if style.lighting:  # a key light from anywhere in front, warm (tungsten) to cool (daylight),
        # and a room's fill: light bounced off walls and ceiling reaches the side turned away
        to_light = np.array([rng.uniform(-1, 1), rng.uniform(-1, 0.5), -rng.uniform(0.6, 1)])
        warmth = rng.uniform(-1, 1)
        light = np.array([1 + 0.18 * warmth, 1.0, 1 - 0.25 * warmth]) * rng.uniform(0.55, 0.85)
        ambient = rng.uniform(0.35, 0.5) * (1 + 0.12 * rng.uniform(-1, 1, 3))
    else:
        to_light = np.array([rng.uniform(-0.6, 0.6), rng.uniform(-0.9, -0.1), -1.0])
        light, ambient = np.ones(3), np.full(3, rng.uniform(0.3, 0.45))
    to_light /= np.linalg.norm(to_light)
    lit = canvas.normal @ to_light
    if style.skin:  # light scattered under the skin wraps past the terminator, reddened
        diffuse = np.clip((lit + 0.35) / 1.35, 0, None)[..., None] * [1.0, 0.93, 0.88] + \
            np.clip(lit, 0, None)[..., None] * [0.0, 0.07, 0.12]
    else:
        diffuse = np.clip(lit, 0, None)[..., None]
    if style.shadows:
        diffuse = diffuse * cast_shadow(canvas, to_light)[..., None]
    half = to_light + np.array([0, 0, -1.0])
    half /= np.linalg.norm(half)
    gloss = rng.uniform(0.03, 0.12) if style.skin else rng.uniform(0.05, 0.25)
    spec = np.clip(canvas.normal @ half, 0, None) ** (12 if style.skin else 24) * gloss
    albedo = skin_albedo(canvas, skins, rng) if style.skin else _albedo(canvas, skins)
    shaded = albedo * (ambient + light * diffuse) + (spec[..., None] * light)
    if style.shadows:
        shaded *= contact_darkening(canvas)[..., None]
    return np.clip(shaded, 0, 1).astype(np.float32)


def _box(a: np.ndarray, r: int, axis: int) -> np.ndarray:
    """Mean over 2r + 1 samples along ``axis`` (edges extended), by a running sum."""
    pad = [(0, 0)] * a.ndim
    pad[axis] = (r + 1, r)
    c = np.cumsum(np.pad(a, pad, mode="edge"), axis=axis, dtype=np.float64)
    n = a.shape[axis]
    hi = np.take(c, np.arange(2 * r + 1, 2 * r + 1 + n), axis=axis)
    lo = np.take(c, np.arange(0, n), axis=axis)
    return ((hi - lo) / (2 * r + 1)).astype(np.float32)


def blur(a: np.ndarray, sigma: float) -> np.ndarray:
    """About a Gaussian blur of a 2-D array: two box blurs per axis (a tent), any ``sigma`` at the
    same cost."""
    r = max(1, int(round(sigma * 1.2)))  # a tent of two boxes of 2r + 1 has sigma ~ 0.82 r
    for axis in (0, 1):
        a = _box(_box(a, r, axis), r, axis)
    return a


def smooth_normals(canvas: Canvas, reach: float = 0.008) -> None:
    """Blend the primitives into one surface: normals from the depth map smoothed over ``reach``
    metres, so a finger flows into the palm instead of meeting it at a seam (a smooth union, as
    skin over bones). At the silhouette the exact normals stay (the depth map ends there)."""
    on = np.isfinite(canvas.depth)
    ppm = _pixels_per_metre(canvas)
    if ppm * reach < 0.5:
        return
    z = np.where(on, canvas.depth, 0).astype(np.float32)
    weight = blur(on.astype(np.float32), reach * ppm)
    smooth = blur(z, reach * ppm) / np.maximum(weight, 1e-6)
    gy, gx = np.gradient(np.where(on, smooth, 0))
    n = np.stack([gx * ppm, gy * ppm, -np.ones_like(gx)], axis=-1)  # depth slope per metre
    # near the silhouette the depth map ends: keep the exact normals there. Across a step (a finger
    # in front of another) the smooth surface ramps, which reads as soft flesh, as skin does.
    inner = np.clip((weight - 0.6) * 2.5, 0, 1)[..., None]
    n = inner * n / np.linalg.norm(n, axis=-1, keepdims=True) + (1 - inner) * canvas.normal
    n /= np.linalg.norm(n, axis=-1, keepdims=True) + 1e-9
    canvas.normal[on] = n[on]


def _albedo(canvas: Canvas, skins: list[Skin]) -> np.ndarray:
    albedo = np.zeros((canvas.h, canvas.w, 3), np.float32)
    for i, skin in enumerate(skins):
        on = canvas.hand == i
        albedo[on] = skin.color
        if skin.sleeve is not None:
            albedo[on & (canvas.part == FOREARM_PART) & (canvas.along >= skin.cuff)] = skin.sleeve
        albedo[on & (canvas.part == PALM_PART)] *= skin.palm_tint
        albedo[on & (canvas.material == 1)] = skin.color * 0.35 + np.array([0.62, 0.52, 0.5])
    return albedo


def _nails(canvas: Canvas, skins: list[Skin], albedo: np.ndarray) -> None:
    """Nails a shade lighter and pinker than the skin around them, not painted on."""
    for i, skin in enumerate(skins):
        nail = (canvas.hand == i) & (canvas.material == 1)
        albedo[nail] = skin.color * 0.8 + np.array([0.2, 0.15, 0.15])


def skin_albedo(canvas: Canvas, skins: list[Skin], rng: np.random.Generator) -> np.ndarray:
    """Skin colour that varies over the hand: the palm side lighter and pinker than the back,
    finger tips and knuckles redder, darker creases across the finger joints, blotches."""
    albedo = _albedo(canvas, skins)
    _nails(canvas, skins, albedo)
    finger = (canvas.part >= 1) & (canvas.part <= 15)
    for i, skin in enumerate(skins):
        on = (canvas.hand == i) & (canvas.part <= PALM_PART) & (canvas.material == 0)
        if i in canvas.palm_normals and on.any():
            # palms (and the fingers' palm sides) carry less pigment: lighter and pinker, the
            # more so the darker the skin
            palm_side = np.clip(canvas.normal[on] @ canvas.palm_normals[i] * 1.5 + 0.3, 0, 1)
            pale = np.array([0.92, 0.72, 0.62]) * (0.85 + 0.1 * skin.palm_tint)
            mix = palm_side[:, None] * (0.15 + 0.4 * (1 - skin.color.mean()))
            albedo[on] = albedo[on] * (1 - mix) + pale * mix
    distal = finger & ((canvas.part - 1) % 3 == 0) & (canvas.material == 0)
    albedo[distal] *= 1 - np.clip(canvas.along[distal] - 0.5, 0, 0.5)[:, None] * [-0.06, 0.16, 0.14]
    # creases: thin darker bands where phalanges meet (capsule ends), knuckles a little redder
    end = np.minimum(canvas.along, 1 - canvas.along)
    crease = finger & (end < 0.04) & (canvas.material == 0)
    albedo[crease] *= np.array([0.94, 0.9, 0.9]) + 1.5 * end[crease][:, None]
    h, w = canvas.h, canvas.w
    cells = max(int(max(h, w) / 6), 8)  # skin's fine texture, a few pixels across
    blotch = 1 + 0.05 * (_coarse_noise(rng, h, w) - 0.5) + 0.08 * (_coarse_noise(rng, h, w, cells) - 0.5)
    return np.clip(albedo * blotch[..., None], 0, 1)


def _coarse_noise(rng: np.random.Generator, h: int, w: int, cells: int = 6) -> np.ndarray:
    grid = rng.uniform(0, 1, (cells, cells)).astype(np.float32)
    ys = np.linspace(0, cells - 1, h)
    xs = np.linspace(0, cells - 1, w)
    y0, x0 = np.floor(ys).astype(int).clip(0, cells - 2), np.floor(xs).astype(int).clip(0, cells - 2)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None]
    top = grid[y0][:, x0] * (1 - fx) + grid[y0][:, x0 + 1] * fx
    bottom = grid[y0 + 1][:, x0] * (1 - fx) + grid[y0 + 1][:, x0 + 1] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


def _shifted(a: np.ndarray, dy: int, dx: int, fill) -> np.ndarray:
    """``a`` moved so that out[y, x] = a[y + dy, x + dx] (``fill`` outside)."""
    out = np.full_like(a, fill)
    h, w = a.shape
    ys, yd = slice(max(dy, 0), h + min(dy, 0)), slice(max(-dy, 0), h + min(-dy, 0))
    xs, xd = slice(max(dx, 0), w + min(dx, 0)), slice(max(-dx, 0), w + min(-dx, 0))
    out[yd, xd] = a[ys, xs]
    return out


def _pixels_per_metre(canvas: Canvas) -> float:
    drawn = np.isfinite(canvas.depth)
    return canvas.K[0, 0] / float(np.median(canvas.depth[drawn])) if drawn.any() else 0.0


def contact_darkening(canvas: Canvas, reach: float = 0.012, strength: float = 0.3) -> np.ndarray:
    """Screen-space ambient occlusion: a surface with nearer surfaces around it (a finger against
    another, the palm under curled fingers) gets less light. (H, W) factors in 0..1."""
    r = reach * _pixels_per_metre(canvas)
    if r < 1:
        return np.ones((canvas.h, canvas.w), np.float32)
    depth = np.where(np.isfinite(canvas.depth), canvas.depth, np.float32(1e3))
    occluded = np.zeros_like(depth)
    steps = [(np.sin(a), np.cos(a)) for a in np.linspace(0, 2 * np.pi, 8, endpoint=False)]
    for k, (sy, sx) in enumerate(steps):
        dist = r * (0.5 + 0.5 * (k % 2))
        there = _shifted(depth, int(round(sy * dist)), int(round(sx * dist)), 1e3)
        gap = depth - there  # > 0: the neighbour is nearer
        occluded += np.clip(gap / reach, 0, 1) * (gap < 3 * reach)
    return (1 - strength * occluded / len(steps)).astype(np.float32)


def cast_shadow(canvas: Canvas, to_light: np.ndarray, softness: float = 0.006) -> np.ndarray:
    """Screen-space shadows: a pixel is in shadow when, walking towards the light in the image, a
    surface rises in front of the ray towards the light. Soft: the more such samples, the darker."""
    ppm = _pixels_per_metre(canvas)
    step_2d = -to_light[:2] if np.linalg.norm(to_light[:2]) > 1e-3 else np.zeros(2)
    if ppm <= 0 or not step_2d.any():
        return np.ones((canvas.h, canvas.w), np.float32)
    depth = np.where(np.isfinite(canvas.depth), canvas.depth, np.float32(1e3))
    blocked = np.zeros_like(depth)
    n = 6
    rise = -to_light[2] / max(np.linalg.norm(to_light[:2]), 1e-3)  # towards the camera per metre
    for k in range(1, n + 1):
        metres = 0.006 * k
        d = -step_2d / np.linalg.norm(step_2d) * metres * ppm  # image step towards the light
        there = _shifted(depth, int(round(d[1])), int(round(d[0])), 1e3)
        ray = depth - rise * metres  # the ray's depth there
        blocked += np.clip((ray - there) / softness, 0, 1) * (there > depth - 0.06)
    return 1 - 0.5 * blur(np.clip(blocked / 2, 0, 1), 1.0)


def shade_plain(canvas: Canvas, skins: list[Skin], rng: np.random.Generator) -> np.ndarray:
    """Lambert + Blinn-Phong shading of the hand pixels under one white light: the first look."""
    # Direction towards the light: in front of the hand (-z, towards the camera) and above it.
    to_light = np.array([rng.uniform(-0.6, 0.6), rng.uniform(-0.9, -0.1), -1.0])
    to_light /= np.linalg.norm(to_light)
    ambient = rng.uniform(0.3, 0.45)
    diffuse = np.clip(canvas.normal @ to_light, 0, None)
    half = to_light + np.array([0, 0, -1.0])  # halfway between the light and the viewer
    half /= np.linalg.norm(half)
    spec = np.clip(canvas.normal @ half, 0, None) ** 24 * rng.uniform(0.05, 0.25)
    albedo = _albedo(canvas, skins)
    return np.clip(albedo * (ambient + (1 - ambient) * diffuse)[..., None] + spec[..., None], 0, 1)
