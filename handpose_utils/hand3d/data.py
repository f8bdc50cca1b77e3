"""Feeding RHD records to the three stages: a per-sample dataset that only decodes files,
iteration-based loaders, and one ``prepare_batch`` per stage for :func:`handpose_utils.engine.fit`
that does the rest on the device, batched (crops, jitter, score maps, canonical targets).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, RandomSampler

from .. import env
from ..data import to_device
from ..images import read_image
from .canonical import to_canonical
from .crops import boxes_from_keypoints, crop_images, encode_scoremaps, paper_normalize, to_crop

HAND_SIDES = ("left", "right")  # index 0 = left, 1 = right, as PosePrior's one-hot


def hand_side_index(side: str) -> int:
    if side not in HAND_SIDES:
        raise ValueError(f"hand_side must be 'left' or 'right', got {side!r}")
    return HAND_SIDES.index(side)


class RHDSamples(Dataset):
    """RHD records (from :func:`handpose_utils.load_rhd`) as tensors: ``image`` (3, H, W) uint8
    (if ``load_images``), ``mask`` (H, W) class ids (if ``load_masks``), ``keypoints`` (21, 2)
    pixels, ``visible`` (21,), ``xyz`` (21, 3) metres, ``K``, ``hand_side`` (0 left, 1 right),
    ``scale`` (bone length, metres), ``size`` (W, H) and ``index``. Unreadable files, and files
    of another size than the record says, raise an error that names them."""

    def __init__(self, records: list[dict], load_images: bool = True, load_masks: bool = True):
        if not records:
            raise ValueError("RHDSamples needs at least one record")
        self.records = list(records)
        self.load_images, self.load_masks = load_images, load_masks
        self._kp = torch.tensor(np.array([np.reshape(r["keypoints"], (21, 2))
                                          for r in self.records]), dtype=torch.float32)
        self._vis = torch.tensor(np.array([r["visible"] for r in self.records]), dtype=torch.bool)
        self._xyz = torch.tensor(np.array([r["xyz"] for r in self.records]), dtype=torch.float32)
        self._K = torch.tensor(np.array([r["K"] for r in self.records]), dtype=torch.float32)
        self._side = torch.tensor([hand_side_index(r["hand_side"]) for r in self.records])
        self._size = torch.tensor([[r.get("width", 320), r.get("height", 320)]
                                   for r in self.records], dtype=torch.float32)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict:
        rec = self.records[i]
        item = {"keypoints": self._kp[i], "visible": self._vis[i], "xyz": self._xyz[i],
                "K": self._K[i], "hand_side": self._side[i],
                "scale": torch.linalg.vector_norm(self._xyz[i, 10] - self._xyz[i, 9]),
                "size": self._size[i], "index": torch.tensor(i)}
        if self.load_images:
            image = read_image(rec["image_path"])
            _check_size(image, rec, "image_path")
            item["image"] = torch.from_numpy(image).permute(2, 0, 1)
        if self.load_masks:
            from ..datasets.rhd import read_mask
            mask = read_mask(rec["mask_path"])
            _check_size(mask, rec, "mask_path")
            item["mask"] = torch.from_numpy(mask)
        return item


def _check_size(array: np.ndarray, rec: dict, key: str) -> None:
    """Batches stack samples, so one file of another size would fail in the DataLoader as
    "stack expects each tensor to be equal size", naming no file; name it here instead."""
    h, w = array.shape[:2]
    want = (int(rec.get("width", 320)), int(rec.get("height", 320)))
    if (w, h) != want:
        raise ValueError(
            f"{rec[key]} (sample {rec.get('sample_id', '?')}) is {w} x {h} pixels, but its record "
            f"says {want[0]} x {want[1]}, the size of every image of its split: a batch needs "
            "one size. The file changed after load_rhd read the dataset, or is corrupt: extract "
            "or generate the dataset again and reload the records.")


def make_loader(dataset: Dataset, batch_size: int, iterations: int | None = None,
                num_workers: int | None = None, device=None) -> DataLoader:
    """A training loader of exactly ``iterations`` batches per pass (the paper counts iterations,
    the engine epochs: one engine "epoch" is ``n_history`` steps), reshuffled each pass; with
    ``iterations=None`` an evaluation loader over the data in order."""
    device = torch.device(device) if device is not None else env.pick_device()
    workers = env.default_num_workers() if num_workers is None else num_workers
    common = dict(num_workers=workers, pin_memory=device.type == "cuda",
                  persistent_workers=workers > 0)
    if iterations is None:
        return DataLoader(dataset, batch_size=batch_size, shuffle=False, **common)
    sampler = RandomSampler(dataset, replacement=False, num_samples=iterations * batch_size)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=True, **common)


def channel_gain_jitter(x: torch.Tensor, strength: float = 0.2) -> torch.Tensor:
    """Per-image brightness, contrast and **per-channel gain** on :func:`paper_normalize`'d images
    (``data.colour_jitter`` works on [0, 1] images and has no per-channel gain). Keeps the
    networks from keying on the synthetic hands' exact skin tones."""
    b, dev = x.shape[0], x.device
    gain = 1 + strength * (2 * torch.rand(b, 3, 1, 1, device=dev) - 1) * 0.5
    contrast = 1 + strength * (2 * torch.rand(b, 1, 1, 1, device=dev) - 1)
    bright = strength * 0.5 * (2 * torch.rand(b, 1, 1, 1, device=dev) - 1)
    mean = x.mean((1, 2, 3), keepdim=True)
    return (((x + 0.5) * gain - 0.5 - mean) * contrast + mean + bright).clamp(-0.5, 0.5)


