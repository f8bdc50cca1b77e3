"""The top-down pipeline: crops and back-projection, the dataset and its augmentation, the whole
chain from targets to COCO AP, SimpleBaseline and its loss, ONNX export and W&B switches."""

from __future__ import annotations

import os
import signal
from datetime import timedelta

import numpy as np
import pytest
import torch

import handpose_utils as hp
from handpose_utils import loggers, onnx_export
from handpose_utils.models_heatmap import (
    REFERENCE_DECONV,
    KeypointMSELoss,
    SimpleBaseline,
    build_heatmap_model,
)
from handpose_utils.topdown import (
    TopDownAugment,
    TopDownDataset,
    apply_affine,
    back_project,
    box_to_center_size,
    crop_matrix,
    half_body_box,
    prepare_topdown_batch,
    warp_image,
)


@pytest.fixture(scope="module")
def coco_records(realdata):
    return hp.load_coco_keypoints(realdata / "coco", "val")


@pytest.fixture(scope="module")
def ann_file(realdata):
    return realdata / "coco" / "annotations" / "person_keypoints_val2017.json"


# --------------------------------------------------------------------------------------------
# Geometry


def test_box_is_widened_not_stretched():
    center, size = box_to_center_size([10, 20, 100, 50], aspect=0.75, padding=1.0)
    assert np.allclose(center, [60, 45])
    assert np.allclose(size, [100, 100 / 0.75])  # too wide: the height grows
    _, size = box_to_center_size([0, 0, 30, 200], aspect=0.75, padding=1.25)
    assert np.allclose(size, [200 * 0.75 * 1.25, 200 * 1.25])  # too tall: the width grows


@pytest.mark.parametrize("rotation,flip", [(0, False), (33, False), (-70, True)])
def test_crop_and_back_projection_are_inverse(rotation, flip):
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 400, (17, 2))
    center, size = np.array([200.0, 180.0]), np.array([150.0, 200.0])
    M = crop_matrix(center, size, (192, 256), rotation, flip)
    crop_pts = apply_affine(pts, M)
    if flip:  # back_project undoes crops without a flip (test time): unflip first
        crop_pts[:, 0] = 191 - crop_pts[:, 0]
    back = back_project(crop_pts, center, size, (192, 256), rotation)
    assert np.allclose(back, pts, atol=1e-9)
    # The box's corners land on the crop's extent [-0.5, W - 0.5] x [-0.5, H - 0.5].
    corner = apply_affine(center - size / 2, crop_matrix(center, size, (192, 256)))
    assert np.allclose(corner, [-0.5, -0.5])


def test_warp_image_follows_the_affine_exactly():
    ys, xs = np.mgrid[0:120, 0:160]
    p = np.array([70.3, 52.6])
    blob = np.exp(-((xs - p[0]) ** 2 + (ys - p[1]) ** 2) / (2 * 3.0**2))
    img = np.repeat((blob * 255).astype(np.uint8)[..., None], 3, -1)
    for rotation, scale in ((0, 1.0), (25, 0.7), (-40, 1.6)):
        M = crop_matrix([80, 60], np.array([96, 128]) * scale, (48, 64), rotation)
        crop = warp_image(img, M, (48, 64))[..., 0].astype(float)
        cy, cx = np.mgrid[0:64, 0:48]
        got = np.array([(crop * cx).sum(), (crop * cy).sum()]) / crop.sum()
        assert np.allclose(got, apply_affine(p, M), atol=0.05)


def test_half_body_box_covers_one_half():
    kp = np.array([[50, 10 + 10 * j] for j in range(17)], float)
    v = np.full(17, 2)
    g = torch.Generator().manual_seed(0)
    center, size = box_to_center_size(half_body_box(kp, v, rng=g), 0.75, padding=1.5)
    top, bottom = center[1] - size[1] / 2, center[1] + size[1] / 2
    upper = top <= kp[0, 1] and bottom < kp[16, 1]
    lower = top > kp[0, 1] and bottom >= kp[16, 1]
    assert upper or lower
    assert half_body_box(kp, np.zeros(17)) is None


