"""Keypoint metrics: PCK, PCK curves and AUC, end-point error (EPE), an epoch accumulator. The
3D metrics (MPJPE, PA-MPJPE, 3D PCK, reprojection error) are in :mod:`.metrics3d`.

* ``pred`` and ``gt`` are ``(N, J, D)`` points (pixels, or e.g. millimetres), arrays or tensors;
  results are floats or CPU tensors. ``visible``, an optional ``(N, J)`` mask, leaves joints out.
* A joint is "correct" when its distance is **at most** the threshold (``<=``), as in FreiHAND's
  and hand3d's evaluation: a perfect prediction has an AUC of exactly 1 (MMPose counts ``<``, so
  its PCK at 0 is 0; otherwise the two differ only for exact ties).
* **Name the PCK normaliser with every PCK figure** (:data:`PCK_NORMALISERS`): the image size,
  the **annotation bounding box** (MMPose's, stored with e.g. OneHand10K's annotations) or the
  tight **keypoint box** around the labelled joints (all FreiHAND offers; 8-27 % smaller than the
  annotation box on real OneHand10K samples, so stricter).
* **Pooled averages** over every visible joint of every sample; ``per_joint=True`` and
  :func:`per_joint_epe` give MMPose's "per joint, then averaged" (the same with all visible).
* **Undefined is NaN**: a figure over no scored joint (none visible, or every normaliser zero) is
  NaN, PCK, its curve and AUC, EPE alike; never 0, which would read as "every joint wrong".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch


def _tensor(x, dtype=torch.float32) -> torch.Tensor:
    """A detached CPU tensor of ``dtype`` from an array or tensor."""
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", dtype)
    return torch.as_tensor(np.asarray(x), dtype=dtype)


def _mask(visible, shape) -> torch.Tensor:
    if visible is None:
        return torch.ones(shape, dtype=torch.bool)
    vis = _tensor(visible, torch.bool)
    if vis.shape != shape:
        raise ValueError(f"visible has shape {tuple(vis.shape)}, expected {tuple(shape)}")
    return vis


def joint_distances(pred, gt) -> torch.Tensor:
    """``(N, J)`` Euclidean distances between predicted and ground-truth joints."""
    pred, gt = _tensor(pred), _tensor(gt)
    if pred.shape != gt.shape or pred.dim() != 3:
        raise ValueError(
            f"pred and gt must both be (N, J, D); got {tuple(pred.shape)} and {tuple(gt.shape)}")
    return torch.linalg.vector_norm(pred - gt, dim=-1)


def bbox_size(gt, visible=None) -> torch.Tensor:
    """``(N,)`` longer side of each sample's tight **keypoint box** around its visible joints (x, y
    only; 0 with fewer than two distinct ones). Smaller than MMPose's annotation box
    (:func:`annotation_box_size`): use it where a dataset has no boxes, and say "keypoint box"."""
    gt = _tensor(gt)[..., :2]
    mask = _mask(visible, gt.shape[:2])[..., None]
    big = torch.finfo(gt.dtype).max
    lo = torch.where(mask, gt, big).amin(1)
    hi = torch.where(mask, gt, -big).amax(1)
    side = (hi - lo).amax(-1)
    return torch.where(mask.any(1)[:, 0], side, torch.zeros_like(side))


def annotation_box_size(boxes) -> torch.Tensor:
    """``max(w, h)`` of each annotation box, ``boxes`` ``(N, 4)`` COCO ``[x, y, w, h]``: MMPose's
    PCK normaliser (``norm_item="bbox"``) for datasets with boxes (OneHand10K, COCO)."""
    b = _tensor(boxes)
    if b.dim() != 2 or b.shape[-1] != 4:
        raise ValueError(f"boxes must be (N, 4) [x, y, w, h] annotation boxes, got shape "
                         f"{tuple(b.shape)}")
    return b[:, 2:].amax(-1)


# The normalisers KeypointMeter knows, and the words to print next to a PCK figure.
PCK_NORMALISERS = {"image": "image size", "bbox": "annotation bbox", "keypoint_box": "keypoint box"}


def _correct(pred, gt, thresholds, norm, visible):
    """``(T, N, J)`` correctness for each threshold and the ``(N, J)`` scoring mask."""
    d = joint_distances(pred, gt)
    n, norm = d.shape[0], _tensor(norm)
    norm = norm.expand(n) if norm.dim() == 0 else norm  # a scalar: the same for every sample
    if norm.shape != (n,):
        raise ValueError(f"norm must be a scalar or have shape ({n},), got {tuple(norm.shape)}")
    mask = _mask(visible, d.shape) & (norm[:, None] > 0)  # 0 (one visible joint): unscorable
    thr = _tensor(thresholds).reshape(-1, 1, 1) * norm[:, None]  # (T, N, 1)
    return (d[None] <= thr) & mask, mask


def pck(pred, gt, alpha: float, norm=1.0, visible=None, per_joint: bool = False):
    """Percentage of correct keypoints: the fraction of visible joints with
    ``||pred - gt|| <= alpha * norm``. ``norm`` sets what ``alpha`` is relative to:

    * a number, the same length for every sample: ``pck(pred_px, gt_px, 0.05, norm=224)``
      accepts 11.2 px on a 224 image; ``norm=1`` makes ``alpha`` a threshold in px or mm.
    * an ``(N,)`` array, one length per sample: :func:`annotation_box_size` of the dataset's
      boxes (MMPose's hand PCK) or, without boxes, :func:`bbox_size`, the tighter keypoint box.
      Samples with ``norm <= 0`` are skipped.

    Say which normaliser a figure used ("PCK@0.2 (annotation bbox)"): the same predictions
    score differently under each. Returns the pooled fraction as a float (NaN if no joint is
    visible), or with ``per_joint=True`` a ``(J,)`` tensor (NaN for a joint never visible).
    """
    correct, mask = _correct(pred, gt, [alpha], norm, visible)
    if per_joint:
        return correct[0].sum(0) / mask.sum(0)  # 0/0 -> NaN for never-visible joints
    total = int(mask.sum())
    return float(correct.sum()) / total if total else math.nan


def pck_curve(pred, gt, thresholds: Sequence[float], norm=1.0, visible=None):
    """PCK at each threshold, and the normalised area under that curve: ``(curve (T,), auc)``.

    ``thresholds`` are in units of ``norm`` (see :func:`pck`); with ``norm=1`` they are pixels,
    e.g. ``np.linspace(0, 30, 31)``, the 0-30 px range of hand papers. The AUC is the trapezoidal
    area under PCK over ``[thresholds[0], thresholds[-1]]`` divided by that range: in [0, 1], and
    1 when every joint is within the smallest threshold (NaN with no joint to score).
    """
    t = _tensor(thresholds).flatten()
    if t.numel() < 2 or not bool((t[1:] > t[:-1]).all()):
        raise ValueError("thresholds must be increasing, with at least two values")
    correct, mask = _correct(pred, gt, t, norm, visible)
    curve = correct.sum((1, 2)).float() / mask.sum()  # 0/0: NaN, undefined
    auc = float(torch.trapezoid(curve, t) / (t[-1] - t[0]))
    return curve, auc


def epe(pred, gt, visible=None) -> float:
    """Mean end-point error: the mean Euclidean distance over all visible joints, in the points'
    unit (px for 2D, the 3D unit for ``(N, J, 3)``, where it is the MPJPE). NaN if none visible."""
    return _masked_mean(joint_distances(pred, gt), visible)


def _masked_mean(d: torch.Tensor, visible) -> float:
    mask = _mask(visible, d.shape)
    total = int(mask.sum())
    return float(d[mask].sum()) / total if total else math.nan


def per_joint_epe(pred, gt, visible=None) -> torch.Tensor:
    """``(J,)`` mean error of each joint over the samples where it is visible (NaN if never)."""
    d = joint_distances(pred, gt)
    mask = _mask(visible, d.shape)
    return (d * mask).sum(0) / mask.sum(0)


def per_sample_epe(pred, gt, visible=None) -> torch.Tensor:
    """``(N,)`` mean error of each sample over its visible joints (NaN if none). Sort it to find
    the worst predictions: ``per_sample_epe(p, g).argsort(descending=True)[:16]``."""
    d = joint_distances(pred, gt)
    mask = _mask(visible, d.shape)
    return (d * mask).sum(1) / mask.sum(1)


# Accumulating predictions over an epoch -----------------------------------------------------------

def normalized_to_pixels(coords: torch.Tensor, size) -> torch.Tensor:
    """Normalised ``[0, 1]`` coordinates to pixels, ``x = u * W - 0.5``; ``size`` is a number or
    per-sample ``(N, 2)`` ``(W, H)``. The inverse of ``data.pixels_to_normalized``."""
    size = torch.as_tensor(size, dtype=coords.dtype, device=coords.device)
    if size.dim() == 2:  # (N, 2) -> (N, 1, 2), broadcast over joints
        size = size[:, None, :]
    return coords * size - 0.5


def _default_points(outputs, targets, extras):
    """2D regression outputs and targets, ``(B, 2J)`` normalised, as ``(B, J, 2)`` pixels of the
    original images (or normalised when the batch has no ``orig_size``)."""
    b = outputs.shape[0]
    pred, gt = outputs.reshape(b, -1, 2), targets.reshape(b, -1, 2)
    if extras and "orig_size" in extras:
        size = extras["orig_size"]
        return normalized_to_pixels(pred, size), normalized_to_pixels(gt, size)
    return pred, gt


class KeypointMeter:
    """Accumulates predictions over an epoch and computes keypoint metrics at the end (the
    engine's meter protocol: ``reset``, ``update(outputs, targets, extras)``, ``compute()``).

    ``to_points(outputs, targets, extras) -> (pred, gt)`` turns a batch into ``(B, J, D)`` points
    in the unit to report; the default reads 2D regression outputs as pixels of the **original**
    image (``extras["orig_size"]``), so EPE is comparable with papers. ``norm`` is the PCK
    normaliser (:func:`pck`): the longer side of the original image (``"image"``), of each
    sample's annotation box ``extras["bbox"]`` (``"bbox"``, MMPose's hand PCK), of the keypoint
    box (``"keypoint_box"``, :func:`bbox_size`), or a number (``1.0``: absolute ``alphas``).

    ``compute()`` returns ``pck@<alpha>`` for each alpha, ``pck`` (the first alpha), ``auc``
    (over ``auc_thresholds`` in the points' unit, default 0-30 px) and ``epe``. ``norm_label``
    names the normaliser, and ``log_items`` prints it: ``PCK@0.05 (image size)=72.3%``.
    """

    def __init__(self, alphas: Sequence[float] = (0.05, 0.1, 0.2), norm="image",
                 auc_thresholds: Sequence[float] | None = tuple(np.linspace(0, 30, 31)),
                 to_points: Callable | None = None, unit: str = "px"):
        if isinstance(norm, str) and norm not in PCK_NORMALISERS:
            raise ValueError(f"KeypointMeter norm must be one of {sorted(PCK_NORMALISERS)} or a "
                             f"number, got {norm!r}")
        self.alphas, self.norm, self.unit = tuple(alphas), norm, unit
        self.auc_thresholds = auc_thresholds
        self.to_points = to_points or _default_points
        self.norm_label = (PCK_NORMALISERS[norm] if isinstance(norm, str) else
                           f"{float(norm):g} {unit}")
        self.log_items = (
            [("pck", f"PCK@{self.alphas[0]:g} ({self.norm_label})", "{:.1%}")] if self.alphas
            else [("epe", "EPE", "{:.2f}" + unit)]
        )
        self.reset()

    def reset(self) -> None:
        self._batches, self._index = [], []  # (pred, gt, visible, norm) per batch

    @torch.no_grad()
    def update(self, outputs, targets, extras: dict | None = None) -> None:
        extras = extras or {}
        pred, gt = self.to_points(outputs, targets, extras)
        pred, gt = _tensor(pred), _tensor(gt)
        vis = _mask(extras.get("visible"), gt.shape[:2])
        if self.norm == "image":
            if "orig_size" not in extras:
                raise KeyError(
                    "KeypointMeter(norm='image') needs extras['orig_size'] (the (W, H) of each "
                    "original image); pass norm=<input size> or norm='bbox' instead")
            norm = _tensor(extras["orig_size"]).amax(-1)
        elif self.norm == "bbox":
            if "bbox" not in extras:
                raise KeyError(
                    "KeypointMeter(norm='bbox') normalises by the annotation bounding box and "
                    "needs extras['bbox'] ((B, 4) [x, y, w, h] per sample, in the points' "
                    "pixels); this batch has none. For a dataset without boxes use "
                    "norm='keypoint_box' (the tight box around the joints) or norm='image'")
            norm = annotation_box_size(extras["bbox"])
        elif self.norm == "keypoint_box":
            norm = bbox_size(gt, vis)
        else:
            norm = torch.full((gt.shape[0],), float(self.norm))
        self._batches.append((pred, gt, vis, norm))
        if "index" in extras:
            self._index.append(_tensor(extras["index"]).long())

    def arrays(self) -> dict:
        """Everything accumulated: ``pred``, ``gt``, ``visible``, ``norm`` and (when the batches
        carried one) ``index``, for per-joint and worst-case analyses after an evaluation."""
        if not self._batches:
            raise RuntimeError("KeypointMeter is empty: call update() before compute()")
        out = dict(zip(("pred", "gt", "visible", "norm"), map(torch.cat, zip(*self._batches))))
        if self._index:
            out["index"] = torch.cat(self._index)
        return out

    def compute(self) -> dict:
        a = self.arrays()
        pred, gt, vis, norm = a["pred"], a["gt"], a["visible"], a["norm"]
        out = {}
        for i, alpha in enumerate(self.alphas):
            out[f"pck@{alpha:g}"] = pck(pred, gt, alpha, norm, vis)
            if i == 0:
                out["pck"] = out[f"pck@{alpha:g}"]
        if self.auc_thresholds is not None:
            out["auc"] = pck_curve(pred, gt, self.auc_thresholds, 1.0, vis)[1]
        out["epe"] = epe(pred, gt, vis)
        return out