class SegmentationBatch:
    """``prepare_batch`` for HandSegNet: ``(images, hand_mask, extras)``, the target 1 where the
    class id is a hand (> 1). ``input_size`` (H, W) resizes images and masks; in training,
    ``random_crop`` takes one ``crop x crop`` window per image from both (the paper: 256 of 320)
    and ``jitter`` changes the colours; evaluation sees whole images."""

    def __init__(self, input_size: tuple[int, int] | None = None, random_crop: bool = True,
                 crop: int = 256, jitter: float = 0.2):
        self.input_size = tuple(input_size) if input_size is not None else None
        self.random_crop, self.crop, self.jitter = random_crop, crop, jitter

    def __call__(self, batch: dict, device, train: bool):
        batch = to_device(batch, device)
        images = paper_normalize(batch.pop("image"))
        target = (batch.pop("mask") > 1).long()
        if self.input_size is not None and tuple(images.shape[-2:]) != self.input_size:
            images = F.interpolate(images, size=self.input_size, mode="bilinear",
                                   align_corners=False, antialias=True)
            target = F.interpolate(target[:, None].float(), size=self.input_size,
                                   mode="nearest")[:, 0].long()
        if train:
            h, w = images.shape[-2:]
            if self.random_crop and (h > self.crop or w > self.crop):
                ch, cw = min(self.crop, h), min(self.crop, w)
                ys = torch.randint(0, h - ch + 1, (len(images),)).tolist()
                xs = torch.randint(0, w - cw + 1, (len(images),)).tolist()
                images = torch.stack([im[:, y:y + ch, x:x + cw]
                                      for im, y, x in zip(images, ys, xs)])
                target = torch.stack([t[y:y + ch, x:x + cw] for t, y, x in zip(target, ys, xs)])
            if self.jitter:
                images = channel_gain_jitter(images, self.jitter)
        return images, target, batch


