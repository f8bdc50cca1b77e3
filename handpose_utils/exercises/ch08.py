"""Checks for notebook 08 (real hands): a crop box, the crop's coordinates, PCK with misses, and
points of a rotated crop back in the image."""

from __future__ import annotations

import math

import numpy as np

from . import Wrong, exercise, unchanged

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


def _float_side(keypoints, visible, scale):
    """A typical mistake: the side left as a float (no whole number of pixels to cut)."""
    kp = np.asarray(keypoints, float).reshape(-1, 2)[np.asarray(visible, bool).reshape(-1)]
    lo, hi = kp.min(0), kp.max(0)
    side = scale * max(hi - lo)
    cx, cy = (lo + hi) / 2
    return float(cx - side / 2), float(cy - side / 2), side


def _mean_centre(keypoints, visible, scale):
    """A typical mistake: centred on the keypoints' mean, not on the middle of their box."""
    kp = np.asarray(keypoints, float).reshape(-1, 2)[np.asarray(visible, bool).reshape(-1)]
    lo, hi = kp.min(0), kp.max(0)
    side = int(math.ceil(scale * max(hi - lo)))
    cx, cy = kp.mean(0)
    return float(cx - side / 2), float(cy - side / 2), side


def _corner_from_float_side(keypoints, visible, scale):
    """A typical mistake: the corner from the side before rounding, the rounded side returned
    (the box then is not centred where it says it is by up to half a pixel)."""
    kp = np.asarray(keypoints, float).reshape(-1, 2)[np.asarray(visible, bool).reshape(-1)]
    lo, hi = kp.min(0), kp.max(0)
    side = scale * max(hi - lo)
    cx, cy = (lo + hi) / 2
    return float(cx - side / 2), float(cy - side / 2), int(math.ceil(side))


def _no_guard(keypoints, visible, scale):
    """A typical mistake: one visible joint gives a box of side 0 instead of an error."""
    kp = np.asarray(keypoints, float).reshape(-1, 2)[np.asarray(visible, bool).reshape(-1)]
    if len(kp) == 0:
        raise ValueError("no visible keypoints")
    lo, hi = kp.min(0), kp.max(0)
    side = int(math.ceil(scale * max(hi - lo)))
    cx, cy = (lo + hi) / 2
    return float(cx - side / 2), float(cy - side / 2), side


def _reference_box(kp, vis, scale):
    kp = kp[vis]
    lo, hi = kp.min(0), kp.max(0)
    side = int(math.ceil(scale * max(hi - lo)))
    cx, cy = (lo + hi) / 2
    return cx - side / 2, cy - side / 2, side


@exercise("08.1", "A square crop box around the visible keypoints",
          nudge="Three things decide the box: which joints count (the mask, not every row), where "
                "its centre is (the middle of the visible joints' min and max, not their mean) and "
                "its side (rounded up to a whole number of pixels, an int).",
          hint="if visible.sum() < 2: raise ValueError(...); kp = keypoints[visible]; lo, hi = "
               "kp.min(0), kp.max(0); side = int(ceil(scale * max(hi - lo))); the centre "
               "(lo + hi) / 2 minus side / 2 (the int side) is (x0, y0).",
          wrong=[_all_joints, _corner_at_min, _shorter_side, _float_side, _mean_centre,
                 _corner_from_float_side, _no_guard])
