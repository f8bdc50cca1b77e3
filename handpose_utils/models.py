"""Generated from notebooks/03_cnn_regression.ipynb by `python -m handpose_utils.export`.

Edit the notebook's `#@save models` cells, not this file: the tests check that the two agree."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from handpose_utils.data import DeviceAugment, PrepareBatch
from handpose_utils.engine import TrainConfig
from handpose_utils.metrics import KeypointMeter
from handpose_utils.skeletons import NUM_HAND_JOINTS


# --- from notebooks/03_cnn_regression.ipynb ---
def hands_prepare_batch() -> PrepareBatch:
    """The batch step of every hand model here: small turns (up to 20 degrees), scales (0.9 to
    1.1) and shifts (6 %) on the device, and no flips (a flipped right hand is a left hand)."""
    return PrepareBatch(DeviceAugment(flip_p=0.0, rotation=20, scale=(0.9, 1.1), translate=0.06))


# --- from notebooks/03_cnn_regression.ipynb ---
NUM_OUTPUTS_2D = 2 * NUM_HAND_JOINTS  # 42 numbers: x1, y1, x2, y2, ...


def conv_bn_act(cin: int, cout: int, stride: int = 1,
                act: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """3x3 convolution (no bias: BatchNorm has one), BatchNorm, activation."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        act(inplace=True),
    )


class SimpleCNN(nn.Module):
    """A plain CNN: 5 conv-BN-ReLU layers, global average pool, a small MLP.

    224 input -> 14x14 before pooling: conv s2 3->32, conv 32->64, maxpool, conv 64->128,
    maxpool, conv 128->128, maxpool, conv 128->256; head FC 256->256, ReLU, Dropout, FC -> 42.
    """

    def __init__(self, num_outputs: int = NUM_OUTPUTS_2D, dropout: float = 0.2):
        super().__init__()
        self.features = nn.Sequential(
            conv_bn_act(3, 32, stride=2),
            conv_bn_act(32, 64),
            nn.MaxPool2d(2),
            conv_bn_act(64, 128),
            nn.MaxPool2d(2),
            conv_bn_act(128, 128),
            nn.MaxPool2d(2),
            conv_bn_act(128, 256),
        )
        self.out_channels = 256  # later notebooks put other heads on self.features
        self.pool = nn.AdaptiveAvgPool2d(1)  # (B, 256, h, w) -> (B, 256, 1, 1): *where* is lost
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(256, 256),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(256, num_outputs),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)))


