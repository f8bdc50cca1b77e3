"""Generated from notebooks/06_coco_heatmap_training.ipynb by `python -m handpose_utils.export`.

Edit the notebook's `#@save models_heatmap` cells, not this file: the tests check that the two agree."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from handpose_utils.downloads import imagenet_state_dict, socket_timeout
from handpose_utils.skeletons import NUM_COCO_KEYPOINTS

# --- from notebooks/06_coco_heatmap_training.ipynb ---
RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
MOBILENETS = ("mobilenet_v2", "mobilenet_v3_large")  # torchvision, phone-sized
HRNETS = ("hrnet_w32",)  # timm (optional package), high resolution throughout
BACKBONES = RESNETS + MOBILENETS + HRNETS
REFERENCE_DECONV = (1024, 512, 256)  # the reference project's 2048->1024->512->256 head


def make_backbone(name: str = "resnet50", pretrained: bool = True,
                  log=print) -> tuple[nn.Module, int, int, bool]:
    """A feature extractor for the heatmap model: ``(module, out_channels, stride,
    loaded_pretrained)``.

    * ResNets (torchvision) without their pooling and classifier: stride 32, SimpleBaseline's.
    * MobileNetV2 / MobileNetV3-Large (torchvision): their ``features``, stride 32. Depthwise
      convolutions make them a fraction of a ResNet's size and multiply-adds.
    * HRNet-W32 (timm): keeps a stride-4 branch from start to end and fuses the lower
      resolutions into it again and again; its stride-4 output (32 channels) is what HRNet's
      pose head reads.

    ImageNet weights are downloaded once; if that fails, ``log`` says why and the backbone stays
    randomly initialised."""
    import torchvision

    if name not in BACKBONES:
        raise ValueError(f"backbone must be one of {BACKBONES}, got {name!r}")
    if name in HRNETS:
        return _hrnet_backbone(name, pretrained, log)
    model = getattr(torchvision.models, name)(weights=None)
    loaded = False
    if pretrained:
        weights = torchvision.models.get_model_weights(name).DEFAULT
        state = imagenet_state_dict(weights, f"the {name} backbone", log=log)
        if state is not None:
            model.load_state_dict(state)
            loaded = True
    if name in MOBILENETS:
        return model.features, model.features[-1].out_channels, 32, loaded
    body = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool,
                         model.layer1, model.layer2, model.layer3, model.layer4)  # stride 32
    return body, model.fc.in_features, 32, loaded


class HighResolutionBranch(nn.Module):
    """timm's HRNet as a backbone: only its stride-4 branch, in which the other branches have
    been fused at every stage."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[1]  # the features at strides 2 (stem), 4, 8, 16, 32


def _hrnet_backbone(name: str, pretrained: bool, log) -> tuple[nn.Module, int, int, bool]:
    try:
        import timm
    except ImportError:
        raise ImportError(f"the {name} backbone comes from timm, a well-kept library of image "
                          "models: `pip install timm` (Colab has it), or choose a ResNet or a "
                          "MobileNet") from None

    def create(weights: bool) -> nn.Module:
        # feature_location="": the branches themselves, not timm's classification neck
        return timm.create_model(name, pretrained=weights, features_only=True,
                                 feature_location="")

    net, loaded = None, False
    if pretrained:
        try:
            with socket_timeout(30.0):
                net, loaded = create(True), True
        except Exception as err:  # noqa: BLE001 - any failure means the same fallback
            if log:
                log(f"ImageNet weights for the {name} backbone unavailable ({type(err).__name__}:"
                    f" {str(err)[:160]}).\nContinuing with RANDOM initialisation: it trains "
                    "from scratch and learns much more slowly.")
    if net is None:
        net = create(False)
    return HighResolutionBranch(net), net.feature_info.channels()[1], 4, loaded


