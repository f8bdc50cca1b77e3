"""Generated from notebooks/06_coco_heatmap_training.ipynb by `python -m handpose_utils.export`.

Edit the notebook's `#@save models_heatmap` cells, not this file: the tests check that the two agree."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from handpose_utils.backbones import cost_table, make_backbone, measure_cost  # noqa: F401
from handpose_utils.coco_eval import CocoKeypointMeter
from handpose_utils.engine import TrainConfig
from handpose_utils.skeletons import NUM_COCO_KEYPOINTS
from handpose_utils.topdown_batches import PrepareTopDown

# --- from notebooks/06_coco_heatmap_training.ipynb ---
REFERENCE_DECONV = (1024, 512, 256)  # a wider head: 2048 -> 1024 -> 512 -> 256 channels


class SimpleBaseline(nn.Module):
    """``backbone`` -> deconvolutions (4x4, stride 2, BN, ReLU) -> 1x1 conv to heatmaps, at
    stride ``backbone_stride / 2^len(deconv_channels)``."""

    def __init__(self, backbone: nn.Module, in_channels: int,
                 num_keypoints: int = NUM_COCO_KEYPOINTS,
                 deconv_channels: Sequence[int] = (256, 256, 256), deconv_kernel: int = 4,
                 backbone_stride: int = 32):
        super().__init__()
        # Output size doubles exactly: (n - 1) * 2 - 2 * padding + kernel + output_padding = 2n.
        padding, output_padding = {4: (1, 0), 3: (1, 1), 2: (0, 0)}[deconv_kernel]  # 4x4, 3x3 or 2x2
        self.backbone = backbone
        layers, cin = [], in_channels
        for cout in deconv_channels:
            layers += [nn.ConvTranspose2d(cin, cout, deconv_kernel, stride=2, padding=padding,
                                          output_padding=output_padding, bias=False),
                       nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            cin = cout
        self.deconv = nn.Sequential(*layers)
        self.head = nn.Conv2d(cin, num_keypoints, kernel_size=1)
        self.num_keypoints = num_keypoints
        self.stride = backbone_stride // 2 ** len(deconv_channels)
        # Tiny initial heatmaps (std 0.001): training starts near the all-zero map.
        for m in self.deconv.modules():
            if isinstance(m, nn.ConvTranspose2d):
                nn.init.normal_(m.weight, std=0.001)
        nn.init.normal_(self.head.weight, std=0.001)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 32 or x.shape[-2] % 32:
            # Otherwise the backbone rounds up and the heatmaps no longer line up with the input.
            raise ValueError(f"input height and width must be multiples of 32 (the backbone's stride), "
                             f"got (height, width) = {tuple(x.shape[-2:])}; e.g. (256, 192) or (128, 96)")
        return self.head(self.deconv(self.backbone(x)))


def build_heatmap_model(backbone: str = "resnet50", pretrained: bool = True,
                        num_keypoints: int = NUM_COCO_KEYPOINTS,
                        deconv_channels: Sequence[int] = (256, 256, 256),
                        deconv_kernel: int = 4, log=print) -> SimpleBaseline:
    """The heatmap model on any of ``backbones.BACKBONES`` (HRNet: the 1x1 head alone);
    ``model.pretrained`` says whether ImageNet weights were loaded."""
    body, channels, stride, loaded = make_backbone(backbone, pretrained, log=log)
    deconv = tuple(deconv_channels) if stride == 32 else ()  # HRNet is at stride 4 already
    model = SimpleBaseline(body, channels, num_keypoints, deconv, deconv_kernel, stride)
    model.pretrained, model.backbone_name = loaded, backbone
    return model


# --- from notebooks/06_coco_heatmap_training.ipynb ---
class KeypointMSELoss(nn.Module):
    """Heatmap MSE, each joint's map times its target weight. ``target``: ``{"heatmaps",
    "target_weight"}``, a ``(heatmaps, target_weight)`` pair, or bare heatmaps (weights 1)."""

    def __init__(self, use_target_weight: bool = True, loss_weight: float = 1.0):
        super().__init__()
        self.use_target_weight = use_target_weight
        self.loss_weight = loss_weight

    def forward(self, output: torch.Tensor, target) -> torch.Tensor:
        heatmaps, weight = ((target["heatmaps"], target.get("target_weight")) if isinstance(target, dict)
                            else tuple(target) if isinstance(target, (tuple, list)) else (target, None))
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
    """A step schedule for ``TrainConfig(scheduler=...)``: the rate times ``gamma`` every
    ``step_size`` epochs."""
    return lambda optimizer: torch.optim.lr_scheduler.StepLR(optimizer, step_size, gamma)


# --- from notebooks/06_coco_heatmap_training.ipynb ---
def coco_recipe(model, codec, ann_file, val_ids, epochs: int, lr: float = 1e-3,
                schedule: str = "step", colour_aug: dict | None = None, **config):
    """Section 8's recipe: ``(config, fit_kwargs)`` for ``fit(model, ..., config, **fit_kwargs)``;
    ``schedule`` "step" (StepLR(10, 0.5)) or "cosine"; ``config``: more ``TrainConfig`` fields."""
    config = TrainConfig(epochs=epochs, scheduler=step_lr(10, 0.5) if schedule == "step" else schedule,
                         best_metric="val_AP", mode="max", **config)
    return config, {"loss_fn": KeypointMSELoss(), "prepare_batch": PrepareTopDown(**(colour_aug or {})),
                    "metrics": CocoKeypointMeter(ann_file, codec, image_ids=val_ids),
                    "optimizer": torch.optim.Adam(model.parameters(), lr=lr)}  # SimpleBaseline's
