"""The embedded default dataset: synthetic hands in FreiHAND v2's exact native layout
(:mod:`handpose_utils.datasets.freihand`), which :func:`handpose_utils.load_freihand` reads as it
reads the real dataset. Extras real FreiHAND lacks: ``{split}_visibility.json`` (per joint, from
the depth order, 1 = visible) and ``synthetic_meta.json`` (settings and each pose's gesture;
written last).

Version 0 is a green screen (FreiHAND's "gs"); versions 1-3 composite the same rendering onto
procedural backgrounds, the hand's colour harmonised towards the background in versions 1 and 3 (as
FreiHAND's "hom" and "auto"). Every pose comes from its own seed ``(seed, split, idx)``: a dataset
is reproducible bit for bit, and the first k poses of a larger set equal a set of k."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..safefiles import write_json
from .backgrounds import green_screen, scene_background
from .jobs import ensure_dataset, run_jobs, stamp_dataset, start_dataset
from .photo import jpeg_quality
from .render import PALM_PART
from .scene import (
    CAMERA_EFFECTS,
    composite,
    place_hand,
    render_hands,
    sample_camera,
    sample_hand,
    sample_occluders,
)
from .style import RenderStyle, as_style

FREIHAND_GENERATOR_VERSION = 5
VERSION_NAMES = ("gs", "hom", "sample", "auto")
_SPLIT_CODE = {"training": 0, "evaluation": 1}


def render_pose(seed: int, split: str, idx: int, image_size: int = 224,
                style: RenderStyle | None = None):
    """One unique pose's camera, hand and rendering (with any occluders), from its own seed."""
    rng = np.random.default_rng([seed, _SPLIT_CODE[split], idx])
    W = H = image_size
    K = sample_camera(rng, W, H)
    spec = sample_hand(rng, style=style)
    # FreiHAND's images are crops centred on the hand: keypoint box centre near the image centre
    # (+-8%), its longer side 28-50% of the image, around the real photos' 38% (85 of 224 px;
    # the first renderer drew 35-70%).
    center = (W / 2 - 0.5 + rng.uniform(-0.08, 0.08) * W,
              H / 2 - 0.5 + rng.uniform(-0.08, 0.08) * H)
    framed = style is not None and style.framing
    geometry = place_hand(spec, K, W, H, rng, size_range=(0.28, 0.5) if framed else (0.35, 0.7),
                          center=center)
    others, other_skins = ([], []) if style is None or not style.occluders else \
        sample_occluders(geometry, K, W, H, rng, style=style)
    rendering = render_hands([geometry, *others], [spec.skin, *other_skins], K, W, H, rng,
                             style=style)
    return rng, K, spec, geometry, rendering


def background(rng: np.random.Generator, h: int, w: int, version: int, split: str,
               style: RenderStyle | None = None) -> np.ndarray:
    """FreiHAND's version ``version`` background: the green screen (training, version 0), else a
    room (``style.rooms``) or a procedural pattern."""
    if split == "training" and version == 0:
        return green_screen(rng, h, w)
    return scene_background(rng, h, w, style)


def _write_pose(args) -> dict:
    """Render one unique pose, write its images (and its hand mask, for training): its labels."""
    root, seed, split, idx, n, versions, image_size, style = args
    rng, K, spec, geometry, rendering = render_pose(seed, split, idx, image_size, style)
    W = H = image_size
    # FreiHAND's versions are one capture with its background replaced: the camera's effects
    # (white balance, blur, noise) are drawn once per pose and repeated in every version.
    one_capture = style is not None and any(getattr(style, k) for k in CAMERA_EFFECTS)
    capture_seed = int(rng.integers(2**32)) if one_capture else None
    for v in range(versions):
        bg = background(rng, H, W, v, split, style)
        harmonize = rng.uniform(0.1, 0.35) if v in (1, 3) else 0.0
        quality = jpeg_quality(rng) if style is not None and style.jpeg else 92
        camera = np.random.default_rng(capture_seed) if one_capture else rng
        Image.fromarray(composite(rendering, bg, camera, harmonize=harmonize, style=style)).save(
            root / split / "rgb" / f"{idx + n * v:08d}.jpg", quality=quality)
    if split == "training":
        hand = (rendering.hand == 0) & (rendering.part > 0) & (rendering.part <= PALM_PART) & \
            (rendering.cover > 0.5)
        Image.fromarray((hand * 255).astype(np.uint8)).save(
            root / split / "mask" / f"{idx:08d}.jpg", quality=95)
    xyz = geometry.joints
    return {"xyz": np.round(xyz, 6).tolist(), "K": np.round(K, 6).tolist(),
            "scale": round(float(np.linalg.norm(xyz[9] - xyz[10])), 6),
            "visibility": rendering.visible[0].astype(int).tolist(), "gesture": spec.gesture}


def make_freihand(root: str | Path, n_poses: int, seed: int = 0, n_eval_poses: int | None = None,
                  versions: int = 4, image_size: int = 224, workers: int | None = None,
                  progress: bool = True, style: RenderStyle | None = None) -> Path:
    """Write a synthetic FreiHAND under ``root``: ``n_poses`` unique training poses in ``versions``
    backgrounds each, ``n_eval_poses`` evaluation poses (default 12%, FreiHAND's ratio, >= 1),
    drawn in ``style`` (default: ``RenderStyle()``, every realism feature on; or its ``as_dict``)."""
    style = as_style(style)
    if n_poses < 1:
        raise ValueError(f"n_poses must be at least 1, got {n_poses}")
    if not 1 <= versions <= 4:
        raise ValueError(f"versions must be 1..4 (FreiHAND has 4), got {versions}")
    n_eval_poses = max(1, round(0.12 * n_poses)) if n_eval_poses is None else n_eval_poses
    root, start = start_dataset(root, "training/rgb", "training/mask", "evaluation/rgb")
    jobs = [(root, seed, "training", i, n_poses, versions, image_size, style)
            for i in range(n_poses)]
    jobs += [(root, seed, "evaluation", i, n_eval_poses, 1, image_size, style)
             for i in range(n_eval_poses)]
    results = run_jobs(_write_pose, jobs, workers, progress, desc="rendering hands", unit="pose",
                       chunksize=16)
    gestures = {}
    for split, part in (("training", results[:n_poses]), ("evaluation", results[n_poses:])):
        for key in ("xyz", "K", "scale", "visibility"):
            write_json(root / f"{split}_{key}.json", [r[key] for r in part])
        gestures[split] = [r["gesture"] for r in part]
    return stamp_dataset(root, start, __name__, FREIHAND_GENERATOR_VERSION, seed=seed,
                         n_poses=n_poses, n_eval_poses=n_eval_poses, versions=versions,
                         version_names=list(VERSION_NAMES[:versions]), image_size=image_size,
                         style=style.as_dict(), gestures=gestures)


def ensure_synthetic_freihand(root: str | Path, n_poses: int, seed: int = 0, versions: int = 4,
                              image_size: int = 224, progress: bool = True,
                              style: RenderStyle | None = None) -> Path:
    """``root`` holding a synthetic FreiHAND of these settings (:func:`.jobs.ensure_dataset`)."""
    return ensure_dataset(root, make_freihand, FREIHAND_GENERATOR_VERSION, progress,
                          n_poses=n_poses, seed=seed, versions=versions, image_size=image_size,
                          style=as_style(style).as_dict())
