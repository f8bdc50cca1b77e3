"""Checks for notebook 06 (COCO heatmaps): a Gaussian target, DARK decoding, OKS, the flip back,
and where SimpleBaseline's flipped heatmap lands."""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import torch

from ..skeletons import COCO17_NAMES, COCO_FLIP_INDEX, COCO_OKS_SIGMAS
from . import Wrong, exercise, unchanged


def _centre_of_mass(m):
    m = np.clip(np.asarray(m, float), 0, None)
    ys, xs = np.mgrid[: m.shape[0], : m.shape[1]]
    total = m.sum()
    if not total > 0:
        return float("nan"), float("nan")
    return float((m * xs).sum() / total), float((m * ys).sum() / total)


# --- 06.1 a Gaussian target -------------------------------------------------------------------


def _truth(center, size, sigma):
    w, h = size
    ys, xs = np.mgrid[:h, :w]
    return np.exp(-((xs - center[0]) ** 2 + (ys - center[1]) ** 2) / (2 * sigma**2))


def _rounded_centre(center, size, sigma=2.0):
    """A typical mistake: the centre rounded to the nearest pixel."""
    return _truth(np.round(np.asarray(center, float)), size, sigma)


def _no_factor_two(center, size, sigma=2.0):
    """A typical mistake: exp(-d^2 / sigma^2), a Gaussian narrower by sqrt(2)."""
    return _truth(center, size, sigma / np.sqrt(2))


def _swapped_axes(center, size, sigma=2.0):
    """A typical mistake: the centre's x used for rows."""
    return _truth((center[1], center[0]), size, sigma)


def _normalised(center, size, sigma=2.0):
    """A typical mistake: the probability density (divided by 2 pi sigma^2), peak far below 1."""
    return _truth(center, size, sigma) / (2 * np.pi * sigma**2)


def _half_pixel(center, size, sigma=2.0):
    """A typical mistake: pixel corners instead of centres (the Gaussian half a pixel off)."""
    return _truth((center[0] - 0.5, center[1] - 0.5), size, sigma)


def _rounds_caller(center, size, sigma=2.0):
    """A typical mistake: the right map, but the caller's centre rounded in place."""
    out = _truth(center, size, sigma)
    center[:] = np.round(center)
    return out


@exercise("06.1", "Gaussian heatmap target",
          nudge="Compare with the formula in section 3: which pixel holds the maximum, and where "
                "do rows (y) and columns (x) come from? The centre is not a whole pixel.",
          hint="w, h = size; ys, xs = np.mgrid[:h, :w]; return np.exp(-((xs - cx)**2 + "
               "(ys - cy)**2) / (2 * sigma**2)), with (cx, cy) = center as given, not rounded.",
          wrong=[_rounded_centre, _no_factor_two, _swapped_axes, _normalised, _half_pixel,
                 _rounds_caller])
def _(gaussian_heatmap):
    rng = np.random.default_rng(6)
    cases = [((5.3, 3.7), (12, 9), 1.5), ((2.0, 6.5), (7, 10), 2.0)]
    for _ in range(6):
        w, h = (int(v) for v in rng.integers(5, 30, 2))
        c = rng.uniform([-1, -1], [w, h])  # sub-pixel, sometimes past the border
        cases.append((c, (w, h), float(rng.uniform(0.8, 3.5))))
    for center, size, sigma in cases:
        given = np.array(center, float)
        hm = np.asarray(gaussian_heatmap(given, size, sigma), float)
        unchanged("center", np.asarray(center, float), given)
        w, h = size
        if hm.shape != (h, w):
            raise Wrong(f"size = (w, h) = {tuple(size)} needs an array of shape (h, w) = {(h, w)}"
                        f", got {hm.shape}")
        truth = _truth(center, size, sigma)
        if not np.allclose(hm, truth, rtol=1e-4, atol=1e-5):
            where = np.unravel_index(np.argmax(np.abs(hm - truth)), hm.shape)
            mx, my = _centre_of_mass(hm)
            tx, ty = _centre_of_mass(truth)
            raise Wrong(
                f"for center = ({center[0]:.3f}, {center[1]:.3f}) (x, y), sigma {sigma:.2f}, on a "
                f"{w} x {h} grid: pixel (row {where[0]}, column {where[1]}) holds "
                f"{hm[where]:.5f}, exp(-d^2 / (2 sigma^2)) is {truth[where]:.5f} there. Your map's "
                f"largest value is {hm.max():.4f} (the formula's {truth.max():.4f}), its centre "
                f"of mass ({mx:.3f}, {my:.3f}) (the formula's ({tx:.3f}, {ty:.3f}))")
    # the default sigma
    hm = np.asarray(gaussian_heatmap(np.array([4.25, 3.5]), (9, 8)), float)
    if hm.shape != (8, 9) or not np.allclose(hm, _truth((4.25, 3.5), (9, 8), 2.0), atol=1e-5):
        raise Wrong("called without sigma, your map is not the one for sigma = 2.0: keep the "
                    "default `sigma=2.0` in the signature")
    return f"Exact on {len(cases) + 1} grids, square or not, centres sub-pixel and past the border."


