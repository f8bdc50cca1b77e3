"""Generated from notebooks/06_coco_heatmap_training.ipynb by `python -m handpose_utils.export`.

Edit the notebook's `#@save topdown` cells, not this file: the tests check that the two agree."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from handpose_utils.data import IMAGENET_MEAN, IMAGENET_STD, colour_jitter
from handpose_utils.heatmaps import HeatmapCodec
from handpose_utils.images import read_image
from handpose_utils.skeletons import COCO_FLIP_INDEX


# --- from notebooks/06_coco_heatmap_training.ipynb ---
def box_to_center_size(bbox, aspect: float = 192 / 256, padding: float = 1.25):
    """A COCO box ``[x, y, w, h]`` as its centre ``(cx, cy)`` and a size ``(w, h)`` widened to
    ``aspect`` (= width / height of the model input) and multiplied by ``padding``."""
    x, y, w, h = (float(v) for v in bbox)
    center = np.array([x + w / 2, y + h / 2])
    w, h = max(w, 1.0), max(h, 1.0)
    # Widen, never stretch: the side that is too short for the aspect grows, so the person keeps
    # their proportions in the crop.
    if w > aspect * h:
        h = w / aspect
    else:
        w = h * aspect
    return center, np.array([w, h]) * padding


def crop_matrix(center, size, output_size, rotation: float = 0.0, flip: bool = False) -> np.ndarray:
    """The ``(2, 3)`` affine map from image pixels to crop pixels: the box of ``size = (w, h)``
    around ``center`` fills the crop of ``output_size = (W, H)``; ``rotation`` (degrees,
    counter-clockwise on screen) turns the image about the centre; ``flip`` mirrors the crop."""
    W, H = output_size
    s = W / float(size[0])  # = H / size[1], since the box already has the crop's aspect
    a = math.radians(rotation)
    # y points down on screen, so a counter-clockwise turn on screen is R(-a) in x-right/y-down.
    cos, sin = math.cos(a), math.sin(a)
    R = np.array([[cos, sin], [-sin, cos]]) * s
    # Pixel centres sit at integers, so the crop's centre is ((W - 1) / 2, (H - 1) / 2).
    t = np.array([(W - 1) / 2, (H - 1) / 2]) - R @ np.asarray(center, float)
    M = np.c_[R, t]
    if flip:  # then mirror the crop: x -> W - 1 - x
        F = np.array([[-1.0, 0.0, W - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        M = (F @ np.r_[M, [[0, 0, 1]]])[:2]
    return M


def invert_affine(M) -> np.ndarray:
    """The inverse of a ``(2, 3)`` affine map."""
    M = np.asarray(M, float)
    return np.linalg.inv(np.r_[M, [[0, 0, 1]]])[:2]


def apply_affine(points, M) -> np.ndarray:
    """Apply a ``(2, 3)`` affine map to ``(..., 2)`` points."""
    p = np.asarray(points, float)
    M = np.asarray(M, float)
    return p @ M[:, :2].T + M[:, 2]


def warp_image(image: np.ndarray, M, output_size, fill=(0, 0, 0)) -> np.ndarray:
    """Cut out ``output_size = (W, H)`` pixels of ``image`` (uint8 ``(h, w, 3)``) through the
    image->crop affine ``M`` with bilinear sampling; outside the image is ``fill``."""
    inv = invert_affine(M)  # PIL wants crop -> image: where to sample each output pixel
    # PIL samples the input at A (x + 0.5) + c for output pixel x, with pixel centres at +0.5;
    # shifting by half a pixel on both sides gives our integer-centre convention.
    A, t = inv[:, :2], inv[:, 2]
    c = t + 0.5 - A @ np.array([0.5, 0.5])
    coeffs = (A[0, 0], A[0, 1], c[0], A[1, 0], A[1, 1], c[1])
    im = Image.fromarray(image)
    out = im.transform(tuple(int(v) for v in output_size), Image.AFFINE, coeffs,
                       resample=Image.BILINEAR, fillcolor=tuple(fill))
    return np.array(out)  # a writable copy (torch.from_numpy warns about read-only arrays)


def back_project(keypoints, center, size, output_size, rotation=0.0) -> np.ndarray:
    """Crop pixels ``(N, J, 2)`` back to image pixels, for ``N`` crops made with ``center`` and
    ``size`` ``(N, 2)`` (and ``rotation`` ``(N,)``, 0 at test time): the inverse warp,
    ``x = c + R(-rotation) (x_crop - ((W - 1) / 2, (H - 1) / 2)) / s``, vectorised."""
    kp = np.asarray(keypoints.cpu() if isinstance(keypoints, torch.Tensor) else keypoints, float)
    single = kp.ndim == 2
    if single:
        kp = kp[None]
    n = len(kp)
    center = np.broadcast_to(np.asarray(center, float).reshape(-1, 2), (n, 2))
    size = np.broadcast_to(np.asarray(size, float).reshape(-1, 2), (n, 2))
    rot = np.broadcast_to(np.radians(np.asarray(rotation, float)).reshape(-1), (n,))
    W, H = output_size
    s = W / size[:, 0]
    d = (kp - np.array([(W - 1) / 2, (H - 1) / 2])) / s[:, None, None]
    cos, sin = np.cos(rot)[:, None], np.sin(rot)[:, None]
    # The inverse of the rotation R = [[cos, sin], [-sin, cos]] is its transpose.
    x = cos * d[..., 0] - sin * d[..., 1]
    y = sin * d[..., 0] + cos * d[..., 1]
    out = np.stack([x, y], -1) + center[:, None, :]
    return out[0] if single else out


# --- from notebooks/06_coco_heatmap_training.ipynb ---
UPPER_BODY = tuple(range(11))  # COCO17: head and arms
LOWER_BODY = tuple(range(11, 17))  # hips and legs


def half_body_box(keypoints, visibility, aspect: float, rng: torch.Generator | None = None,
                  min_joints: int = 3, padding: float = 1.5):
    """HRNet's half-body box: ``(center, size)`` of the labelled upper- (or lower-) body joints,
    padded by ``padding``; None when the chosen half has fewer than ``min_joints``."""
    kp = np.asarray(keypoints, float).reshape(-1, 2)
    v = np.asarray(visibility).reshape(-1) > 0
    upper, lower = [j for j in UPPER_BODY if v[j]], [j for j in LOWER_BODY if v[j]]
    pick_upper = float(torch.rand((), generator=rng)) < 0.5
    joints = upper if (pick_upper and len(upper) >= min_joints) or len(lower) < min_joints else lower
    if len(joints) < min_joints:
        return None
    lo, hi = kp[joints].min(0), kp[joints].max(0)
    return box_to_center_size([*lo, *(hi - lo)], aspect, padding)


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
        rot = 0.0
        if float(r[0]) < self.rotation_p:
            limit = 2 * self.rotation_factor
            rot = float(np.clip(self.rotation_factor * float(n[1]), -limit, limit))
        return {"scale": scale, "rotation": rot, "flip": float(r[1]) < self.flip_p,
                "half_body": float(r[2]) < self.half_body_p}


class TopDownDataset(Dataset):
    """One item per annotated person: ``(image (3, H, W) uint8, heatmaps (J, h, w),
    target_weight (J,), meta)``; ``meta`` holds ``index``, ``image_id``, ``ann_id``, the crop's
    ``center``, ``size``, ``rotation``, ``flip`` (for :func:`back_project`), ``area`` and
    ``keypoints`` ``(J, 3)`` in image pixels. ``samples`` are COCO person records (``image_path``,
    ``bbox``, flat ``keypoints``, ``visible``); ``train=True`` applies ``augment``. An image whose
    size differs from its record's raises a ``ValueError`` naming it."""

    def __init__(self, samples: Sequence[dict], codec: HeatmapCodec, train: bool = False,
                 augment: TopDownAugment | None = None, padding: float = 1.25,
                 flip_index: Sequence[int] = COCO_FLIP_INDEX):
        self.samples = list(samples)
        self.codec = codec
        self.train = train
        self.augment = augment if augment is not None else TopDownAugment()
        self.padding = padding
        self.flip_index = list(flip_index)
        self.output_size = codec.input_size
        self.aspect = self.output_size[0] / self.output_size[1]

    def __len__(self) -> int:
        return len(self.samples)

    def crop_params(self, i: int) -> dict:
        """The crop of sample ``i`` (augmented when training): center, size, rotation, flip."""
        rec = self.samples[i]
        center, size = box_to_center_size(rec["bbox"], self.aspect, self.padding)
        if not self.train:
            return {"center": center, "size": size, "rotation": 0.0, "flip": False}
        aug = self.augment.sample()
        v = np.asarray(rec["visible"])
        if aug["half_body"] and (v > 0).sum() > self.augment.half_body_min_joints:
            half = half_body_box(rec["keypoints"], v, self.aspect)
            if half is not None:
                center, size = half
        return {"center": center, "size": size * aug["scale"], "rotation": aug["rotation"],
                "flip": aug["flip"]}

    def __getitem__(self, i: int):
        rec = self.samples[i]
        p = self.crop_params(i)
        M = crop_matrix(p["center"], p["size"], self.output_size, p["rotation"], p["flip"])
        image = read_image(rec["image_path"])
        _check_image_size(image, rec)
        crop = warp_image(image, M, self.output_size)
        kp = np.asarray(rec["keypoints"], float).reshape(-1, 2)
        v = np.asarray(rec["visible"], float)
        kp_crop, v_crop = apply_affine(kp, M), v
        if p["flip"]:  # a mirrored left wrist is a right wrist
            kp_crop, v_crop = kp_crop[self.flip_index], v[self.flip_index]
        heatmaps, weight = self.codec.encode(kp_crop, v_crop)
        meta = {
            "index": torch.tensor(i),
            "image_id": torch.tensor(int(rec["image_id"])),
            "ann_id": torch.tensor(int(rec.get("ann_id", -1))),
            "center": torch.tensor(p["center"], dtype=torch.float32),
            "size": torch.tensor(p["size"], dtype=torch.float32),
            "rotation": torch.tensor(float(p["rotation"])),
            "flip": torch.tensor(bool(p["flip"])),
            "area": torch.tensor(float(rec.get("area", 0.0))),
            "keypoints": torch.tensor(np.c_[kp, v], dtype=torch.float32),
        }
        image = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1)
        return image, torch.from_numpy(heatmaps), torch.from_numpy(weight), meta


