"""3D metrics against hand-computed cases: MPJPE, PA-MPJPE, 3D PCK, reprojection error."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from handpose_utils.metrics3d import (
    PCK3D_THRESHOLDS_MM,
    fraction_within,
    mpjpe,
    pa_mpjpe,
    pck3d_curve,
    procrustes_align,
    reproject_with_gt_root,
    reprojection_error,
)


def hands(n=3, seed=0):
    """(n, 21, 3) asymmetric random point sets, roughly hand-sized in mm."""
    return np.random.default_rng(seed).normal(0, 40, (n, 21, 3))


def rotation(axis, degrees):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    a = np.radians(degrees)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * k @ k  # Rodrigues


def test_mpjpe_known_offsets_units_and_mask():
    gt = hands(2)
    pred = gt + np.array([3.0, 4.0, 0.0])  # every joint exactly 5 away
    assert mpjpe(pred, gt) == pytest.approx(5.0)
    assert mpjpe(torch.tensor(pred), torch.tensor(gt)) == pytest.approx(5.0)  # tensors too
    assert mpjpe(pred / 1000, gt / 1000) == pytest.approx(0.005)  # result in the input's unit
    pred[0, 0] += [0.0, 0.0, 12.0]  # joint 0 of sample 0: (3, 4, 12) -> 13 away
    assert mpjpe(pred, gt) == pytest.approx((13 + 41 * 5) / 42)
    vis = np.ones((2, 21), bool)
    vis[0, 0] = False
    assert mpjpe(pred, gt, visible=vis) == pytest.approx(5.0)
    assert math.isnan(mpjpe(pred, gt, visible=np.zeros((2, 21), bool)))
    with pytest.raises(ValueError, match=r"\(N, J, 3\)"):
        mpjpe(pred[..., :2], gt[..., :2])


def test_pa_mpjpe_is_zero_for_a_similar_copy_and_recovers_the_transform():
    gt = hands(3)
    R = rotation([1, 2, 3], 70)
    s, t = 1.7, np.array([100.0, -20.0, 400.0])
    pred = (gt @ R) * s + t  # rotated, scaled, translated copy
    assert mpjpe(pred, gt) > 100
    assert pa_mpjpe(pred, gt) == pytest.approx(0.0, abs=1e-9)
    aligned, (scale, rot, shift) = procrustes_align(pred, gt, return_transform=True)
    assert np.allclose(aligned.numpy(), gt, atol=1e-9)
    assert np.allclose(scale.numpy(), 1 / s)  # the inverse transform
    assert np.allclose(rot.numpy(), R.T)
    assert np.allclose((scale[:, None, None] * torch.tensor(pred) @ rot + shift[:, None]).numpy(),
                       gt)


def test_pa_mpjpe_is_at_an_optimum():
    """Independent check: nudging the fitted scale, rotation or translation only adds error."""
    rng = np.random.default_rng(1)
    gt = hands(1, seed=2)
    pred = gt @ rotation([0, 1, 0], 25) * 0.8 + rng.normal(0, 8, gt.shape)
    aligned, (s, R, t) = procrustes_align(pred, gt, return_transform=True)
    best = pa_mpjpe(pred, gt)
    # the fitted error (sum of squares) is minimal; PA-MPJPE (mean distance) tracks it
    def sse(scale, rot, shift):
        return float(((scale * pred[0] @ rot + shift - gt[0]) ** 2).sum())

    s0, R0, t0 = float(s[0]), R[0].numpy(), t[0].numpy()
    base = sse(s0, R0, t0)
    assert base == pytest.approx(float(((aligned[0].numpy() - gt[0]) ** 2).sum()))
    for ds in (-0.01, 0.01):
        assert sse(s0 * (1 + ds), R0, t0) > base
    for axis in np.eye(3):
        for deg in (-0.5, 0.5):
            assert sse(s0, R0 @ rotation(axis, deg), t0) > base
        for dt in (-0.5, 0.5):
            assert sse(s0, R0, t0 + dt * axis) > base
    assert 0 < best < mpjpe(pred, gt)


def test_pa_mpjpe_matches_freihand_align_w_scale():
    """FreiHAND's eval.py alignment, with scipy, as the reference implementation."""
    scipy_linalg = pytest.importorskip("scipy.linalg")

    def align_w_scale(mtx1, mtx2):  # lmb-freiburg/freihand utils: mtx1 = gt, mtx2 = pred
        t1, t2 = mtx1.mean(0), mtx2.mean(0)
        m1, m2 = mtx1 - t1, mtx2 - t2
        s1, s2 = np.linalg.norm(m1) + 1e-8, np.linalg.norm(m2) + 1e-8
        m1, m2 = m1 / s1, m2 / s2
        R, s = scipy_linalg.orthogonal_procrustes(m1, m2)
        return (m2 @ R.T) * s * s1 + t1

    rng = np.random.default_rng(3)
    gt = hands(4, seed=4)
    pred = gt @ rotation([1, 0, 1], 40) * 1.3 + rng.normal(0, 10, gt.shape) + 5
    ours = procrustes_align(pred, gt, allow_reflection=True).numpy()
    theirs = np.stack([align_w_scale(g, p) for g, p in zip(gt, pred)])
    assert np.allclose(ours, theirs, atol=1e-6)
    # no reflection is involved here, so the rotation-only default agrees as well
    assert np.allclose(procrustes_align(pred, gt).numpy(), theirs, atol=1e-6)


