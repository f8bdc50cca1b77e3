"""The reference backbones: layouts, output shapes, configurable heads, helpers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from handpose_utils.models import (
    MOBILE_LITE_LAYOUT,
    InvertedResidual,
    MobileLiteRegressor,
    MobileLiteSE,
    SimpleCNN,
    SqueezeExcite,
    as_keypoints,
    build_model,
    count_parameters,
)


@pytest.mark.parametrize("name", ["simple", "mobile", "mobile_se"])
def test_output_shape_and_custom_head(name):
    torch.manual_seed(0)
    model = build_model(name).eval()
    x = torch.randn(2, 3, 64, 64)
    assert model(x).shape == (2, 42)
    assert build_model(name, num_outputs=63).eval()(x).shape == (2, 63)


def test_simple_cnn_layout():
    model = SimpleCNN()
    convs = [m for m in model.features if isinstance(m, nn.Sequential)]
    assert [(c[0].in_channels, c[0].out_channels, c[0].stride[0]) for c in convs] == [
        (3, 32, 2), (32, 64, 1), (64, 128, 1), (128, 128, 1), (128, 256, 1)]
    # every conv is followed by BatchNorm and ReLU
    assert all(isinstance(c[1], nn.BatchNorm2d) and isinstance(c[2], nn.ReLU) for c in convs)
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.features) == 3
    # stride 2 then three pools: 224 -> 14
    assert model.features(torch.zeros(1, 3, 224, 224)).shape == (1, 256, 14, 14)
    linears = [m for m in model.head if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(256, 256), (256, 42)]
    assert any(isinstance(m, nn.Dropout) and m.p == 0.2 for m in model.head)


def test_mobile_lite_layout():
    model = MobileLiteRegressor()
    stem, *blocks = model.features
    assert stem[0].stride == (2, 2) and stem[0].out_channels == 32
    assert isinstance(stem[2], nn.ReLU6)
    assert all(isinstance(b, InvertedResidual) for b in blocks)
    assert [(b.block[-2].out_channels, b.block[3].stride[0]) for b in blocks] == list(
        MOBILE_LITE_LAYOUT)
    # residual exactly when stride 1 and channels in == out
    assert [b.use_residual for b in blocks] == [True, False, True, False, True, False, False]
    # expansion 4 and a depthwise 3x3
    b = blocks[1]
    assert b.block[0].out_channels == 4 * 32 and b.block[3].groups == 4 * 32
    # linear projection: the block ends with BatchNorm, no activation
    assert isinstance(b.block[-1], nn.BatchNorm2d)
    assert model.features(torch.zeros(1, 3, 224, 224)).shape == (1, 128, 7, 7)
    assert not any(isinstance(m, SqueezeExcite) for m in model.modules())


def test_residual_adds_the_input():
    torch.manual_seed(0)
    block = InvertedResidual(8, 8, stride=1).eval()
    x = torch.randn(1, 8, 6, 6)
    assert torch.allclose(block(x), x + block.block(x))
    assert not InvertedResidual(8, 16, stride=1).use_residual


def test_mobile_se_has_one_se_per_block_after_depthwise():
    model = MobileLiteSE()
    blocks = list(model.features)[1:]
    for b in blocks:
        kinds = [type(m) for m in b.block]
        se_at = kinds.index(SqueezeExcite)
        assert kinds[se_at - 3] is nn.Conv2d and b.block[se_at - 3].groups > 1  # depthwise first
        assert kinds[se_at + 1] is nn.Conv2d  # then the projection
    assert count_parameters(model) > count_parameters(MobileLiteRegressor())
    se = SqueezeExcite(16, gate="sigmoid")
    with torch.no_grad():  # a zero gate input gives sigmoid(0) = 0.5 on every channel
        for p in se.parameters():
            p.zero_()
    x = torch.randn(2, 16, 3, 3)
    assert torch.allclose(se(x), 0.5 * x)


def test_count_parameters_and_as_keypoints():
    lin = nn.Linear(3, 2)
    assert count_parameters(lin) == 8
    lin.bias.requires_grad_(False)
    assert count_parameters(lin) == 6 and count_parameters(lin, trainable_only=False) == 8
    out = torch.arange(2 * 42.0).reshape(2, 42)
    kp = as_keypoints(out)
    assert kp.shape == (2, 21, 2) and kp[1, 3].tolist() == [48.0, 49.0]
    assert as_keypoints(torch.zeros(2, 63), dims=3).shape == (2, 21, 3)
    with pytest.raises(ValueError):
        as_keypoints(torch.zeros(2, 43))


def test_build_model_names():
    assert isinstance(build_model("mobile_se"), MobileLiteSE)
    resnet = build_model("resnet18", num_outputs=10)
    assert resnet.fc.out_features == 10
    with pytest.raises(ValueError, match="unknown model"):
        build_model("vgg")


def test_gradients_reach_the_stem():
    model = build_model("mobile")
    loss = model(torch.randn(2, 3, 32, 32)).square().mean()
    loss.backward()
    assert model.features[0][0].weight.grad.abs().sum() > 0


def test_soft_argmax_returns_the_expected_position():
    from handpose_utils.models import SoftArgmax2d

    logits = torch.full((1, 2, 8, 16), -1e4)
    logits[0, 0, 3, 5] = 0.0  # joint 0: all mass on row 3, column 5
    logits[0, 1, :, :] = 0.0  # joint 1: uniform -> the centre
    out = SoftArgmax2d()(logits)
    assert torch.allclose(out[0, :2], torch.tensor([(5 + 0.5) / 16, (3 + 0.5) / 8]))
    assert torch.allclose(out[0, 2:], torch.tensor([0.5, 0.5]))
    # two equal peaks: the mean lies between them (not quantised to the grid)
    logits = torch.full((1, 1, 4, 4), -1e4)
    logits[0, 0, 1, 1] = logits[0, 0, 1, 2] = 0.0
    assert torch.allclose(SoftArgmax2d()(logits)[0], torch.tensor([0.5, 1.5 / 4]))


def test_soft_argmax_regressor_trains_like_the_others():
    model = build_model("simple_softargmax")
    x = torch.randn(2, 3, 64, 64)
    out = model(x)
    assert out.shape == (2, 42) and (out > 0).all() and (out < 1).all()
    out.sum().backward()
    assert model.features[0][0].weight.grad is not None


def test_unet_soft_argmax_shapes_and_gradients():
    from handpose_utils.models import UNetSoftArgmax

    torch.manual_seed(0)
    model = build_model("unet_softargmax")
    assert isinstance(model, UNetSoftArgmax)
    for size in (64, 80, 96):  # any multiple of 16: the decoder upsamples to the skip's size
        x = torch.randn(2, 3, size, size)
        assert model.logits(x).shape == (2, 21, size // 4, size // 4)
        out = model(x)
        assert out.shape == (2, 42) and (out > 0).all() and (out < 1).all()
    out.sum().backward()
    # the gradient reaches the first layer through both the deep path and the skips
    assert model.down2[0][0].weight.grad.abs().sum() > 0
    assert build_model("unet_softargmax", width=8)(torch.randn(1, 3, 64, 64)).shape == (1, 42)
    with pytest.raises(ValueError, match="even"):
        UNetSoftArgmax(num_outputs=43)


def test_unet_soft_argmax_learns_a_fixed_point():
    # A sanity check that the whole path (U-Net, soft-argmax, L1) can fit: every joint of every
    # image at one known position; a few Adam steps must move the prediction most of the way.
    torch.manual_seed(0)
    model = build_model("unet_softargmax", width=8)
    x = torch.randn(4, 3, 64, 64)
    target = torch.full((4, 42), 0.2)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    start = (model(x) - target).abs().mean().item()
    for _ in range(60):
        loss = (model(x) - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.3 * start