# --- from notebooks/03_cnn_regression.ipynb ---
class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: rescale each channel by a gate computed from the global average.

    ``gate`` is ``"hardsigmoid"`` (MobileNetV3: cheap, no exp) or ``"sigmoid"`` (the original SE).
    """

    def __init__(self, channels: int, reduction: int = 4, gate: str = "hardsigmoid"):
        super().__init__()
        squeezed = max(8, channels // reduction)
        self.fc1 = nn.Conv2d(channels, squeezed, 1)  # 1x1 convs = FC layers on the pooled vector
        self.fc2 = nn.Conv2d(squeezed, channels, 1)
        self.act = nn.ReLU(inplace=True)
        if gate not in ("hardsigmoid", "sigmoid"):
            raise ValueError(f"gate must be 'hardsigmoid' or 'sigmoid', got {gate!r}")
        self.gate = nn.Hardsigmoid() if gate == "hardsigmoid" else nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)  # squeeze: one number per channel
        return x * self.gate(self.fc2(self.act(self.fc1(s))))  # excite: a gate in [0, 1] each


class InvertedResidual(nn.Module):
    """MobileNetV2 inverted bottleneck: 1x1 expand, 3x3 depthwise, (optional SE), 1x1 linear
    projection. The projection has no activation (a ReLU would destroy information in the narrow
    output); the residual is added when the block keeps the resolution and the channel count."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int = 4, se: bool = False,
                 se_gate: str = "hardsigmoid"):
        super().__init__()
        hidden = cin * expansion
        self.use_residual = stride == 1 and cin == cout
        layers = [
            nn.Conv2d(cin, hidden, 1, bias=False),  # expand: cin -> hidden channels
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            # depthwise: groups=hidden gives each channel its own 3x3 filter (9 weights each)
            nn.Conv2d(hidden, hidden, 3, stride=stride, padding=1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
        ]
        if se:
            layers.append(SqueezeExcite(hidden, gate=se_gate))
        layers += [nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]  # linear
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.use_residual else y


# (out_channels, stride) per bottleneck, after the 32-channel stem: 224 -> 112 -> ... -> 7.
MOBILE_LITE_LAYOUT = ((32, 1), (48, 2), (48, 1), (64, 2), (64, 1), (96, 2), (128, 2))


class MobileLiteRegressor(nn.Module):
    """MobileLite: stem conv s2 3->32 (BN, ReLU6), seven inverted bottlenecks
    (expansion 4, :data:`MOBILE_LITE_LAYOUT`), global average pool, FC 128->256, ReLU6,
    Dropout 0.2, FC 256->num_outputs. ``se=True`` gives :class:`MobileLiteSE`."""

    def __init__(self, num_outputs: int = NUM_OUTPUTS_2D, expansion: int = 4, dropout: float = 0.2,
                 se: bool = False, se_gate: str = "hardsigmoid", layout=MOBILE_LITE_LAYOUT):
        super().__init__()
        layers = [conv_bn_act(3, 32, stride=2, act=nn.ReLU6)]
        cin = 32
        for cout, stride in layout:
            layers.append(InvertedResidual(cin, cout, stride, expansion, se=se, se_gate=se_gate))
            cin = cout
        self.features = nn.Sequential(*layers)
        self.out_channels = cin
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(cin, 256),
            nn.ReLU6(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(256, num_outputs),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)))


class MobileLiteSE(MobileLiteRegressor):
    """MobileLite with squeeze-and-excitation after every depthwise conv (channel attention)."""

    def __init__(self, num_outputs: int = NUM_OUTPUTS_2D, se_gate: str = "hardsigmoid", **kwargs):
        super().__init__(num_outputs, se=True, se_gate=se_gate, **kwargs)


# --- from notebooks/03_cnn_regression.ipynb ---
def soft_argmax(logits: torch.Tensor) -> torch.Tensor:
    """Heatmap logits ``(B, J, H, W)`` -> expected coordinates ``(B, J, 2)``, normalised.

    A softmax over each map's pixels gives a probability map ``p``; the output is its mean
    position, ``x = sum_rc p_rc (c + 0.5) / W`` and ``y = sum_rc p_rc (r + 0.5) / H``: the same
    normalised coordinates as the regression targets, and differentiable, so an L1 loss on
    coordinates trains it. Unlike an argmax it is not quantised to the map's grid.
    """
    b, j, h, w = logits.shape
    prob = torch.softmax(logits.flatten(2), dim=-1).view(b, j, h, w)  # each map sums to 1
    # pixel centres in normalised coordinates: column c covers [c/W, (c+1)/W]
    xs = (torch.arange(w, device=logits.device, dtype=prob.dtype) + 0.5) / w
    ys = (torch.arange(h, device=logits.device, dtype=prob.dtype) + 0.5) / h
    x = (prob.sum(2) * xs).sum(-1)  # marginal over rows, then its mean column
    y = (prob.sum(3) * ys).sum(-1)
    return torch.stack([x, y], dim=-1)