# --- 06.2 DARK --------------------------------------------------------------------------------


def _gaussian_2d(center, size, cov, peak=1.0, dtype=np.float64):
    w, h = size
    ys, xs = np.mgrid[:h, :w]
    d = np.stack([xs - center[0], ys - center[1]], -1)
    q = np.einsum("...i,ij,...j->...", d, np.linalg.inv(cov), d)
    return (peak * np.exp(-0.5 * q)).astype(dtype)


def _argmax_only(heatmap):
    """A typical mistake: the hottest pixel, no refinement."""
    y, x = np.unravel_index(np.argmax(heatmap), np.shape(heatmap))
    return float(x), float(y)


def _quarter(heatmap):
    """Not DARK: SimpleBaseline's quarter offset (error up to ~0.25 px)."""
    hm = np.asarray(heatmap, float)
    y, x = np.unravel_index(np.argmax(hm), hm.shape)
    return (x + 0.25 * np.sign(hm[y, x + 1] - hm[y, x - 1]),
            y + 0.25 * np.sign(hm[y + 1, x] - hm[y - 1, x]))


def _derivatives(D, x, y):
    dx, dy = 0.5 * (D[y, x + 1] - D[y, x - 1]), 0.5 * (D[y + 1, x] - D[y - 1, x])
    dxx = D[y, x + 1] - 2 * D[y, x] + D[y, x - 1]
    dyy = D[y + 1, x] - 2 * D[y, x] + D[y - 1, x]
    dxy = 0.25 * (D[y + 1, x + 1] - D[y + 1, x - 1] - D[y - 1, x + 1] + D[y - 1, x - 1])
    return dx, dy, dxx, dyy, dxy


def _wrong_sign(heatmap):
    """A typical mistake: the Newton step added instead of subtracted."""
    D = np.log(np.maximum(np.asarray(heatmap, float), 1e-10))
    y, x = np.unravel_index(np.argmax(D), D.shape)
    dx, dy, dxx, dyy, _ = _derivatives(D, x, y)
    return x + dx / dxx, y + dy / dyy


def _no_cross_term(heatmap):
    """A typical mistake: the Hessian without its cross term d2D/dxdy (exact only when the
    Gaussian's axes are the image axes)."""
    D = np.log(np.maximum(np.asarray(heatmap, float), 1e-10))
    y, x = np.unravel_index(np.argmax(D), D.shape)
    dx, dy, dxx, dyy, _ = _derivatives(D, x, y)
    return x - dx / dxx, y - dy / dyy


def _parabola_on_h(heatmap):
    """A typical mistake: the Newton step on H itself instead of log H (a parabola through the
    heatmap values; a Gaussian is not a parabola, so it is close but never exact)."""
    H = np.asarray(heatmap, float)
    y, x = np.unravel_index(np.argmax(H), H.shape)
    dx, dy, dxx, dyy, dxy = _derivatives(H, x, y)
    step = -np.linalg.solve([[dxx, dxy], [dxy, dyy]], [dx, dy])
    return x + step[0], y + step[1]