def _(hand_box):
    rng = np.random.default_rng(8)
    for case in range(20):
        centre = rng.uniform(100, 400, 2)
        spread = rng.uniform(10, 60, 2)  # sometimes wider than tall, sometimes taller than wide
        kp = centre + rng.normal(0, 1, (21, 2)) * spread
        vis = rng.random(21) > 0.2
        vis[:2] = True
        kp[~vis] = 0.0  # unlabelled joints, stored as (0, 0) as OneHand10K does
        scale = float(rng.uniform(1.1, 2.0))
        kp_in, vis_in = kp.copy(), vis.copy()
        out = hand_box(kp_in, vis_in, scale)
        unchanged("keypoints", kp, kp_in)
        unchanged("visible", vis, vis_in)
        try:
            x0, y0, side = (float(v) for v in out)
        except (TypeError, ValueError) as err:
            raise Wrong(f"hand_box must return (x0, y0, side), got {out!r}") from err
        ex0, ey0, eside = _reference_box(kp, vis, scale)
        if not isinstance(out[2], int | np.integer):
            raise Wrong(f"side must be an int (a number of pixels, used to cut and resize the "
                        f"crop), got {type(out[2]).__name__} {out[2]!r}: int(np.ceil(...))")
        if side != eside:
            lo, hi = kp[vis].min(0), kp[vis].max(0)
            raise Wrong(f"case {case}: the visible keypoints' box is {hi[0] - lo[0]:.2f} x "
                        f"{hi[1] - lo[1]:.2f} px and scale = {scale:.3f}, so side should be "
                        f"{eside}; got {side:g}")
        if not (abs(x0 - ex0) < 1e-6 and abs(y0 - ey0) < 1e-6):
            lo, hi = kp[vis].min(0), kp[vis].max(0)
            float_side = scale * max(hi - lo)
            if np.allclose((x0, y0), (lo + hi) / 2 - float_side / 2, atol=1e-6):
                raise Wrong(f"case {case}: your centre is right, but your corner ({x0:.3f}, "
                            f"{y0:.3f}) is that of a box of the side before rounding "
                            f"({float_side:.3f}), while you return side {side:g}: compute the "
                            f"corner from the int side, ({ex0:.3f}, {ey0:.3f}), so that the "
                            f"{side:g}-pixel box you cut is centred on the hand")
            raise Wrong(f"case {case}: the corner should be ({ex0:.3f}, {ey0:.3f}) (the box "
                        f"centred on the middle of the visible keypoints' box), got ({x0:.3f}, "
                        f"{y0:.3f}): off by ({x0 - ex0:+.3f}, {y0 - ey0:+.3f}) px")
    kp = rng.uniform(100, 400, (21, 2))
    for n_visible in (1, 0):
        vis = np.zeros(21, bool)
        vis[:n_visible] = True
        try:
            out = hand_box(kp.copy(), vis, 1.5)
        except ValueError:
            continue
        raise Wrong(f"with {n_visible} visible joint(s) there is no box to take, but hand_box "
                    f"returned {out!r}: raise a ValueError when fewer than 2 joints are visible")
    return "Centred on the visible joints, square, the right size; no box from fewer than 2."


# --- 08.2 into the crop -----------------------------------------------------------------------


def _no_half_pixel(keypoints, box, size):
    """A typical mistake: scaling pixel indices instead of positions from the box's edge."""
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


def _rounded_corner(keypoints, box, size):
    """A typical mistake: the corner rounded to a whole pixel (the crop is cut at sub-pixel x0)."""
    x0, y0, side = box
    return (np.asarray(keypoints, float) - (round(x0), round(y0)) + 0.5) * (size / side) - 0.5


def _spot_centroid(point, image_size, box, size):
    """Where a small Gaussian spot at ``point`` (image pixels, centres at integers) lands in a
    real crop, cut as the notebook cuts it: a sub-pixel translation by the box's corner
    (bilinear), then a resize from ``side`` to ``size`` pixels (area mean when it shrinks), then
    the spot's centroid."""
    from PIL import Image

    ys, xs = np.mgrid[:image_size, :image_size]
    spot = np.exp(-((xs - point[0]) ** 2 + (ys - point[1]) ** 2) / (2 * 1.5**2)).astype(np.float32)
    x0, y0, side = box
    square = Image.fromarray(spot).transform((side, side), Image.Transform.AFFINE,
                                             (1, 0, x0, 0, 1, y0), resample=Image.Resampling.BILINEAR)
    resample = Image.Resampling.BOX if size < side else Image.Resampling.BILINEAR
    crop = np.asarray(square.resize((size, size), resample), np.float64)
    cy, cx = np.mgrid[:size, :size]
    return np.array([(crop * cx).sum(), (crop * cy).sum()]) / crop.sum()


@exercise("08.2", "Image pixels to crop pixels",
          nudge="Draw one row of pixels. The box's first pixel is centred on x0, so the box's left "
                "edge is at x0 - 0.5; the crop's left edge is at -0.5. Map edge to edge: a point's "
                "distance from the box's edge, times size / side, is its distance from the "
                "crop's edge.",
          hint="(keypoints - (x0, y0) + 0.5) * (size / side) - 0.5: + 0.5 measures from the box's "
               "edge, - 0.5 goes from the crop's edge back to its pixel centres.",
          wrong=[_no_half_pixel, _inverse_scale, _no_shift, _rounded_corner])