class SoftArgmax2d(nn.Module):
    """Heatmap logits ``(B, J, H, W)`` -> ``(B, 2J)`` (x1, y1, x2, ...), the layout of the
    regression targets, through ``soft_argmax`` (a function like :func:`soft_argmax`)."""

    def __init__(self, beta: float = 1.0,
                 soft_argmax: Callable[[torch.Tensor], torch.Tensor] = soft_argmax):
        super().__init__()
        self.beta = beta  # a larger beta sharpens the softmax (beta -> inf: the argmax)
        self.fn = soft_argmax

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """The softmax over each map's pixels: ``(B, J, H, W)`` maps that each sum to 1."""
        b, j, h, w = logits.shape
        return torch.softmax(self.beta * logits.float().flatten(2), dim=-1).view(b, j, h, w)

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return self.fn(self.beta * logits.float()).flatten(1)


# --- from notebooks/03_cnn_regression.ipynb ---
class UNetSoftArgmax(nn.Module):
    """A small U-Net with a soft-argmax head: ``(B, 3, S, S)`` -> ``(B, 2J)`` normalised (x, y).

    Encoder: two conv-BN-ReLU layers per level at strides 2, 4, 8 and 16 (``width`` x 1, 2, 4, 8
    channels). Decoder: upsample, concatenate the encoder's map of the same stride (the skip
    connection), one conv, back to stride 4, where a 1x1 conv makes one logit map per joint for
    :class:`SoftArgmax2d`, which runs ``soft_argmax`` (a function like :func:`soft_argmax`).
    """

    def __init__(self, num_outputs: int = NUM_OUTPUTS_2D, width: int = 16,
                 soft_argmax: Callable[[torch.Tensor], torch.Tensor] = soft_argmax):
        super().__init__()
        if num_outputs % 2:
            raise ValueError("UNetSoftArgmax outputs (x, y) pairs: num_outputs must be even")
        w = width
        self.down2 = nn.Sequential(conv_bn_act(3, w, stride=2), conv_bn_act(w, w))
        self.down4 = nn.Sequential(nn.MaxPool2d(2), conv_bn_act(w, 2 * w), conv_bn_act(2 * w, 2 * w))
        self.down8 = nn.Sequential(nn.MaxPool2d(2), conv_bn_act(2 * w, 4 * w),
                                   conv_bn_act(4 * w, 4 * w))
        self.down16 = nn.Sequential(nn.MaxPool2d(2), conv_bn_act(4 * w, 8 * w),
                                    conv_bn_act(8 * w, 8 * w))
        self.up8 = conv_bn_act(8 * w + 4 * w, 4 * w)
        self.up4 = conv_bn_act(4 * w + 2 * w, 2 * w)
        self.heatmaps = nn.Conv2d(2 * w, num_outputs // 2, 1)
        self.soft_argmax = SoftArgmax2d(soft_argmax=soft_argmax)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The per-joint logit maps at stride 4, before the soft-argmax (for plotting)."""
        x4 = self.down4(self.down2(x))
        x8 = self.down8(x4)
        x16 = self.down16(x8)  # each unit here sees the whole hand: which finger is which
        up = nn.functional.interpolate
        u8 = self.up8(torch.cat([x8, up(x16, size=x8.shape[-2:])], 1))  # skip: stride-8 detail
        u4 = self.up4(torch.cat([x4, up(u8, size=x4.shape[-2:])], 1))  # skip: stride-4 detail
        return self.heatmaps(u4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.soft_argmax(self.logits(x))


# --- from notebooks/03_cnn_regression.ipynb ---
class SoftArgmaxRegressor(nn.Module):
    """SimpleCNN's convolutions at stride 8 (no last pooling), a 1x1 conv to one map per joint
    and :class:`SoftArgmax2d`: the soft-argmax head without the U-Net's context and detail."""

    def __init__(self, num_outputs: int = NUM_OUTPUTS_2D,
                 soft_argmax: Callable[[torch.Tensor], torch.Tensor] = soft_argmax):
        super().__init__()
        if num_outputs % 2:
            raise ValueError("SoftArgmaxRegressor outputs (x, y) pairs: num_outputs must be even")
        self.features = nn.Sequential(
            conv_bn_act(3, 32, stride=2), conv_bn_act(32, 64), nn.MaxPool2d(2),
            conv_bn_act(64, 128), nn.MaxPool2d(2), conv_bn_act(128, 128), conv_bn_act(128, 256))
        self.out_channels = 256
        self.heatmaps = nn.Conv2d(256, num_outputs // 2, 1)
        self.soft_argmax = SoftArgmax2d(soft_argmax=soft_argmax)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.soft_argmax(self.heatmaps(self.features(x)))


def _resnet(name: str, num_outputs: int, pretrained: bool) -> nn.Module:
    """A torchvision ResNet with ``fc`` replaced by a ``num_outputs`` layer. Random weights by
    default (tests and smoke runs have no network); ``pretrained=True`` loads ImageNet weights
    once, or says it is offline and keeps the random initialisation."""
    import torchvision

    from handpose_utils.pretrained import imagenet_state_dict

    model = getattr(torchvision.models, name)(weights=None)
    if pretrained:
        weights = torchvision.models.get_model_weights(name).DEFAULT
        state = imagenet_state_dict(weights, f"the {name} backbone")
        if state is not None:
            model.load_state_dict(state)
    model.fc = nn.Linear(model.fc.in_features, num_outputs)
    return model


REGRESSORS = {"simple": SimpleCNN, "mobile": MobileLiteRegressor, "mobile_se": MobileLiteSE,
              "simple_softargmax": SoftArgmaxRegressor, "unet_softargmax": UNetSoftArgmax}
MODEL_NAMES = (*REGRESSORS, "resnet18", "resnet50")


def build_model(name: str, num_outputs: int = NUM_OUTPUTS_2D, pretrained: bool = False,
                soft_argmax: Callable[[torch.Tensor], torch.Tensor] | None = None,
                **kwargs) -> nn.Module:
    """A regressor by name (:data:`MODEL_NAMES`); the course's own always start from scratch,
    ``pretrained=True`` loads ImageNet weights into a ResNet. ``soft_argmax`` replaces the
    function of the soft-argmax heads (the other models have none and ignore it). ``kwargs`` go
    to the constructor (``dropout=0.1``, ``se_gate="sigmoid"``, ``width=24``)."""
    key = name.lower().replace("-", "_")
    if key in ("resnet18", "resnet34", "resnet50"):
        return _resnet(key, num_outputs, pretrained)
    if key not in REGRESSORS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    if soft_argmax is not None and key.endswith("softargmax"):
        kwargs["soft_argmax"] = soft_argmax
    return REGRESSORS[key](num_outputs, **kwargs)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def as_keypoints(outputs: torch.Tensor, dims: int = 2) -> torch.Tensor:
    """``(B, J*dims)`` regression outputs as ``(B, J, dims)`` points (a view, no copy)."""
    if outputs.shape[-1] % dims:
        raise ValueError(f"last dimension {outputs.shape[-1]} is not a multiple of {dims}")
    return outputs.reshape(*outputs.shape[:-1], outputs.shape[-1] // dims, dims)


# --- from notebooks/03_cnn_regression.ipynb ---
def hands_recipe(model: nn.Module, epochs: int, lr: float = 3e-3,
                 warmup_epochs: int | None = None, **config):
    """Section 4's recipe for any regressor: ``(config, fit_kwargs)`` for ``fit(model,
    train_loader, val_loader, config, **fit_kwargs)``, the best epoch chosen by validation
    PCK@0.05. ``warmup_epochs`` None: one when there are more than two epochs. ``config``: more
    ``TrainConfig`` fields (checkpoints, resume, ...)."""
    if warmup_epochs is None:
        warmup_epochs = 1 if epochs > 2 else 0
    config = TrainConfig(epochs=epochs, lr=lr, warmup_epochs=warmup_epochs,
                         best_metric="val_pck", mode="max", **config)
    fit_kwargs = {"loss_fn": nn.L1Loss(), "prepare_batch": hands_prepare_batch(),
                  "metrics": KeypointMeter(alphas=(0.05, 0.1, 0.2))}
    return config, fit_kwargs
