"""Synthetic COCO person keypoints in COCO 2017's exact layout
(``annotations/person_keypoints_{train,val}2017.json``, ``{train,val}2017/%012d.jpg``, and
``synthetic_meta.json`` last), so the real-data reader and ``pycocotools`` read it unchanged.

Each image shows one to five people on a procedural background, figures of capsules drawn by the
hands' z-buffer rasteriser (:class:`.render.Canvas`): head with hair, eyes, nose and ears (so front,
back and sides differ), torso, limbs and shoes, posed around a template (:data:`POSE_TEMPLATES`),
facing any way, small to filling the image.

Annotations follow COCO's rules: ``v = 2`` visible, ``v = 1`` in the image but hidden (by another
person or the body itself: the depth buffer says), ``v = 0`` and ``x = y = 0`` out of the frame;
people under ``min_labelled_area`` pixels get no keypoints, as small people in COCO do.
``segmentation``: polygons of the visible pixels; ``area``: their count; ``bbox``: their box.
Each image has its own seed ``(seed, split, idx)``: the first k of a larger set equal a set of k."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..safefiles import write_json
from ..skeletons import COCO17_NAMES, coco_category
from .backgrounds import scene_background
from .hand_model import DEG, rot_x, rot_y, rot_z
from .jobs import ensure_dataset, run_jobs, stamp_dataset, start_dataset
from .photo import jpeg_quality
from .render import SKIN_TONES, Canvas, Capsule, HandGeometry
from .scene import composite, render_hands
from .style import RenderStyle, as_style

COCO_GENERATOR_VERSION = 2
_SPLIT_CODE = {"train": 0, "val": 1}
_ID_OFFSET = {"train": 1, "val": 1_000_000}  # image ids are unique across splits, as in COCO

# Part ids (the Canvas' part buffer); each has its own colour per person.
HEAD, HAIR, EYE, NOSE, EAR, NECK, TORSO, UPPER_ARM, FOREARM, HAND, PELVIS, THIGH, SHIN, FOOT = \
    range(1, 15)
NUM_BODY_PARTS = 15


# Body shape and pose ----------
@dataclass
class BodyShape:
    """Segment lengths and radii in metres (scaled with the person's height)."""

    height: float
    girth: float  # radius multiplier
    shoulder_half: float
    hip_half: float
    torso: float  # pelvis to neck
    upper_arm: float
    forearm: float
    thigh: float
    shin: float
    head_r: float


def sample_body_shape(rng: np.random.Generator) -> BodyShape:
    h = rng.uniform(1.5, 1.95)
    k = h / 1.75
    j = lambda: rng.uniform(0.94, 1.06)
    return BodyShape(height=h, girth=rng.uniform(0.8, 1.3), shoulder_half=0.19 * k * j(),
                     hip_half=0.095 * k * j(), torso=0.52 * k * j(), upper_arm=0.29 * k * j(),
                     forearm=0.26 * k * j(), thigh=0.44 * k * j(), shin=0.43 * k * j(),
                     head_r=0.095 * k * rng.uniform(0.95, 1.05))


# Mean joint angles (degrees) of each pose template that differ from standing, left ("l") and
# right ("r"). sh_flex raises the arm forwards, sh_abd sideways, sh_twist turns it about its axis
# (it decides which way the elbow bends); hip_flex lifts the thigh forwards, knee bends backwards.
_TEMPLATES = {
    "stand": {},
    "walk": dict(l_sh_flex=25, r_sh_flex=-25, l_elbow=25, r_elbow=20, l_hip_flex=-18,
                 r_hip_flex=25, l_knee=15, r_knee=35),
    "run": dict(lean=12, l_sh_flex=50, r_sh_flex=-40, l_elbow=95, r_elbow=90, l_hip_flex=-25,
                r_hip_flex=55, l_knee=80, r_knee=70),
    "arms_up": dict(l_sh_abd=160, r_sh_abd=160, l_elbow=15, r_elbow=15, head_pitch=-15),
    "wave": dict(r_sh_abd=110, r_sh_twist=90, r_elbow=80),
    "t_pose": dict(l_sh_abd=90, r_sh_abd=90, l_elbow=0, r_elbow=0),
    "squat": dict(lean=35, l_sh_flex=80, r_sh_flex=80, l_elbow=10, r_elbow=10, l_hip_flex=100,
                  r_hip_flex=100, l_knee=115, r_knee=115, l_hip_abd=12, r_hip_abd=12),
    "sit": dict(l_hip_flex=90, r_hip_flex=90, l_knee=90, r_knee=90, l_sh_flex=30, r_sh_flex=30,
                l_elbow=60, r_elbow=60),
    "kick": dict(r_hip_flex=80, r_knee=15, l_knee=10, l_sh_abd=45, r_sh_abd=45, lean=-10),
    "reach": dict(r_sh_flex=95, r_elbow=5, l_sh_flex=20, lean=8),
    "bend": dict(lean=70, l_sh_flex=75, r_sh_flex=70, l_knee=10, r_knee=10, head_pitch=-30),
}
POSE_TEMPLATES = tuple(_TEMPLATES)
# Standing: every joint of both sides, in the order their variations are drawn.
_STANDING = {"lean": 0, "side": 0, "twist": 0, "head_yaw": 0, "head_pitch": 0} | {
    f"{s}_{joint}": angle for s in "lr" for joint, angle in (
        ("sh_flex", 5), ("sh_abd", 10), ("sh_twist", 0), ("elbow", 10), ("hip_flex", 0),
        ("hip_abd", 4), ("knee", 3))}


def sample_body_pose(rng: np.random.Generator, template: str | None = None) -> tuple[dict, str]:
    """Joint angles (radians) around a random (or the given) template, mirrored half the time."""
    name = template or str(rng.choice(POSE_TEMPLATES))
    if name not in _TEMPLATES:
        raise ValueError(f"unknown pose template {name!r}; choose one of {POSE_TEMPLATES}")
    t = _STANDING | _TEMPLATES[name]
    if rng.uniform() < 0.5:  # mirror: swap the sides
        t = {(("r" if k[0] == "l" else "l") + k[1:] if k[:2] in ("l_", "r_") else k): v
             for k, v in t.items()}
    jitter = {"lean": 10, "side": 8, "twist": 20, "head_yaw": 35, "head_pitch": 15}
    pose = {k: (v + rng.normal(0, jitter.get(k, 25 if "twist" in k else 15) / 2)) * DEG
            for k, v in t.items()}
    for s in "lr":  # joint limits: elbows and knees only bend one way
        pose[f"{s}_elbow"] = np.clip(pose[f"{s}_elbow"], 0, 150 * DEG)
        pose[f"{s}_knee"] = np.clip(pose[f"{s}_knee"], 0, 150 * DEG)
        pose[f"{s}_sh_abd"] = np.clip(pose[f"{s}_sh_abd"], -20 * DEG, 180 * DEG)
    pose["head_yaw"] = np.clip(pose["head_yaw"], -80 * DEG, 80 * DEG)
    return pose, name


# Geometry ----------
def build_body(shape: BodyShape, pose: dict, rotation: np.ndarray,
               translation: np.ndarray) -> HandGeometry:
    """Pose a person in the body frame (origin at the pelvis, x = the person's left, y down, z
    backwards: a person facing the camera looks towards -z), then move them into the camera frame
    (``rotation``, ``translation``): COCO-17 joints and capsules, in the hands' geometry type."""
    s, g = shape, shape.girth
    up = np.array([0.0, -1.0, 0.0])
    down = -up
    R_torso = rot_y(pose["twist"]) @ rot_z(pose["side"]) @ rot_x(-pose["lean"])
    neck = R_torso @ (up * s.torso)
    shoulder = {side: R_torso @ np.array([sign * s.shoulder_half, -0.92 * s.torso, 0.0])
                for side, sign in (("l", 1), ("r", -1))}
    hip = {side: np.array([sign * s.hip_half, 0.0, 0.0]) for side, sign in (("l", 1), ("r", -1))}
    R_head = R_torso @ rot_y(pose["head_yaw"]) @ rot_x(pose["head_pitch"])
    head = neck + R_torso @ (up * 0.06) + R_head @ np.array([0.0, -s.head_r * 1.05, -0.01])
    hr = s.head_r
    face = {"nose": np.array([0.0, 0.15 * hr, -1.1 * hr])}  # in the head frame (facing -z)
    for name, sign in (("left", 1), ("right", -1)):
        face[f"{name}_eye"] = np.array([sign * 0.36 * hr, -0.2 * hr, -0.9 * hr])
        face[f"{name}_ear"] = np.array([sign * 1.02 * hr, 0.0, 0.1 * hr])
    J = {k: head + R_head @ v for k, v in face.items()}
    radius = {"nose": 0.14 * hr, "left_eye": 0.1 * hr, "right_eye": 0.1 * hr,
              "left_ear": 0.16 * hr, "right_ear": 0.16 * hr}
    r_arm, r_fore, r_thigh, r_shin = 0.048 * g, 0.038 * g, 0.075 * g, 0.055 * g
    limbs = []
    for side, name, sign in (("l", "left", 1), ("r", "right", -1)):
        R_up = (R_torso @ rot_z(-sign * pose[f"{side}_sh_abd"]) @ rot_x(-pose[f"{side}_sh_flex"])
                @ rot_y(sign * pose[f"{side}_sh_twist"]))
        elbow = shoulder[side] + R_up @ (down * s.upper_arm)
        R_fore = R_up @ rot_x(-pose[f"{side}_elbow"])
        wrist = elbow + R_fore @ (down * s.forearm)
        hand = wrist + R_fore @ (down * 0.075 * s.height / 1.75)
        R_thigh = rot_z(-sign * pose[f"{side}_hip_abd"]) @ rot_x(-pose[f"{side}_hip_flex"])
        knee = hip[side] + R_thigh @ (down * s.thigh)
        R_shin = R_thigh @ rot_x(pose[f"{side}_knee"])
        ankle = knee + R_shin @ (down * s.shin)
        toe = ankle + R_shin @ np.array([0.0, 0.06, -0.17 * s.height / 1.75])
        heel = ankle + R_shin @ np.array([0.0, 0.05, 0.03])
        J.update({f"{name}_shoulder": shoulder[side], f"{name}_elbow": elbow,
                  f"{name}_wrist": wrist, f"{name}_hip": hip[side], f"{name}_knee": knee,
                  f"{name}_ankle": ankle})
        limbs += [
            (shoulder[side], elbow, r_arm, r_fore * 1.05, UPPER_ARM),
            (elbow, wrist, r_fore, r_fore * 0.8, FOREARM),
            (wrist, hand, r_fore * 0.85, r_fore * 0.7, HAND),
            (hip[side], knee, r_thigh, r_shin * 1.05, THIGH),
            (knee, ankle, r_shin, r_shin * 0.75, SHIN),
            (heel, toe, r_shin * 0.8, r_shin * 0.7, FOOT),
        ]
        # How deep each joint sits: the thickest surface around it (the torso's flank and
        # shoulder bar over the shoulder, the pelvis over the hip), with a little slack, so a
        # shoulder seen on a torso facing us counts as visible, as annotators would say.
        radius.update({f"{name}_shoulder": 0.085 * g, f"{name}_elbow": 1.15 * r_fore * 1.05,
                       f"{name}_wrist": 1.15 * r_fore * 0.85, f"{name}_hip": 0.11 * g,
                       f"{name}_knee": 1.15 * r_shin * 1.05, f"{name}_ankle": 1.15 * r_shin * 0.8})
    caps = [
        # head: skull, hair cap on the back and top, face details
        (head, head, hr, hr, HEAD),
        (head + R_head @ np.array([0, -0.25 * hr, 0.22 * hr]),
         head + R_head @ np.array([0, -0.1 * hr, 0.3 * hr]), 0.9 * hr, 0.88 * hr, HAIR),
        (J["nose"] - R_head @ np.array([0, 0, -0.25 * hr]), J["nose"], 0.16 * hr, 0.14 * hr, NOSE),
        *[(J[f"{n}_eye"], J[f"{n}_eye"], 0.13 * hr, 0.13 * hr, EYE) for n in ("left", "right")],
        *[(J[f"{n}_ear"], J[f"{n}_ear"] + R_head @ np.array([0, 0.3 * hr, 0]), 0.2 * hr,
           0.16 * hr, EAR) for n in ("left", "right")],
        (neck, neck + R_torso @ (up * 0.08), 0.05 * g, 0.045 * g, NECK),
        # torso: spine, both flanks, shoulder and hip bars
        (np.zeros(3), neck * 0.85, 0.12 * g, 0.13 * g, TORSO),
        *[(shoulder[side] * 0.9 + np.array([0, 0.02, 0]), hip[side] + R_torso @ (up * 0.08),
           0.075 * g, 0.09 * g, TORSO) for side in "lr"],
        (shoulder["l"], shoulder["r"], 0.065 * g, 0.065 * g, TORSO),
        (hip["l"], hip["r"], 0.1 * g, 0.1 * g, PELVIS),
        *limbs,
    ]
    to_cam = lambda p: np.asarray(p) @ rotation.T + translation
    capsules = [Capsule(to_cam(a), to_cam(b), ra, rb, part) for a, b, ra, rb, part in caps]
    return HandGeometry(to_cam(np.stack([J[n] for n in COCO17_NAMES])),
                        np.array([radius[n] for n in COCO17_NAMES]), capsules)


# Appearance and shading ----------
def sample_palette(rng: np.random.Generator) -> np.ndarray:
    """A colour (RGB 0..1) per part id: skin, hair, clothes (short or long sleeves and legs)."""
    skin = np.clip(SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.92, 1.06, 3), 0, 1)
    hair = np.array([0.08, 0.06, 0.05]) + rng.uniform(0, 1) ** 2 * np.array([0.55, 0.42, 0.25])
    shirt = rng.uniform(0.05, 0.95, 3)
    pants = rng.uniform(0.05, 0.7, 3) * (0.6 if rng.uniform() < 0.5 else 1.0)
    shoes = rng.uniform(0.02, 0.5) * np.ones(3) + rng.uniform(-0.05, 0.05, 3)
    pal = np.zeros((NUM_BODY_PARTS, 3))
    pal[[HEAD, NOSE, EAR, NECK, HAND]] = skin
    pal[HAIR] = hair
    pal[EYE] = [0.1, 0.08, 0.08]
    pal[[TORSO, UPPER_ARM]] = shirt
    pal[FOREARM] = shirt if rng.uniform() < 0.5 else skin
    pal[[PELVIS, THIGH]] = pants
    pal[SHIN] = pants if rng.uniform() < 0.7 else skin
    pal[FOOT] = np.clip(shoes, 0, 1)
    return pal


