"""Checks for notebook 06 (COCO heatmaps): a Gaussian target, DARK decoding, OKS, the flip back."""

from __future__ import annotations

import numpy as np
import torch

from ..skeletons import COCO_FLIP_INDEX, COCO_OKS_SIGMAS
from . import Wrong, exercise

# --- 06.1 a Gaussian target -------------------------------------------------------------------


def _rounded_centre(center, size, sigma=2.0):
    """A typical mistake: the centre rounded to the nearest pixel."""
    w, h = size
    cx, cy = np.round(center[0]), np.round(center[1])
    ys, xs = np.mgrid[:h, :w]
    return np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma**2))


def _no_factor_two(center, size, sigma=2.0):
    """A typical mistake: exp(-d^2 / sigma^2), a Gaussian narrower by sqrt(2)."""
    w, h = size
    ys, xs = np.mgrid[:h, :w]
    return np.exp(-((xs - center[0]) ** 2 + (ys - center[1]) ** 2) / sigma**2)


def _swapped_axes(center, size, sigma=2.0):
    """A typical mistake: the centre's x used for rows."""
    w, h = size
    ys, xs = np.mgrid[:h, :w]
    return np.exp(-((xs - center[1]) ** 2 + (ys - center[0]) ** 2) / (2 * sigma**2))


@exercise("06.1", "Gaussian heatmap target",
          hint="ys, xs = np.mgrid[:h, :w]; np.exp(-((xs - cx)**2 + (ys - cy)**2) / (2 * sigma**2)), "
               "with (cx, cy) as given, not rounded.",
          wrong=[_rounded_centre, _no_factor_two, _swapped_axes])
def _(gaussian_heatmap):
    for center, size, sigma in (((5.3, 3.7), (12, 9), 1.5), ((2.0, 6.5), (7, 10), 2.0)):
        hm = np.asarray(gaussian_heatmap(center, size, sigma), float)
        w, h = size
        if hm.shape != (h, w):
            raise Wrong(f"size = (w, h) = {size} needs an array of shape (h, w) = {(h, w)}, "
                        f"got {hm.shape}")
        ys, xs = np.mgrid[:h, :w]
        truth = np.exp(-((xs - center[0]) ** 2 + (ys - center[1]) ** 2) / (2 * sigma**2))
        # Where is the peak? The log of a Gaussian is a quadratic: fit its centre on the rows.
        if not np.allclose(hm, truth, atol=1e-4):
            cy, cx = np.unravel_index(np.argmax(hm), hm.shape)
            d = float(np.max(np.abs(hm - truth)))
            raise Wrong(f"for centre {center} (x, y), sigma {sigma} on a {w}x{h} grid the map "
                        f"differs from exp(-d^2 / (2 sigma^2)) by up to {d:.3f} (your peak pixel: "
                        f"column {cx}, row {cy}); check the sub-pixel centre, x vs y and the 2 "
                        "in the exponent")
    return "Peak at the sub-pixel centre, with the right width."


# --- 06.2 DARK --------------------------------------------------------------------------------


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


def _wrong_sign(heatmap):
    """A typical mistake: the Newton step added instead of subtracted."""
    D = np.log(np.maximum(np.asarray(heatmap, float), 1e-10))
    y, x = np.unravel_index(np.argmax(D), D.shape)
    dx, dy = 0.5 * (D[y, x + 1] - D[y, x - 1]), 0.5 * (D[y + 1, x] - D[y - 1, x])
    dxx = D[y, x + 1] - 2 * D[y, x] + D[y, x - 1]
    dyy = D[y + 1, x] - 2 * D[y, x] + D[y - 1, x]
    return x + dx / dxx, y + dy / dyy


@exercise("06.2", "DARK decoding",
          hint="D = log(H); at the argmax (x, y): g = 0.5 * (D[y, x+1] - D[y, x-1], ...), "
               "Dxx = D[y, x+1] - 2 D[y, x] + D[y, x-1], ...; return (x, y) - inv(Hessian) @ g.",
          wrong=[_argmax_only, _quarter, _wrong_sign])
