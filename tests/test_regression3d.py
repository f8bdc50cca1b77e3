"""Notebook 05's 3D regression: targets, augmentation consistency, model, meter, inference,
checkpoints, per-epoch outputs and the split experiment."""

from __future__ import annotations

import urllib.error
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torchvision

from handpose_utils import engine as E
from handpose_utils import load_freihand
from handpose_utils import regression3d as R
from handpose_utils.data import CachedKeypointDataset, make_loaders

SIZE = 32  # ResNet-50 runs at any input size; tiny keeps the tests fast
FAST = "resnet18"  # the same model class and head on a lighter backbone, for pipeline tests


@pytest.fixture(scope="module")
def records(synthetic_root):
    return load_freihand(synthetic_root, "training")  # 6 poses x 4 versions


@pytest.fixture(scope="module")
def dataset(records):
    return R.pose3d_dataset(records, SIZE, progress=False)


def bone_lengths(xyz):
    from handpose_utils.skeletons import HAND21_BONES

    a, b = np.array(HAND21_BONES).T
    return np.linalg.norm(np.asarray(xyz)[..., a, :] - np.asarray(xyz)[..., b, :], axis=-1)


def test_root_relative_targets_and_codec(records):
    xyz = np.array([r["xyz"] for r in records[:3]])
    scale = np.array([r["scale"] for r in records[:3]])
    codec = R.RootRelativeCodec()
    t = codec.encode(xyz)
    assert t.shape == (3, 21, 3)
    assert torch.all(t[:, 9] == 0)  # joint 9, the middle MCP, is the origin
    assert np.allclose(t.numpy(), xyz - xyz[:, 9:10], atol=1e-6)  # metres, as the reference
    assert np.allclose(codec.decode(t).numpy(), t.numpy())
    assert np.allclose(codec.decode(t.reshape(3, 63)).numpy(), t.numpy())  # flat outputs too

    norm = R.RootRelativeCodec(normalize=True)
    tn = norm.encode(xyz, scale)
    # in units of the hand's scale, |xyz9 - xyz10| = 1
    assert np.allclose(torch.linalg.vector_norm(tn[:, 10] - tn[:, 9], dim=-1).numpy(), 1,
                       atol=1e-5)
    assert np.allclose(norm.decode(tn, scale).numpy(), t.numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="scale"):
        norm.decode(tn)
    fixed = R.RootRelativeCodec(normalize=True, default_scale=0.02)
    assert np.allclose(fixed.decode(tn).numpy(), tn.numpy() * 0.02)
    # a checkpoint's settings carry the whole codec (load_pose3d_model rebuilds it from them)
    settings = R.run_config(fixed, SIZE, SimpleNamespace(arch=FAST, hidden=8, dropout=0.0))
    assert R.RootRelativeCodec(**{k[len("codec_"):]: v for k, v in settings.items()
                                  if k.startswith("codec_")}) == fixed


def test_model_head_and_output_shape():
    model = R.build_pose3d_model(pretrained=False)
    head = model.head
    assert [type(m).__name__ for m in head] == ["Linear", "ReLU", "Dropout", "Linear"]
    assert (head[0].in_features, head[0].out_features, head[3].out_features) == (2048, 1024, 63)
    assert head[2].p == 0.5
    out = model(torch.randn(2, 3, SIZE, SIZE))
    assert out.shape == (2, 21, 3)
    small = R.build_pose3d_model(pretrained=False, arch=FAST)
    assert small.head[0].in_features == 512
    with pytest.raises(ValueError, match="arch"):
        R.build_pose3d_model(pretrained=False, arch="vgg16")


def test_imagenet_weights_fallback_and_load(monkeypatch):
    def offline(self, *args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.models._api.WeightsEnum, "get_state_dict", offline)
    messages = []
    model = R.build_pose3d_model(pretrained=True, log=messages.append)
    assert model.pretrained is False
    assert "unavailable" in messages[0] and "RANDOM initialisation" in messages[0]

    torch.manual_seed(1)
    donor = torchvision.models.resnet50(weights=None).state_dict()  # stands in for ImageNet's
    monkeypatch.setattr(torchvision.models._api.WeightsEnum, "get_state_dict",
                        lambda self, *a, **k: donor)
    model = R.build_pose3d_model(pretrained=True, log=None)
    assert model.pretrained is True
    assert torch.equal(model.backbone.conv1.weight, donor["conv1.weight"])
    assert torch.equal(model.backbone.layer4[2].bn3.running_var, donor["layer4.2.bn3.running_var"])


