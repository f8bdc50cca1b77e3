"""Evaluation protocols match what they claim: PCK counts ``<=`` (a perfect prediction has AUC 1),
Zimmermann & Brox's 3D protocol (palm root, all 21 joints for PosePrior), the paper's crop
clamps, the PCK normaliser (annotation box vs keypoint box), FreiHAND's reflections, and
pycocotools' OKS for a person without labelled joints."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from handpose_utils import hand3d as h3
from handpose_utils import regression3d as R
from handpose_utils.coco_eval import object_keypoint_similarity
from handpose_utils.hand3d.crops import (
    boxes_from_keypoints,
    boxes_from_mask,
    crop_images,
    to_crop,
)
from handpose_utils.metrics import KeypointMeter, annotation_box_size, bbox_size, pck, pck_curve
from handpose_utils.metrics3d import fraction_within, pck3d_curve

# --------------------------------------------------------------------------------------------
# PCK counts a joint at exactly the threshold; a perfect prediction has AUC 1


def test_perfect_prediction_has_auc_exactly_one():
    gt = torch.rand(5, 21, 2) * 200
    _, auc = pck_curve(gt, gt, np.linspace(0, 30, 31))
    assert auc == 1.0
    gt3 = torch.rand(5, 21, 3) * 100
    assert pck3d_curve(gt3, gt3)[1] == 1.0
    meter = KeypointMeter(norm=1.0, to_points=lambda o, t, e: (o, t))
    meter.update(gt, gt, {})
    assert meter.compute()["auc"] == 1.0


def test_a_joint_exactly_at_the_threshold_counts():
    gt = torch.zeros(1, 4, 2)
    pred = gt.clone()
    pred[0, :, 0] = torch.tensor([3.0, 5.0, 10.0, 20.0])
    assert pck(pred, gt, 0.25, norm=40) == pytest.approx(3 / 4)  # 10 px of a 10 px radius
    curve, _ = pck_curve(pred, gt, [0.0, 5.0, 10.0, 20.0])
    assert curve.tolist() == pytest.approx([0.0, 0.5, 0.75, 1.0])
    gt3 = np.zeros((1, 2, 3))
    pred3 = gt3.copy()
    pred3[0, :, 2] = [50.0, 50.5]
    assert fraction_within(pred3, gt3, 50.0) == pytest.approx(0.5)


# --------------------------------------------------------------------------------------------
# Zimmermann & Brox's 3D protocol: the palm point is the root; PosePrior scores all 21 joints


def _flat_hand() -> torch.Tensor:
    """(1, 21, 3) mm: wrist at the origin, middle MCP (joint 9) 80 mm up, other joints spread."""
    xyz = torch.zeros(1, 21, 3, dtype=torch.float64)
    xyz[0, 1:, 0] = torch.linspace(-40, 40, 20)
    xyz[0, 1:, 1] = torch.arange(20.0) % 4 * 20 + 60
    xyz[0, 9] = torch.tensor([0.0, 80.0, 0.0])
    return xyz


def test_eval_3d_roots_at_the_palm_point_by_default():
    gt = _flat_hand()
    pred = gt.clone()
    pred[0, 0, 1] -= 20.0  # only the wrist is wrong, by 20 mm
    palm = h3.eval_3d(pred, gt)
    # The palm point, (wrist + middle MCP) / 2, moves 10 mm: every joint is 10 mm off from it.
    assert palm["epe_mean"] == pytest.approx(10.0)
    assert palm["root"] == "palm" and "palm root" in palm["protocol"]
    wrist = h3.eval_3d(pred, gt, root="wrist")
    # Rooted at the wrist, the 20 other joints are 20 mm off and the wrist itself 0.
    assert wrist["epe_mean"] == pytest.approx(20 * 20 / 21)
    assert "wrist root" in wrist["protocol"]
    # Root-relative means both skeletons: a camera-frame ground truth gives the same numbers.
    moved = h3.eval_3d(pred + 500.0, gt - torch.tensor([10.0, 20.0, 700.0]))
    assert moved["epe_mean"] == pytest.approx(10.0)
    assert h3.evaluate.root_point(gt, "palm")[0].tolist() == pytest.approx([0.0, 40.0, 0.0])
    with pytest.raises(ValueError, match="root"):
        h3.eval_3d(pred, gt, root="knuckle")


def test_all_21_joints_count_unless_a_mask_is_given():
    gt = _flat_hand().expand(2, 21, 3).clone()
    pred = gt.clone()
    pred[:, 4, 0] += 42.0  # the thumb tip, 42 mm off in both samples...
    vis = torch.ones(2, 21, dtype=torch.bool)
    vis[:, 4] = False  # ... and occluded
    every = h3.eval_3d(pred, gt)
    assert every["count"] == 42 and every["epe_mean"] == pytest.approx(42.0 / 21)
    assert "all 21 joints" in every["protocol"]
    seen = h3.eval_3d(pred, gt, vis)
    assert seen["count"] == 40 and seen["epe_mean"] == pytest.approx(0.0)
    assert "visible joints" in seen["protocol"]


def test_poseprior_meter_uses_the_papers_protocol():
    """PosePrior (eval3d.py): palm root and all 21 joints, visible or not."""
    gt = _flat_hand().float() / 10  # bone-length units
    pred = gt.clone()
    pred[0, 4, 0] += 4.2  # an occluded joint, 4.2 bone lengths off
    vis = torch.ones(1, 21)
    vis[0, 4] = 0
    meter = h3.evaluate.PosePriorMeter()
    meter.update({"xyz": pred}, {"xyz": gt, "scale": torch.tensor([0.01]), "visible": vis})
    out = meter.compute()
    assert out["epe_mm"] == pytest.approx(42.0 / 21, rel=1e-5)
    prot = meter.protocol()
    assert prot["protocol"] == "Z&B protocol: palm root, all 21 joints"
    assert prot["count"] == 21


# --------------------------------------------------------------------------------------------
# Crop boxes: the paper's clamps (ground truth: side 50-500 px, then scale 1-10; segmentation:
# scale 0.25-5), at crop 256 on 320 px images


def _hand_uv(extent: float, center=(160.0, 160.0)) -> torch.Tensor:
    """(1, 21, 2) keypoints spanning ``extent`` px in x and y, the middle MCP in the middle."""
    t = torch.linspace(-0.5, 0.5, 21) * extent
    uv = torch.stack([t, t.flip(0)], dim=-1) + torch.tensor(center)
    uv[9] = torch.tensor(center)
    return uv[None]


@pytest.mark.parametrize("crop_size", [256, 128])
def test_a_240px_hands_ground_truth_crop_holds_all_its_keypoints(crop_size):
    uv = _hand_uv(240.0)
    box = boxes_from_keypoints(uv, torch.ones(1, 21, dtype=torch.bool), crop_size, (320, 320))
    inside = to_crop(uv, box, crop_size)
    assert (inside >= -0.5).all() and (inside <= crop_size - 0.5).all()
    # The crop really shows the hand: a bright square under the keypoints appears in it.
    image = torch.zeros(1, 1, 320, 320)
    image[..., 40:281, 40:281] = 1.0
    crop = crop_images(image, box, crop_size)
    assert crop[0, 0, 1:-1, 1:-1].min() > 0.99


def test_ground_truth_boxes_are_at_least_50px():
    tiny = _hand_uv(10.0)
    box = boxes_from_keypoints(tiny, torch.ones(1, 21, dtype=torch.bool), 256, (320, 320))
    assert float(box[0, 2]) == pytest.approx(256 / 50)  # not 10x: the reader's 50 px floor
    big = _hand_uv(300.0)
    box = boxes_from_keypoints(big, torch.ones(1, 21, dtype=torch.bool), 256, (320, 320))
    assert float(box[0, 2]) == pytest.approx(1.0)  # never zoomed out: scale >= 1


def test_a_240px_hands_segmentation_crop_holds_the_whole_hand():
    """The network's clamp (scale 0.25-5) lets the 1.25x box of a 240 px mask (300 px) through;
    the crop is not cut to 256 px."""
    mask = torch.zeros(1, 320, 320, dtype=torch.bool)
    mask[0, 40:280, 40:280] = True  # a 240 px hand
    box = boxes_from_mask(mask, 256)[0]
    assert float(256 / box[2]) == pytest.approx(240 * 1.25)
    corners = torch.tensor([[[40.0, 40.0], [279.0, 279.0]]])
    inside = to_crop(corners, box[None], 256)
    assert (inside >= -0.5).all() and (inside <= 255.5).all()
    tiny = torch.zeros(1, 320, 320, dtype=torch.bool)
    tiny[0, 150:160, 150:160] = True
    assert float(boxes_from_mask(tiny, 256)[0, 2]) == pytest.approx(5.0)  # at most 5x
    pipe = h3.Hand3DPipeline(h3.HandSegNet(0.0625), h3.PoseNet(0.0625), h3.PosePrior(map_size=2))
    assert pipe.side_range == h3.crops.SEG_SIDE_RANGE


# --------------------------------------------------------------------------------------------
# The PCK normaliser: MMPose's annotation box, the tight keypoint box, or the image


def _identity(outputs, targets, extras):
    return outputs, targets


def test_pck_with_an_annotation_box_by_hand():
    gt = torch.zeros(1, 3, 2)
    gt[0, :, 0] = torch.tensor([10.0, 50.0, 90.0])  # keypoints span 80 px
    pred = gt.clone()
    pred[..., 1] += 18.0  # every joint 18 px off
    boxes = torch.tensor([[0.0, 0.0, 100.0, 50.0]])  # annotation box 100 x 50 -> 100
    assert annotation_box_size(boxes).tolist() == [100.0]
    assert bbox_size(gt).tolist() == [80.0]
    # PCK@0.2: 20 px of the annotation box, 16 px of the keypoint box
    assert pck(pred, gt, 0.2, norm=annotation_box_size(boxes)) == 1.0
    assert pck(pred, gt, 0.2, norm=bbox_size(gt)) == 0.0
    ann = KeypointMeter(alphas=(0.2,), norm="bbox", to_points=_identity)
    ann.update(pred, gt, {"bbox": boxes})
    assert ann.compute()["pck"] == 1.0
    assert ann.log_items[0][1] == "PCK@0.2 (annotation bbox)"
    kp = KeypointMeter(alphas=(0.2,), norm="keypoint_box", to_points=_identity)
    kp.update(pred, gt, {})
    assert kp.compute()["pck"] == 0.0
    assert kp.log_items[0][1] == "PCK@0.2 (keypoint box)"
    assert KeypointMeter().log_items[0][1] == "PCK@0.05 (image size)"
    with pytest.raises(KeyError, match="keypoint_box"):
        KeypointMeter(norm="bbox", to_points=_identity).update(pred, gt, {})
    with pytest.raises(ValueError, match="norm"):
        KeypointMeter(norm="box")


def test_pck_normalisers_on_the_real_onehand10k_samples(realdata):
    ann = json.loads((realdata / "onehand10k" / "annotations.json").read_text())
    kps = np.array([np.reshape(a["keypoints"], (21, 3)) for a in ann["annotations"]], float)
    gt, vis = torch.tensor(kps[..., :2]), torch.tensor(kps[..., 2] > 0)
    boxes = torch.tensor([a["bbox"] for a in ann["annotations"]], dtype=torch.float64)
    ann_side = annotation_box_size(boxes)
    kp_side = bbox_size(gt, vis)
    assert ann_side.tolist() == [max(a["bbox"][2:]) for a in ann["annotations"]]
    ratio = ann_side / kp_side
    assert (ratio > 1.05).all() and (ratio < 1.3).all()  # the annotation box is 8-27 % larger
    # errors of 0.18 x the annotation box: all correct at PCK@0.2 with MMPose's normaliser,
    # mostly wrong with the keypoint box
    pred = gt.clone()
    pred[..., 0] += 0.18 * ann_side[:, None]
    assert pck(pred, gt, 0.2, norm=ann_side, visible=vis) == 1.0
    assert pck(pred, gt, 0.2, norm=kp_side, visible=vis) < 0.5


# --------------------------------------------------------------------------------------------
# FreiHAND allows reflections in its Procrustes alignment; the course does not by default


def test_pose3d_metrics_offer_freihands_reflections():
    rng = np.random.default_rng(0)
    gt = torch.tensor(rng.normal(0, 40, (3, 21, 3)))
    mirror = gt * torch.tensor([-1.0, 1.0, 1.0], dtype=gt.dtype)
    course = R.pose3d_metrics(mirror, gt)
    freihand = R.pose3d_metrics(mirror, gt, allow_reflection=True)
    assert course["pa_mpjpe"] > 5
    assert freihand["pa_mpjpe"] == pytest.approx(0.0, abs=1e-9)
    assert freihand["pa_pck3d_auc"] == pytest.approx(1.0, abs=0.01)
    assert course["mpjpe"] == freihand["mpjpe"]  # the unaligned error does not change


# --------------------------------------------------------------------------------------------
# OKS of a person without labelled joints: pycocotools' distance to the enlarged box


def test_oks_without_labelled_joints_matches_pycocotools(tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from handpose_utils.coco_eval import load_coco_gt
    from handpose_utils.skeletons import COCO_OKS_SIGMAS

    bbox = [100.0, 50.0, 40.0, 80.0]
    gt_json = {
        "images": [{"id": 1, "width": 400, "height": 300, "file_name": "1.jpg"}],
        "annotations": [{"id": 7, "image_id": 1, "category_id": 1, "keypoints": [0] * 51,
                         "num_keypoints": 0, "bbox": bbox, "area": 2400.0, "iscrowd": 0}],
        "categories": [{"id": 1, "name": "person", "keypoints": [str(i) for i in range(17)]}],
    }
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt_json))
    rng = np.random.default_rng(1)
    # joints inside the enlarged box (x 60-220, y -30-290) and outside it
    pred = np.c_[rng.uniform(0, 300, 17), rng.uniform(-100, 350, 17)]
    coco = load_coco_gt(path)
    assert isinstance(coco, COCO)
    dt = coco.loadRes([{"image_id": 1, "category_id": 1, "score": 1.0,
                        "keypoints": np.c_[pred, np.ones(17)].reshape(-1).tolist()}])
    ev = COCOeval(coco, dt, iouType="keypoints")
    ev.params.imgIds = [1]
    ev.evaluate()
    theirs = float(ev.ious[(1, 1)][0, 0])
    ours = object_keypoint_similarity(pred, np.zeros((17, 3)), 2400.0, COCO_OKS_SIGMAS, bbox=bbox)
    assert 0 < ours < 1
    assert ours == pytest.approx(theirs, abs=1e-12)
    with pytest.raises(ValueError, match="bbox"):
        object_keypoint_similarity(pred, np.zeros((17, 3)), 2400.0)


def test_pck_figures_name_their_protocol(tmp_path):
    """The 3D curves carry the protocol in the title; the pipeline view roots at the palm."""
    import matplotlib.pyplot as plt

    from handpose_utils import make_rhd
    from handpose_utils.datasets.rhd import load_rhd
    from handpose_utils.plots import hand3d as figs

    gt = _flat_hand().expand(3, 21, 3).clone()
    pred = gt + torch.randn(3, 21, 3, dtype=gt.dtype)
    ax = figs.plot_eval_pck({"a": h3.eval_3d(pred, gt), "b": h3.eval_3d(pred * 1.1, gt)},
                            unit="mm", title="3D PCK")
    assert ax.axes[0].get_title() == "3D PCK\nZ&B protocol: palm root, all 21 joints"
    plt.close("all")
    root = make_rhd(tmp_path / "rhd", n_train=1, n_eval=1, seed=0, image_size=48,
                    progress=False)
    ds = h3.RHDSamples(load_rhd(root, "evaluation"))
    pipe = h3.Hand3DPipeline(h3.HandSegNet(0.0625), h3.PoseNet(0.0625), h3.PosePrior(map_size=2),
                             crop_size=16)
    fig = figs.show_pipeline(pipe, ds, 0, device="cpu")
    assert "palm root" in fig.axes[3].get_title()
    plt.close("all")
