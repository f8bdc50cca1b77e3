"""Evaluation as in the paper: 2D and 3D keypoint errors, PCK curves and AUC, segmentation IoU.

hand3d's ``EvalUtil`` (``utils/general.py``), re-implemented: errors are collected **per
keypoint**; the reported mean / median EPE, PCK curve (errors ``<= t``) and AUC (trapezoidal,
divided by the threshold range) are averages over keypoints. 2D: pixels of the **original**
image, visible keypoints, thresholds 0-30 px; 3D: root-relative mm, the prediction scaled by the
**ground-truth** bone length, thresholds 0-50 mm; the paper's "AUC 20-50 mm" starts at the 9th
threshold, 21.05 mm (``[8:]`` in hand3d's ``eval_full.py``).

**Zimmermann & Brox's 3D protocol** (``Z&B protocol``, the default of :func:`eval_3d`), as their
``eval3d.py`` and ``eval_full.py`` run it: the root is the **palm point**, ``(wrist + middle MCP)
/ 2``; PosePrior alone (from ground-truth score maps) scores **all 21 joints**, the full pipeline
the **visible** ones. Our networks are trained wrist-rooted, hand3d's palm-rooted, so both
skeletons are re-rooted at their own palm point here, and joint 0 stays the wrist (hand3d's
reader replaces it by the palm point, a joint whose error is then about zero). ``root="wrist"``
gives the course's earlier protocol. Every result carries its ``protocol`` label: print it.

The engine meters (:class:`SegmentationMeter`, :class:`PoseNetMeter`, :class:`PosePriorMeter`)
report the same after every validation pass; ``protocol()`` gives a meter's whole result.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..skeletons import MIDDLE_MCP, ROOT_JOINT
from .crops import decode_scoremaps, from_crop

THRESHOLDS_2D_PX = np.linspace(0, 30, 20)
THRESHOLDS_3D_MM = np.linspace(0, 50, 20)
AUC_3D_FROM = 8  # THRESHOLDS_3D_MM[8:] = 21.05 ... 50 mm, the paper's "20-50 mm"
ROOTS = ("palm", "wrist")


def _np(x) -> np.ndarray:
    return x.detach().cpu().double().numpy() if torch.is_tensor(x) else np.asarray(x, np.float64)


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    return float(((y[1:] + y[:-1]) / 2 * np.diff(x)).sum())  # np.trapz is gone in NumPy 2.4


def root_point(xyz, root: str = "palm") -> torch.Tensor:
    """``(N, 3)`` root of ``(N, 21, 3)`` HAND21 joints: ``"palm"``, the palm point
    ``(wrist + middle MCP) / 2`` (Zimmermann & Brox), or ``"wrist"`` (joint 0)."""
    if root not in ROOTS:
        raise ValueError(f"root must be one of {ROOTS}, got {root!r}")
    xyz = torch.as_tensor(xyz)
    if root == "wrist":
        return xyz[:, ROOT_JOINT]  # the wrist (RHD's own order: 0, middle MCP 12)
    return (xyz[:, ROOT_JOINT] + xyz[:, MIDDLE_MCP]) / 2


def relative_to_root(xyz, root: str = "palm") -> torch.Tensor:
    """``(N, 21, 3)`` joints minus their own :func:`root_point`."""
    xyz = torch.as_tensor(xyz)
    return xyz - root_point(xyz, root)[:, None]


def protocol_label(root: str = "palm", all_joints: bool = True) -> str:
    """The words to print next to a 3D figure: ``"Z&B protocol: palm root, all 21 joints"``,
    ``"wrist root, visible joints"``..."""
    joints = "all 21 joints" if all_joints else "visible joints"
    return f"{'Z&B protocol: ' if root == 'palm' else ''}{root} root, {joints}"


def keypoint_protocol(pred, gt, visible=None, thresholds=THRESHOLDS_2D_PX) -> dict:
    """hand3d's ``EvalUtil.get_measures`` for ``(N, J, D)`` predictions: ``epe_mean``,
    ``epe_median``, ``auc`` and ``pck`` (the curve at ``thresholds``), each averaged over
    keypoints (those never visible left out, as hand3d does), ``thresholds``,
    ``per_keypoint_mean`` (J,) and ``count`` (visible keypoints scored)."""
    pred, gt = _np(pred), _np(gt)
    if pred.shape != gt.shape or pred.ndim != 3:
        raise ValueError(f"pred and gt must both be (N, J, D), got {pred.shape} and {gt.shape}")
    vis = np.ones(gt.shape[:2], bool) if visible is None else _np(visible) > 0.5
    t = np.asarray(thresholds, dtype=np.float64)
    dist = np.linalg.norm(pred - gt, axis=-1)
    means, medians, aucs, curves, per_kp = [], [], [], [], np.full(gt.shape[1], np.nan)
    for j in range(gt.shape[1]):
        d = dist[vis[:, j], j]
        if d.size == 0:
            continue
        per_kp[j] = d.mean()
        means.append(d.mean())
        medians.append(np.median(d))
        curve = (d[None, :] <= t[:, None]).mean(1)
        curves.append(curve)
        aucs.append(_trapezoid(curve, t) / (t[-1] - t[0]))
    if not means:
        nan = math.nan
        return {"epe_mean": nan, "epe_median": nan, "auc": nan, "pck": np.full(len(t), nan),
                "thresholds": t, "per_keypoint_mean": per_kp, "count": 0}
    return {"epe_mean": float(np.mean(means)), "epe_median": float(np.mean(medians)),
            "auc": float(np.mean(aucs)), "pck": np.mean(curves, 0), "thresholds": t,
            "per_keypoint_mean": per_kp, "count": int(vis.sum())}


def eval_2d(pred_uv, gt_uv, visible) -> dict:
    """2D protocol in original-image pixels: EPE mean/median and AUC over 0-30 px, visible
    keypoints (``protocol``: ``"visible joints, image px"``)."""
    return {**keypoint_protocol(pred_uv, gt_uv, visible, THRESHOLDS_2D_PX),
            "protocol": "visible joints, image px"}


def eval_3d(pred_mm, gt_mm, visible=None, root: str = "palm") -> dict:
    """3D protocol in millimetres: EPE mean/median, ``auc`` over 0-50 mm and ``auc_20_50`` over
    the paper's 20-50 mm. ``pred_mm`` and ``gt_mm`` are ``(N, 21, 3)`` joints in any frame that
    differs from the camera's by a translation: both are re-rooted at their own ``root`` point,
    ``"palm"`` (Zimmermann & Brox) or ``"wrist"``. ``visible=None`` scores all 21 joints (the
    paper's PosePrior evaluation), a mask the visible ones (its full pipeline). The result also
    has ``root`` and ``protocol``, the label to print with the numbers."""
    pred = relative_to_root(torch.as_tensor(_np(pred_mm)), root)  # checks root
    gt = relative_to_root(torch.as_tensor(_np(gt_mm)), root)
    out = keypoint_protocol(pred, gt, visible, THRESHOLDS_3D_MM)
    part = keypoint_protocol(pred, gt, visible, out["thresholds"][AUC_3D_FROM:])
    return {**out, "auc_20_50": part["auc"], "root": root,
            "protocol": protocol_label(root, visible is None)}


def segmentation_iou(pred_mask, gt_mask) -> dict:
    """Hand-class IoU of ``(N, H, W)`` boolean masks: ``iou`` pooled over all pixels of all
    images (sum of intersections / sum of unions) and ``iou_per_image`` (N,) (NaN where both
    masks are empty)."""
    p, g = torch.as_tensor(pred_mask).bool(), torch.as_tensor(gt_mask).bool()
    inter = (p & g).flatten(1).sum(1).double()
    union = (p | g).flatten(1).sum(1).double()
    per = torch.where(union > 0, inter / union.clamp_min(1), torch.full_like(union, math.nan))
    total = float(union.sum())
    return {"iou": float(inter.sum()) / total if total else math.nan,
            "iou_per_image": per.numpy()}


# ---- Meters for the engine (reset / update(outputs, targets, extras) / compute) ------------------
class SegmentationMeter:
    """HandSegNet validation: pooled hand IoU and pixel accuracy."""

    log_items = [("iou", "IoU", "{:.3f}")]

    def __init__(self):
        self.reset()

    def reset(self):
        self.inter = self.union = self.correct = self.total = 0

    @torch.no_grad()
    def update(self, outputs, targets, extras=None):
        pred = outputs.argmax(1) == 1
        gt = targets == 1
        self.inter += int((pred & gt).sum())
        self.union += int((pred | gt).sum())
        self.correct += int((pred == gt).sum())
        self.total += gt.numel()

    def compute(self) -> dict:
        return {"iou": self.inter / self.union if self.union else math.nan,
                "pixel_acc": self.correct / max(self.total, 1)}


class _KeypointCollector:
    """Keeps a validation pass's ``pred``, ``gt`` and ``visible``; ``arrays()`` concatenates them."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.pred, self.gt, self.vis = [], [], []

    def arrays(self) -> dict:
        return {"pred": torch.cat(self.pred), "gt": torch.cat(self.gt),
                "visible": torch.cat(self.vis)}


class PoseNetMeter(_KeypointCollector):
    """PoseNet validation on ground-truth crops: the last stage's score maps decoded to
    original-image pixels (``arrays()``); EPE mean/median and AUC 0-30 px, visible keypoints."""

    log_items = [("epe_px", "EPE", "{:.2f}px"), ("auc_2d", "AUC", "{:.3f}")]

    def __init__(self, crop_size: int):
        self.crop_size = crop_size
        super().__init__()

    @torch.no_grad()
    def update(self, outputs, targets, extras):
        uv_crop, _ = decode_scoremaps(outputs[:, -1], self.crop_size)
        self.pred.append(from_crop(uv_crop, extras["boxes"].float(), self.crop_size).cpu())
        self.gt.append(extras["keypoints"].cpu())
        self.vis.append(extras["visible"].cpu())

    def protocol(self) -> dict:
        """The whole :func:`eval_2d` result (curve included) of the accumulated predictions."""
        a = self.arrays()
        return eval_2d(a["pred"], a["gt"], a["visible"])

    def compute(self) -> dict:
        m = self.protocol()
        return {"epe_px": m["epe_mean"], "epe_median_px": m["epe_median"], "auc_2d": m["auc"]}


class PosePriorMeter(_KeypointCollector):
    """PosePrior validation on ground-truth score maps: 3D EPE mean/median and AUC 20-50 mm (the
    prediction times the ground-truth bone length; ``arrays()`` in the training frame,
    wrist-relative mm), under Zimmermann & Brox's protocol for PosePrior: palm root, **all 21
    joints** (an occluded joint's 3D position still counts)."""

    log_items = [("epe_mm", "EPE(palm root, 21 joints)", "{:.1f}mm"),
                 ("auc_20_50", "AUC20-50", "{:.3f}")]

    @torch.no_grad()
    def update(self, outputs, targets, extras=None):
        s = targets["scale"][:, None, None] * 1000.0
        self.pred.append((outputs["xyz"] * s).cpu())
        self.gt.append((targets["xyz"] * s).cpu())
        self.vis.append(targets["visible"].cpu())

    def protocol(self) -> dict:
        """The whole :func:`eval_3d` result (curve included): palm root, all 21 joints."""
        a = self.arrays()
        return eval_3d(a["pred"], a["gt"], None, root="palm")

    def compute(self) -> dict:
        m = self.protocol()
        return {"epe_mm": m["epe_mean"], "epe_median_mm": m["epe_median"],
                "auc_20_50": m["auc_20_50"]}