def shade_people(canvas: Canvas, palettes: list[np.ndarray], rng: np.random.Generator):
    """Lambert shading of every person pixel with its part's colour. (H, W, 3) float in 0..1."""
    to_light = np.array([rng.uniform(-0.7, 0.7), rng.uniform(-1.0, -0.2), -1.0])
    to_light /= np.linalg.norm(to_light)
    ambient = rng.uniform(0.35, 0.5)
    diffuse = np.clip(canvas.normal @ to_light, 0, None)
    table = np.stack(palettes).astype(np.float32) if palettes else np.zeros((1, NUM_BODY_PARTS, 3))
    who = canvas.hand.astype(int)
    on = who >= 0
    albedo = np.zeros((canvas.h, canvas.w, 3), np.float32)
    albedo[on] = table[who[on], canvas.part[on].astype(int)]
    return np.clip(albedo * (ambient + (1 - ambient) * diffuse)[..., None], 0, 1)


def mask_to_polygons(mask: np.ndarray, min_points: int = 3) -> list[list[float]]:
    """Outer boundaries of a binary mask as COCO polygons ``[[x1, y1, x2, y2, ...], ...]``, in
    pixel-centre coordinates (a pixel's edge is half a pixel from its centre). Holes are left out:
    COCO polygons are filled regions."""
    from contourpy import FillType, contour_generator
    padded = np.pad(mask.astype(np.float32), 1)
    gen = contour_generator(z=padded, fill_type=FillType.OuterOffset)
    points, offsets = gen.filled(0.5, 2.0)
    polys = []
    for pts, off in zip(points, offsets):
        ring = pts[off[0]:off[1]] - 1.0  # undo the padding
        ring = ring[:-1] if len(ring) > 1 and np.allclose(ring[0], ring[-1]) else ring
        # Drop points on straight runs: keep only where the boundary turns.
        prev, nxt = np.roll(ring, 1, 0), np.roll(ring, -1, 0)
        cross = (ring[:, 0] - prev[:, 0]) * (nxt[:, 1] - ring[:, 1]) - \
                (ring[:, 1] - prev[:, 1]) * (nxt[:, 0] - ring[:, 0])
        ring = ring[np.abs(cross) > 1e-9]
        if len(ring) >= min_points:
            h, w = mask.shape
            ring = np.clip(ring, 0, [w - 1, h - 1])
            polys.append(np.round(ring, 2).reshape(-1).tolist())
    return polys