# --------------------------------------------------------------------------------------------
# Dataset


@pytest.mark.realdata
def test_dataset_item_and_targets_match_the_ground_truth(coco_records):
    codec = hp.heatmaps.HeatmapCodec()
    ds = TopDownDataset(coco_records, codec)
    image, heatmaps, weight, meta = ds[0]
    assert image.shape == (3, 256, 192) and image.dtype == torch.uint8
    assert heatmaps.shape == (17, 64, 48) and weight.shape == (17,)
    assert set(meta) >= {"image_id", "ann_id", "center", "size", "keypoints", "area"}
    near_border = 0
    for i in range(len(ds)):
        _, heatmaps, weight, meta = ds[i]
        gt = meta["keypoints"].numpy()
        center, size = meta["center"].numpy(), meta["size"].numpy()
        crop_xy = apply_affine(gt[:, :2], crop_matrix(center, size, codec.input_size))
        hxy = codec.to_heatmap_coords(crop_xy)
        in_crop = (hxy >= -0.5).all(1) & (hxy < np.array(codec.heatmap_size) - 0.5).all(1)
        use = weight.numpy() > 0
        assert np.array_equal(use, (gt[:, 2] > 0) & in_crop)  # weights: labelled and in the crop
        xy, _ = codec.decode(heatmaps, "dark")
        back = back_project(xy.numpy(), center, size, codec.input_size)
        err = np.linalg.norm(back - gt[:, :2], axis=1) / (size[0] / codec.input_size[0])
        interior = use & (hxy > 2).all(1) & (hxy < np.array(codec.heatmap_size) - 3).all(1)
        assert err[interior].max(initial=0) < 0.25  # crop pixels: DARK on a perfect map
        assert err[use].max(initial=0) < codec.stride / 2 * np.sqrt(2)  # even at the border
        near_border += (use & ~interior).sum()
    assert near_border < 0.2 * sum(r["num_keypoints"] for r in coco_records)


@pytest.mark.realdata
def test_flip_augmentation_mirrors_and_swaps_left_right(coco_records):
    codec = hp.heatmaps.HeatmapCodec()
    plain = TopDownDataset(coco_records, codec)
    flipped = TopDownDataset(coco_records, codec, train=True,
                             augment=TopDownAugment(flip_p=1.0, scale_factor=0.0, rotation_p=0.0))
    i = next(k for k, r in enumerate(coco_records) if r["num_keypoints"] == 17)
    img0, hm0, w0, _ = plain[i]
    img1, hm1, w1, meta = flipped[i]
    assert bool(meta["flip"])
    assert torch.equal(img1, img0.flip(-1))
    xy0, _ = codec.decode(hm0, "dark")
    xy1, _ = codec.decode(hm1, "dark")
    # The flipped crop's LEFT wrist (9) is where the plain crop's RIGHT wrist (10) is, mirrored.
    for left, right in ((9, 10), (5, 6), (15, 16)):
        assert np.allclose(xy1[left, 0], 191 - xy0[right, 0], atol=0.1)
        assert np.allclose(xy1[left, 1], xy0[right, 1], atol=0.1)
    assert torch.equal(w1, w0[list(codec.flip_index)])


@pytest.mark.realdata
def test_augmentation_is_random_but_seeded(coco_records):
    ds = TopDownDataset(coco_records, hp.heatmaps.HeatmapCodec(), train=True,
                        augment=TopDownAugment(half_body_p=0.5))
    torch.manual_seed(0)
    a = [ds.crop_params(0) for _ in range(20)]
    torch.manual_seed(0)
    b = [ds.crop_params(0) for _ in range(20)]
    assert all(np.allclose(x["size"], y["size"]) and x["rotation"] == y["rotation"]
               for x, y in zip(a, b))
    rotations = np.array([p["rotation"] for p in a])
    assert (rotations == 0).any() and (rotations != 0).any()
    assert np.abs(rotations).max() <= 80
    assert any(p["flip"] for p in a) and not all(p["flip"] for p in a)