def _log_in_place(heatmap):
    """A typical mistake: the right step, but the caller's heatmap overwritten by its log."""
    np.log(np.maximum(heatmap, 1e-10), out=heatmap)
    D = heatmap
    y, x = np.unravel_index(np.argmax(D), D.shape)
    dx, dy, dxx, dyy, dxy = _derivatives(D, x, y)
    step = -np.linalg.solve([[dxx, dxy], [dxy, dyy]], [dx, dy])
    return x + step[0], y + step[1]


def _dark_cases():
    """(name, map, true centre) of perfect Gaussians: isotropic, axis-aligned elongated, rotated
    (x and y correlated); square and not; peaks of any height; float64 and float32."""
    rng = np.random.default_rng(2)
    cases = []
    for k in range(36):
        w, h = (int(v) for v in rng.integers(11, 40, 2))
        if k < 6:
            s1 = s2 = float(rng.uniform(1.2, 3.0))
            angle, kind = 0.0, "a round Gaussian"
        elif k < 18:
            s1, s2 = rng.uniform(1.0, 3.5, 2)
            angle, kind = 0.0, "a Gaussian elongated along the image axes"
        else:
            s1, s2 = rng.uniform(1.0, 3.5, 2)
            angle = float(rng.uniform(20, 70)) * rng.choice([-1, 1])
            kind = f"a Gaussian elongated and turned by {angle:.0f} degrees (x and y correlated)"
        a = np.radians(angle)
        R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        cov = R @ np.diag([s1**2, s2**2]) @ R.T
        c = rng.uniform([4, 4], [w - 5, h - 5])
        dtype = np.float32 if k % 3 == 2 else np.float64
        hm = _gaussian_2d(c, (w, h), cov, peak=float(rng.uniform(0.3, 1.0)), dtype=dtype)
        cases.append((f"{kind} (sigmas {s1:.2f}, {s2:.2f}) on a {w} x {h} map", hm, c))
    return cases


@exercise("06.2", "DARK decoding",
          nudge="Section 4's formula: one Newton step on D = log H (not on H), with the full 2x2 "
                "Hessian, cross term included, all from central differences at the argmax.",
          hint="D = np.log(heatmap) (a copy); (y, x) = np.unravel_index(argmax); g = (0.5 * "
               "(D[y, x+1] - D[y, x-1]), 0.5 * (D[y+1, x] - D[y-1, x])); Dxx = D[y, x+1] - "
               "2 D[y, x] + D[y, x-1], Dyy likewise, Dxy = 0.25 * (D[y+1, x+1] - D[y+1, x-1] - "
               "D[y-1, x+1] + D[y-1, x-1]); return (x, y) - np.linalg.solve([[Dxx, Dxy], "
               "[Dxy, Dyy]], g).",
          wrong=[_argmax_only, _quarter, _wrong_sign, _no_cross_term, _parabola_on_h,
                 _log_in_place])