# One image ----------
def render_coco_image(seed: int, split: str, idx: int, width: int = 320, height: int = 256,
                      max_people: int = 5, min_labelled_area: float = 24 * 24,
                      style: RenderStyle | None = None) -> dict:
    """Render one image: ``{"image": uint8 (H, W, 3), "people": [...]}`` where each person has
    ``keypoints`` (17, 3) with COCO's v, ``mask`` (visible pixels), ``template`` and ``depth``.
    People whose visible area is under 16 pixels are left out (no annotation, as nobody would
    see them); under ``min_labelled_area`` they get no keypoints. ``style``: the scene's and the
    camera's switches of a :class:`~.style.RenderStyle` (people have their own shading)."""
    rng = np.random.default_rng([seed, 7, _SPLIT_CODE[split], idx])
    W, H = width, height
    f = W * rng.uniform(0.9, 1.6)
    K = np.array([[f, 0, (W - 1) / 2], [0, f, (H - 1) / 2], [0, 0, 1.0]])
    n = max(1, min(int(rng.choice([1, 2, 3, 4, 5], p=[0.3, 0.3, 0.2, 0.12, 0.08])), max_people))
    bodies, palettes, templates = [], [], []
    for _ in range(n):
        shape = sample_body_shape(rng)
        pose, name = sample_body_pose(rng)
        # Facing any way; a little pitch and roll. Body frame -> camera frame.
        R = (rot_z(rng.normal(0, 6) * DEG) @ rot_x(rng.normal(0, 8) * DEG)
             @ rot_y(rng.uniform(-np.pi, np.pi)))
        # Apparent height in pixels, log-uniform from small to filling the frame.
        target = np.exp(rng.uniform(np.log(0.2 * H), np.log(1.05 * H)))
        z = f * shape.height / target
        u, v = rng.uniform(-0.05, 1.05) * W, rng.uniform(0.35, 0.75) * H
        t = np.array([(u - K[0, 2]) * z / f, (v - K[1, 2]) * z / f, z])
        bodies.append(build_body(shape, pose, R, t))
        palettes.append(sample_palette(rng))
        templates.append(name)
    rendering = render_hands(bodies, palettes, K, W, H, rng, shader=shade_people)
    image = composite(rendering, scene_background(rng, H, W, style), rng, style=style)
    people = []
    for i, body in enumerate(bodies):
        mask = (rendering.hand == i) & (rendering.cover >= 0.5)
        area = int(mask.sum())
        if area < 16:
            continue
        uv = (K @ body.joints.T).T
        uv = uv[:, :2] / uv[:, 2:]
        in_frame = (uv[:, 0] >= -0.5) & (uv[:, 0] <= W - 0.5) & (uv[:, 1] >= -0.5) & \
                   (uv[:, 1] <= H - 0.5) & (body.joints[:, 2] > 0)
        vis = np.where(in_frame, np.where(rendering.visible[i], 2, 1), 0)
        if area < min_labelled_area:
            vis[:] = 0
        kp = np.where(vis[:, None] > 0, uv, 0.0)
        people.append({"keypoints": np.c_[kp, vis], "mask": mask, "template": templates[i],
                       "depth": float(body.joints[:, 2].mean())})
    return {"image": image, "people": people, "width": W, "height": H}


