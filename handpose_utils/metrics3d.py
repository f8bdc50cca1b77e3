"""3D pose metrics: MPJPE (notebooks 04 and 05), Procrustes alignment and PA-MPJPE, 3D PCK and
its AUC, reprojection error (notebook 05's evaluation).

``(N, J, 3)`` inputs in one unit, results in that unit, computed in float64: millimetre errors of
points a metre away lose digits in float32, and Procrustes takes an SVD. The course reports
root-relative millimetres; FreiHAND's evaluation compares absolute camera-frame xyz.
"""

from __future__ import annotations

import numpy as np
import torch

from .metrics import _masked_mean, _tensor, pck, pck_curve

PCK3D_THRESHOLDS_MM = np.linspace(0.0, 50.0, 100)  # FreiHAND's eval: 0-50 mm in 100 steps


def _points3d(pred, gt) -> tuple[torch.Tensor, torch.Tensor]:
    pred, gt = _tensor(pred, torch.float64), _tensor(gt, torch.float64)
    if pred.shape != gt.shape or pred.dim() != 3 or pred.shape[-1] != 3:
        raise ValueError(
            f"pred and gt must both be (N, J, 3); got {tuple(pred.shape)} and {tuple(gt.shape)}")
    return pred, gt


def mpjpe(pred, gt, visible=None) -> float:
    """Mean per-joint position error: the mean Euclidean distance between predicted and true
    joints over all (visible) joints of all samples, in the input's unit.

    The course passes root-relative points (both roots at the origin), which forgives where the
    hand is; absolute camera-frame points, as in FreiHAND's official unaligned "keypoint error",
    add the root's own position, which one image cannot pin down (notebook 05)."""
    pred, gt = _points3d(pred, gt)
    return _masked_mean(torch.linalg.vector_norm(pred - gt, dim=-1), visible)


def procrustes_align(pred, gt, allow_reflection: bool = False,
                     return_transform: bool = False):
    """Align each predicted skeleton to its ground truth with the best **similarity transform**
    (scale ``s``, rotation ``R``, translation ``t``), minimising ``sum_j ||s R p_j + t - g_j||^2``.

    Closed form (Umeyama 1991; FreiHAND's ``align_w_scale`` is the same solution): with centred
    points ``P = pred - mean(pred)``, ``G = gt - mean(gt)`` as ``(J, 3)`` matrices (row vectors),
    ``P^T G = U S V^T`` (SVD), ``D = diag(1, 1, sign det(U V^T))``::

        R = U D V^T,   s = trace(S D) / ||P||_F^2,   aligned = s P R + mean(gt)

    ``D`` keeps ``R`` a rotation. ``allow_reflection=True`` drops it (``D = I``), as FreiHAND's
    ``eval.py`` does (``scipy.linalg.orthogonal_procrustes``): a mirrored (left-hand) prediction
    of a right hand then aligns perfectly. A degenerate prediction (all joints at one point) gets
    ``s = 0``: every joint lands on the ground-truth centroid (FreiHAND's zero baseline).

    Returns the aligned ``(N, J, 3)`` float64 tensor, and with ``return_transform=True`` also
    ``(s (N,), R (N, 3, 3), t (N, 3))`` such that ``aligned = s * pred @ R + t``.
    """
    pred, gt = _points3d(pred, gt)
    mu_p, mu_g = pred.mean(1, keepdim=True), gt.mean(1, keepdim=True)
    p, g = pred - mu_p, gt - mu_g
    u, sv, vh = torch.linalg.svd(p.transpose(1, 2) @ g)
    d = torch.ones_like(sv)
    if not allow_reflection:
        d[:, -1] = torch.where(torch.linalg.det(u @ vh) < 0, -1.0, 1.0)  # det is +-1
    rot = u @ torch.diag_embed(d) @ vh
    var = (p**2).sum((1, 2))
    degenerate = var <= 1e-20 * (g**2).sum((1, 2)).clamp(min=1e-300)
    scale = torch.where(degenerate, torch.zeros_like(var), (sv * d).sum(1) / var.clamp(min=1e-300))
    aligned = scale[:, None, None] * (p @ rot) + mu_g
    if return_transform:
        t = mu_g[:, 0] - scale[:, None] * (mu_p @ rot)[:, 0]
        return aligned, (scale, rot, t)
    return aligned