@pytest.mark.parametrize("source", ["synthetic", "real"])
def test_augmented_targets_match_the_augmented_image(source, dataset, realdata):
    """Rotations, zooms, shifts and flips: the 3D targets, projected through the updated
    camera, land on the 2D keypoints the warp moved. Bone lengths are unchanged."""
    if source == "real":
        recs = load_freihand(realdata / "freihand" / "FreiHAND_pub_v2", "training")
        ds = R.pose3d_dataset(recs, SIZE, progress=False)
    else:
        ds = dataset
    codec = R.RootRelativeCodec()
    prep = R.pose3d_prepare_batch(codec, R.pose3d_augment(flip_p=0.5, rotation=45,
                                                          scale=(0.7, 1.3), translate=0.1))
    batch = ds[list(range(8))]
    torch.manual_seed(0)
    _, targets, extras = prep(batch, torch.device("cpu"), True)
    assert extras["flip"].any() and (~extras["flip"]).any()  # both kinds are exercised
    uvw = extras["xyz_input"] @ extras["K_input"].transpose(1, 2)
    uv = uvw[..., :2] / uvw[..., 2:]
    assert torch.allclose(uv, extras["keypoints"], atol=1e-3)
    assert torch.all(targets[:, 9] == 0)
    assert not torch.allclose(targets, codec.encode(batch["xyz"]), atol=1e-3)  # really moved
    assert np.allclose(bone_lengths(targets), bone_lengths(batch["xyz"]), atol=1e-6)
    assert torch.equal(extras["xyz"], batch["xyz"])  # metrics keep the original joints
    # evaluation: no augmentation, the targets are the plain encoding
    _, targets, extras = prep(batch, torch.device("cpu"), False)
    assert torch.allclose(targets, codec.encode(batch["xyz"]))
    uvw = extras["xyz_input"] @ extras["K_input"].transpose(1, 2)
    assert torch.allclose(uvw[..., :2] / uvw[..., 2:], extras["keypoints"], atol=1e-3)


def test_colour_only_augmentation_leaves_targets_alone(dataset):
    codec = R.RootRelativeCodec()
    prep = R.pose3d_prepare_batch(codec, R.pose3d_augment(geometric=False))
    batch = dataset[[0, 1, 2, 3]]
    _, targets, _ = prep(batch, torch.device("cpu"), True)
    assert torch.allclose(targets, codec.encode(batch["xyz"]), atol=1e-6)


def test_loss_options():
    out, tgt = torch.zeros(1, 21, 3), torch.zeros(1, 21, 3)
    tgt[0, 0, 0] = 0.63
    assert float(R.pose3d_loss("mse")(out, tgt)) == pytest.approx(0.63**2 / 63)
    assert float(R.pose3d_loss("l1")(out, tgt)) == pytest.approx(0.63 / 63)
    with pytest.raises(ValueError, match="loss"):
        R.pose3d_loss("huber")


def test_meter_scores_the_whole_set(dataset):
    codec = R.RootRelativeCodec()
    meter = R.Pose3DMeter(codec)
    prep = R.pose3d_prepare_batch(codec)
    for idx in ([0, 1, 2], [3, 4]):  # uneven batches: pooled, not averaged per batch
        batch = dataset[idx]
        _, targets, extras = prep(batch, torch.device("cpu"), False)
        outputs = targets.clone()
        outputs[:, 0, 0] += 0.01 if len(idx) == 3 else 0.04  # wrist off by 10 or 40 mm
        meter.update(outputs, targets, extras)
    m = meter.compute()
    assert m["mpjpe"] == pytest.approx((3 * 10 + 2 * 40) / (5 * 21), rel=1e-4)
    assert m["within_50mm"] == 1.0 and m["pck3d@20mm"] == pytest.approx(1 - 2 / 105)
    # PA fits a similarity by least squares, spreading one joint's error over all joints:
    # for a single bad joint the *mean distance* can even grow; it is never zero here
    assert m["pa_mpjpe"] > 0
    assert m["reproj_px"] > 0
    a = meter.arrays()
    assert a["pred"].shape == a["gt"].shape == (5, 21, 3) and a["index"].tolist() == [0, 1, 2, 3, 4]