def _(to_crop):
    cases = [((37.3, 41.8), (20.0, 25.0, 40), 120), ((60.6, 52.2), (30.4, 29.7, 50), 150),
             ((48.0, 47.5), (24.35, 18.6, 60), 30), ((52.9, 36.1), (19.8, 12.45, 64), 64)]
    worst = 0.0
    for point, box, size in cases:
        given = np.array([point, (box[0] + box[2] / 2, box[1] + box[2] / 2)])
        arg = given.copy()
        out = to_crop(arg, box, size)
        unchanged("keypoints", given, arg)
        out = np.asarray(out, float)
        if out.shape != (2, 2):
            raise Wrong(f"to_crop of two points (a (2, 2) array) must give (2, 2), got {out.shape}")
        landed = _spot_centroid(point, 100, box, size)
        err = float(np.hypot(*(out[0] - landed)))
        if err > 0.1:
            raise Wrong(f"a spot at ({point[0]:.2f}, {point[1]:.2f}) in the image lands at "
                        f"({landed[0]:.3f}, {landed[1]:.3f}) in the {size}x{size} crop of box "
                        f"{box}; you say ({out[0, 0]:.3f}, {out[0, 1]:.3f}), {err:.2f} px off")
        worst = max(worst, err)
    # many points at once, any leading shape
    many = np.random.default_rng(2).uniform(0, 200, (3, 21, 2))
    box, size = (41.7, 63.2, 97), 64
    got = np.asarray(to_crop(many.copy(), box, size), float)
    want = (many - box[:2] + 0.5) * (size / box[2]) - 0.5
    if got.shape != many.shape:
        raise Wrong(f"keypoints of shape {many.shape} must give {many.shape}, got {got.shape}")
    if not np.allclose(got, want, atol=1e-6):
        k = np.unravel_index(np.abs(got - want).argmax(), got.shape)
        raise Wrong(f"on a (3, 21, 2) batch, element {tuple(int(i) for i in k)} should be "
                    f"{want[k]:.4f}, got {got[k]:.4f}: treat every point the same way")
    return f"The points land where the crop puts them (within {worst:.3f} px)."


# --- 08.3 PCK with misses ---------------------------------------------------------------------


def _skip_misses(pred, gt, threshold, visible):
    """A typical mistake: missed images left out of the denominator (flatters the detector)."""
    d = np.linalg.norm(np.asarray(pred, float) - np.asarray(gt, float), axis=-1)
    vis = np.asarray(visible, bool)
    found = np.isfinite(d).all(-1)
    return float(((d <= threshold) & vis)[found].sum() / vis[found].sum())


def _misses_right(pred, gt, threshold, visible):
    """A typical mistake: NaN distances counted as correct."""
    d = np.linalg.norm(np.asarray(pred, float) - np.asarray(gt, float), axis=-1)
    vis = np.asarray(visible, bool)
    return float((((d <= threshold) | np.isnan(d)) & vis).sum() / vis.sum())


def _strict(pred, gt, threshold, visible):
    """A typical mistake: '<' instead of '<=' at the threshold."""
    d = np.linalg.norm(np.asarray(pred, float) - np.asarray(gt, float), axis=-1)
    vis = np.asarray(visible, bool)
    return float(((d < threshold) & vis).sum() / vis.sum())


def _misses_at_zero(pred, gt, threshold, visible):
    """A typical mistake: a missed image's NaN replaced by (0, 0), a position like any other."""
    d = np.linalg.norm(np.nan_to_num(np.asarray(pred, float)) - np.asarray(gt, float), axis=-1)
    vis = np.asarray(visible, bool)
    return float(((d <= threshold) & vis).sum() / vis.sum())


def _every_joint(pred, gt, threshold, visible):
    """A typical mistake: the unlabelled joints scored too (their (0, 0) is no position)."""
    d = np.linalg.norm(np.asarray(pred, float) - np.asarray(gt, float), axis=-1)
    return float((d <= threshold).sum() / d.size)


def _numerator_unmasked(pred, gt, threshold, visible):
    """A typical mistake: unlabelled joints left out of the denominator but counted if close."""
    d = np.linalg.norm(np.asarray(pred, float) - np.asarray(gt, float), axis=-1)
    return float((d <= threshold).sum() / np.asarray(visible, bool).sum())


