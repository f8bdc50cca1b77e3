"""Notebook 06's top-down plumbing: crop augmentation, the engine's batch step, image-size check."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .data import IMAGENET_MEAN, IMAGENET_STD, colour_jitter, to_device


def half_body_box(keypoints, visibility, rng: torch.Generator | None = None,
                  min_joints: int = 3) -> list[float] | None:
    """HRNet's half-body box ``[x, y, w, h]`` of the labelled upper or lower joints, or None."""
    kp = np.asarray(keypoints, float).reshape(-1, 2)
    v = np.asarray(visibility).reshape(-1) > 0
    upper, lower = [j for j in range(11) if v[j]], [j for j in range(11, 17) if v[j]]  # COCO17
    pick_upper = float(torch.rand((), generator=rng)) < 0.5
    joints = upper if (pick_upper and len(upper) >= min_joints) or len(lower) < min_joints else lower
    if len(joints) < min_joints:
        return None
    lo, hi = kp[joints].min(0), kp[joints].max(0)
    return [*lo, *(hi - lo)]


@dataclass
class TopDownAugment:
    """Random crop changes, drawn from torch's RNG (so DataLoader workers and the engine's seeding
    apply). SimpleBaseline's COCO recipe: flip p 0.5, scale ``clip(1 + 0.3 N, 0.7, 1.3)``,
    rotation ``clip(40 N, -80, 80)``° with p 0.6; ``half_body_p`` > 0: HRNet's half-body boxes
    for people with more than ``half_body_min_joints`` labelled joints (HRNet: 0.3, 8)."""

    flip_p: float = 0.5
    scale_factor: float = 0.3
    rotation_factor: float = 40.0
    rotation_p: float = 0.6
    half_body_p: float = 0.0
    half_body_min_joints: int = 8

    def sample(self, generator: torch.Generator | None = None) -> dict:
        r = torch.rand(3, generator=generator)
        n = torch.randn(2, generator=generator)
        scale = float(np.clip(1 + self.scale_factor * float(n[0]), 1 - self.scale_factor,
                              1 + self.scale_factor))
        limit = 2 * self.rotation_factor
        rot = float(np.clip(self.rotation_factor * float(n[1]), -limit, limit))
        rot = rot if float(r[0]) < self.rotation_p else 0.0
        return {"scale": scale, "rotation": rot, "flip": float(r[1]) < self.flip_p,
                "half_body": float(r[2]) < self.half_body_p}


def normalize_images(images: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """uint8 ``(B, 3, H, W)`` to float32 with ImageNet normalisation."""
    mean = torch.tensor(mean, device=images.device).view(1, -1, 1, 1) * 255
    std = torch.tensor(std, device=images.device).view(1, -1, 1, 1) * 255
    return (images.float() - mean) / std


@dataclass
class PrepareTopDown:
    """The engine's ``prepare_batch`` for top-down batches: images moved to ``device`` as uint8
    (4x cheaper than float), in training recoloured (:func:`colour_jitter`), ImageNet-normalised;
    targets ``{"heatmaps", "target_weight"}``; ``meta`` as the extras. Defaults: no recolouring."""

    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    grayscale_p: float = 0.0

    def colour(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``(B, 3, H, W)`` -> float in ``[0, 255]`` with random colour changes."""
        return 255 * colour_jitter(images.float() / 255, self.brightness, self.contrast,
                                   self.saturation, self.grayscale_p)

    def __call__(self, batch, device, train: bool):
        images, heatmaps, weight, extras = to_device(batch, device)
        if train and (self.brightness or self.contrast or self.saturation or self.grayscale_p):
            images = self.colour(images)
        return normalize_images(images), {"heatmaps": heatmaps, "target_weight": weight}, extras


prepare_topdown_batch = PrepareTopDown()  # no colour changes


def check_image_size(image: np.ndarray, rec: dict) -> None:
    """Raise a ``ValueError`` naming the file when ``image`` is not the size ``rec`` (a COCO person
    record) says: a resized or swapped image file would be cut into a wrong crop without a word."""
    h, w = image.shape[:2]
    if "width" in rec and "height" in rec and (w, h) != (int(rec["width"]), int(rec["height"])):
        ann = f", annotation {rec['ann_id']}" if "ann_id" in rec else ""
        source = f" in {rec['ann_file']}" if "ann_file" in rec else ""
        raise ValueError(
            f"{rec['image_path']} (image {rec.get('image_id', '?')}{ann}) is {w} x {h} pixels, "
            f"but its annotation{source} says {rec['width']} x {rec['height']}: the keypoints "
            "and box would land in the wrong place. Use the original, unresized images (extract "
            "the images zip again), or the annotation file that belongs to these images.")