@pytest.mark.realdata
def test_perfect_heatmaps_through_the_meter_give_ap_one(coco_records, ann_file):
    """Targets -> decode -> back-projection -> COCO results -> COCOeval: the whole chain."""
    codec = hp.heatmaps.HeatmapCodec(decode_mode="dark")
    ds = TopDownDataset(coco_records, codec)
    loader = torch.utils.data.DataLoader(ds, batch_size=5)
    meter = hp.coco_eval.CocoKeypointMeter(ann_file, codec)
    meter.reset()
    for batch in loader:
        _, targets, extras = prepare_topdown_batch(batch, "cpu", False)
        meter.update(targets["heatmaps"], targets, extras)
    stats = meter.compute()
    assert set(stats) == {"AP", "AP50", "AP75", "AR"}  # the meter's default keys
    assert stats["AP"] > 0.95
    assert len(meter.results) == len(coco_records)
    # The same heatmaps with plain argmax lose accuracy at strict OKS thresholds.
    meter_argmax = hp.coco_eval.CocoKeypointMeter(ann_file, hp.heatmaps.HeatmapCodec(decode_mode="argmax"))
    for batch in loader:
        _, targets, extras = prepare_topdown_batch(batch, "cpu", False)
        meter_argmax.update(targets["heatmaps"], targets, extras)
    assert meter_argmax.compute()["AP"] <= stats["AP"]