def test_inference_checkpoint_round_trip_and_evaluate_only(records, dataset, tmp_path):
    codec = R.RootRelativeCodec()
    torch.manual_seed(0)
    model = R.build_pose3d_model(pretrained=False, arch=FAST)
    prep = R.pose3d_prepare_batch(codec)
    few = CachedKeypointDataset(dataset.cache, range(8), dataset.extras)
    train_loader, test_loader = make_loaders(few, few, batch_size=8, device="cpu")
    config = E.TrainConfig(epochs=1, device="cpu", max_steps=1, checkpoint_dir=tmp_path,
                           settings=R.run_config(codec, SIZE, model), live_plot=False,
                           progress=False, log=None)
    E.fit(model, train_loader, test_loader, config, loss_fn=R.pose3d_loss(), prepare_batch=prep,
          metrics=R.Pose3DMeter(codec))
    expected = E.predict(model, test_loader, prepare_batch=prep, device="cpu", progress=False)

    loaded, loaded_codec, ckpt = R.load_pose3d_model(tmp_path / "last.pth", device="cpu",
                                                     log=None)
    assert loaded_codec == codec and ckpt["config"]["image_size"] == SIZE
    again = E.predict(loaded, test_loader, prepare_batch=prep, device="cpu", progress=False)
    assert torch.allclose(again, expected, atol=1e-5)

    # single-image inference = the batch path, from a file or from an array
    one = R.predict_image(loaded, records[5]["image_path"], SIZE, codec)
    assert one.shape == (21, 3)
    assert np.allclose(one, expected[5].numpy(), atol=1e-5)
    from handpose_utils.images import read_image

    from_array = R.predict_image(loaded, read_image(records[5]["image_path"]), SIZE, codec)
    assert from_array.shape == (21, 3) and np.isfinite(from_array).all()
    assert loaded.training is False

    E.save_checkpoint(tmp_path / "other.pth", model)  # no notebook-05 config
    with pytest.raises(E.CheckpointError, match="other.pth"):
        R.load_pose3d_model(tmp_path / "other.pth", log=None)


def test_epoch_visualizer_saves_results_without_grad(records, dataset, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    codec = R.RootRelativeCodec()
    model = R.build_pose3d_model(pretrained=False, arch=FAST).train()
    seen = []
    model.register_forward_hook(lambda m, i, o: seen.append((torch.is_grad_enabled(),
                                                             m.training)))
    from handpose_utils.plots.regression3d import EpochVisualizer

    vis = EpochVisualizer(model, dataset, records, codec, R.pose3d_prepare_batch(codec),
                          tmp_path / "results", indices=[2, 7])
    history = [{"epoch": 1, "train_loss": 0.01, "val_loss": 0.02, "val_mpjpe": 30.0,
                "val_pa_mpjpe": 12.0, "val_pck3d_auc": 0.5, "val_within_50mm": 0.8}]
    vis(1, history)
    assert seen == [(False, False)]  # predicted in eval mode without autograd
    assert model.training  # and the training mode is back
    names = sorted(p.name for p in (tmp_path / "results").iterdir())
    assert names == ["epoch_001_test_0.png", "epoch_001_test_1.png", "training_metrics.png"]
    assert all(p.stat().st_size > 1000 for p in vis.saved)


def test_compare_splits_measures_both_splits(records):
    rows = R.compare_splits(records, fractions=(0.6, 0.2, 0.2), image_size=SIZE, epochs=1,
                            batch_size=7, arch=FAST, max_steps=1, log=None)
    random_row, grouped_row = rows
    assert random_row["split"] == "random per image" and grouped_row["split"] == "grouped by pose"
    assert grouped_row["leaked_fraction"] == 0 and grouped_row["n_seen_poses"] == 0
    assert random_row["leaked_fraction"] > 0 and random_row["n_seen_poses"] > 0
    assert random_row["train_images"] == grouped_row["train_images"]  # same budget
    for row in rows:
        assert row["n_seen_poses"] + row["n_unseen_poses"] == row["test_images"]
        assert np.isfinite([row["mpjpe"], row["pa_mpjpe"]]).all()