def _pck(pred, gt, threshold, visible):
    d = np.linalg.norm(np.asarray(pred, float) - np.asarray(gt, float), axis=-1)
    vis = np.asarray(visible, bool)
    return float(((d <= threshold) & vis).sum() / vis.sum())


def _pck_case(rng, near_origin: bool, stored_at_zero: bool = True):
    """10 images of 21 joints: two missed (NaN), one joint exactly at the threshold, some joints
    not labelled (stored at (0, 0) as OneHand10K does, or, without ``stored_at_zero``, at a
    position nobody checked, as RHD keeps hidden joints); with ``near_origin`` a missed image's
    hand sits near (0, 0)."""
    gt = rng.uniform(20, 224, (10, 21, 2))
    if near_origin:
        gt[7] = rng.uniform(0, 3, (21, 2))  # a small hand in the image's top-left corner
    pred = gt + rng.normal(0, 6, gt.shape)
    pred[0, 0] = gt[0, 0] + (3.0, 4.0)  # exactly at the threshold: 5 px counts as correct
    vis = rng.random((10, 21)) > 0.15
    vis[0, 0] = True
    if stored_at_zero:
        gt[~vis] = 0.0
    pred[[2, 7]] = np.nan  # two images where no hand was found
    return pred, gt, vis


@exercise("08.3", "PCK for a detector that can miss",
          nudge="Compute the distances (N, J) first and look at what a NaN does in a comparison. "
                "Which joints count at all (the denominator) does not depend on whether the "
                "detector found the image; replace nothing by a number.",
          hint="d = norm(pred - gt, axis=-1); ((d <= threshold) & visible).sum() / visible.sum(): "
               "NaN <= t is False, so a miss is wrong and its labelled joints stay in the "
               "denominator.",
          wrong=[_skip_misses, _misses_right, _strict, _misses_at_zero, _every_joint,
                 _numerator_unmasked])
def _(pck_with_misses):
    rng = np.random.default_rng(3)
    variants = {"the missed images left out": _skip_misses,
                "a missed image's joints counted as correct": _misses_right,
                "a missed image's NaN read as (0, 0), where this hand's ground truth is":
                    _misses_at_zero,
                "the unlabelled joints counted too": _every_joint,
                "the unlabelled joints counted as correct (not in the denominator)":
                    _numerator_unmasked,
                "a joint exactly at the threshold counted as wrong": _strict}
    for case, (near_origin, at_zero) in enumerate(((False, True), (True, True), (False, False))):
        pred, gt, vis = _pck_case(rng, near_origin, at_zero)
        args = pred.copy(), gt.copy(), vis.copy()
        got = pck_with_misses(*args[:2], 5.0, args[2])
        for name, before, after in zip(("pred", "gt", "visible"), (pred, gt, vis), args):
            unchanged(name, before, after)
        try:
            got = float(got)
        except (TypeError, ValueError) as err:
            raise Wrong(f"return one number (a fraction), got {got!r}") from err
        truth = _pck(pred, gt, 5.0, vis)
        if not abs(got - truth) < 1e-9:
            like = [n for n, f in variants.items() if abs(f(pred, gt, 5.0, vis) - got) < 1e-9]
            note = f" Your number is what you get with {like[0]}." if like else ""
            if abs(got - 100 * truth) < 1e-6:
                note = " That is a percentage: return the fraction, between 0 and 1."
            raise Wrong(f"case {case}: 10 images of 21 joints, {int(vis.sum())} labelled, images "
                        f"2 and 7 missed (NaN){', image 7 a hand near (0, 0)' if near_origin else ''}"
                        f"{'' if at_zero else ', the unlabelled joints stored where they are'}"
                        f", threshold 5 px (one joint exactly 5 px off): PCK should be "
                        f"{truth:.6f}, got {got:.6f}.{note}")
    return "Misses count as wrong, unlabelled joints not at all."


# --- 08.4 back from a rotated crop ------------------------------------------------------------


def _from_rotated(points, centre, side, angle, size):
    p = np.asarray(points, float)
    u = (p + 0.5) * (side / size) - side / 2  # from the crop's centre, image pixels, crop axes
    c, s = math.cos(angle), math.sin(angle)
    return np.asarray(centre, float) + u[..., :1] * (c, s) + u[..., 1:] * (-s, c)