@pytest.mark.realdata
def test_prepare_batch_normalises_and_builds_targets(coco_records):
    ds = TopDownDataset(coco_records[:2], hp.heatmaps.HeatmapCodec())
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    images, targets, extras = prepare_topdown_batch(batch, "cpu", True)
    assert images.dtype == torch.float32 and images.shape == (2, 3, 256, 192)
    raw = batch[0].float() / 255
    mean = torch.tensor(hp.data.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(hp.data.IMAGENET_STD).view(1, 3, 1, 1)
    assert torch.allclose(images, (raw - mean) / std, atol=1e-5)
    assert set(targets) == {"heatmaps", "target_weight"}
    assert extras["image_id"].shape == (2,)


# --------------------------------------------------------------------------------------------
# Model and loss


@pytest.fixture(scope="module")
def small_model():
    return build_heatmap_model("resnet18", pretrained=False)


def tiny_simple_baseline() -> SimpleBaseline:
    """SimpleBaseline's head on a toy stride-32 backbone: the integration tests below are about
    the pipeline, not the ResNet, and must stay fast on a CPU."""
    layers, cin = [], 3
    for _ in range(5):
        layers += [torch.nn.Conv2d(cin, 8, 3, stride=2, padding=1), torch.nn.ReLU()]
        cin = 8
    return SimpleBaseline(torch.nn.Sequential(*layers), 8, deconv_channels=(16, 16, 16))


def test_simple_baseline_output_is_a_quarter_of_the_input(small_model):
    out = small_model.eval()(torch.zeros(2, 3, 128, 96))
    assert out.shape == (2, 17, 32, 24)
    assert out.abs().max() < 0.5  # the head starts near zero (std 0.001 weights)
    with pytest.raises(ValueError, match="multiples of 32"):
        small_model(torch.zeros(1, 3, 250, 192))


def test_reference_deconv_variant(small_model):
    ref = build_heatmap_model("resnet18", pretrained=False, deconv_channels=REFERENCE_DECONV)
    assert ref.eval()(torch.zeros(1, 3, 128, 96)).shape == (1, 17, 32, 24)
    channels = [m.out_channels for m in ref.deconv if isinstance(m, torch.nn.ConvTranspose2d)]
    assert channels == list(REFERENCE_DECONV)
    assert hp.count_parameters(ref) > hp.count_parameters(small_model)


def test_pretrained_weights_fall_back_with_a_message(monkeypatch, capsys):
    import torchvision

    def offline(self, *args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(torchvision.models.ResNet18_Weights, "get_state_dict", offline)
    model = build_heatmap_model("resnet18", pretrained=True)
    assert model.pretrained is False
    out = capsys.readouterr().out
    assert "RANDOM initialisation" in out and "no network" in out
    with pytest.raises(ValueError, match="backbone must be one of"):
        build_heatmap_model("vgg16", pretrained=False)


def test_keypoint_mse_loss_ignores_zero_weight_joints():
    torch.manual_seed(0)
    target = torch.rand(2, 17, 8, 6)
    weight = torch.ones(2, 17)
    weight[:, 3] = 0
    pred = target.clone()
    pred[:, 3] += 5.0  # wrong only where the weight is 0
    loss = KeypointMSELoss()
    assert loss(pred, {"heatmaps": target, "target_weight": weight}) == 0
    assert loss(pred, (target, weight)) == 0
    assert loss(pred, target) > 0  # a bare tensor: all weights 1
    assert KeypointMSELoss(use_target_weight=False)(pred, (target, weight)) > 0
    with pytest.raises(ValueError, match="differ"):
        loss(pred[..., :4], target)


@pytest.mark.realdata
def test_fit_one_epoch_with_the_coco_meter(coco_records, ann_file, tmp_path):
    codec = hp.heatmaps.HeatmapCodec.for_input((64, 96))
    train = TopDownDataset(coco_records, codec, train=True)
    val = TopDownDataset(coco_records, codec)
    tl = torch.utils.data.DataLoader(train, batch_size=4, shuffle=True, drop_last=True)
    vl = torch.utils.data.DataLoader(val, batch_size=6)
    model = tiny_simple_baseline()
    config = hp.TrainConfig(epochs=1, scheduler=hp.models_heatmap.step_lr(10, 0.5),
                            best_metric="val_AP", mode="max", checkpoint_dir=tmp_path,
                            device="cpu", progress=False, live_plot=False, log=None)
    history = hp.fit(model, tl, vl, config, loss_fn=KeypointMSELoss(),
                     prepare_batch=prepare_topdown_batch,
                     metrics=hp.coco_eval.CocoKeypointMeter(ann_file, codec),
                     optimizer=torch.optim.Adam(model.parameters(), lr=1e-3))
    row = history[-1]
    assert {"train_loss", "val_loss", "val_AP", "val_AR"} <= set(row)
    assert 0 <= row["val_AP"] <= 1 and np.isfinite(row["train_loss"])
    assert (tmp_path / "last.pth").is_file()
    results = hp.coco_eval.predict_coco_results(model, vl, codec, modes=("quarter", "dark"), flip_test=True,
                                      device="cpu", progress=False)
    assert set(results) == {("quarter", False), ("quarter", True), ("dark", False), ("dark", True)}
    assert all(len(r) == len(coco_records) for r in results.values())


# --------------------------------------------------------------------------------------------
# ONNX and W&B are optional


def test_onnx_steps_are_skipped_with_a_message(monkeypatch, tmp_path, capsys):
    model = tiny_simple_baseline()
    monkeypatch.setattr(onnx_export, "onnx_status",
                        lambda: {"onnx": False, "onnxscript": False, "onnxruntime": False})
    assert hp.onnx_export.export_onnx(model, tmp_path / "m.onnx") is None
    assert hp.onnx_export.check_onnx(tmp_path / "m.onnx", model) is None
    assert hp.onnx_export.check_onnx(None, model) is None
    out = capsys.readouterr().out
    assert "'onnx' package is not installed" in out and "'onnxruntime' is not installed" in out
    assert not (tmp_path / "m.onnx").exists()


def test_onnx_export_matches_pytorch(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    model = tiny_simple_baseline()
    path = hp.onnx_export.export_onnx(model, tmp_path / "m.onnx", input_size=(64, 64), log=None)
    check = hp.onnx_export.check_onnx(path, model, inputs=torch.randn(3, 3, 64, 64), log=None)
    assert check["match"] and check["max_abs_diff"] < 1e-3


def test_wandb_is_off_by_default_and_optional(monkeypatch, capsys):
    assert hp.loggers.wandb_callback() is None
    assert hp.loggers.wandb_callback(False, project="x") is None
    monkeypatch.setattr(loggers.importlib.util, "find_spec", lambda name: None)
    assert hp.loggers.wandb_callback(True) is None
    assert "'wandb' is not installed" in capsys.readouterr().out


def test_tensorboard_callback_writes_every_epochs_numbers(tmp_path, monkeypatch, capsys):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv("HANDPOSE_RUNS", str(tmp_path))
    assert hp.loggers.tensorboard_callback(False, "tb") is None
    cb = hp.loggers.tensorboard_callback(True, "tb")
    history = []
    for epoch, (loss, ap) in enumerate([(0.5, 0.1), (0.25, float("nan"))], start=1):
        history.append({"epoch": epoch, "train_loss": loss, "AP": ap, "note": "text"})
        cb(epoch, history)
    cb.finish()
    (run,) = (tmp_path / "tensorboard" / "tb").iterdir()  # one folder per training run
    assert str(run) in capsys.readouterr().out
    events = EventAccumulator(str(run)).Reload()
    assert set(events.Tags()["scalars"]) == {"train_loss", "AP"}
    assert [(e.step, e.value) for e in events.Scalars("train_loss")] == [(1, 0.5), (2, 0.25)]
    assert [e.step for e in events.Scalars("AP")] == [1], "an undefined figure is left out"
    monkeypatch.setattr(loggers.importlib.util, "find_spec", lambda name: None)
    assert hp.loggers.tensorboard_callback(True, "tb") is None
    assert "'tensorboard' is not installed" in capsys.readouterr().out


def test_tensorboard_serves_the_logged_numbers_as_the_notebook_shows_them(tmp_path, monkeypatch):
    """``%tensorboard --logdir`` starts TensorBoard in a subprocess (tensorboard.manager); it
    must start and serve the callback's scalars (it once died on a missing pkg_resources)."""
    pytest.importorskip("tensorboard")
    import json
    import urllib.request

    from tensorboard import manager

    monkeypatch.setenv("HANDPOSE_RUNS", str(tmp_path))
    cb = hp.loggers.tensorboard_callback(True, "run", log=None)
    cb(1, [{"epoch": 1, "train_loss": 0.5}])
    cb.finish()
    started = manager.start(["--logdir", str(tmp_path / "tensorboard"), "--port", "0"], timeout=timedelta(seconds=60))
    assert isinstance(started, manager.StartLaunched), started
    try:
        url = f"http://localhost:{started.info.port}/data/plugin/scalars/tags"
        tags = json.load(urllib.request.urlopen(url, timeout=30))
        assert any("train_loss" in run_tags for run_tags in tags.values()), tags
    finally:
        os.kill(started.info.pid, signal.SIGTERM)


def test_image_whose_size_differs_from_its_annotation_is_named(tmp_path):
    """A resized or swapped image would be cut at the annotation's coordinates into a wrong
    (often all-black) crop; the dataset stops and names the file and both sizes instead."""
    import json

    from PIL import Image

    (tmp_path / "annotations").mkdir()
    (tmp_path / "val2017").mkdir()
    Image.new("RGB", (40, 30), (90, 60, 30)).save(tmp_path / "val2017" / "000000000005.jpg")
    data = {"images": [{"id": 5, "file_name": "000000000005.jpg", "width": 400, "height": 300}],
            "annotations": [{"id": 9, "image_id": 5, "category_id": 1, "iscrowd": 0,
                             "keypoints": [250, 200, 2] * 17, "num_keypoints": 17,
                             "bbox": [200.0, 150.0, 100.0, 120.0], "area": 9000.0}],
            "categories": [hp.skeletons.coco_category()]}
    (tmp_path / "annotations" / "person_keypoints_val2017.json").write_text(json.dumps(data))
    records = hp.load_coco_keypoints(tmp_path, "val")
    ds = TopDownDataset(records, hp.heatmaps.HeatmapCodec())
    with pytest.raises(ValueError, match=r"000000000005\.jpg.*annotation 9.*40 x 30.*400 x 300"):
        ds[0]


# --------------------------------------------------------------------------------------------
# Other backbones, and colour augmentation on the device


@pytest.mark.parametrize("backbone,deconvs", [("mobilenet_v3_large", 3), ("mobilenet_v2", 3),
                                              ("hrnet_w32", 0)])
def test_every_backbone_gives_stride_4_heatmaps(backbone, deconvs):
    if backbone.startswith("hrnet"):
        pytest.importorskip("timm")
    model = build_heatmap_model(backbone, pretrained=False, deconv_channels=(32, 32, 32))
    assert model.stride == 4 and model.pretrained is False
    n = sum(isinstance(m, torch.nn.ConvTranspose2d) for m in model.deconv.modules())
    assert n == deconvs  # HRNet is at stride 4 already: a 1x1 head and nothing else
    with torch.no_grad():
        out = model.eval()(torch.zeros(2, 3, 128, 96))
    assert out.shape == (2, 17, 32, 24)


def test_hrnet_without_timm_says_how_to_get_it(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "timm", None)  # import timm now raises ImportError
    with pytest.raises(ImportError, match="pip install timm"):
        build_heatmap_model("hrnet_w32", pretrained=False)


def test_hrnet_weights_fall_back_with_a_message(monkeypatch):
    timm = pytest.importorskip("timm")
    real = timm.create_model

    def offline(name, pretrained=False, **kwargs):
        if pretrained:
            raise OSError("no network")
        return real(name, pretrained=False, **kwargs)

    monkeypatch.setattr(timm, "create_model", offline)
    said = []
    model = build_heatmap_model("hrnet_w32", pretrained=True, log=said.append)
    assert model.pretrained is False
    assert "RANDOM initialisation" in said[0] and "no network" in said[0]


def test_colour_jitter_changes_colours_only_and_is_seeded():
    from handpose_utils.data import colour_jitter

    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 3, 6, 5, generator=g)
    assert torch.equal(colour_jitter(x), x.clamp(0, 1))  # nothing asked, nothing changed
    bright = colour_jitter(x, brightness=0.5, generator=torch.Generator().manual_seed(1))
    ratio = bright / x  # one factor per image, the same for every pixel and channel
    per_image = ratio.flatten(1)
    unclipped = bright.flatten(1) < 1
    for k in range(8):
        r = per_image[k][unclipped[k]]
        assert 0.5 - 1e-6 <= r.min() and r.max() <= 1.5 + 1e-6 and r.max() - r.min() < 1e-5
    gray = colour_jitter(x, grayscale_p=1.0)
    assert torch.allclose(gray[:, 0], gray[:, 1]) and torch.allclose(gray[:, 1], gray[:, 2])
    luma = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1)
    assert torch.allclose(gray[:, 0], luma)
    again = colour_jitter(x, 0.3, 0.3, 0.3, 0.5, generator=torch.Generator().manual_seed(4))
    assert torch.equal(again, colour_jitter(x, 0.3, 0.3, 0.3, 0.5,
                                            generator=torch.Generator().manual_seed(4)))
    assert 0 <= float(again.min()) and float(again.max()) <= 1


def test_prepare_topdown_changes_colour_in_training_only():
    from handpose_utils.topdown import PrepareTopDown, normalize_images

    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (4, 3, 16, 12), generator=g, dtype=torch.uint8)
    heatmaps, weight = torch.rand(4, 17, 4, 3), torch.ones(4, 17)
    batch = (images, heatmaps, weight, {"image_id": torch.arange(4)})
    prepare = PrepareTopDown(brightness=0.3, contrast=0.3, saturation=0.3, grayscale_p=0.5)
    plain = normalize_images(images)
    x, targets, extras = prepare(batch, "cpu", False)
    assert torch.allclose(x, plain)  # evaluation: no colour change
    torch.manual_seed(1)
    x, targets, extras = prepare(batch, "cpu", True)
    assert not torch.allclose(x, plain)
    assert torch.equal(targets["heatmaps"], heatmaps)  # no pixel moves: targets untouched
    assert torch.equal(extras["image_id"], torch.arange(4))
    x0, _, _ = prepare_topdown_batch(batch, "cpu", True)  # the default changes no colour
    assert torch.allclose(x0, plain)
