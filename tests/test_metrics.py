"""Metrics against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from handpose_utils.metrics import (
    KeypointMeter,
    bbox_size,
    epe,
    normalized_to_pixels,
    pck,
    pck_curve,
    per_joint_epe,
    per_sample_epe,
)


def offsets(dist_per_joint, n=1):
    """gt at (3, 4), pred shifted by d along x: distance exactly d per joint."""
    d = torch.as_tensor(dist_per_joint, dtype=torch.float32)
    gt = torch.tensor([3.0, 4.0]).expand(n, len(d), 2).clone()
    pred = gt.clone()
    pred[..., 0] += d
    return pred, gt


def test_pck_inclusive_threshold_and_scalar_norm():
    pred, gt = offsets([3.0, 5.0, 10.0, 20.0])
    # "<=": a joint exactly at the threshold (0.25 * 40 = 10 px) is correct
    assert pck(pred, gt, 0.25, norm=40) == pytest.approx(3 / 4)
    # the reference's 224-px convention: alpha 0.05 -> 11.2 px
    assert pck(pred, gt, 0.05, norm=224) == pytest.approx(3 / 4)
    assert pck(pred, gt, 5.0) == pytest.approx(2 / 4)  # norm=1: alpha in pixels
    assert pck(pred.numpy(), gt.numpy(), 0.1, norm=224) == 1.0  # numpy too; 22.4 px


def test_pck_visibility_mask_and_per_joint():
    pred, gt = offsets([1.0, 50.0, 1.0], n=2)
    vis = np.array([[1, 0, 1], [1, 1, 0]], bool)
    # visible joints: (1, 1) in sample 0, (1, 50) in sample 1 -> 3 correct of 4
    assert pck(pred, gt, 10.0, visible=vis) == pytest.approx(3 / 4)
    per_joint = pck(pred, gt, 10.0, visible=vis, per_joint=True)
    assert per_joint[0] == 1.0 and per_joint[1] == 0.0 and per_joint[2] == 1.0
    none = np.zeros((2, 3), bool)
    assert math.isnan(pck(pred, gt, 10.0, visible=none))
    assert torch.isnan(pck(pred, gt, 10.0, visible=none, per_joint=True)).all()


def test_pck_per_sample_norm_and_bbox():
    gt = torch.tensor([[[0.0, 0.0], [100.0, 40.0]],   # box 100 x 40 -> 100
                       [[0.0, 0.0], [10.0, 20.0]]])   # box 10 x 20  -> 20
    assert bbox_size(gt).tolist() == [100.0, 20.0]
    pred = gt + torch.tensor([5.0, 0.0])  # every joint 5 px off
    # alpha 0.2: 20 px for the big hand (correct), 4 px for the small one (wrong)
    assert pck(pred, gt, 0.2, norm=bbox_size(gt)) == pytest.approx(0.5)
    assert pck(pred, gt, 0.2, norm=torch.tensor([100.0, 30.0])) == pytest.approx(1.0)
    # the box only spans visible joints; one visible joint -> size 0 -> sample not scored
    vis = torch.tensor([[True, True], [True, False]])
    assert bbox_size(gt, vis).tolist() == [100.0, 0.0]
    assert pck(pred, gt, 0.2, norm=bbox_size(gt, vis), visible=vis) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        pck(pred, gt, 0.2, norm=torch.ones(3))


def test_pck_curve_auc_of_a_step():
    pred, gt = offsets([10.0] * 4, n=3)  # every error is exactly 10 px
    t = np.linspace(0, 30, 31)
    curve, auc = pck_curve(pred, gt, t)
    # "<=": 0 below 10 px, 1 from 10 px on
    assert curve[:10].sum() == 0 and (curve[10:] == 1).all()
    # trapezoid: a ramp from 9 to 10 (area 0.5) plus 20 px at 1, over a 30 px range
    assert auc == pytest.approx(20.5 / 30)
    # thresholds in units of norm: the same curve with norm 100 and t / 100
    curve2, auc2 = pck_curve(pred, gt, t / 100, norm=100)
    assert torch.equal(curve, curve2) and auc2 == pytest.approx(auc)
    with pytest.raises(ValueError):
        pck_curve(pred, gt, [5.0])


def test_epe_family_with_masks():
    pred, gt = offsets([1.0, 2.0, 3.0], n=2)
    pred[1] = gt[1] + 3 * (pred[1] - gt[1])  # sample 1: 3, 6, 9 px
    vis = torch.tensor([[1, 1, 0], [0, 1, 1]], dtype=torch.bool)
    assert epe(pred, gt) == pytest.approx((1 + 2 + 3 + 3 + 6 + 9) / 6)
    assert epe(pred, gt, vis) == pytest.approx((1 + 2 + 6 + 9) / 4)
    assert per_joint_epe(pred, gt, vis).tolist() == pytest.approx([1.0, 4.0, 9.0])
    assert per_sample_epe(pred, gt, vis).tolist() == pytest.approx([1.5, 7.5])
    vis[:, 0] = False
    assert math.isnan(per_joint_epe(pred, gt, vis)[0])
    # 3D points (MPJPE): a 3-4-12 offset has length 13
    p3 = torch.zeros(1, 2, 3)
    g3 = torch.tensor([[[3.0, 4.0, 12.0], [0.0, 0.0, 0.0]]])
    assert epe(p3, g3) == pytest.approx(6.5)
    with pytest.raises(ValueError):
        epe(torch.zeros(1, 2, 2), torch.zeros(1, 3, 2))


def test_keypoint_meter_accumulates_batches_in_original_pixels():
    """Normalised outputs, two batches, original images of 448 px: errors come out in 448-px
    pixels and the 'image' normaliser is 448."""
    meter = KeypointMeter(alphas=(0.05, 0.1))
    rng = np.random.default_rng(0)
    all_pred, all_gt = [], []
    for _ in range(2):
        gt = torch.as_tensor(rng.uniform(0.2, 0.8, (3, 21, 2)), dtype=torch.float32)
        off = torch.zeros_like(gt)
        off[..., 0] = 16 / 448  # 16 px in the original image
        off[:, :5, 0] = 40 / 448  # 40 px for the first 5 joints
        pred = gt + off
        extras = {"orig_size": torch.full((3, 2), 448.0), "visible": torch.ones(3, 21, dtype=bool),
                  "index": torch.arange(3)}
        meter.update(pred.flatten(1), gt.flatten(1), extras)
        all_pred.append(normalized_to_pixels(pred, 448))
        all_gt.append(normalized_to_pixels(gt, 448))
    out = meter.compute()
    assert out["epe"] == pytest.approx((16 * 16 + 40 * 5) / 21, rel=1e-4)
    # 0.05 * 448 = 22.4 px: the 16 px joints pass, the 40 px ones fail
    assert out["pck"] == out["pck@0.05"] == pytest.approx(16 / 21)
    assert out["pck@0.1"] == pytest.approx(1.0)  # 44.8 px
    _, auc = pck_curve(torch.cat(all_pred), torch.cat(all_gt), np.linspace(0, 30, 31))
    assert out["auc"] == pytest.approx(auc)
    assert meter.arrays()["pred"].shape == (6, 21, 2) and len(meter.arrays()["index"]) == 6
    meter.reset()
    with pytest.raises(RuntimeError):
        meter.compute()
    with pytest.raises(KeyError, match="orig_size"):
        meter.update(torch.zeros(1, 42), torch.zeros(1, 42), {})
    assert meter.log_items[0][1] == "PCK@0.05 (image size)"


def test_undefined_is_nan_for_every_figure():
    """No visible joint: nothing to score. PCK, EPE, the PCK curve, its AUC and the meter's
    figures are all NaN; an AUC of 0 would read as "every joint wrong"."""
    pred, gt = torch.rand(3, 21, 2) * 50, torch.rand(3, 21, 2) * 50
    hidden = torch.zeros(3, 21, dtype=torch.bool)
    curve, auc = pck_curve(pred, gt, [0, 10, 20], visible=hidden)
    assert torch.isnan(curve).all() and math.isnan(auc)
    assert math.isnan(pck(pred, gt, 0.1, 100.0, hidden)) and math.isnan(epe(pred, gt, hidden))
    meter = KeypointMeter(norm=1.0, to_points=lambda o, t, e: (o, t))
    meter.update(pred, gt, {"visible": hidden})
    assert all(math.isnan(v) for v in meter.compute().values())
