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
    random_rotation,
    sample_pose,
    sample_shape,
)
from .render import Canvas, HandGeometry, Skin, build_hand, sample_skin, shade


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


def sample_hand(rng: np.random.Generator, side: str = "right", gesture: str | None = None,
                max_roll_deg: float = 120.0) -> HandSpec:
    shape = sample_shape(rng)
    pose, name = sample_pose(rng) if gesture is None else (gesture_pose(gesture, rng), gesture)
    rotation = random_rotation(rng, max_roll_deg=max_roll_deg)
    return HandSpec(shape, pose, name, rotation, sample_skin(rng), side)


def place_hand(spec: HandSpec, K: np.ndarray, width: int, height: int, rng: np.random.Generator,
               size_range: tuple[float, float] = (0.45, 0.8),
               center: tuple[float, float] | None = None, margin: float = 4.0,
               forearm: bool = True) -> HandGeometry:
    """Put the hand in front of the camera so its keypoints span ``size_range`` of the image
    (longer side of their bounding box) and lie inside it, ``margin`` pixels from the border.
    ``center`` (pixels) places the keypoints' box centre there instead of at random."""
    probe = build_hand(spec.shape, spec.pose, spec.rotation, np.array([0, 0, 1.0]), spec.side,
                       forearm=False)
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
    return build_hand(spec.shape, spec.pose, spec.rotation, t, spec.side, forearm=forearm)


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
                 height: int, rng: np.random.Generator, shader=shade) -> Rendering:
    """Draw ``hands`` (or synthetic COCO's people), shaded by ``shader(canvas, skins, rng)``."""
    canvas = Canvas(height, width, K)
    for i, geometry in enumerate(hands):
        canvas.draw(geometry, hand=i)
    rgb = shader(canvas, skins, rng)
    visible = [canvas.joint_visibility(g) for g in hands]  # after drawing all: one hides another
    return Rendering(rgb, canvas.cover, canvas.depth, canvas.part, canvas.hand, visible)


def composite(rendering: Rendering, background: np.ndarray, rng: np.random.Generator,
              harmonize: float = 0.0, noise: float = 0.012) -> np.ndarray:
    """Alpha-blend the rendered hands onto ``background``: (H, W, 3) uint8. ``harmonize`` pulls the
    hand's colour towards the background's mean (FreiHAND's "hom", "auto"); ``noise``: sensor."""
    hand = rendering.rgb.astype(np.float32, copy=False)
    background = background.astype(np.float32, copy=False)
    if harmonize > 0:
        mean_bg = background.reshape(-1, 3).mean(0)
        gain = (1 - harmonize) + harmonize * mean_bg / max(float(mean_bg.mean()), 1e-3)
        hand = hand * gain.astype(np.float32)
    a = rendering.cover[..., None]
    img = background + a * (hand - background)
    if noise > 0:
        img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(noise)
    np.clip(img, 0, 1, out=img)
    return (img * 255 + 0.5).astype(np.uint8)