def _check_image_size(image: np.ndarray, rec: dict) -> None:
    """A resized or swapped image file would be cut into a wrong crop without a word."""
    if "width" not in rec or "height" not in rec:
        return
    h, w = image.shape[:2]
    if (w, h) != (int(rec["width"]), int(rec["height"])):
        ann = f", annotation {rec['ann_id']}" if "ann_id" in rec else ""
        source = f" in {rec['ann_file']}" if "ann_file" in rec else ""
        raise ValueError(
            f"{rec['image_path']} (image {rec.get('image_id', '?')}{ann}) is {w} x {h} pixels, "
            f"but its annotation{source} says {rec['width']} x {rec['height']}: the keypoints "
            "and box would land in the wrong place. Use the original, unresized images (extract "
            "the images zip again), or the annotation file that belongs to these images.")


def normalize_images(images: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """uint8 ``(B, 3, H, W)`` to float32 with ImageNet normalisation."""
    mean = torch.tensor(mean, device=images.device).view(1, -1, 1, 1) * 255
    std = torch.tensor(std, device=images.device).view(1, -1, 1, 1) * 255
    return (images.float() - mean) / std


@dataclass
class PrepareTopDown:
    """The engine's ``prepare_batch`` for top-down batches: images moved to ``device`` as uint8
    (4x cheaper than float), in training changed in colour (:func:`colour_jitter`: brightness,
    contrast and saturation factors in ``[1 - a, 1 + a]``, grey with probability
    ``grayscale_p``), then ImageNet-normalised; targets ``{"heatmaps", "target_weight"}``; ``meta``
    as the extras. The defaults change no colour: SimpleBaseline's recipe."""

    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    grayscale_p: float = 0.0

    def colour(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``(B, 3, H, W)`` -> float in ``[0, 255]`` with random colour changes."""
        x = colour_jitter(images.float() / 255, self.brightness, self.contrast, self.saturation,
                          self.grayscale_p)
        return x * 255

    def __call__(self, batch, device, train: bool):
        images, heatmaps, weight, meta = batch
        images = images.to(device, non_blocking=True)
        if train and (self.brightness or self.contrast or self.saturation or self.grayscale_p):
            images = self.colour(images)
        targets = {"heatmaps": heatmaps.to(device, non_blocking=True),
                   "target_weight": weight.to(device, non_blocking=True)}
        extras = {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v
                  for k, v in meta.items()}
        return normalize_images(images), targets, extras


prepare_topdown_batch = PrepareTopDown()  # no colour changes


# --- from notebooks/06_coco_heatmap_training.ipynb ---
def mean_pose_results(train_records, val_records, aspect: float) -> list[dict]:
    """The image-blind baseline as COCO results: the mean training pose, in crop-box units
    (labelled joints only), placed in every validation box."""
    def to_box(r):
        center, size = box_to_center_size(r["bbox"], aspect)
        return (np.asarray(r["keypoints"], float).reshape(-1, 2) - center) / size

    poses = np.stack([to_box(r) for r in train_records])
    labelled = np.stack([np.asarray(r["visible"]) > 0 for r in train_records])[..., None]
    mean_pose = (poses * labelled).sum(0) / np.maximum(labelled.sum(0), 1)
    results = []
    for r in val_records:
        center, size = box_to_center_size(r["bbox"], aspect)
        kp = np.c_[mean_pose * size + center, np.ones(len(mean_pose))]
        results.append({"image_id": int(r["image_id"]), "category_id": 1,
                        "keypoints": kp.reshape(-1).tolist(), "score": 1.0})
    return results