def _(dark_decode):
    worst = 0.0
    for name, hm, c in _dark_cases():
        given = hm.copy()
        out = np.asarray(dark_decode(given), float).reshape(-1)
        unchanged("heatmap", hm, given)
        if out.shape != (2,):
            raise Wrong(f"dark_decode must return (x, y), got {out.tolist()}")
        err = out - c
        if not np.all(np.isfinite(err)) or np.hypot(*err) >= 1e-3:
            raise Wrong(f"on {name}, centred at ({c[0]:.4f}, {c[1]:.4f}) (x, y), you decode "
                        f"({out[0]:.4f}, {out[1]:.4f}): off by {err[0]:+.4f} px in x and "
                        f"{err[1]:+.4f} px in y. The log of any Gaussian is a quadratic, so one "
                        "Newton step lands on its centre to within 0.001 px")
        worst = max(worst, float(np.hypot(*err)))
    # Peaks on the border (a joint at the crop's edge): no neighbour on one side. Whatever the
    # answer does there, it must stay finite, near the argmax, and read only the pixels around
    # the peak: pixels 3 or more away changed must not move it (an index -1 wraps round).
    for c, (w, h) in [((0.2, 7.3), (20, 15)), ((18.7, 4.6), (20, 15)), ((5.4, 0.1), (13, 9)),
                      ((7.6, 8.8), (13, 9)), ((0.3, 0.2), (16, 11))]:
        hm = _gaussian_2d(np.array(c), (w, h), np.diag([2.0, 3.0]), peak=0.9, dtype=np.float64)
        y, x = np.unravel_index(np.argmax(hm), hm.shape)
        far = np.maximum(*np.meshgrid(np.abs(np.arange(w) - x), np.abs(np.arange(h) - y))) >= 3
        out = np.asarray(dark_decode(hm.copy()), float).reshape(-1)
        where = f"a peak on the border of a {w} x {h} map (argmax at x = {x}, y = {y})"
        if out.shape != (2,) or not np.all(np.isfinite(out)) or np.abs(out - (x, y)).max() > 1:
            raise Wrong(f"for {where} you decode {out.tolist()}: it must stay finite and within "
                        "one pixel of the argmax")
        moved = np.asarray(dark_decode(np.where(far, hm * 0.5, hm)), float).reshape(-1)
        if np.abs(moved - out).max() > 1e-9:
            raise Wrong(f"for {where}, halving the pixels 3 or more away from the peak moves "
                        f"your answer from ({out[0]:.4f}, {out[1]:.4f}) to ({moved[0]:.4f}, "
                        f"{moved[1]:.4f}): it reads pixels far from the peak (an index x - 1 = "
                        "-1 is the last column in numpy)")
    return (f"Exact (largest error {worst:.1e} px) on round, elongated and rotated Gaussians, "
            "square maps and not; peaks on the border handled.")


# --- 06.3 OKS ---------------------------------------------------------------------------------


def _no_area(pred, gt, area, sigmas):
    """A typical mistake: the person's area left out (no scale)."""
    gt = np.asarray(gt, float)
    k = 2 * np.asarray(sigmas)
    d2 = ((np.asarray(pred, float) - gt[:, :2]) ** 2).sum(-1)
    return float(np.exp(-d2 / (2 * k**2))[gt[:, 2] > 0].mean())


def _k_is_sigma(pred, gt, area, sigmas):
    """A typical mistake: k = sigma instead of k = 2 sigma."""
    gt = np.asarray(gt, float)
    k = np.asarray(sigmas)
    d2 = ((np.asarray(pred, float) - gt[:, :2]) ** 2).sum(-1)
    return float(np.exp(-d2 / (2 * area * k**2))[gt[:, 2] > 0].mean())


def _all_joints(pred, gt, area, sigmas):
    """A typical mistake: unlabelled joints (v = 0) averaged in."""
    gt = np.asarray(gt, float)
    k = 2 * np.asarray(sigmas)
    d2 = ((np.asarray(pred, float) - gt[:, :2]) ** 2).sum(-1)
    return float(np.exp(-d2 / (2 * area * k**2)).mean())


def _visible_only(pred, gt, area, sigmas):
    """A typical mistake: only visible joints (v = 2); occluded ones (v = 1) count too."""
    gt = np.asarray(gt, float)
    k = 2 * np.asarray(sigmas)
    d2 = ((np.asarray(pred, float) - gt[:, :2]) ** 2).sum(-1)
    return float(np.exp(-d2 / (2 * area * k**2))[gt[:, 2] == 2].mean())


def _nan_without_labels(pred, gt, area, sigmas):
    """A typical mistake: right with labelled joints, NaN (a mean over nothing) without any."""
    gt = np.asarray(gt, float)
    k = 2 * np.asarray(sigmas)
    d2 = ((np.asarray(pred, float) - gt[:, :2]) ** 2).sum(-1)
    with np.errstate(all="ignore"):
        e = np.exp(-d2 / (2 * area * k**2)) * (gt[:, 2] > 0)
        return float(e.sum() / (gt[:, 2] > 0).sum())


