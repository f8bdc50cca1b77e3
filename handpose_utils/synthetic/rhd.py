"""The embedded default for notebook 07: synthetic hands written in RHD's exact native layout
(:mod:`handpose_utils.datasets.rhd`: colour, class-id mask and depth PNGs, ``anno_<split>.pickle``),
plus ``synthetic_meta.json`` (settings and the hands in each image; written last). The forearms
stand for RHD's "person" (mask id 1).

Each image shows one hand (left or right) or both, overlapping little. As in RHD, both hands are
annotated in every image: a hand not in the picture sits outside the field of view, all its
keypoints invisible. Every image comes from its own seed ``(seed, split, idx)``: a dataset is
reproducible bit for bit and the first k images of a larger set equal a set of k images."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from PIL import Image

from ..camera import project
from ..datasets.rhd import RHD_SPLITS, encode_depth
from ..safefiles import atomic_write
from ..skeletons import HAND21_TO_RHD, RHD_LEFT, RHD_RIGHT
from .backgrounds import scene_background
from .jobs import ensure_dataset, run_jobs, stamp_dataset, start_dataset
from .render import FOREARM_PART, PALM_PART
from .scene import composite, place_hand, render_hands, sample_hand
from .style import RenderStyle, as_style

RHD_GENERATOR_VERSION = 4
_SPLIT_CODE = {"training": 0, "evaluation": 1}
SIDES = ("left", "right")


def part_to_rhd_mask(part: np.ndarray, hand: np.ndarray, sides: list[str],
                     covered: np.ndarray) -> np.ndarray:
    """RHD class ids from the renderer's part ids and hand indices. Part ``p`` (1-15 fingers, 16
    palm) of a left hand -> ``1 + p``, of a right -> ``17 + p``; forearm -> 1 ("person"); else 0."""
    mask = np.zeros(part.shape, np.uint8)
    for i, side in enumerate(sides):
        on = covered & (hand == i)
        is_hand = on & (part >= 1) & (part <= PALM_PART)
        mask[is_hand] = part[is_hand] + (1 if side == "left" else 17)
        mask[on & (part == FOREARM_PART)] = 1
    return mask


def _box_overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over the smaller box's area (0 = apart, 1 = one inside the other)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    area = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return float(w * h / max(area, 1e-6))


def _background_depth(rng: np.random.Generator, size: int) -> np.ndarray:
    """A tilted plane 1.5-4.5 m away: RHD's depth has a scene behind the person everywhere."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    d0 = rng.uniform(1.5, 4.5)
    gx, gy = rng.uniform(-0.8, 0.8, 2)
    return np.clip(d0 + gx * xs + gy * ys, 0.5, 4.9).astype(np.float32)


def _write_sample(args) -> tuple[int, dict, list[str]]:
    """Render one RHD-style sample (both hands a third of the time), write its colour, class-id
    mask and depth PNGs, and return its id, annotation and the hands in the picture."""
    root, seed, split, idx, image_size, style = args
    rng = np.random.default_rng([seed, 7, _SPLIT_CODE[split], idx])  # 7: not FreiHAND's stream
    W = H = image_size
    # RHD-like intrinsics: focal length 0.8-0.95 widths (RHD: 263-306 px at 320), centred
    f = rng.uniform(0.8, 0.95) * image_size
    K = np.array([[f, 0.0, image_size / 2], [0.0, f, image_size / 2], [0.0, 0.0, 1.0]])
    sides = list(SIDES) if rng.uniform() < 0.35 else [SIDES[int(rng.integers(2))]]
    specs = {side: sample_hand(rng, side, style=style) for side in SIDES}
    geometries = {}
    if len(sides) == 1:
        geometries[sides[0]] = place_hand(specs[sides[0]], K, W, H, rng, size_range=(0.3, 0.6))
    else:
        # Two hands side by side. RHD's hands face the camera from one body, so the left hand is
        # usually on the image's right; sometimes they cross. Retry until they overlap little.
        for _attempt in range(12):
            left_on_right = rng.uniform() < 0.8
            xs = [rng.uniform(0.2, 0.4), rng.uniform(0.6, 0.8)][::-1 if left_on_right else 1]
            for side, x in zip(SIDES, xs):
                center = (x * W, rng.uniform(0.3, 0.7) * H)
                geometries[side] = place_hand(specs[side], K, W, H, rng, size_range=(0.25, 0.42),
                                              center=center)
            uvs = [project(geometries[s].joints, K) for s in SIDES]
            boxes = [np.r_[uv.min(0), uv.max(0)] for uv in uvs]
            if _box_overlap(*boxes) <= 0.15:
                break
    present = [geometries[s] for s in sides]
    rendering = render_hands(present, [specs[s].skin for s in sides], K, W, H, rng, style=style)
    color = composite(rendering, scene_background(rng, H, W, style), rng, style=style)
    covered = rendering.cover > 0.5
    mask = part_to_rhd_mask(rendering.part, rendering.hand, sides, covered)
    depth = np.where(covered & np.isfinite(rendering.depth), rendering.depth,
                     _background_depth(rng, image_size))
    xyz42, vis42 = np.zeros((42, 3)), np.zeros(42)
    for side in SIDES:
        sl = RHD_LEFT if side == "left" else RHD_RIGHT
        if side in geometries:
            joints = geometries[side].joints
            vis = rendering.visible[sides.index(side)] if side in sides else np.zeros(21, bool)
        else:
            # Annotated but out of view, like an RHD hand behind the body or off-screen.
            off = place_hand(specs[side], K, W, H, rng, size_range=(0.3, 0.5), forearm=False,
                             center=(-0.9 * W if side == "right" else 1.9 * W, 0.5 * H))
            joints, vis = off.joints, np.zeros(21, bool)
        xyz42[sl] = joints[list(HAND21_TO_RHD)]
        vis42[sl] = vis[list(HAND21_TO_RHD)]
    for kind, image in (("color", color), ("mask", mask),
                        ("depth", encode_depth(depth.astype(np.float32)))):
        Image.fromarray(image).save(root / split / kind / f"{idx:05d}.png", compress_level=3)
    anno = {"xyz": xyz42, "uv_vis": np.c_[project(xyz42, K), vis42], "K": K}
    return idx, {k: v.astype(np.float32) for k, v in anno.items()}, sides


