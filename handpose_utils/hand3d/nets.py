"""The three networks of Zimmermann & Brox 2017, in PyTorch: HandSegNet, PoseNet, PosePrior.

::

    image --HandSegNet--> hand mask --crop--> 256x256 hand --PoseNet--> 21 score maps
          --PosePrior(+ hand side)--> canonical 3D pose + viewpoint --> root-relative 3D pose

The layouts follow the paper and its official code (lmb-freiburg/hand3d); what differs, and why:

* **Logits are linear.** The last layer of each network has no ReLU (the course's reference
  re-implementation put a ReLU on every layer, logits included, which clips every negative
  score and stalls learning).
* **BatchNorm** after each hidden convolution (``batch_norm=True``, the default). The paper
  started from pretrained Convolutional Pose Machine weights; we train from scratch, which
  BatchNorm makes fast and stable. ``batch_norm=False`` gives the plain paper layout.
* ``width`` scales every channel count (1.0 = the paper's 64-128-256-512), so the same code runs
  in seconds on a CPU (smoke tests) and at full size on a GPU.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .canonical import axis_angle_to_matrix, from_canonical

__all__ = ["conv_block", "VGGTrunk", "HandSegNet", "PoseNet", "PosePrior", "POSE_PRIOR_VARIANTS"]

NUM_KEYPOINTS = 21
POSE_PRIOR_VARIANTS = ("proposed", "direct")


def _ch(c: int, width: float) -> int:
    return max(4, int(round(c * width)))


def conv_block(cin: int, cout: int, kernel: int = 3, stride: int = 1,
               batch_norm: bool = True) -> nn.Sequential:
    """Convolution ('same' padding), optional BatchNorm, ReLU: one hidden layer."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2,
                                         bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class VGGTrunk(nn.Sequential):
    """VGG-style blocks of 3x3 convolutions, 2x2 max-pooling between blocks (none after the
    last): ``layers=(2, 2, 4, 4)`` with 64-128-256-512 channels is HandSegNet's trunk,
    ``(2, 2, 4, 2)`` PoseNet's. Output stride 8."""

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


class HandSegNet(nn.Module):
    """Hand segmentation: ``(B, 3, H, W)`` normalised image -> ``(B, 2, H, W)`` logits
    (background, hand).

    VGG trunk (2-2-4-4 convolutions, 64-512 channels, stride 8), then 3x3 512, 3x3 128, 1x1 512
    and a **linear** 1x1 layer to 2 classes, bilinearly upsampled to the input size. The hand
    probability is ``softmax(logits)[:, 1]``, channel 1 (the reference cropped from channel 0,
    the background).
    """

    def __init__(self, width: float = 1.0, batch_norm: bool = True):
        super().__init__()
        self.trunk = VGGTrunk((2, 2, 4, 4), width=width, batch_norm=batch_norm)
        c = self.trunk.out_channels
        self.head = nn.Sequential(
            conv_block(c, _ch(512, width), batch_norm=batch_norm),
            conv_block(_ch(512, width), _ch(128, width), batch_norm=batch_norm),
            conv_block(_ch(128, width), _ch(512, width), kernel=1, batch_norm=batch_norm),
            nn.Conv2d(_ch(512, width), 2, 1),  # linear logits
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.head(self.trunk(x))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


class PoseNet(nn.Module):
    """2D keypoints as score maps: ``(B, 3, C, C)`` hand crop -> ``(B, stages, 21, C/8, C/8)``.

    A VGG trunk (2-2-4-2 convolutions) and 4x 3x3 256 + 3x3 128 layers make a 128-channel
    encoding. Stage 1 predicts score maps from it (1x1 512, linear 1x1 21); each later stage
    sees the encoding **and** the previous stage's maps (5x 7x7 128, 1x1 128, linear 1x1 21),
    so it can use the spatial context between keypoints to repair them. Every stage's output is
    returned, because every stage is supervised (intermediate supervision keeps the early
    stages' gradients strong). The last stage is the prediction.
    """

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
        self.encoding = nn.Sequential(*enc)
        self.stages = nn.ModuleList([nn.Sequential(
            conv_block(c128, _ch(512, width), kernel=1, batch_norm=batch_norm),
            nn.Conv2d(_ch(512, width), num_keypoints, 1),
        )])
        for _ in range(stages - 1):
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
        return torch.stack(maps, dim=1)


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
    """Lift 21 score maps (and the hand side) to a root-relative, scale-normalised 3D pose.

    ``variant="proposed"`` (the paper): one branch predicts the 21 joints in the **canonical
    frame** (63 numbers), a second the **viewpoint** as an axis-angle vector (3 numbers, turned
    into a rotation matrix R); the pose is ``mirror(canonical) @ R``
    (:func:`~handpose_utils.hand3d.canonical.from_canonical`). ``variant="direct"`` regresses
    the camera-frame pose directly, the paper's baseline.

    Each branch: 3 pairs of 3x3 convolutions (the second of each pair with stride 2), flattened,
    concatenated with the one-hot hand side, then fully connected layers with dropout (pose:
    512-512 -> 63; viewpoint: 256-128 -> 3).

    ``forward(scoremaps, hand_side)`` takes ``(B, 21, S, S)`` maps (PoseNet's output size) and
    ``(B,)`` hand side (0 left, 1 right) or its ``(B, 2)`` one-hot. It also accepts one dict
    ``{"scoremaps", "hand_side"}``, the form the training engine passes. Returns a dict with
    ``xyz`` (B, 21, 3) and, for "proposed", ``canonical`` and ``rotation`` (B, 3, 3).
    """

    def __init__(self, variant: str = "proposed", map_size: int = 32, dropout: float = 0.2,
                 batch_norm: bool = False, num_keypoints: int = NUM_KEYPOINTS):
        super().__init__()
        if variant not in POSE_PRIOR_VARIANTS:
            raise ValueError(f"variant must be one of {POSE_PRIOR_VARIANTS}, got {variant!r}")
        self.variant = variant
        self.num_keypoints = num_keypoints
        self.map_size = map_size
        flat = math.ceil(map_size / 8) ** 2  # three stride-2 layers
        self.pose_conv, c = _conv_stack(num_keypoints, (32, 64, 128), batch_norm)
        self.pose_fc = _mlp(c * flat + 2, (512, 512), num_keypoints * 3, dropout)
        if variant == "proposed":
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
        xyz = from_canonical(pose, rotation, side[:, 1] > 0.5)
        return {"xyz": xyz, "canonical": pose, "rotation": rotation}

