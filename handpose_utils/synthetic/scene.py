"""Scenes: a pinhole camera, one or more posed hands in front of it, rendered and composited.

:func:`render_hands` draws the hands once; :func:`composite` puts the result onto any number of
backgrounds (FreiHAND's four versions of a pose share one rendering)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..camera import project
from .hand_model import (
    HandPose,
    HandShape,
    gesture_pose,
    hand_to_camera,
    random_rotation,
    sample_pose,
    sample_shape,
)
from .photo import camera_effects
from .render import Canvas, Capsule, HandGeometry, Skin, build_hand, sample_skin, shade
from .style import RenderStyle

CAMERA_EFFECTS = ("white_balance", "vignette", "defocus", "motion_blur", "noise")


def sample_camera(rng: np.random.Generator, width: int, height: int, focal=(1.7, 2.9),
                  shift: float = 0.03) -> np.ndarray:
    """Pinhole intrinsics, square pixels: a focal length of ``focal`` image widths (the default is
    like FreiHAND's 224x224 crops), the principal point up to ``shift`` image sizes off centre."""
    f = rng.uniform(*focal) * width
    cx = width / 2 - 0.5 + rng.uniform(-shift, shift) * width
    cy = height / 2 - 0.5 + rng.uniform(-shift, shift) * height
    return np.array([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]])


@dataclass
class HandSpec:
    """Everything random about one hand, before it is placed in front of a camera."""

    shape: HandShape
    pose: HandPose
    gesture: str
    rotation: np.ndarray
    skin: Skin
    side: str = "right"
    flesh: bool = False  # build_hand's real proportions (RenderStyle.flesh)


def sample_hand(rng: np.random.Generator, side: str = "right", gesture: str | None = None,
                max_roll_deg: float = 120.0, style: RenderStyle | None = None) -> HandSpec:
    shape = sample_shape(rng)
    natural = style is not None and style.poses
    pose, name = sample_pose(rng, 0.8 if natural else 0.6) if gesture is None else \
        (gesture_pose(gesture, rng), gesture)
    if style is not None and style.viewpoints:
        # as people hold their hands to a camera: within 75 degrees of upright, rarely edge-on
        # (with every roll, small models at the notebooks' budgets learn little; see the README).
        rotation = random_rotation(rng, max_roll_deg=min(max_roll_deg, 75), max_tilt_deg=45)
    else:
        rotation = random_rotation(rng, max_roll_deg=max_roll_deg)
    flesh = style is not None and style.flesh
    skin = sample_skin(rng, clothes=style is not None and style.sleeves)
    return HandSpec(shape, pose, name, rotation, skin, side, flesh)


def place_hand(spec: HandSpec, K: np.ndarray, width: int, height: int, rng: np.random.Generator,
               size_range: tuple[float, float] = (0.45, 0.8),
               center: tuple[float, float] | None = None, margin: float = 4.0,
               forearm: bool = True) -> HandGeometry:
    """Put the hand in front of the camera so its keypoints span ``size_range`` of the image
    (longer side of their bounding box) and lie inside it, ``margin`` pixels from the border.
    ``center`` (pixels) places the keypoints' box centre there instead of at random."""
    probe = build_hand(spec.shape, spec.pose, spec.rotation, np.array([0, 0, 1.0]), spec.side,
                       forearm=False, flesh=spec.flesh)
    local = probe.joints - np.array([0, 0, 1.0])
    extent = np.ptp(local[:, :2], axis=0).max()  # metres, seen face-on at depth 1
    target = rng.uniform(*size_range) * min(width, height)
    z = max(K[0, 0] * extent / target, 0.15)
    t = np.array([0.0, 0.0, z]) - local.mean(0)
    for _ in range(3):  # perspective makes the fit approximate: refine a few times
        t[2] = max(t[2] * np.ptp(project(local + t, K), axis=0).max() / target, 0.15)
        uv = project(local + t, K)
        lo, span = uv.min(0), np.ptp(uv, axis=0)
        if center is None:
            room = np.maximum(np.array([width, height]) - 2 * margin - span, 0)
            want_lo = margin + rng.uniform(0, 1, 2) * room
        else:
            want_lo = np.asarray(center, float) - span / 2
        t[:2] += (want_lo - lo) * t[2] / K[0, 0]
    return build_hand(spec.shape, spec.pose, spec.rotation, t, spec.side, forearm=forearm,
                      flesh=spec.flesh)


OBJECT_PART = 18  # part id of an occluding object (hands use 1..17)