def _zero_without_labels(pred, gt, area, sigmas):
    """A typical mistake: a person without labelled joints scored 0 (pycocotools does not: it
    measures the distance to the person's box)."""
    gt = np.asarray(gt, float)
    if not (gt[:, 2] > 0).any():
        return 0.0
    k = 2 * np.asarray(sigmas)
    d2 = ((np.asarray(pred, float) - gt[:, :2]) ** 2).sum(-1)
    return float(np.exp(-d2 / (2 * area * k**2))[gt[:, 2] > 0].mean())


def _no_labels(oks, rng):
    """A person with no labelled joint: the answer must raise ValueError, as the exercise says."""
    gt = np.zeros((17, 3))
    pred = rng.uniform(100, 200, (17, 2))
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # numpy's "mean of empty slice"
            got = oks(pred.copy(), gt.copy(), 5000.0, np.asarray(COCO_OKS_SIGMAS, float))
    except ValueError:
        return
    except Exception as err:  # noqa: BLE001 - any other failure is the learner's to fix
        raise Wrong(f"for a person with no labelled joint (every v = 0) your oks raises "
                    f"{type(err).__name__}: {err}. Raise a ValueError that says why instead: "
                    "the OKS of such a person is not defined by its joints") from None
    raise Wrong(f"for a person with no labelled joint (every v = 0) your oks returns {got!r}. "
                "There is nothing to average (pycocotools measures the distance to the "
                "person's box instead, and your function gets no box): raise a ValueError")


def _pycocotools_oks(pred, gt, area):
    """OKS of one prediction against one person from pycocotools' own computeOks."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    x, y = gt[:, 0], gt[:, 1]
    box = [float(x.min()), float(y.min()), float(x.max() - x.min()), float(y.max() - y.min())]
    coco = COCO()
    coco.dataset = {
        "images": [{"id": 1, "width": 640, "height": 480}],
        "categories": [{"id": 1, "name": "person"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0,
                         "area": float(area), "bbox": box,
                         "num_keypoints": int((gt[:, 2] > 0).sum()),
                         "keypoints": gt.reshape(-1).tolist()}],
    }
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        coco.createIndex()
        dt = coco.loadRes([{"image_id": 1, "category_id": 1, "score": 1.0,
                            "keypoints": np.c_[pred, np.ones(len(pred))].reshape(-1).tolist()}])
        E = COCOeval(coco, dt, "keypoints")
        E.params.imgIds = [1]
        E._prepare()
        return float(E.computeOks(1, 1)[0, 0])


@exercise("06.3", "Object Keypoint Similarity",
          nudge="Section 9's formula: which joints count (v > 0: visible and occluded), what k "
                "is, and where the person's area goes. `sigmas` may come as a tuple. The "
                "exercise says what to do when no joint counts.",
          hint="k = 2 * np.asarray(sigmas); d2 = squared pixel distance per joint; "
               "e = d2 / (2 * area * k**2); the mean of exp(-e) over the joints with v > 0; "
               "if no joint has v > 0, raise ValueError(...).",
          wrong=[_no_area, _k_is_sigma, _all_joints, _visible_only, _nan_without_labels,
                 _zero_without_labels])
def _(oks):
    rng = np.random.default_rng(1)
    for n, (area, noise) in enumerate(((900.0, 2.0), (12000.0, 6.0), (40000.0, 15.0),
                                       (3000.0, 4.0))):
        side = np.sqrt(area) * 1.2
        gt = np.c_[rng.uniform(100, 100 + side, (17, 2)), rng.choice([0, 1, 2], 17, p=[.2, .3, .5])]
        gt[gt[:, 2] == 0, :2] = 0.0  # COCO writes unlabelled joints as (0, 0, 0)
        gt[0, 2], gt[1, 2] = 2, 1
        pred = gt[:, :2] + rng.normal(0, noise, (17, 2))
        theirs = _pycocotools_oks(pred, gt, area)
        # the sigmas come as an array, a tuple or a list
        sigmas = (np.asarray(COCO_OKS_SIGMAS, float), tuple(map(float, COCO_OKS_SIGMAS)),
                  list(map(float, COCO_OKS_SIGMAS)))[n % 3]
        p, g = pred.copy(), gt.copy()
        mine = float(oks(p, g, area, sigmas))
        unchanged("pred", pred, p)
        unchanged("gt", gt, g)
        if not abs(mine - theirs) < 1e-6:
            raise Wrong(f"for a person of area {area:.0f} px² with {noise:.0f} px of noise "
                        f"({int((gt[:, 2] == 2).sum())} visible, {int((gt[:, 2] == 1).sum())} "
                        f"occluded and {int((gt[:, 2] == 0).sum())} unlabelled joints), "
                        f"pycocotools gives OKS {theirs:.7f}, yours {mine:.7f} ({mine - theirs:+.1e})")
    _no_labels(oks, rng)
    return ("Agrees with pycocotools on small, medium and large people; a person without "
            "labelled joints raises ValueError.")


# --- 06.4 flip back ---------------------------------------------------------------------------


def _no_swap(heatmaps, flip_index):
    """A typical mistake: mirrored, but left and right channels not swapped."""
    return torch.as_tensor(heatmaps).flip(-1)


def _no_mirror(heatmaps, flip_index):
    """A typical mistake: channels swapped, x axis not mirrored."""
    return torch.as_tensor(heatmaps)[:, list(flip_index)]


def _shifted(heatmaps, flip_index):
    """SimpleBaseline's flip back (mirror, swap, then one pixel right): right for its pixel
    convention, one pixel off for this notebook's."""
    return torch.roll(torch.as_tensor(heatmaps).flip(-1)[:, list(flip_index)], 1, dims=-1)