class PoseNetBatch:
    """``prepare_batch`` for PoseNet: ``(crops, {"scoremaps", "visible"}, extras)``. The box comes
    from the ground-truth keypoints, jittered in training like the paper's reader (centre 20 px,
    offset 10 px on 320 px images, zoom x1.0-1.2) so PoseNet copes with HandSegNet's imperfect
    boxes; ``extras`` keeps ``boxes``, ``keypoints`` and ``visible`` for metrics in image pixels.
    """

    def __init__(self, crop_size: int = 256, sigma: float = 0.07, jitter: float = 0.2,
                 center_noise: float = 20 / 320, offset_noise: float = 10 / 320,
                 scale_noise: tuple[float, float] = (1.0, 1.2), margin: float = 1.0,
                 encode=encode_scoremaps):
        self.crop_size = crop_size
        self.map_size = crop_size // 8
        self.sigma = sigma * crop_size  # crop pixels
        self.jitter = jitter
        self.noise = dict(center_noise=center_noise, offset_noise=offset_noise,
                          scale_noise=scale_noise)  # the box jitter, in training only
        self.margin = margin
        self.encode = encode  # the score-map encoder (the notebook may pass the learner's)

    def __call__(self, batch: dict, device, train: bool):
        batch = to_device(batch, device)
        images = paper_normalize(batch.pop("image"))
        batch.pop("mask", None)
        h, w = images.shape[-2:]
        boxes = boxes_from_keypoints(batch["keypoints"], batch["visible"], self.crop_size, (w, h),
                                     margin=self.margin, **(self.noise if train else {}))
        crops = crop_images(images, boxes, self.crop_size)
        if train and self.jitter:
            crops = channel_gain_jitter(crops, self.jitter)
        uv_crop = to_crop(batch["keypoints"], boxes, self.crop_size)
        inside = ((uv_crop >= -0.5) & (uv_crop <= self.crop_size - 0.5)).all(-1)
        vis = batch["visible"] & inside  # a keypoint pushed out of the crop has no target
        maps = self.encode(uv_crop, vis, self.crop_size, self.map_size, self.sigma)
        batch["boxes"] = boxes
        return crops, {"scoremaps": maps, "visible": vis.float()}, batch


class PosePriorBatch:
    """``prepare_batch`` for PosePrior: ``({"scoremaps", "hand_side"}, targets, extras)``, no
    image: score maps rendered from the ground-truth keypoints in a jittered box, with pixel noise
    (paper: 2.5 px at 320 px), empty for invisible keypoints as PoseNet learns them. Targets:
    :func:`~handpose_utils.hand3d.canonical.to_canonical`'s, and ``visible``."""

    def __init__(self, crop_size: int = 256, sigma: float = 0.07, uv_noise: float = 2.5 / 320,
                 center_noise: float = 20 / 320, offset_noise: float = 10 / 320,
                 scale_noise: tuple[float, float] = (1.0, 1.2), encode=encode_scoremaps,
                 viewpoint=None):
        self.crop_size = crop_size
        self.map_size = crop_size // 8
        self.sigma = sigma * crop_size
        self.uv_noise = uv_noise
        self.noise = dict(center_noise=center_noise, offset_noise=offset_noise,
                          scale_noise=scale_noise)  # the box jitter, in training only
        self.encode = encode  # score-map encoder and viewpoint R (the notebook may pass the
        self.viewpoint = viewpoint  # learner's; None: canonical_rotation)

    def __call__(self, batch: dict, device, train: bool):
        batch = to_device(batch, device)
        batch.pop("image", None)
        batch.pop("mask", None)
        w, h = batch["size"][0].tolist()
        uv = batch["keypoints"]
        boxes = boxes_from_keypoints(uv, batch["visible"], self.crop_size, (w, h),
                                     **(self.noise if train else {}))
        if train and self.uv_noise:
            uv = uv + torch.randn_like(uv).clamp(-2, 2) * self.uv_noise * max(w, h)
        uv_crop = to_crop(uv, boxes, self.crop_size)
        maps = self.encode(uv_crop, batch["visible"], self.crop_size, self.map_size, self.sigma)
        side = batch["hand_side"]
        targets = to_canonical(batch["xyz"], side == 1, viewpoint=self.viewpoint)
        targets["visible"] = batch["visible"].float()
        batch["boxes"] = boxes
        return {"scoremaps": maps, "hand_side": side}, targets, batch

