"""Backbones for notebook 06's heatmap model, and what one costs.

:func:`make_backbone` returns a feature extractor with its channels and stride: torchvision's
ResNets and MobileNets (stride 32, under SimpleBaseline's deconvolution head) or timm's HRNet-W32
(its stride-4 branch, under a 1x1 head alone). :func:`measure_cost` counts a model's parameters
and multiply-adds and times its inference; :func:`cost_table` prints the comparison.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from .downloads import imagenet_state_dict, socket_timeout

RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
MOBILENETS = ("mobilenet_v2", "mobilenet_v3_large")  # torchvision, phone-sized
HRNETS = ("hrnet_w32",)  # timm (optional package), high resolution throughout
BACKBONES = RESNETS + MOBILENETS + HRNETS


def make_backbone(name: str = "resnet50", pretrained: bool = True,
                  log=print) -> tuple[nn.Module, int, int, bool]:
    """A feature extractor for the heatmap model: ``(module, out_channels, stride,
    loaded_pretrained)``. ResNets without their pooling and classifier and the MobileNets'
    ``features`` (torchvision) are at stride 32; HRNet-W32 (timm) gives its stride-4 branch, into
    which it fuses the lower resolutions again and again (what HRNet's pose head reads).
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
    """timm's HRNet as a backbone: only its stride-4 branch."""

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


def multiply_adds(net: nn.Module, input_size) -> float:
    """Multiply-adds of one forward pass of one ``(W, H)`` image (torch's FLOP counter counts 2
    FLOPs for each; papers quote multiply-adds as "FLOPs")."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, 3, input_size[1], input_size[0], device=next(net.parameters()).device)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net.eval()(x)
    return counter.get_total_flops() / 2


def images_per_second(net: nn.Module, input_size, batch: int = 16, repeats: int = 3) -> float:
    """Inference images/s on the model's device, fp32, channels-last, after one warm-up batch."""
    device = next(net.parameters()).device
    net = net.eval().to(memory_format=torch.channels_last)
    x = torch.randn(batch, 3, input_size[1], input_size[0], device=device)
    x = x.contiguous(memory_format=torch.channels_last)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    with torch.no_grad():
        net(x)
        sync()
        start = time.perf_counter()
        for _ in range(repeats):
            net(x)
        sync()
    return batch * repeats / (time.perf_counter() - start)


def measure_cost(net: nn.Module, input_size) -> dict:
    """``{"params", "macs", "infer"}``: parameters, multiply-adds of one image and inference
    images per second of ``net`` at ``input_size`` ``(W, H)`` on its device."""
    from .models import count_parameters

    return {"params": count_parameters(net), "macs": multiply_adds(net, input_size),
            "infer": images_per_second(net, input_size)}


def cost_table(rows: dict[str, dict], input_size, device: str) -> str:
    """One line per backbone: parameters, GMACs, inference and training images/s and validation
    AP (``"train"`` and ``"ap"`` are NaN for a backbone that was only measured)."""
    nan = float("nan")
    lines = [f"{'backbone':20s} {'params':>8s} {'GMACs':>7s} {'infer img/s':>12s} "
             f"{'train img/s':>12s} {'val AP':>7s}   (input {input_size[0]} wide x {input_size[1]} high, "
             f"{device})"]
    for name, r in rows.items():
        lines.append(f"{name:20s} {r['params'] / 1e6:7.1f}M {r['macs'] / 1e9:7.2f} "
                     f"{r['infer']:12.1f} {r.get('train', nan):12.1f} {r.get('ap', nan):7.3f}"
                     + ("" if "ap" in r else "   (not trained: see COMPARE_TRAIN)"))
    return "\n".join(lines)