def _mirror_rows(heatmaps, flip_index):
    """A typical mistake: the rows (y) mirrored instead of the columns (x)."""
    return torch.as_tensor(heatmaps).flip(-2)[:, list(flip_index)]


def _in_place(heatmaps, flip_index):
    """A typical mistake: the right maps, written over the caller's tensor."""
    heatmaps.copy_(heatmaps.flip(-1)[:, list(flip_index)])
    return heatmaps


def _relation(out, hm, flip_index):
    """How ``out`` relates to ``hm``, in words, if it is a mirror, swap or shift of it."""
    for my in (False, True):
        for mx in (False, True):
            for swap in (False, True):
                for shift in (0, 1, -1, 2, -2):
                    t = hm.flip(-2) if my else hm
                    t = t.flip(-1) if mx else t
                    t = t[:, list(flip_index)] if swap else t
                    t = torch.roll(t, shift, dims=-1) if shift else t
                    if t.shape == out.shape and torch.allclose(out, t):
                        parts = [p for p, on in (("mirrored in x (columns)", mx),
                                                 ("mirrored in y (rows)", my),
                                                 ("with left and right channels exchanged", swap),
                                                 (f"moved {shift:+d} px in x", shift)) if on]
                        return "the original maps " + ", ".join(parts)
    return None


@exercise("06.4", "flip test: map the mirrored heatmaps back",
          nudge="A mirror image changes two things: where each column is, and which side each "
                "joint is on. Undo both, and return a new tensor.",
          hint="heatmaps.flip(-1) mirrors x; [:, list(flip_index)] puts the left wrist's map "
               "where the right wrist's belongs (and vice versa).",
          wrong=[_no_swap, _no_mirror, _shifted, _mirror_rows, _in_place])
def _(flip_back):
    torch.manual_seed(0)
    b, j, h, w = 2, len(COCO_FLIP_INDEX), 8, 6
    hm = torch.rand(b, j, h, w)
    # The mirror image's heatmaps of a crop: x mirrored, joint k's map is that of flip_index[k].
    mirrored = hm.flip(-1)[:, list(COCO_FLIP_INDEX)]
    given = mirrored.clone()
    out = flip_back(given, COCO_FLIP_INDEX)
    out = out if isinstance(out, torch.Tensor) else torch.as_tensor(np.array(out))
    if not torch.equal(given, mirrored):
        raise Wrong("your function changed the heatmaps it was given (in place); return a new "
                    "tensor: the flip test still needs the model's output")
    if tuple(out.shape) != (b, j, h, w):
        raise Wrong(f"expected shape {(b, j, h, w)}, got {tuple(out.shape)}")
    if torch.allclose(out, hm):
        return "The flipped heatmaps land exactly on the original ones."
    said = _relation(out, hm, COCO_FLIP_INDEX)
    if said:
        raise Wrong(f"your result is {said}; it should be the original maps themselves (the "
                    "same columns, each joint in its own channel)")
    diff = (out - hm).abs()
    k = int(diff.flatten(1).amax(1).argmax())
    c = int(diff[k].flatten(1).amax(1).argmax())
    r, col = divmod(int(diff[k, c].argmax()), w)
    raise Wrong(f"your result is not the original maps: crop {k}, channel {c} "
                f"({COCO17_NAMES[c]}), row {r}, column {col} holds {float(out[k, c, r, col]):.4f},"
                f" the original {float(hm[k, c, r, col]):.4f}")


