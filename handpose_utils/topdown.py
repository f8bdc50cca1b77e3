"""Generated from notebooks/06_coco_heatmap_training.ipynb by `python -m handpose_utils.export`.

Edit the notebook's `#@save topdown` cells, not this file: the tests check that the two agree."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from handpose_utils.heatmaps import HeatmapCodec
from handpose_utils.images import read_image
from handpose_utils.skeletons import COCO_FLIP_INDEX
from handpose_utils.topdown_batches import (  # noqa: F401
    PrepareTopDown,
    TopDownAugment,
    check_image_size,
    half_body_box,
    normalize_images,
    prepare_topdown_batch,
)


# --- from notebooks/06_coco_heatmap_training.ipynb ---
def box_to_center_size(bbox, aspect: float = 192 / 256, padding: float = 1.25):
    """A COCO box ``[x, y, w, h]`` as its centre ``(cx, cy)`` and a size ``(w, h)`` widened to
    ``aspect`` (= width / height of the model input) and multiplied by ``padding``."""
    x, y, w, h = (float(v) for v in bbox)
    center = np.array([x + w / 2, y + h / 2])
    w, h = max(w, 1.0), max(h, 1.0)
    # Widen, never stretch: the side that is too short for the aspect grows.
    if w > aspect * h:
        h = w / aspect
    else:
        w = h * aspect
    return center, np.array([w, h]) * padding


def crop_matrix(center, size, output_size, rotation: float = 0.0, flip: bool = False) -> np.ndarray:
    """The ``(2, 3)`` affine map image -> crop: the box ``size`` around ``center`` fills the crop
    ``output_size = (W, H)``, turned by ``rotation`` (degrees, counter-clockwise), mirrored if ``flip``."""
    W, H = output_size
    s = W / float(size[0])  # = H / size[1], since the box already has the crop's aspect
    a = math.radians(rotation)
    # y points down on screen, so a counter-clockwise turn on screen is R(-a) in x-right/y-down.
    R = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]]) * s
    M = np.c_[R, np.array([(W - 1) / 2, (H - 1) / 2]) - R @ np.asarray(center, float)]
    # flip: then mirror the crop, x -> W - 1 - x
    return np.array([[-1.0, 0.0, W - 1.0], [0.0, 1.0, 0.0]]) @ np.r_[M, [[0, 0, 1]]] if flip else M


def invert_affine(M) -> np.ndarray:
    """The inverse of a ``(2, 3)`` affine map."""
    return np.linalg.inv(np.r_[np.asarray(M, float), [[0, 0, 1]]])[:2]


def apply_affine(points, M) -> np.ndarray:
    """Apply a ``(2, 3)`` affine map to ``(..., 2)`` points."""
    M = np.asarray(M, float)
    return np.asarray(points, float) @ M[:, :2].T + M[:, 2]


def warp_image(image: np.ndarray, M, output_size, fill=(0, 0, 0)) -> np.ndarray:
    """The crop ``output_size = (W, H)`` of uint8 ``image`` through the image -> crop affine ``M``."""
    inv = invert_affine(M)  # PIL wants crop -> image: where to sample each output pixel
    # PIL samples at A (x + 0.5) + c with pixel centres at +0.5: shift half a pixel both sides.
    A, t = inv[:, :2], inv[:, 2]
    c = t + 0.5 - A @ np.array([0.5, 0.5])
    out = Image.fromarray(image).transform(
        tuple(int(v) for v in output_size), Image.AFFINE, (A[0, 0], A[0, 1], c[0], A[1, 0], A[1, 1], c[1]),
        resample=Image.BILINEAR, fillcolor=tuple(fill))
    return np.array(out)  # a writable copy (torch.from_numpy warns about read-only arrays)


def back_project(keypoints, center, size, output_size, rotation=0.0) -> np.ndarray:
    """Crop pixels ``(N, J, 2)`` (or ``(J, 2)``) back to image pixels, for crops of ``center``,
    ``size`` ``(N, 2)`` and ``rotation`` ``(N,)``: the inverse of :func:`crop_matrix`."""
    kp = np.asarray(keypoints.cpu() if isinstance(keypoints, torch.Tensor) else keypoints, float)
    single = kp.ndim == 2
    kp = kp[None] if single else kp
    n = len(kp)
    center = np.broadcast_to(np.asarray(center, float).reshape(-1, 2), (n, 2))
    size = np.broadcast_to(np.asarray(size, float).reshape(-1, 2), (n, 2))
    rot = np.broadcast_to(np.radians(np.asarray(rotation, float)).reshape(-1), (n,))
    W, H = output_size
    d = (kp - np.array([(W - 1) / 2, (H - 1) / 2])) / (W / size[:, 0])[:, None, None]
    cos, sin = np.cos(rot)[:, None], np.sin(rot)[:, None]
    # The inverse of the rotation R = [[cos, sin], [-sin, cos]] is its transpose.
    out = np.stack([cos * d[..., 0] - sin * d[..., 1], sin * d[..., 0] + cos * d[..., 1]], -1)
    out = out + center[:, None, :]
    return out[0] if single else out


# --- from notebooks/06_coco_heatmap_training.ipynb ---
class TopDownDataset(Dataset):
    """One item per COCO person record: ``(crop (3, H, W) uint8, heatmaps (J, h, w), weights (J,),
    meta)``, ``meta`` with what :func:`back_project` needs; ``train=True`` applies ``augment``."""

    def __init__(self, samples: Sequence[dict], codec: HeatmapCodec, train: bool = False,
                 augment: TopDownAugment | None = None, padding: float = 1.25,
                 flip_index: Sequence[int] = COCO_FLIP_INDEX):
        self.samples, self.codec, self.train, self.padding = list(samples), codec, train, padding
        self.augment = augment if augment is not None else TopDownAugment()
        self.flip_index = list(flip_index)
        self.output_size = codec.input_size
        self.aspect = self.output_size[0] / self.output_size[1]

    def __len__(self) -> int:
        return len(self.samples)

    def crop_params(self, i: int) -> dict:
        rec = self.samples[i]
        center, size = box_to_center_size(rec["bbox"], self.aspect, self.padding)
        if not self.train:
            return {"center": center, "size": size, "rotation": 0.0, "flip": False}
        aug = self.augment.sample()
        v = np.asarray(rec["visible"])
        if aug["half_body"] and (v > 0).sum() > self.augment.half_body_min_joints:
            half = half_body_box(rec["keypoints"], v)  # HRNet's: the upper or the lower body
            if half is not None:
                center, size = box_to_center_size(half, self.aspect, padding=1.5)
        return {"center": center, "size": size * aug["scale"], "rotation": aug["rotation"],
                "flip": aug["flip"]}

    def __getitem__(self, i: int):
        rec, p = self.samples[i], self.crop_params(i)
        M = crop_matrix(p["center"], p["size"], self.output_size, p["rotation"], p["flip"])
        image = read_image(rec["image_path"])
        check_image_size(image, rec)
        crop = warp_image(image, M, self.output_size)
        kp = np.asarray(rec["keypoints"], float).reshape(-1, 2)
        v = np.asarray(rec["visible"], float)
        kp_crop, v_crop = apply_affine(kp, M), v
        if p["flip"]:  # a mirrored left wrist is a right wrist
            kp_crop, v_crop = kp_crop[self.flip_index], v[self.flip_index]
        heatmaps, weight = self.codec.encode(kp_crop, v_crop)
        meta = {"index": torch.tensor(i), "image_id": torch.tensor(int(rec["image_id"])),
                "ann_id": torch.tensor(int(rec.get("ann_id", -1))), "flip": torch.tensor(bool(p["flip"])),
                **{k: torch.tensor(np.asarray(p[k], np.float32)) for k in ("center", "size", "rotation")},
                "area": torch.tensor(float(rec.get("area", 0.0))), "keypoints": torch.tensor(np.c_[kp, v], dtype=torch.float32)}
        image = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1)
        return image, torch.from_numpy(heatmaps), torch.from_numpy(weight), meta


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