def pa_mpjpe(pred, gt, visible=None, allow_reflection: bool = False) -> float:
    """Procrustes-aligned MPJPE: :func:`mpjpe` after :func:`procrustes_align` (scale, rotation and
    translation fitted per sample on all joints). It scores the **shape** of the pose only:
    global size, orientation and position errors are forgiven. In the input's unit.

    FreiHAND's "aligned keypoint error" also accepts a reflection (``allow_reflection=True``).
    The two agree unless the best fit is a mirror image: a left hand predicted for a right one
    scores 0 with reflections and tens of millimetres without."""
    return mpjpe(procrustes_align(pred, gt, allow_reflection), gt, visible)


def pck3d_curve(pred, gt, thresholds=PCK3D_THRESHOLDS_MM, visible=None):
    """3D PCK: the fraction of joints whose 3D error is at most each threshold, and the
    normalised area under that curve, as :func:`pck_curve`: ``(curve (T,), auc)``.

    ``thresholds`` are in the input's unit; the default is FreiHAND's 0-50 **mm** in 100 steps.
    Pass Procrustes-aligned predictions for the aligned AUC. FreiHAND averages its curve per
    joint first; with every joint scored, as by default, the pooled curve is the same.
    """
    pred, gt = _points3d(pred, gt)
    return pck_curve(pred, gt, thresholds, norm=1.0, visible=visible)


def fraction_within(pred, gt, threshold: float = 50.0, visible=None) -> float:
    """The fraction of joints whose 3D error is at most ``threshold`` (50 mm by default): one
    point of the 3D PCK curve, printed as "accuracy" by some projects. 5 cm is about a finger's
    length, so it saturates early: prefer MPJPE and the AUC."""
    pred, gt = _points3d(pred, gt)
    return pck(pred, gt, threshold, norm=1.0, visible=visible)


def reproject_with_gt_root(pred_rel, gt_xyz, K, root: int = 9) -> torch.Tensor:
    """Pixels ``(N, J, 2)`` of a root-relative prediction placed in the camera frame with its root
    joint at the ground-truth root position, projected through ``K`` (``(3, 3)`` or
    ``(N, 3, 3)``): ``uv = K (p - p_root + g_root) / z``, depths clamped in front of the camera.
    One image fixes neither the hand's distance nor its size (notebook 05), so borrowing the true
    root's position is the standard way to draw a root-relative prediction on the image."""
    pred, gt = _points3d(pred_rel, gt_xyz)
    k = _tensor(K, torch.float64)
    if k.dim() == 2:
        k = k.expand(pred.shape[0], 3, 3)
    if k.shape != (pred.shape[0], 3, 3):
        raise ValueError(f"K must be (3, 3) or ({pred.shape[0]}, 3, 3), got {tuple(k.shape)}")
    placed = pred - pred[:, root : root + 1] + gt[:, root : root + 1]
    uvw = placed @ k.transpose(1, 2)
    z = uvw[..., 2:].clamp(min=1e-6 * float(gt[..., 2].abs().max().clamp(min=1e-12)))
    return uvw[..., :2] / z


def reprojection_error(pred_rel, gt_xyz, K, root: int = 9, visible=None) -> float:
    """Mean 2D error in **pixels** between the ground-truth keypoints ``project(gt_xyz, K)`` and
    the root-relative prediction placed at the ground-truth root (:func:`reproject_with_gt_root`).
    The root joint's own error is 0 by construction; the rest measures how far the predicted
    relative pose lands from the true one on the image."""
    pred, gt = _points3d(pred_rel, gt_xyz)
    uv_pred = reproject_with_gt_root(pred, gt, K, root)
    uv_gt = reproject_with_gt_root(gt, gt, K, root)  # the ground truth, placed where it is
    return _masked_mean(torch.linalg.vector_norm(uv_pred - uv_gt, dim=-1), visible)
