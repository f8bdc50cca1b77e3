"""hand3d: canonical frame, crops and score maps, networks, losses, metrics, per-stage training
and checkpoints, the pipeline. (canonical, nets and losses are generated from notebook 07.)"""

import dataclasses
import math

import numpy as np
import pytest
import torch

from handpose_utils import hand3d as h3
from handpose_utils import make_rhd
from handpose_utils.datasets.rhd import load_rhd
from handpose_utils.hand3d.canonical import (
    axis_angle_to_matrix,
    from_canonical,
    matrix_to_axis_angle,
    to_canonical,
)
from handpose_utils.hand3d.crops import (
    boxes_from_keypoints,
    boxes_from_mask,
    crop_images,
    decode_scoremaps,
    encode_scoremaps,
    from_crop,
    single_object,
    to_crop,
)
from handpose_utils.synthetic.hand_model import (
    forward_kinematics,
    random_rotation,
    sample_pose,
    sample_shape,
)


def _hands(n=6, seed=0):
    """Right hands from the kinematic model and their mirror images (left hands)."""
    rng = np.random.default_rng(seed)
    xyz = []
    for _ in range(n):
        local = forward_kinematics(sample_shape(rng), sample_pose(rng)[0], "right")
        xyz.append(local @ random_rotation(rng).T + np.array([0.0, 0.0, 0.5]))
    right = torch.tensor(np.array(xyz), dtype=torch.float32)
    left = right * torch.tensor([-1.0, 1.0, 1.0])
    return right, left


@pytest.fixture(scope="module")
def tiny_rhd(tmp_path_factory):
    root = make_rhd(tmp_path_factory.mktemp("rhd3d") / "synthetic_rhd", n_train=8, n_eval=4,
                    seed=2, image_size=48, progress=False)
    return load_rhd(root), load_rhd(root, "evaluation")


def test_canonical_round_trip_and_frame():
    right, left = _hands()
    for xyz, is_right in ((right, True), (left, False)):
        side = torch.full((len(xyz),), is_right)
        enc = to_canonical(xyz, side)
        back = from_canonical(enc["canonical"], enc["rotation"], side)
        torch.testing.assert_close(back, enc["xyz"], atol=1e-5, rtol=0)
        torch.testing.assert_close(back * enc["scale"][:, None, None] + xyz[:, :1], xyz,
                                   atol=1e-5, rtol=0)
        R = enc["rotation"]
        torch.testing.assert_close(R @ R.transpose(1, 2), torch.eye(3).expand_as(R), atol=1e-5,
                                   rtol=0)
        torch.testing.assert_close(torch.linalg.det(R), torch.ones(len(R)), atol=1e-5, rtol=0)
        c = enc["canonical"]
        assert c[:, 0].abs().max() < 1e-5  # wrist at the origin
        assert c[:, 9, [0, 2]].abs().max() < 1e-5 and (c[:, 9, 1] > 0).all()  # middle MCP on +y
        assert c[:, 17, 2].abs().max() < 1e-5  # little-finger MCP in the x-y plane
        torch.testing.assert_close(torch.linalg.vector_norm(c[:, 10] - c[:, 9], dim=-1),
                                   torch.ones(len(c)), atol=1e-5, rtol=0)  # unit bone
    # A left hand is a mirrored right hand: after the flip both have the same canonical pose.
    enc_r = to_canonical(right, torch.ones(len(right), dtype=torch.bool))
    enc_l = to_canonical(left, torch.zeros(len(left), dtype=torch.bool))
    torch.testing.assert_close(enc_r["canonical"], enc_l["canonical"], atol=1e-5, rtol=0)
    # The viewpoint is what differs between hands: canonical poses vary much less.
    spread = {k: enc_r[k].std(0).norm(dim=-1).mean() for k in ("xyz", "canonical")}
    assert spread["canonical"] < 0.5 * spread["xyz"]


