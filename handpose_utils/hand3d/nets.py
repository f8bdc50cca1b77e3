"""Generated from notebooks/07_rhd_3d_hand_pose.ipynb by `python -m handpose_utils.export`.

Edit the notebook's `#@save hand3d.nets` cells, not this file: the tests check that the two agree."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from handpose_utils.hand3d.canonical import axis_angle_to_matrix, from_canonical

# --- from notebooks/07_rhd_3d_hand_pose.ipynb ---
NUM_KEYPOINTS = 21
POSE_PRIOR_VARIANTS = ("proposed", "direct")


def _ch(c: int, width: float) -> int:
    return max(4, int(round(c * width)))  # channels scaled by width, at least 4


def conv_block(cin: int, cout: int, kernel: int = 3, stride: int = 1,
               batch_norm: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2,
                                         bias=not batch_norm)]  # BatchNorm has its own bias
    if batch_norm:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class VGGTrunk(nn.Sequential):
    """``layers[i]`` 3x3 convolutions in block i, 2x2 max-pooling between blocks, stride 8."""

    def __init__(self, layers, channels=(64, 128, 256, 512), width: float = 1.0,
                 batch_norm: bool = True, in_channels: int = 3):
        mods: list[nn.Module] = []
        cin = in_channels
        for b, (n, c) in enumerate(zip(layers, channels)):
            cout = _ch(c, width)
            for _ in range(n):
                mods.append(conv_block(cin, cout, batch_norm=batch_norm))
                cin = cout
            if b < len(layers) - 1:
                mods.append(nn.MaxPool2d(2, 2))
        super().__init__(*mods)
        self.out_channels = cin


# --- from notebooks/07_rhd_3d_hand_pose.ipynb ---
class HandSegNet(nn.Module):
    def __init__(self, width: float = 1.0, batch_norm: bool = True):
        super().__init__()
        self.trunk = VGGTrunk((2, 2, 4, 4), width=width, batch_norm=batch_norm)
        c = self.trunk.out_channels
        self.head = nn.Sequential(
            conv_block(c, _ch(512, width), batch_norm=batch_norm),
            conv_block(_ch(512, width), _ch(128, width), batch_norm=batch_norm),
            conv_block(_ch(128, width), _ch(512, width), kernel=1, batch_norm=batch_norm),
            nn.Conv2d(_ch(512, width), 2, 1))  # linear logits: no ReLU, no BatchNorm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.head(self.trunk(x))  # at 1/8 of the input
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


# --- from notebooks/07_rhd_3d_hand_pose.ipynb ---
class PoseNet(nn.Module):
    def __init__(self, width: float = 1.0, batch_norm: bool = True, stages: int = 3,
                 num_keypoints: int = NUM_KEYPOINTS):
        super().__init__()
        if stages < 1:
            raise ValueError(f"stages must be at least 1, got {stages}")
        self.trunk = VGGTrunk((2, 2, 4, 2), width=width, batch_norm=batch_norm)
        c, c256, c128 = self.trunk.out_channels, _ch(256, width), _ch(128, width)
        enc = [conv_block(c, c256, batch_norm=batch_norm)]
        enc += [conv_block(c256, c256, batch_norm=batch_norm) for _ in range(3)]
        enc += [conv_block(c256, c128, batch_norm=batch_norm)]
        self.encoding = nn.Sequential(*enc)  # the 128-channel encoding every stage reads
        self.stages = nn.ModuleList([nn.Sequential(
            conv_block(c128, _ch(512, width), kernel=1, batch_norm=batch_norm),
            nn.Conv2d(_ch(512, width), num_keypoints, 1))])  # linear score maps
        for _ in range(stages - 1):  # refinement: encoding + previous maps, wide 7x7 context
            layers = [conv_block(c128 + num_keypoints, c128, kernel=7, batch_norm=batch_norm)]
            layers += [conv_block(c128, c128, kernel=7, batch_norm=batch_norm) for _ in range(4)]
            layers += [conv_block(c128, c128, kernel=1, batch_norm=batch_norm),
                       nn.Conv2d(c128, num_keypoints, 1)]
            self.stages.append(nn.Sequential(*layers))
        self.num_keypoints = num_keypoints

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoding(self.trunk(x))
        maps = [self.stages[0](features)]
        for stage in self.stages[1:]:
            maps.append(stage(torch.cat([features, maps[-1]], dim=1)))
        return torch.stack(maps, dim=1)  # all stages: each one is supervised


# --- from notebooks/07_rhd_3d_hand_pose.ipynb ---
def _conv_stack(cin: int, channels, batch_norm: bool) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = []
    for c in channels:  # each pair: 3x3 stride 1, then 3x3 stride 2 (halves the map)
        layers += [conv_block(cin, c, batch_norm=batch_norm),
                   conv_block(c, c, stride=2, batch_norm=batch_norm)]
        cin = c
    return nn.Sequential(*layers), cin


def _mlp(cin: int, hidden, cout: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(cin, h), nn.ReLU(inplace=True), nn.Dropout(dropout)]
        cin = h
    layers.append(nn.Linear(cin, cout))  # linear output
    return nn.Sequential(*layers)


class PosePrior(nn.Module):
    """Score maps (B, 21, S, S) + hand side ((B,) 0 left, 1 right, or (B, 2) one-hot), or one dict
    of both (the engine's) -> {"xyz": (B, 21, 3)}, plus "canonical" and "rotation" if proposed."""

    def __init__(self, variant: str = "proposed", map_size: int = 32, dropout: float = 0.2,
                 batch_norm: bool = False, num_keypoints: int = NUM_KEYPOINTS, decode=None):
        super().__init__()
        self.decode = decode or from_canonical  # canonical pose + viewpoint -> camera frame
        if variant not in POSE_PRIOR_VARIANTS:
            raise ValueError(f"variant must be one of {POSE_PRIOR_VARIANTS}, got {variant!r}")
        self.variant = variant
        self.num_keypoints = num_keypoints
        self.map_size = map_size
        flat = math.ceil(map_size / 8) ** 2  # three stride-2 layers
        self.pose_conv, c = _conv_stack(num_keypoints, (32, 64, 128), batch_norm)
        self.pose_fc = _mlp(c * flat + 2, (512, 512), num_keypoints * 3, dropout)
        if variant == "proposed":  # a second branch for the viewpoint: 3 axis-angle numbers
            self.view_conv, c = _conv_stack(num_keypoints, (64, 128, 256), batch_norm)
            self.view_fc = _mlp(c * flat + 2, (256, 128), 3, dropout)

    @staticmethod
    def _side_onehot(hand_side: torch.Tensor, batch: int, like: torch.Tensor) -> torch.Tensor:
        hand_side = torch.as_tensor(hand_side, device=like.device)
        if hand_side.dim() == 1:
            hand_side = F.one_hot(hand_side.long(), 2)
        if hand_side.shape != (batch, 2):
            raise ValueError(f"hand_side must be (B,) or (B, 2), got {tuple(hand_side.shape)}")
        return hand_side.to(like.dtype)

    def forward(self, scoremaps, hand_side=None) -> dict[str, torch.Tensor]:
        if isinstance(scoremaps, dict):
            scoremaps, hand_side = scoremaps["scoremaps"], scoremaps["hand_side"]
        if hand_side is None:
            raise ValueError("PosePrior needs the hand side (0 left, 1 right) for every sample")
        b = scoremaps.shape[0]
        side = self._side_onehot(hand_side, b, scoremaps)
        pose = self.pose_fc(torch.cat([self.pose_conv(scoremaps).flatten(1), side], 1))
        pose = pose.view(b, self.num_keypoints, 3)
        if self.variant == "direct":
            return {"xyz": pose}
        axis_angle = self.view_fc(torch.cat([self.view_conv(scoremaps).flatten(1), side], 1))
        rotation = axis_angle_to_matrix(axis_angle.float()).to(pose.dtype)
        xyz = self.decode(pose, rotation, side[:, 1] > 0.5)  # the way back, differentiable
        return {"xyz": xyz, "canonical": pose, "rotation": rotation}