def _rot_other_way(points, centre, side, angle, size):
    """A typical mistake: the rotation's sense flipped (the crop turned by -angle)."""
    return _from_rotated(points, centre, side, -angle, size)


def _rot_no_half(points, centre, side, angle, size):
    """A typical mistake: the crop's centre taken at size / 2 instead of (size - 1) / 2."""
    return _from_rotated(np.asarray(points, float) - 0.5, centre, side, angle, size)


def _rot_scale_upside_down(points, centre, side, angle, size):
    """A typical mistake: size / side where side / size belongs."""
    p = np.asarray(points, float)
    u = (p + 0.5) * (size / side) - size / 2
    c, s = math.cos(angle), math.sin(angle)
    return np.asarray(centre, float) + u[..., :1] * (c, s) + u[..., 1:] * (-s, c)


def _rot_about_corner(points, centre, side, angle, size):
    """A typical mistake: rotated about the crop's corner instead of its centre."""
    p = (np.asarray(points, float) + 0.5) * (side / size)
    c, s = math.cos(angle), math.sin(angle)
    corner = np.asarray(centre, float) - side / 2
    return corner + p[..., :1] * (c, s) + p[..., 1:] * (-s, c)


@exercise("08.4", "Points of a rotated crop back in the image",
          nudge="Go in three steps: a crop pixel's offset from the crop's centre pixel (at "
                "((size - 1) / 2, (size - 1) / 2)), in image pixels (times side / size), then along "
                "the crop's own axes: x along (cos a, sin a), y along (-sin a, cos a), plus the "
                "centre.",
          hint="u = (points + 0.5) * (side / size) - side / 2; centre + u[..., :1] * (cos a, sin a) "
               "+ u[..., 1:] * (-sin a, cos a).",
          wrong=[_rot_other_way, _rot_no_half, _rot_scale_upside_down, _rot_about_corner],
          transfer=True)
def _(from_rotated_crop):
    rng = np.random.default_rng(84)
    for case in range(6):
        centre = rng.uniform(80, 400, 2)
        side = float(rng.uniform(60, 240))
        size = int(rng.choice([64, 96, 128]))
        angle = float(rng.uniform(-math.pi, math.pi)) if case else 0.0
        pts = rng.uniform(-0.5, size - 0.5, (2, 21, 2))
        arg = pts.copy()
        got = from_rotated_crop(arg, tuple(centre), side, angle, size)
        unchanged("points", pts, arg)
        got = np.asarray(got, float)
        want = _from_rotated(pts, centre, side, angle, size)
        if got.shape != want.shape:
            raise Wrong(f"points of shape {pts.shape} must give {want.shape}, got {got.shape}")
        if np.allclose(got, want, atol=1e-6):
            continue
        what = f"case {case} (centre ({centre[0]:.1f}, {centre[1]:.1f}), side {side:.1f}, " \
               f"angle {math.degrees(angle):.1f} deg, size {size})"
        mid = np.full((1, 2), (size - 1) / 2)
        c_got = np.asarray(from_rotated_crop(mid, tuple(centre), side, angle, size), float)
        c_got = c_got.reshape(-1)[:2]
        if not np.allclose(c_got, centre, atol=1e-6):
            raise Wrong(f"{what}: the crop's centre pixel ({(size - 1) / 2}, {(size - 1) / 2}) "
                        f"must land on the centre ({centre[0]:.3f}, {centre[1]:.3f}); you give "
                        f"({c_got[0]:.3f}, {c_got[1]:.3f})")
        step = np.asarray(from_rotated_crop(mid + (1.0, 0.0), tuple(centre), side, angle, size),
                          float).reshape(-1)[:2] - c_got
        want_step = side / size * np.array([math.cos(angle), math.sin(angle)])
        raise Wrong(f"{what}: one crop pixel to the right of the centre should move "
                    f"({want_step[0]:+.4f}, {want_step[1]:+.4f}) image px (length side / size = "
                    f"{side / size:.4f}, along the crop's x axis); yours moves "
                    f"({step[0]:+.4f}, {step[1]:+.4f}), length {np.hypot(*step):.4f}")
    return "Every crop pixel lands back where the rotated crop took it from."