def test_axis_angle():
    aa = torch.tensor([[0.0, 0.0, math.pi / 2], [0.3, -1.2, 0.4]])
    R = axis_angle_to_matrix(aa)
    torch.testing.assert_close(R[0] @ torch.tensor([1.0, 0, 0]), torch.tensor([0.0, 1, 0]),
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(matrix_to_axis_angle(R), aa, atol=1e-4, rtol=0)
    torch.testing.assert_close(axis_angle_to_matrix(torch.zeros(3)), torch.eye(3))


def test_crop_maps_pixels_and_keypoints_together():
    img = torch.zeros(1, 1, 40, 50)
    img[0, 0, 12, 31] = 1.0  # a bright pixel at (u, v) = (31, 12)
    box = torch.tensor([[30.0, 15.0, 2.0]])  # centre (30, 15), 2 crop px per image px
    crop = crop_images(img, box, 16)
    uv_c = to_crop(torch.tensor([[[31.0, 12.0]]]), box, 16)
    assert torch.equal(uv_c, torch.tensor([[[9.5, 1.5]]]))
    # Bilinear sampling: the brightest crop pixels surround the keypoint's crop position.
    v, u = divmod(int(crop[0, 0].argmax()), 16)
    assert abs(u - 9.5) <= 0.5 and abs(v - 1.5) <= 0.5
    torch.testing.assert_close(from_crop(uv_c, box, 16), torch.tensor([[[31.0, 12.0]]]))


def test_scoremap_codec_round_trip():
    uv = torch.tensor([[[10.0, 20.0], [40.3, 5.7], [63.0, 63.0], [30.0, 30.0]]])
    vis = torch.tensor([[True, True, True, False]])
    maps = encode_scoremaps(uv, vis, crop_size=64, map_size=8, sigma=4.0)
    assert maps.shape == (1, 4, 8, 8) and maps[0, 3].abs().max() == 0
    back, conf = decode_scoremaps(maps, 64)
    # log-parabola refinement is exact for Gaussians, also in border cells
    torch.testing.assert_close(back[0, :3], uv[0, :3], atol=1e-2, rtol=0)
    assert (conf[0, :3] > 0.4).all()  # the peak cell value
    coarse, _ = decode_scoremaps(maps, 64, refine=False)  # the paper's precision: cell centres
    assert torch.equal(coarse[0, :2], torch.tensor([[11.5, 19.5], [43.5, 3.5]]))


def test_boxes_from_keypoints_and_clamp():
    uv = torch.zeros(2, 21, 2)
    uv[0] = torch.tensor([100.0, 150.0]) + torch.randn(21, 2) * 15
    uv[1] = torch.tensor([160.0, 160.0]) + torch.randn(21, 2) * 0.5  # a tiny hand
    vis = torch.ones(2, 21, dtype=torch.bool)
    boxes = boxes_from_keypoints(uv, vis, crop_size=256, image_size=(320, 320))
    torch.testing.assert_close(boxes[:, :2], uv[:, 9])  # centred on the middle MCP
    half = 128 / boxes[0, 2]
    assert ((uv[0] - boxes[0, :2]).abs().amax() <= half + 1e-3)  # every keypoint inside
    assert boxes[1, 2] == pytest.approx(256 / 50)  # side clamped at the reader's 50 px
    assert (boxes[:, 2] >= 1.0).all()  # the paper's scale >= 1 at 256/320
    none = boxes_from_keypoints(uv, torch.zeros_like(vis), 256, (320, 320))
    torch.testing.assert_close(none[:, :2], torch.full((2, 2), 159.5))


def test_segmentation_boxes_use_the_hand_blob():
    mask = torch.zeros(1, 60, 80, dtype=torch.bool)
    mask[0, 10:30, 20:40] = True  # the hand
    mask[0, 50:52, 70:72] = True  # a small false positive far away
    score = mask.float() * 0.6
    score[0, 15, 25] = 0.99
    blob = single_object(mask, score)
    assert blob.sum() == 400 and not blob[0, 50:, 70:].any()
    box = boxes_from_mask(blob, crop_size=32, margin=1.0)[0]
    torch.testing.assert_close(box[:2], torch.tensor([29.5, 19.5]))
    assert box[2] == pytest.approx(32 / 20)
    logits = torch.stack([torch.zeros(60, 80), torch.where(mask[0], 3.0, -3.0)])[None]
    logits[0, 1, 15, 25] = 6.0
    boxes, prob, hand = h3.crops.boxes_from_segmentation(logits, 32, margin=1.0)
    torch.testing.assert_close(boxes, box[None])  # channel 1 (hand), not the background


def test_network_shapes():
    x = torch.randn(2, 3, 64, 64)
    seg = h3.HandSegNet(width=0.0625)
    assert seg(x).shape == (2, 2, 64, 64)
    assert isinstance(seg.head[-1], torch.nn.Conv2d)  # linear logits, no ReLU after them
    pose = h3.PoseNet(width=0.0625, stages=3)
    maps = pose(x)
    assert maps.shape == (2, 3, 21, 8, 8)
    assert maps.min() < 0  # linear output: not clipped at zero
    prior = h3.PosePrior("proposed", map_size=8).eval()
    out = prior(maps[:, -1], torch.tensor([0, 1]))
    assert out["xyz"].shape == (2, 21, 3) and out["rotation"].shape == (2, 3, 3)
    torch.testing.assert_close(torch.linalg.det(out["rotation"]), torch.ones(2), atol=1e-4,
                               rtol=0)
    torch.testing.assert_close(out["xyz"], from_canonical(out["canonical"], out["rotation"],
                                                          torch.tensor([False, True])))
    # The hand side is an input: the same maps give another pose for the other side.
    other = prior({"scoremaps": maps[:, -1], "hand_side": torch.tensor([1, 0])})
    assert not torch.allclose(other["canonical"], out["canonical"])
    direct = h3.PosePrior("direct", map_size=8)(maps[:, -1], torch.tensor([0, 1]))
    assert set(direct) == {"xyz"}
    with pytest.raises(ValueError, match="hand side"):
        prior(maps[:, -1])


def test_losses_prefer_the_truth():
    target = {"scoremaps": torch.rand(2, 21, 8, 8), "visible": torch.ones(2, 21)}
    perfect = target["scoremaps"][:, None].repeat(1, 3, 1, 1, 1)
    assert h3.train.posenet_loss(perfect, target) < 1e-3
    noisy = perfect + 0.3 * torch.randn_like(perfect)
    assert h3.train.posenet_loss(noisy, target) > 0.5
    target["visible"][:, :] = 0  # nothing visible: nothing to learn
    assert h3.train.posenet_loss(noisy, target) < 1e-3
    logits = torch.zeros(1, 2, 4, 4)
    y = torch.ones(1, 4, 4, dtype=torch.long)
    assert h3.train.segmentation_loss(logits, y) == pytest.approx(math.log(2), abs=1e-5)


def test_poseprior_loss_per_variant():
    t = to_canonical(torch.randn(3, 21, 3), torch.tensor([True, False, True]))
    exact = {"xyz": t["xyz"], "canonical": t["canonical"], "rotation": t["rotation"]}
    assert h3.losses.poseprior_loss(exact, t) < 1e-10
    off = {**exact, "rotation": t["rotation"] + 0.5}  # only the viewpoint is wrong
    assert h3.losses.poseprior_loss(off, t) == pytest.approx(0.25)
    assert h3.losses.poseprior_loss({"xyz": t["xyz"] + 1.0}, t) == pytest.approx(1.0)
    assert h3.train.poseprior_loss is h3.losses.poseprior_loss  # the engine uses the same one


def test_eval_protocol():
    gt = torch.zeros(4, 21, 2)
    pred = gt.clone()
    pred[:, :, 0] = torch.arange(4.0)[:, None] * 10  # errors 0, 10, 20, 30 px for every joint
    vis = torch.ones(4, 21, dtype=torch.bool)
    vis[3, :] = False  # the 30 px sample is invisible: not scored
    m = h3.eval_2d(pred, gt, vis)
    assert m["epe_mean"] == pytest.approx(10.0) and m["epe_median"] == pytest.approx(10.0)
    assert m["count"] == 63 and m["pck"][-1] == 1.0 and m["pck"][0] == pytest.approx(1 / 3)
    assert m["auc"] == pytest.approx(1 - 10 / 30, abs=0.03)
    gt3 = torch.zeros(4, 21, 3)
    pred3 = gt3.clone()
    moved = [j for j in range(21) if j not in (0, 9)]  # the palm point (joints 0, 9) stays put
    pred3[:, moved, 0] = torch.arange(4.0)[:, None] * 20  # 0, 20, 40, 60 mm for 19 joints
    m3 = h3.eval_3d(pred3, gt3)
    assert m3["epe_mean"] == pytest.approx(30.0 * 19 / 21)
    # From 21 mm on, PCK of the 19 is 0.5 (below 40 mm) then 0.75, of the other 2 it is 1.
    assert (0.5 * 19 + 2) / 21 < m3["auc_20_50"] < (0.75 * 19 + 2) / 21
    assert m3["auc"] < m3["auc_20_50"]
    iou = h3.segmentation_iou(torch.tensor([[[1, 1, 0, 0]]]), torch.tensor([[[0, 1, 1, 0]]]))
    assert iou["iou"] == pytest.approx(1 / 3)


def test_config_like_the_reference():
    ref = {"ID": "test_handseg", "n_iter": 20000, "n_prt": 100, "input_h": 320, "input_w": 320,
           "input_ch": 3, "n_output": 10, "n_batch": 8, "n_save": 1000, "n_history": 50,
           "LR": 1e-5, "random_crop": True, "training": True}
    cfg = h3.Hand3DConfig.from_dict(ref)
    assert cfg.ID == "test_handseg" and cfg.stage == "handsegnet" and cfg.epochs == 400
    with pytest.raises(KeyError, match="n_epochs"):
        h3.Hand3DConfig.from_dict({"n_epochs": 3})
    with pytest.raises(ValueError, match="stage"):
        h3.Hand3DConfig(stage="posprior")


@pytest.mark.parametrize("stage", h3.STAGES)
def test_each_stage_trains_saves_and_loads(stage, tiny_rhd, tmp_path):
    train, val = tiny_rhd
    cfg = h3.default_config(stage, ID=f"t_{stage}", n_iter=2, n_history=1, n_batch=2,
                            width=0.0625, input_h=32, input_w=32, crop_size=16)
    model, history = h3.train_stage(cfg, train, val, runs=tmp_path, device="cpu",
                                    num_workers=0, progress=False, live_plot=False, log=None)
    assert len(history) == 2 and math.isfinite(history[-1]["train_loss"])
    key = {"handsegnet": "val_iou", "posenet": "val_epe_px", "poseprior": "val_epe_mm"}[stage]
    assert key in history[-1]
    assert (h3.run_dir(cfg, tmp_path) / "best.pth").is_file()
    if stage == "poseprior":  # per-image predictions, for paired comparisons of two variants
        arrays = h3.evaluate_stage(model, cfg, val, device="cpu", num_workers=0,
                                   progress=False)["arrays"]
        assert arrays["pred"].shape == arrays["gt"].shape == (len(val), 21, 3)
    loaded, config, hist = h3.load_stage(h3.run_dir(cfg, tmp_path), device="cpu")
    assert config == cfg and len(hist) == 2
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    # training=False loads instead of training; another architecture under the ID is refused.
    again, _ = h3.train_stage(dataclasses.replace(cfg, training=False), train, val,
                              runs=tmp_path, device="cpu", log=None)
    assert type(again) is type(model)
    with pytest.raises(ValueError, match="width"):
        h3.train_stage(dataclasses.replace(cfg, width=0.125), train, val,
                       runs=tmp_path, device="cpu", num_workers=0, progress=False,
                       live_plot=False, log=None)


def test_pipeline_end_to_end(tiny_rhd):
    _, val = tiny_rhd
    pipe = h3.Hand3DPipeline(h3.HandSegNet(0.0625), h3.PoseNet(0.0625), h3.PosePrior(map_size=2),
                             crop_size=16, seg_size=(32, 32))
    ds = h3.RHDSamples(val)
    for crops in ("segmentation", "ground_truth"):
        res = h3.run_pipeline(pipe, ds, batch_size=3, crops=crops, device="cpu", progress=False,
                              num_workers=0)
        assert res["uv_pred"].shape == (4, 21, 2) and res["xyz_pred_mm"].shape == (4, 21, 3)
        assert np.isfinite(res["uv_pred"]).all() and np.isfinite(res["xyz_pred_mm"]).all()
        assert ("union" in res) == (crops == "segmentation")
        assert res["visible"].dtype == bool and res["uv_pred"].dtype == np.float32
        assert res["index"].dtype == res["hand_side"].dtype == np.int64
        np.testing.assert_allclose(res["xyz_gt_mm"][:, 0], 0, atol=1e-4)  # root-relative
    m = h3.eval_3d(res["xyz_pred_mm"], res["xyz_gt_mm"], res["visible"])
    assert 0 <= m["auc_20_50"] <= 1


def test_stage_checkpoints_are_read_through_the_checked_loader(tmp_path):
    """A damaged checkpoint gives the course's error naming the file, not a raw unpickling
    error."""
    from handpose_utils.engine import CheckpointError

    cfg = h3.default_config("poseprior", ID="damaged")
    folder = h3.run_dir(cfg, tmp_path)
    folder.mkdir(parents=True)
    (folder / "last.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"damaged/last\.pth"):
        h3.train_stage(cfg, [], [], runs=tmp_path, device="cpu", log=None)
    (folder / "best.pth").write_bytes(b"PK\x03\x04 half a zip")
    with pytest.raises(CheckpointError, match=r"damaged/best\.pth"):
        h3.load_stage(folder, device="cpu")
