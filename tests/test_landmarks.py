"""Notebook 04's learning side: the landmark codec, the dataset (no mutation of cached labels),
MobileNetV2 with the reference head, the ImageNet-weights fallback, the loss and the metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from handpose_utils import landmarks as L
from handpose_utils.datasets.ouhands import read_landmark_file
from handpose_utils.synthetic.ouhands import ensure_synthetic_ouhands


@pytest.fixture(scope="module")
def landmarks_dir(tmp_path_factory):
    """2 subjects (1 train, 1 validation) x 10 classes, no test subjects."""
    root = ensure_synthetic_ouhands(tmp_path_factory.mktemp("lm") / "ou", n_subjects=2,
                                    n_test_subjects=0, samples_per_class=1, seed=2,
                                    progress=False)
    return root / "landmarks"


def _random_landmarks(rng, n=None):
    shape = (21, 3) if n is None else (n, 21, 3)
    lm = rng.uniform(0, 1, shape)
    lm[..., 2] = rng.normal(0, 0.05, shape[:-1])
    return lm


def test_codec_roundtrip_and_values():
    rng = np.random.default_rng(0)
    lm = _random_landmarks(rng, 4)
    before = lm.copy()
    enc = L.LandmarkCodec(2.0).encode(lm)
    assert enc.shape == (4, 63) and enc.dtype == np.float32
    assert np.array_equal(lm, before), "encoding must not modify its input"
    np.testing.assert_allclose(L.LandmarkCodec(2.0).decode(enc), lm, atol=1e-6)
    np.testing.assert_allclose(L.LandmarkCodec(2.0).decode(torch.from_numpy(enc)).numpy(), lm,
                               atol=1e-6)
    corners = np.zeros((21, 3))
    corners[1] = [1.0, 1.0, 0.25]
    e = L.LandmarkCodec(2.0).encode(corners).reshape(21, 3)
    assert e[0].tolist() == [-1, -1, 0] and e[1].tolist() == [1, 1, 0.5]
    with pytest.raises(ValueError, match="21, 3"):
        L.LandmarkCodec().encode(np.zeros((20, 3)))
    px = L.landmarks_to_pixels(np.array([[0.5, 0.5, 0.0]] * 21), (640, 480))
    assert px[0].tolist() == [319.5, 239.5]  # the image centre in pixel-centre coordinates


def test_labels_are_read_only_and_reads_are_repeatable(landmarks_dir):
    """The reference re-standardised its cached landmarks in place on every read."""
    labels = L.load_landmark_labels(landmarks_dir, "train")
    assert len(labels) == 10 and labels.landmarks.shape == (10, 21, 3)
    with pytest.raises(ValueError, match="read-only"):
        labels.landmarks[0, 0, 0] = 0.0
    before = labels.landmarks.copy()
    ds = L.LandmarkDataset(labels, image_size=64, train=True, progress=False)
    first = [ds[i]["target"].clone() for i in range(len(ds))]
    for _ in range(3):
        for i in range(len(ds)):
            assert torch.equal(ds[i]["target"], first[i])
    assert np.array_equal(labels.landmarks, before)
    # The target is the file's landmarks, standardised once.
    rec = read_landmark_file(labels.files[0])
    lm = np.array([[p["x"], p["y"], p["z"]] for p in rec["landmarks"]])
    np.testing.assert_allclose(first[0][:63].numpy().reshape(21, 3)[:, :2], 2 * lm[:, :2] - 1,
                               atol=1e-6)
    assert first[0][63] == (1.0 if rec["handedness"]["label"] == "Right" else 0.0)


def test_handedness_becomes_the_probability_of_a_right_hand():
    lm = [{"x": 0.5, "y": 0.5, "z": 0.0}] * 21
    files = [{"image_path": f"/x/{i}.png", "image_shape": [480, 640, 3], "landmarks": lm,
              "handedness": hand} for i, hand in enumerate(
        [{"label": "Right", "score": 0.9}, {"label": "Left", "score": 0.75}, None])]
    labels = L.labels_from_files(files)
    np.testing.assert_allclose(labels.p_right[:2], [0.9, 0.25])
    assert np.isnan(labels.p_right[2]) and labels.image_size.tolist() == [[640, 480]] * 3
    sub = labels.take([2, 0])
    assert sub.image_paths == ("/x/2.png", "/x/0.png") and not sub.p_right.flags.writeable


def test_dataset_items_and_normalisation(landmarks_dir):
    labels = L.load_landmark_labels(landmarks_dir, "validation", limit=3)
    assert len(labels) == 3 and list(labels.files) == sorted(labels.files)
    ds = L.LandmarkDataset(labels, image_size=32, train=False, progress=False)
    item = ds[1]
    assert item["image"].shape == (3, 32, 32) and item["target"].shape == (64,)
    assert item["orig_size"].tolist() == [640.0, 480.0] and int(item["index"]) == 1
    # ImageNet normalisation of the cached (resized) pixels, no augmentation in eval mode.
    raw = torch.from_numpy(ds.cache.images[1]).permute(2, 0, 1).float() / 255
    expect = (raw - torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)) / torch.tensor(
        [0.229, 0.224, 0.225]).view(3, 1, 1)
    torch.testing.assert_close(item["image"], expect)
    no_cache = L.LandmarkDataset(labels, image_size=32, cache=False, progress=False)
    assert (no_cache[1]["image"] - item["image"]).abs().mean() < 0.05  # same pixels, ~same resize


def test_training_augmentation_changes_colour_not_targets(landmarks_dir):
    labels = L.load_landmark_labels(landmarks_dir, "train", limit=2)
    torch.manual_seed(0)
    train = L.LandmarkDataset(labels, image_size=32, train=True, progress=False)
    plain = L.LandmarkDataset(labels, image_size=32, train=False, progress=False)
    a, b = train[0], plain[0]
    assert torch.equal(a["target"], b["target"])
    assert not torch.allclose(a["image"], b["image"])  # jittered


def test_flip_mirrors_image_targets_and_handedness(landmarks_dir):
    labels = L.load_landmark_labels(landmarks_dir, "train", limit=2)
    flip = L.LandmarkDataset(labels, 32, train=True, hflip_p=1.0, jitter=(0, 0, 0, 0),
                             grayscale_p=0.0, progress=False)
    plain = L.LandmarkDataset(labels, 32, train=False, progress=False)
    a, b = flip[0], plain[0]
    torch.testing.assert_close(a["image"], b["image"].flip(-1))
    ta, tb = a["target"][:63].view(21, 3), b["target"][:63].view(21, 3)
    torch.testing.assert_close(ta[:, 0], -tb[:, 0])
    torch.testing.assert_close(ta[:, 1:], tb[:, 1:])
    assert float(a["target"][63]) == 1 - float(b["target"][63])


def test_model_head_and_outputs():
    torch.manual_seed(0)
    model = L.MobileNetV2Landmarks()
    head = model.classifier
    assert [type(m).__name__ for m in head] == ["Dropout", "Linear", "ReLU", "Dropout", "Linear"]
    assert (head[1].in_features, head[1].out_features) == (1280, 512)
    assert (head[4].in_features, head[4].out_features) == (512, 63)
    assert float(head[4].bias.detach().abs().sum()) == 0 and model.handedness.in_features == 512
    model.eval()
    x = torch.randn(2, 3, 64, 64)
    out = model(x)
    assert out.shape == (2, 64)
    plain = L.MobileNetV2Landmarks(handedness=False).eval()
    assert plain(x).shape == (2, 63)


def test_imagenet_weights_fallback_and_success(monkeypatch):
    from torchvision.models import MobileNet_V2_Weights, mobilenet_v2

    def offline(self, *args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(MobileNet_V2_Weights, "get_state_dict", offline)
    messages = []
    model = L.build_landmark_model(pretrained=True, log=messages.append)
    assert model.pretrained is False
    assert "RANDOM initialisation" in messages[0] and "Name or service not known" in messages[0]

    torch.manual_seed(1)
    reference = mobilenet_v2(weights=None).state_dict()
    monkeypatch.setattr(MobileNet_V2_Weights, "get_state_dict", lambda self, **k: reference)
    model = L.build_landmark_model(pretrained=True, log=messages.append)
    assert model.pretrained is True
    torch.testing.assert_close(model.features[0][0].weight, reference["features.0.0.weight"])


def test_loss_smooth_l1_plus_soft_handedness():
    torch.manual_seed(0)
    out, tgt = torch.randn(4, 64), torch.randn(4, 64)
    tgt[:, 63] = torch.tensor([0.9, 0.1, float("nan"), 1.0])
    loss = L.LandmarkLoss(beta=0.02, handedness_weight=0.5)(out, tgt)
    sl1 = torch.nn.functional.smooth_l1_loss(out[:, :63], tgt[:, :63], beta=0.02)
    known = [0, 1, 3]
    bce = torch.nn.functional.binary_cross_entropy_with_logits(out[known, 63], tgt[known, 63])
    torch.testing.assert_close(loss, sl1 + 0.5 * bce)
    assert torch.isfinite(L.LandmarkLoss()(out[:, :63], tgt))  # a 63-output model
    tgt[:, 63] = float("nan")
    torch.testing.assert_close(L.LandmarkLoss(handedness_weight=0.5)(out, tgt), sl1)


def test_true_mpjpe_versus_the_references_mean_abs():
    """Every joint off by (0.03, 0.04, 0) in target units: the Euclidean MPJPE is 0.05, the
    reference's mean |delta| over 63 coordinates only (0.03 + 0.04 + 0) / 3."""
    rng = np.random.default_rng(3)
    gt = torch.from_numpy(L.LandmarkCodec().encode(_random_landmarks(rng, 5)))
    pred = (gt.view(5, 21, 3) + torch.tensor([0.03, 0.04, 0.0])).view(5, 63)
    assert L.mean_abs_coordinate_error(pred, gt) == pytest.approx(0.07 / 3, rel=1e-5)
    meter = L.LandmarkMeter()
    p_right = torch.tensor([1.0, 0.0, 0.8, float("nan"), 0.3])
    logits = torch.tensor([2.0, -1.0, -3.0, 0.0, -2.0])  # right, left, left(wrong), -, left
    outputs = torch.cat([pred, logits[:, None]], 1)
    targets = torch.cat([gt, p_right[:, None]], 1)
    size = torch.tensor([[640.0, 480.0]] * 5)
    meter.update(outputs[:3], targets[:3], {"orig_size": size[:3], "index": torch.arange(3)})
    meter.update(outputs[3:], targets[3:], {"orig_size": size[3:], "index": torch.arange(3, 5)})
    res = meter.compute()
    assert res["mpjpe"] == pytest.approx(0.05, rel=1e-4)
    assert res["mean_abs"] == pytest.approx(0.07 / 3, rel=1e-4)
    # In pixels: 0.03 target units = 0.015 of 640 px = 9.6 px; 0.04 = 0.02 of 480 = 9.6 px.
    assert res["err_x_px"] == pytest.approx(9.6, rel=1e-4)
    assert res["err_y_px"] == pytest.approx(9.6, rel=1e-4)
    assert res["mpjpe_px"] == pytest.approx(9.6 * 2**0.5, rel=1e-4)
    assert res["err_z_px"] == pytest.approx(0.0, abs=1e-4)
    assert res["handedness_acc"] == pytest.approx(3 / 4)
    arrays = meter.arrays()
    assert arrays["index"].tolist() == [0, 1, 2, 3, 4] and arrays["errors_px"].shape == (5, 21)
    box = (arrays["gt_px"].amax(1) - arrays["gt_px"].amin(1)).amax(-1)
    expect = float(((9.6 * 2**0.5) < 0.2 * box).float().mean())  # same error on every joint
    assert res["pck@0.2"] == pytest.approx(expect)