def sample_occluders(geometry: HandGeometry, K: np.ndarray, width: int, height: int,
                     rng: np.random.Generator, object_p: float = 0.12, hand_p: float = 0.06,
                     style: RenderStyle | None = None) -> tuple[list[HandGeometry], list[Skin]]:
    """Things in or beside the hand, as real photos have: sometimes an object held in the grasp (a
    pen or a spoon between thumb and index finger, a ball in the palm's cup), and sometimes a
    second hand reaching in from the image's edge. Drawn with the hand, they hide its joints by
    the depth test."""
    found, skins = [], []
    uv = project(geometry.joints, K)
    lo, hi = uv.min(0), uv.max(0)
    j = geometry.joints
    if rng.uniform() < object_p:  # held in the grasp, as FreiHAND's subjects hold a pen or a ball
        palm = geometry.palm_normal / np.linalg.norm(geometry.palm_normal)
        along = (j[9] - j[0]) / np.linalg.norm(j[9] - j[0])  # wrist to middle knuckle
        across = np.cross(palm, along)
        cup = 0.5 * j[[0, 5, 9, 13, 17]].mean(0) + 0.5 * j[9]  # the middle of the palm
        if rng.uniform() < 0.3:  # a ball in the cup of the palm, up to a tennis ball's size
            radius = rng.uniform(0.02, 0.034)
            centre = cup + palm * (radius + 0.008)
            axis = np.zeros(3)
        else:  # a pen, a spoon, a handle, across the palm
            radius = rng.choice([0.004, 0.006, 0.012, 0.018]) * rng.uniform(0.8, 1.25)
            turn = rng.uniform(-0.6, 0.6)  # radians about the palm normal
            axis = np.cos(turn) * across + np.sin(turn) * along + rng.normal(0, 0.2) * palm
            axis *= rng.uniform(0.05, 0.1) / np.linalg.norm(axis)  # half its length, metres
            if np.linalg.norm(j[4] - j[6]) < 0.04:  # pinched between the thumb and index finger
                grip = 0.5 * (j[4] + j[6]) + palm * radius * 0.5
            else:  # the thumb is away: it lies on the open palm
                grip = cup + palm * (radius + 0.008)
            centre = grip + axis * rng.uniform(-0.5, 0.5)  # it sticks out more on one side
        caps = [Capsule(centre - axis, centre + axis, radius, radius, OBJECT_PART)]
        found.append(HandGeometry(np.zeros((0, 3)), np.zeros(0), caps))
        skins.append(Skin(rng.uniform(0.05, 0.95, 3) * rng.uniform(0.5, 1.0), 1.0))
    if rng.uniform() < hand_p:  # the other hand, or another person's, reaching in from the edge
        spec = sample_hand(rng, "left" if geometry.side == "right" else "right", style=style)
        spec.flesh = True
        toward = rng.uniform(0, 2 * np.pi)
        # its fingers point back into the picture, so its forearm leaves the image at the edge
        roll = np.arctan2(-np.cos(toward), np.sin(toward)) + rng.uniform(-0.5, 0.5)
        spec.rotation = hand_to_camera(rng.uniform(-np.pi, np.pi), rng.uniform(-0.6, 0.6), roll)
        centre = (lo + hi) / 2 + 0.7 * max(width, height) * np.array([np.cos(toward), np.sin(toward)])
        other = place_hand(spec, K, width, height, rng, size_range=(0.35, 0.7), center=centre)
        found.append(other)
        skins.append(spec.skin)
    return found, skins


@dataclass
class Rendering:
    """What the rasteriser produced for one scene (before any background)."""

    rgb: np.ndarray  # (H, W, 3) float, shaded hands
    cover: np.ndarray  # (H, W) float coverage of hand (and forearm) pixels, 0..1
    depth: np.ndarray  # (H, W) metres, inf where empty
    part: np.ndarray  # (H, W) uint8 part ids (0 empty)
    hand: np.ndarray  # (H, W) int8 hand index (-1 empty)
    visible: list[np.ndarray]  # per hand, (21,) bool


def render_hands(hands: list[HandGeometry], skins: list[Skin], K: np.ndarray, width: int,
                 height: int, rng: np.random.Generator, shader=shade,
                 style: RenderStyle | None = None) -> Rendering:
    """Draw ``hands`` (or synthetic COCO's people), shaded by ``shader(canvas, skins, rng)``
    (``shader(canvas, skins, rng, style)`` with a ``style``)."""
    canvas = Canvas(height, width, K)
    for i, geometry in enumerate(hands):
        canvas.draw(geometry, hand=i)
    rgb = shader(canvas, skins, rng) if style is None else shader(canvas, skins, rng, style)
    # after drawing all: one hides another
    visible = [canvas.joint_visibility(g, hand=i) for i, g in enumerate(hands)]
    return Rendering(rgb, canvas.cover, canvas.depth, canvas.part, canvas.hand, visible)


def composite(rendering: Rendering, background: np.ndarray, rng: np.random.Generator,
              harmonize: float = 0.0, noise: float = 0.012,
              style: RenderStyle | None = None) -> np.ndarray:
    """Alpha-blend the rendered hands onto ``background``: (H, W, 3) uint8. ``harmonize`` pulls the
    hand's colour towards the background's mean (FreiHAND's "hom", "auto"); ``noise``: sensor
    noise, replaced by a camera's (:mod:`.photo`) when ``style`` asks for camera effects."""
    hand = rendering.rgb.astype(np.float32, copy=False)
    background = background.astype(np.float32, copy=False)
    if harmonize > 0:
        mean_bg = background.reshape(-1, 3).mean(0)
        gain = (1 - harmonize) + harmonize * mean_bg / max(float(mean_bg.mean()), 1e-3)
        hand = hand * gain.astype(np.float32)
    a = rendering.cover[..., None]
    img = background + a * (hand - background)
    if style is not None and any(getattr(style, k) for k in CAMERA_EFFECTS):
        img = camera_effects(np.clip(img, 0, 1), rng, **{k: getattr(style, k) for k in CAMERA_EFFECTS})
        noise = 0.0 if style.noise else noise
    if noise > 0:
        img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(noise)
    np.clip(img, 0, 1, out=img)
    return (img * 255 + 0.5).astype(np.uint8)