def _(dark_decode):
    rng = np.random.default_rng(0)
    w, h = 24, 32
    ys, xs = np.mgrid[:h, :w]
    worst = 0.0
    for _ in range(50):
        c = rng.uniform([4, 4], [w - 5, h - 5])
        sigma = rng.uniform(1.5, 3.0)
        hm = np.exp(-((xs - c[0]) ** 2 + (ys - c[1]) ** 2) / (2 * sigma**2))
        out = np.asarray(dark_decode(hm), float).reshape(-1)
        if out.shape != (2,):
            raise Wrong(f"dark_decode must return (x, y), got {out.tolist()}")
        err = float(np.hypot(*(out - c)))
        if err >= 0.05:
            raise Wrong(f"on a perfect Gaussian centred at ({c[0]:.3f}, {c[1]:.3f}) (x, y), "
                        f"sigma {sigma:.2f}, you decode ({out[0]:.3f}, {out[1]:.3f}): {err:.3f} px "
                        "off, DARK should be within 0.05 px")
        worst = max(worst, err)
    return f"Largest error over 50 perfect Gaussians: {worst:.4f} px."


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
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        coco.createIndex()
        dt = coco.loadRes([{"image_id": 1, "category_id": 1, "score": 1.0,
                            "keypoints": np.c_[pred, np.ones(len(pred))].reshape(-1).tolist()}])
        E = COCOeval(coco, dt, "keypoints")
        E.params.imgIds = [1]
        E._prepare()
        return float(E.computeOks(1, 1)[0, 0])


@exercise("06.3", "Object Keypoint Similarity",
          hint="k = 2 * sigmas; e = d^2 / (2 * area * k^2); mean of exp(-e) over joints with v > 0.",
          wrong=[_no_area, _k_is_sigma, _all_joints])
def _(oks):
    rng = np.random.default_rng(1)
    sigmas = np.asarray(COCO_OKS_SIGMAS)
    for area, noise in ((900.0, 2.0), (12000.0, 6.0), (40000.0, 15.0)):
        side = np.sqrt(area) * 1.2
        gt = np.c_[rng.uniform(100, 100 + side, (17, 2)), rng.choice([0, 1, 2], 17, p=[.2, .2, .6])]
        gt[gt[:, 2] == 0, :2] = 0.0  # COCO writes unlabelled joints as (0, 0, 0)
        gt[0, 2] = 2
        pred = gt[:, :2] + rng.normal(0, noise, (17, 2))
        theirs = _pycocotools_oks(pred, gt, area)
        mine = float(oks(pred, gt, area, sigmas))
        if not abs(mine - theirs) < 1e-6:
            raise Wrong(f"for a person of area {area:.0f} px² with {noise:.0f} px of noise, "
                        f"pycocotools gives OKS {theirs:.4f}, yours {mine:.4f}")
    return "Agrees with pycocotools on small, medium and large people."


# --- 06.4 flip back ---------------------------------------------------------------------------


def _no_swap(heatmaps, flip_index):
    """A typical mistake: mirrored, but left and right channels not swapped."""
    return torch.as_tensor(heatmaps).flip(-1)


def _no_mirror(heatmaps, flip_index):
    """A typical mistake: channels swapped, x axis not mirrored."""
    return torch.as_tensor(heatmaps)[:, list(flip_index)]


@exercise("06.4", "flip test: map the mirrored heatmaps back",
          hint="heatmaps.flip(-1) mirrors x; [:, list(flip_index)] puts the left wrist's map "
               "where the right wrist's belongs (and vice versa).",
          wrong=[_no_swap, _no_mirror])
def _(flip_back):
    torch.manual_seed(0)
    b, j, h, w = 2, len(COCO_FLIP_INDEX), 8, 6
    hm = torch.rand(b, j, h, w)
    # The mirror image's heatmaps of a crop: x mirrored, joint k's map is that of flip_index[k].
    mirrored = hm.flip(-1)[:, list(COCO_FLIP_INDEX)]
    out = torch.as_tensor(flip_back(mirrored.clone(), COCO_FLIP_INDEX))
    if tuple(out.shape) != (b, j, h, w):
        raise Wrong(f"expected shape {(b, j, h, w)}, got {tuple(out.shape)}")
    if torch.allclose(out, hm):
        return "The flipped heatmaps land exactly on the original ones."
    if torch.allclose(out[:, list(COCO_FLIP_INDEX)], hm):
        raise Wrong("the maps are mirrored but left and right joints are not swapped: the left "
                    "wrist's map now sits in the right wrist's channel")
    if torch.allclose(out.flip(-1), hm):
        raise Wrong("the channels are swapped but the x axis is not mirrored back")
    raise Wrong("the result is not the original heatmaps: mirror x and swap left/right channels")
