"""Notebook 06's trunks (:func:`make_backbone`) and what one costs (:func:`measure_cost`)."""

from __future__ import annotations

import functools
import time

import torch
from torch import nn

from .pretrained import fetch_weights, imagenet_state_dict

RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
MOBILENETS = ("mobilenet_v2", "mobilenet_v3_large")  # torchvision, phone-sized
HRNETS = ("hrnet_w32",)  # timm (optional package), high resolution throughout
BACKBONES = RESNETS + MOBILENETS + HRNETS


def make_backbone(name: str = "resnet50", pretrained: bool = True,
                  log=print) -> tuple[nn.Module, int, int, bool]:
    """``(module, out_channels, stride, loaded_pretrained)`` of a trunk for the heatmap model.
    The ResNets' and MobileNets' (torchvision) features are at stride 32; HRNet-W32 (timm) gives
    its stride-4 branch, into which it fuses the lower resolutions again and again (what HRNet's
    pose head reads). Without ImageNet weights, ``log`` says why and the trunk stays random."""
    import torchvision
    if name not in BACKBONES:
        raise ValueError(f"backbone must be one of {BACKBONES}, got {name!r}")
    if name in HRNETS:
        return _hrnet_backbone(name, pretrained, log)
    model = getattr(torchvision.models, name)(weights=None)
    weights = torchvision.models.get_model_weights(name).DEFAULT
    state = imagenet_state_dict(weights, f"the {name} backbone", log=log) if pretrained else None
    if loaded := state is not None:
        model.load_state_dict(state)
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

    # feature_location="": the branches themselves, not timm's classification neck
    create = functools.partial(timm.create_model, name, features_only=True, feature_location="")
    net = (fetch_weights(lambda: create(pretrained=True), f"the {name} backbone", log=log)
           if pretrained else None)
    loaded = net is not None
    if not loaded:
        net = create(pretrained=False)
    return HighResolutionBranch(net), net.feature_info.channels()[1], 4, loaded


def measure_cost(net: nn.Module, input_size, batch: int = 16, repeats: int = 3) -> dict:
    """``{"params", "macs", "infer"}`` of ``net`` at ``input_size`` ``(W, H)`` on its device:
    multiply-adds of one image (torch counts 2 FLOPs for each; papers call a multiply-add a
    "FLOP") and inference images/s (fp32, channels-last, ``repeats`` batches after a warm-up)."""
    from torch.utils.flop_counter import FlopCounterMode

    from .models import count_parameters
    device = next(net.parameters()).device
    net = net.eval().to(memory_format=torch.channels_last)
    x = torch.randn(batch, 3, input_size[1], input_size[0], device=device)
    x = x.contiguous(memory_format=torch.channels_last)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    with torch.no_grad():
        with FlopCounterMode(display=False) as counter:
            net(x[:1])
        net(x)
        sync()
        start = time.perf_counter()
        for _ in range(repeats):
            net(x)
        sync()
    return {"params": count_parameters(net), "macs": counter.get_total_flops() / 2,
            "infer": batch * repeats / (time.perf_counter() - start)}


def cost_table(rows: dict[str, dict], input_size, device: str) -> str:
    """One line per backbone: params, GMACs, infer/train img/s, val AP (NaN: only measured)."""
    nan = float("nan")
    lines = [f"{'backbone':20s} {'params':>8s} {'GMACs':>7s} {'infer img/s':>12s} "
             f"{'train img/s':>12s} {'val AP':>7s}   (input {input_size[0]} wide x "
             f"{input_size[1]} high, {device})"]
    for name, r in rows.items():
        lines.append(f"{name:20s} {r['params'] / 1e6:7.1f}M {r['macs'] / 1e9:7.2f} "
                     f"{r['infer']:12.1f} {r.get('train', nan):12.1f} {r.get('ap', nan):7.3f}"
                     + ("" if "ap" in r else "   (not trained: see COMPARE_TRAIN)"))
    return "\n".join(lines)