def _annotation(person: dict, image_id: int, ann_id: int) -> dict:
    mask = person["mask"]
    ys, xs = np.nonzero(mask)
    x0, y0 = max(xs.min() - 0.5, 0.0), max(ys.min() - 0.5, 0.0)
    x1, y1 = min(xs.max() + 0.5, mask.shape[1] - 1.0), min(ys.max() + 0.5, mask.shape[0] - 1.0)
    kp = person["keypoints"]
    flat = [n for x, y, v in kp for n in (round(float(x), 2), round(float(y), 2), int(v))]
    box = [round(float(c), 2) for c in (x0, y0, x1 - x0, y1 - y0)]
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "keypoints": flat,
            "num_keypoints": int((kp[:, 2] > 0).sum()), "bbox": box, "area": float(mask.sum()),
            "iscrowd": 0, "segmentation": mask_to_polygons(mask)}


def _write_image(args) -> dict:
    root, seed, split, idx, width, height, max_people, style = args
    out = render_coco_image(seed, split, idx, width, height, max_people, style=style)
    image_id = _ID_OFFSET[split] + idx
    name = f"{image_id:012d}.jpg"
    quality = jpeg_quality(np.random.default_rng([seed, 8, _SPLIT_CODE[split], idx])) if style.jpeg else 90
    Image.fromarray(out["image"]).save(root / f"{split}2017" / name, quality=quality)
    anns = [_annotation(p, image_id, image_id * 100 + k) for k, p in enumerate(out["people"])]
    image = {"id": image_id, "file_name": name, "width": width, "height": height, "license": 0,
             "coco_url": "", "flickr_url": "", "date_captured": ""}
    return {"image": image, "annotations": anns}