def test_reflections_are_not_rotations():
    gt = hands(2, seed=5)
    mirrored = gt * np.array([-1.0, 1.0, 1.0])  # a left hand for a right one
    assert pa_mpjpe(mirrored, gt) > 5  # a rotation cannot undo a mirror image
    assert pa_mpjpe(mirrored, gt, allow_reflection=True) == pytest.approx(0.0, abs=1e-9)
    _, (_, rot, _) = procrustes_align(mirrored, gt, return_transform=True)
    assert np.allclose(torch.linalg.det(rot).numpy(), 1.0)


def test_pa_mpjpe_of_a_point_prediction_is_the_spread_around_the_centroid():
    gt = hands(2, seed=6)
    expected = np.linalg.norm(gt - gt.mean(1, keepdims=True), axis=-1).mean()
    assert pa_mpjpe(np.zeros_like(gt), gt) == pytest.approx(expected)


def test_pck3d_curve_and_auc_by_hand():
    gt = np.zeros((1, 4, 3))
    pred = gt.copy()
    pred[0, :, 2] = [5.0, 15.0, 30.0, 60.0]  # errors in mm
    t = [0, 10, 20, 30, 40, 50]
    curve, auc = pck3d_curve(pred, gt, t)
    # "<=": 30 is within 30
    assert curve.tolist() == pytest.approx([0, 0.25, 0.5, 0.75, 0.75, 0.75])
    # trapezoids of width 10: (0+.25)/2 + (.25+.5)/2 + (.5+.75)/2 + .75 + .75 = 2.625, / 5 widths
    assert auc == pytest.approx(2.625 / 5)
    # default: FreiHAND's 0-50 mm in 100 steps; the area tends to mean((50 - d)+) / 50
    curve, auc = pck3d_curve(pred, gt)
    assert len(curve) == len(PCK3D_THRESHOLDS_MM) == 100
    assert auc == pytest.approx((45 + 35 + 20 + 0) / 4 / 50, abs=0.01)


def test_fraction_within_is_the_reference_accuracy():
    gt = np.zeros((1, 4, 3))
    pred = gt.copy()
    pred[0, :, 0] = [10.0, 49.9, 50.0, 80.0]
    assert fraction_within(pred, gt) == pytest.approx(0.75)  # within 50 mm, 50 included
    assert fraction_within(pred, gt, 49.99) == pytest.approx(0.5)
    assert fraction_within(pred / 1000, gt / 1000, 0.05) == pytest.approx(0.75)  # in metres
    assert fraction_within(pred, gt, 100.0) == 1.0


def test_reprojection_error_at_the_true_root():
    K = np.array([[500.0, 0, 112], [0, 500.0, 112], [0, 0, 1]])
    gt = np.zeros((1, 21, 3))
    gt[0, :, 0] = np.linspace(-0.05, 0.05, 21)
    gt[0, :, 2] = 0.5  # all joints 0.5 m away, in a plane facing the camera
    rel = gt - gt[:, 9:10]
    assert reprojection_error(rel, gt, K) == pytest.approx(0.0, abs=1e-9)
    # a prediction off by 1 cm sideways (except the root) lands fx * 0.01 / z = 10 px off
    pred = rel.copy()
    pred[0, :, 0] += 0.01
    pred[0, 9, 0] -= 0.01
    assert reprojection_error(pred, gt, K) == pytest.approx(10.0 * 20 / 21)
    # the whole prediction shifted: the root is put back at the true root, so no error at all
    assert reprojection_error(rel + 0.3, gt, K) == pytest.approx(0.0, abs=1e-9)
    # units cancel: millimetres give the same pixels, and K per sample works
    assert reprojection_error(pred * 1000, gt * 1000, K[None]) == pytest.approx(10.0 * 20 / 21)
    uv = reproject_with_gt_root(rel, gt, K)
    assert uv.shape == (1, 21, 2)
    assert uv[0, 9].tolist() == pytest.approx([112 + 500 * -0.005 / 0.5, 112.0])  # true root