def test_plots_draw(landmarks_dir):
    import matplotlib.pyplot as plt

    from handpose_utils.plots import landmarks as figs

    labels = L.load_landmark_labels(landmarks_dir, "validation", limit=1)
    axes = figs.show_landmarks(labels.image_paths[0], labels.landmarks[0])
    assert len(axes) == 2 and axes[0].images and axes[1].lines
    gt = labels.landmarks[0]
    pred = gt + np.array([0.01, 0.0, 0.0])
    axes = figs.show_prediction(labels.image_paths[0], gt, pred)
    assert "6.4 px" in axes[0].get_title()  # 0.01 of 640 px on every joint
    heights = [p.get_height() for p in axes[1].patches]
    assert len(heights) == 21 and np.allclose(heights, 6.4)
    plt.close("all")


def test_mean_hand_baseline_is_the_score_of_a_constant_prediction():
    a = [{"x": 0.25, "y": 0.5, "z": 0.0}] * 21
    b = [{"x": 0.75, "y": 0.5, "z": 0.0}] * 21
    rec = lambda lm, label: {"image_path": "/x.png", "image_shape": [480, 640, 3],
                             "landmarks": lm, "handedness": {"label": label, "score": 1.0}}
    train = L.labels_from_files([rec(a, "Right"), rec(b, "Right"), rec(b, "Left")])
    val = L.labels_from_files([rec(a, "Right")])
    res = L.mean_hand_baseline(train, val)
    # The mean hand sits at x = (0.25 + 0.75 + 0.75) / 3 = 7/12: 1/3 of the width off.
    assert res["mpjpe_px"] == pytest.approx(640 / 3, rel=1e-4)
    assert res["mpjpe"] == pytest.approx(2 / 3, rel=1e-4)  # standardised: the image is 2 wide
    assert res["handedness_acc"] == 1.0  # 2 of 3 training hands are right hands