# --- 06.5 SimpleBaseline's flip shift (transfer) ----------------------------------------------


def _peak_after_flip_back(h, w, s):
    """Where the flipped-back peak lands when input x is heatmap x / s: simulated on a 1D
    Gaussian, the peak read from its log (a parabola: exact)."""
    W = w * s
    x = h * s  # the joint in input pixels
    h_mirror = (W - 1 - x) / s  # its mirror image, on the mirror image's heatmap
    xs = np.arange(w, dtype=float)
    g = np.exp(-((xs - h_mirror) ** 2) / (2 * 2.0**2))[::-1]  # the array flipped back
    i = int(np.clip(np.argmax(g), 1, w - 2))
    L = np.log(g[i - 1: i + 2])
    return i - 0.5 * (L[2] - L[0]) / (L[2] - 2 * L[1] + L[0])


def _same_place(h, w, s):
    """This notebook's convention, not SimpleBaseline's: the peak back where it was."""
    return np.asarray(h, float) + 0.0


def _one_pixel(h, w, s):
    """The guess from the shift SimpleBaseline applies: one pixel, whatever the stride."""
    return np.asarray(h, float) - 1.0


def _wrong_way(h, w, s):
    """The right amount, the wrong direction."""
    return np.asarray(h, float) + 1 - 1 / s


def _not_flipped_back(h, w, s):
    """The peak on the mirror image's own heatmap, before the array is flipped back."""
    return (w * s - 1 - s * np.asarray(h, float)) / s


@exercise("06.5", "where SimpleBaseline's flipped heatmap lands", transfer=True,
          nudge="Follow one joint: input x = s h; its mirror image is at W - 1 - x with W = w s; "
                "on that image's heatmap (the same rule, h = x / s) and then through the array "
                "flip, index i -> w - 1 - i.",
          hint="h_mirror = (w s - 1 - s h) / s; after heatmaps.flip(-1) it sits at "
               "w - 1 - h_mirror = h - 1 + 1/s. Return h - 1 + 1 / s.",
          wrong=[_same_place, _one_pixel, _wrong_way, _not_flipped_back])
def _(flipped_peak):
    rng = np.random.default_rng(5)
    for s in (4, 2, 8, 1, 3):
        w = int(rng.integers(12, 40))
        h = rng.uniform(4, w - 5, 6)
        given = h.copy()
        out = np.asarray(flipped_peak(given, w, s), float)
        unchanged("h", h, given)
        if out.shape != h.shape:
            raise Wrong(f"for an array h of shape {h.shape} return one position per element, got "
                        f"shape {out.shape}")
        truth = np.array([_peak_after_flip_back(v, w, s) for v in h])
        k = int(np.argmax(np.abs(out - truth)))
        if not abs(out[k] - truth[k]) < 1e-3:
            raise Wrong(f"stride s = {s}, heatmaps w = {w} px wide: a joint at h = {h[k]:.3f} "
                        f"comes back at {truth[k]:.3f} after the flip back (a Gaussian rendered "
                        f"on the mirror image's heatmap, flipped, its peak measured); you say "
                        f"{out[k]:.3f}, {out[k] - truth[k]:+.3f} px off")
    return ("The flipped-back peak sits 1 - 1/s heatmap pixels left of the joint: 0.75 at stride "
            "4, so SimpleBaseline's one-pixel shift to the right leaves 0.25 px (1 input pixel) "
            "the other way.")