def make_coco(root: str | Path, n_train: int, n_val: int, seed: int = 0, width: int = 320,
              height: int = 256, max_people: int = 5, workers: int | None = None,
              progress: bool = True, style: RenderStyle | dict | None = None) -> Path:
    """Write a synthetic COCO person-keypoints dataset under ``root`` (standard 2017 layout):
    ``n_train`` and ``n_val`` images of ``width`` x ``height``, in ``style``. Returns ``root``."""
    style = as_style(style)
    if n_train < 1 or n_val < 1:
        raise ValueError(f"n_train and n_val must be at least 1, got {n_train} and {n_val}")
    root, start = start_dataset(root, "train2017", "val2017", "annotations")
    jobs = [(root, seed, "train", i, width, height, max_people, style) for i in range(n_train)]
    jobs += [(root, seed, "val", i, width, height, max_people, style) for i in range(n_val)]
    results = run_jobs(_write_image, jobs, workers, progress, desc="rendering people", chunksize=8)
    counts = {}
    for split, part in (("train", results[:n_train]), ("val", results[n_train:])):
        anns = [a for r in part for a in r["annotations"]]
        info = {"description": "handpose-course synthetic COCO person keypoints",
                "version": str(COCO_GENERATOR_VERSION), "year": 2017, "contributor": __name__,
                "url": "", "date_created": ""}
        licence = {"id": 0, "name": "MIT (generated by the course's code)", "url": ""}
        data = {"info": info, "licenses": [licence], "images": [r["image"] for r in part],
                "annotations": anns, "categories": [coco_category()]}
        write_json(root / "annotations" / f"person_keypoints_{split}2017.json", data)
        counts[split] = {"images": len(part), "annotations": len(anns),
                         "with_keypoints": sum(a["num_keypoints"] > 0 for a in anns)}
    return stamp_dataset(root, start, __name__, COCO_GENERATOR_VERSION, seed=seed, n_train=n_train,
                         n_val=n_val, width=width, height=height, max_people=max_people,
                         style=style.as_dict(), counts=counts)


def ensure_synthetic_coco(root: str | Path, n_train: int, n_val: int, seed: int = 0,
                          width: int = 320, height: int = 256, max_people: int = 5,
                          progress: bool = True, style: RenderStyle | dict | None = None) -> Path:
    """``root`` holding a synthetic COCO of these settings (:func:`.jobs.ensure_dataset`)."""
    return ensure_dataset(root, make_coco, COCO_GENERATOR_VERSION, progress, n_train=n_train,
                          n_val=n_val, seed=seed, width=width, height=height, max_people=max_people,
                          style=as_style(style).as_dict())