def _n_eval(n_train: int, n_eval: int | None) -> int:
    return max(2, round(0.1 * n_train)) if n_eval is None else n_eval


def make_rhd(root: str | Path, n_train: int, n_eval: int | None = None, seed: int = 0,
             image_size: int = 320, workers: int | None = None, progress: bool = True,
             style: RenderStyle | dict | None = None) -> Path:
    """Write a synthetic RHD under ``root``: ``n_train`` training and ``n_eval`` evaluation
    images (default: 10% of ``n_train``, at least 2; RHD's ratio is 6.6%). Returns ``root``.
    ``style``: :class:`~.style.RenderStyle` (default every feature on; no occluders: RHD's masks
    have no class for them)."""
    style = as_style(style)
    if n_train < 1:
        raise ValueError(f"n_train must be at least 1, got {n_train}")
    n_eval = _n_eval(n_train, n_eval)
    if image_size < 32:
        raise ValueError(f"image_size must be at least 32 px, got {image_size}")
    root, start = start_dataset(root, *(f"{split}/{kind}" for split in RHD_SPLITS
                                        for kind in ("color", "mask", "depth")))
    jobs = [(root, seed, "training", i, image_size, style) for i in range(n_train)]
    jobs += [(root, seed, "evaluation", i, image_size, style) for i in range(n_eval)]
    results = run_jobs(_write_sample, jobs, workers, progress, desc="rendering RHD scenes",
                       chunksize=16)
    hands = {}
    for split, part in (("training", results[:n_train]), ("evaluation", results[n_train:])):
        anno = {idx: entry for idx, entry, _ in part}
        atomic_write(root / split / f"anno_{split}.pickle",
                     lambda f, a=anno: pickle.dump(a, f, protocol=4))
        hands[split] = [sides for _, _, sides in part]
    two_hands = {split: sum(len(sides) == 2 for sides in v) for split, v in hands.items()}
    return stamp_dataset(root, start, __name__, RHD_GENERATOR_VERSION, seed=seed, n_train=n_train,
                         n_eval=n_eval, image_size=image_size, style=style.as_dict(),
                         two_hand_images=two_hands,
                         hands=hands)


def ensure_synthetic_rhd(root: str | Path, n_train: int, n_eval: int | None = None, seed: int = 0,
                         image_size: int = 320, progress: bool = True,
                         style: RenderStyle | dict | None = None) -> Path:
    """``root`` holding a synthetic RHD of these settings (:func:`.jobs.ensure_dataset`)."""
    return ensure_dataset(root, make_rhd, RHD_GENERATOR_VERSION, progress, n_train=n_train,
                          n_eval=_n_eval(n_train, n_eval), seed=seed, image_size=image_size,
                          style=as_style(style).as_dict())
