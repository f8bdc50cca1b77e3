"""Checks for notebook 08 (real hands): a crop box, the crop's coordinates, PCK with misses."""

from __future__ import annotations

import math

import numpy as np

from . import Wrong, exercise

# --- 08.1 a crop box --------------------------------------------------------------------------


def _all_joints(keypoints, visible, scale):
    """A typical mistake: the unlabelled (0, 0) joints stretch the box."""
    kp = np.asarray(keypoints, float).reshape(-1, 2)
    lo, hi = kp.min(0), kp.max(0)
    side = int(math.ceil(scale * max(hi - lo)))
    cx, cy = (lo + hi) / 2
    return float(cx - side / 2), float(cy - side / 2), side


def _corner_at_min(keypoints, visible, scale):
    """A typical mistake: the box starts at the keypoints' minimum instead of being centred."""
    kp = np.asarray(keypoints, float).reshape(-1, 2)[np.asarray(visible, bool).reshape(-1)]
    lo, hi = kp.min(0), kp.max(0)
    side = int(math.ceil(scale * max(hi - lo)))
    return float(lo[0]), float(lo[1]), side


def _shorter_side(keypoints, visible, scale):
    """A typical mistake: the shorter side of the keypoint box sets the crop's size."""
    kp = np.asarray(keypoints, float).reshape(-1, 2)[np.asarray(visible, bool).reshape(-1)]
    lo, hi = kp.min(0), kp.max(0)
    side = int(math.ceil(scale * min(hi - lo)))
    cx, cy = (lo + hi) / 2
    return float(cx - side / 2), float(cy - side / 2), side


def _reference_box(kp, vis, scale):
    kp = kp[vis]
    lo, hi = kp.min(0), kp.max(0)
    side = int(math.ceil(scale * max(hi - lo)))
    cx, cy = (lo + hi) / 2
    return cx - side / 2, cy - side / 2, side


@exercise("08.1", "A square crop box around the visible keypoints",
          hint="kp = keypoints[visible]; lo, hi = kp.min(0), kp.max(0); side = ceil(scale * "
               "max(hi - lo)); the centre (lo + hi) / 2 minus side / 2 is (x0, y0).",
          wrong=[_all_joints, _corner_at_min, _shorter_side])
def _(hand_box):
    rng = np.random.default_rng(8)
    for case in range(20):
        centre = rng.uniform(100, 400, 2)
        kp = centre + rng.normal(0, 1, (21, 2)) * rng.uniform([10, 30], [40, 60])
        vis = rng.random(21) > 0.2
        vis[:2] = True
        kp[~vis] = 0.0  # unlabelled joints, stored as (0, 0) as OneHand10K does
        scale = float(rng.uniform(1.1, 2.0))
        out = hand_box(kp.copy(), vis.copy(), scale)
        try:
            x0, y0, side = (float(v) for v in out)
        except (TypeError, ValueError) as err:
            raise Wrong(f"hand_box must return (x0, y0, side), got {out!r}") from err
        ex0, ey0, eside = _reference_box(kp, vis, scale)
        if not isinstance(out[2], int | np.integer):
            raise Wrong(f"side must be an int (a number of pixels, used to cut and resize the "
                        f"crop), got {type(out[2]).__name__} {out[2]!r}: int(np.ceil(...))")
        if side != eside:
            raise Wrong(f"case {case}: side should be ceil({scale:.3f} x longer side of the "
                        f"visible keypoints' box) = {eside}, got {side}")
        if not (abs(x0 - ex0) < 1e-6 and abs(y0 - ey0) < 1e-6):
            raise Wrong(f"case {case}: the corner should be ({ex0:.2f}, {ey0:.2f}) (the box "
                        f"centred on the visible keypoints), got ({x0:.2f}, {y0:.2f})")
    return "Centred on the visible joints, square, the right size."


# --- 08.2 into the crop -----------------------------------------------------------------------


def _no_half_pixel(keypoints, box, size):
    """A typical mistake: scaling pixel indices instead of pixel centres."""
    x0, y0, side = box
    return (np.asarray(keypoints, float) - (x0, y0)) * (size / side)


def _inverse_scale(keypoints, box, size):
    """A typical mistake: the scale factor upside down."""
    x0, y0, side = box
    return (np.asarray(keypoints, float) - (x0, y0) + 0.5) * (side / size) - 0.5


def _no_shift(keypoints, box, size):
    """A typical mistake: the box's corner forgotten."""
    x0, y0, side = box
    return (np.asarray(keypoints, float) + 0.5) * (size / side) - 0.5