class SimpleBaseline(nn.Module):
    """``backbone`` -> deconvolutions (``deconv_channels``, 4x4, stride 2, BN, ReLU) -> 1x1 conv
    to ``num_keypoints`` heatmaps. Output stride: ``backbone_stride / 2^len(deconv_channels)``
    (32 / 8 = 4 by default). On HRNet's stride-4 features there are no deconvolutions: the 1x1
    convolution alone is HRNet's own pose head."""

    def __init__(self, backbone: nn.Module, in_channels: int,
                 num_keypoints: int = NUM_COCO_KEYPOINTS,
                 deconv_channels: Sequence[int] = (256, 256, 256), deconv_kernel: int = 4,
                 backbone_stride: int = 32):
        super().__init__()
        if deconv_kernel not in (2, 3, 4):
            raise ValueError(f"deconv_kernel must be 2, 3 or 4, got {deconv_kernel}")
        # Output size doubles exactly: (n - 1) * 2 - 2 * padding + kernel + output_padding = 2n.
        padding, output_padding = {4: (1, 0), 3: (1, 1), 2: (0, 0)}[deconv_kernel]
        self.backbone = backbone
        layers = []
        cin = in_channels
        for cout in deconv_channels:
            layers += [
                nn.ConvTranspose2d(cin, cout, deconv_kernel, stride=2, padding=padding,
                                   output_padding=output_padding, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            ]
            cin = cout
        self.deconv = nn.Sequential(*layers)
        self.head = nn.Conv2d(cin, num_keypoints, kernel_size=1)
        self.num_keypoints = num_keypoints
        self.stride = backbone_stride // 2 ** len(deconv_channels)
        self._init_head()

    def _init_head(self) -> None:
        # As the reference implementation: tiny initial heatmaps (std 0.001), so training starts
        # near the all-zero map instead of large random outputs.
        for m in self.deconv.modules():
            if isinstance(m, nn.ConvTranspose2d):
                nn.init.normal_(m.weight, std=0.001)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.head.weight, std=0.001)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 32 or x.shape[-2] % 32:
            # Otherwise the backbone rounds up and the heatmaps no longer line up with the input.
            raise ValueError(f"input height and width must be multiples of 32 (the backbone's "
                             f"stride), got {tuple(x.shape[-2:])}; e.g. 256x192 or 128x96")
        return self.head(self.deconv(self.backbone(x)))


def build_heatmap_model(backbone: str = "resnet50", pretrained: bool = True,
                        num_keypoints: int = NUM_COCO_KEYPOINTS,
                        deconv_channels: Sequence[int] = (256, 256, 256),
                        deconv_kernel: int = 4, log=print) -> SimpleBaseline:
    """The heatmap model on any of ``BACKBONES``: SimpleBaseline's deconvolution head on a
    stride-32 backbone (ResNet, MobileNet), HRNet's 1x1 head on HRNet (``deconv_channels`` is
    then not used). ``pretrained`` asks for ImageNet weights and falls back, with a printed
    message, to random initialisation; ``model.pretrained`` records which."""
    body, channels, stride, loaded = make_backbone(backbone, pretrained, log=log)
    deconv = tuple(deconv_channels) if stride == 32 else ()  # HRNet is at stride 4 already
    model = SimpleBaseline(body, channels, num_keypoints, deconv, deconv_kernel, stride)
    model.pretrained = loaded
    model.backbone_name = backbone
    return model


# --- from notebooks/06_coco_heatmap_training.ipynb ---
class KeypointMSELoss(nn.Module):
    """Mean squared error between predicted and target heatmaps, each joint's map multiplied by
    its target weight (MMPose's ``KeypointMSELoss``; SimpleBaseline's ``JointsMSELoss`` has an
    extra factor 0.5). ``targets``: ``{"heatmaps": (B, J, h, w), "target_weight": (B, J)}``, a
    ``(heatmaps, target_weight)`` pair, or a bare tensor (all weights 1)."""

    def __init__(self, use_target_weight: bool = True, loss_weight: float = 1.0):
        super().__init__()
        self.use_target_weight = use_target_weight
        self.loss_weight = loss_weight

    def forward(self, output: torch.Tensor, target) -> torch.Tensor:
        if isinstance(target, dict):
            heatmaps, weight = target["heatmaps"], target.get("target_weight")
        elif isinstance(target, (tuple, list)):
            heatmaps, weight = target
        else:
            heatmaps, weight = target, None
        if output.shape != heatmaps.shape:
            raise ValueError(f"output heatmaps {tuple(output.shape)} and targets "
                             f"{tuple(heatmaps.shape)} differ: check the codec's heatmap_size "
                             "against the model's output stride")
        loss = (output - heatmaps) ** 2
        if self.use_target_weight and weight is not None:
            # w_j = 0 (unlabelled, out of the crop): that joint's pixels count for nothing.
            loss = loss * weight.reshape(*weight.shape[:2], 1, 1)
        return loss.mean() * self.loss_weight


def step_lr(step_size: int = 10, gamma: float = 0.5):
    """The reference's schedule as a factory for ``TrainConfig(scheduler=...)``: the learning rate
    times ``gamma`` every ``step_size`` epochs."""

    def make(optimizer):
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma)

    return make