def _spot_centroid(point, image_size, box, size):
    """Where a small Gaussian spot at ``point`` (image pixels) lands in a real crop: cut the box
    (integer corner), resize it with PIL's bilinear resize, take the spot's centroid."""
    from PIL import Image

    h = w = image_size
    ys, xs = np.mgrid[:h, :w]
    spot = np.exp(-((xs - point[0]) ** 2 + (ys - point[1]) ** 2) / (2 * 1.5**2)).astype(np.float32)
    x0, y0, side = box
    square = spot[y0:y0 + side, x0:x0 + side]
    crop = np.asarray(Image.fromarray(np.ascontiguousarray(square, np.float32)).resize(
        (size, size), Image.Resampling.BILINEAR))
    cy, cx = np.mgrid[:size, :size]
    return np.array([(crop * cx).sum(), (crop * cy).sum()]) / crop.sum()


@exercise("08.2", "Image pixels to crop pixels",
          hint="(keypoints - (x0, y0) + 0.5) * (size / side) - 0.5: the +0.5 goes to the pixel's "
               "centre, the -0.5 comes back to a pixel index.",
          wrong=[_no_half_pixel, _inverse_scale, _no_shift])
def _(to_crop):
    cases = [((37.3, 41.8), (20, 25, 40), 120), ((60.6, 52.2), (30, 30, 50), 150),
             ((48.0, 47.5), (24, 18, 60), 30)]
    worst = 0.0
    for point, box, size in cases:
        out = np.asarray(to_crop(np.array([point]), box, size), float).reshape(-1)
        if out.shape != (2,):
            raise Wrong(f"to_crop of one point (an (1, 2) array) must give (1, 2), got {out.shape}")
        landed = _spot_centroid(point, 100, box, size)
        err = float(np.hypot(*(out - landed)))
        if err > 0.1:
            raise Wrong(f"a spot at {point} in the image lands at ({landed[0]:.2f}, {landed[1]:.2f}) "
                        f"in the {size}x{size} crop of box {box}; you say ({out[0]:.2f}, "
                        f"{out[1]:.2f}), {err:.2f} px off")
        worst = max(worst, err)
    return f"The points land where the crop puts them (within {worst:.3f} px)."


# --- 08.3 PCK with misses ---------------------------------------------------------------------


def _skip_misses(pred, gt, threshold):
    """A typical mistake: missed images left out of the denominator (flatters the detector)."""
    d = np.linalg.norm(np.asarray(pred, float) - np.asarray(gt, float), axis=-1)
    found = np.isfinite(d).all(-1)
    return float((d[found] <= threshold).mean())


def _misses_right(pred, gt, threshold):
    """A typical mistake: NaN distances counted as correct."""
    d = np.linalg.norm(np.asarray(pred, float) - np.asarray(gt, float), axis=-1)
    return float(((d <= threshold) | np.isnan(d)).mean())


def _strict(pred, gt, threshold):
    """A typical mistake: '<' instead of '<=' at the threshold."""
    d = np.linalg.norm(np.asarray(pred, float) - np.asarray(gt, float), axis=-1)
    return float((d < threshold).mean())


@exercise("08.3", "PCK for a detector that can miss",
          hint="d = norm(pred - gt, axis=-1); (d <= threshold).sum() / d.size: NaN <= t is False, "
               "so a miss is wrong and stays in the denominator.",
          wrong=[_skip_misses, _misses_right, _strict])
def _(pck_with_misses):
    rng = np.random.default_rng(3)
    gt = rng.uniform(0, 224, (10, 21, 2))
    pred = gt + rng.normal(0, 6, gt.shape)
    pred[0, 0] = gt[0, 0] + (3.0, 4.0)  # exactly at the threshold: 5 px counts as correct
    pred[[2, 7]] = np.nan  # two images where no hand was found
    d = np.linalg.norm(pred - gt, axis=-1)
    truth = float((d <= 5.0).sum() / d.size)
    got = pck_with_misses(pred.copy(), gt.copy(), 5.0)
    try:
        got = float(got)
    except (TypeError, ValueError) as err:
        raise Wrong(f"return one number (a fraction), got {got!r}") from err
    if not abs(got - truth) < 1e-6:
        found = float((d[np.isfinite(d).all(-1)] <= 5.0).mean())
        note = (" That is the PCK of the found images only: the misses must count as wrong."
                if abs(got - found) < 1e-6 else "")
        raise Wrong(f"10 images, 2 missed, threshold 5 px (one joint exactly 5 px off): PCK "
                    f"should be {truth:.4f}, got {got:.4f}.{note}")
    return f"Misses count as wrong: {truth:.3f} of all joints."
