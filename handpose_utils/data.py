"""Feeding keypoint batches to a model: a decode-once image cache with augmentation on the device
(notebook 03 compares it with a per-sample ``Dataset``, :mod:`.pipelines`).

Why a cache? Colab gives a GPU 2 CPU cores, and decoding and resizing a JPEG per sample per epoch
on them starves even a T4. :func:`build_image_cache` decodes and resizes every image **once**; a
batch is one slice of it, and :class:`DeviceAugment` augments the whole batch on the GPU.

Coordinates (everywhere in the course code): pixel *centres* sit at integer coordinates, so an
image of width ``W`` spans ``[-0.5, W - 0.5]``, resizing from ``W`` to ``S`` pixels maps
``x' = (x + 0.5) * S / W - 0.5`` and a horizontal flip ``x' = W - 1 - x``. Regression targets are
**normalised coordinates** ``u = (x + 0.5) / W`` in ``[0, 1]``, independent of the resolution:
``x = u * W - 0.5`` maps a prediction back to any resized copy or the original image.

Batches are dicts of ``image`` ``(B, 3, S, S)`` uint8, ``keypoints`` ``(B, J, 2)`` pixels of the
input, ``visible``, ``index`` into the records and ``orig_size`` ``(B, 2)`` ``(W, H)``;
:class:`PrepareBatch` is the engine's ``prepare_batch`` for them.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler
from torch.utils.data.distributed import DistributedSampler

from . import env
from .images import ImageReadError, SkipReport, decode_pixels, open_image
from .metrics import normalized_to_pixels
from .records import check_record_fits, keypoints_array, visible_array
from .safefiles import WriteError, atomic_write, remove_stale_temporaries, temporary_path

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "resize_keypoints", "pixels_to_normalized",
           "normalized_to_pixels", "to_original_pixels", "input_to_original", "denormalize",
           "ImageCache", "build_image_cache", "CachedKeypointDataset", "cached_loader",
           "colour_jitter", "DeviceAugment", "make_loaders", "to_device", "PrepareBatch",
           "check_record_size"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CACHE_FORMAT = 2


# Coordinates --------------------------------------------------------------------------------------

def resize_keypoints(keypoints, from_size, to_size):
    """Map ``(..., 2)`` pixel coordinates from an image of ``from_size = (W, H)`` to one resized to
    ``to_size`` (an int for square, or ``(W', H')``): ``x' = (x + 0.5) * W' / W - 0.5``."""
    kp = torch.as_tensor(keypoints, dtype=torch.float32)
    w, h = from_size
    tw, th = (to_size, to_size) if np.isscalar(to_size) else to_size
    scale = torch.tensor([tw / w, th / h], dtype=kp.dtype, device=kp.device)
    return (kp + 0.5) * scale - 0.5


def pixels_to_normalized(keypoints: torch.Tensor, size) -> torch.Tensor:
    """Pixel coordinates to normalised ``[0, 1]`` coordinates, ``u = (x + 0.5) / W``. ``size`` is a
    number (square) or per-sample ``(N, 2)`` ``(W, H)``. Inverse of :func:`normalized_to_pixels`."""
    size = torch.as_tensor(size, dtype=keypoints.dtype, device=keypoints.device)
    if size.dim() == 2:
        size = size[:, None, :]
    return (keypoints + 0.5) / size


def to_original_pixels(outputs: torch.Tensor, orig_size) -> torch.Tensor:
    """Regression outputs ``(B, 2J)`` (normalised coordinates) to ``(B, J, 2)`` pixels of the
    original images, ``orig_size`` being ``(B, 2)`` ``(W, H)`` (the batch's ``orig_size``)."""
    return normalized_to_pixels(outputs.reshape(outputs.shape[0], -1, 2), orig_size)


def input_to_original(keypoints: torch.Tensor, input_size, orig_size) -> torch.Tensor:
    """``(B, J, 2)`` pixels of the resized input (``input_size``, a number or ``(W, H)``) to
    pixels of the original images (``orig_size``, ``(B, 2)`` ``(W, H)``), e.g. to score heatmap
    argmaxes with :class:`~handpose_utils.metrics.KeypointMeter`."""
    return normalized_to_pixels(pixels_to_normalized(keypoints, input_size), orig_size)


def denormalize(images: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """Undo ImageNet normalisation: float images in ``[0, 1]`` for plotting."""
    mean = torch.tensor(mean, device=images.device).view(-1, 1, 1)
    std = torch.tensor(std, device=images.device).view(-1, 1, 1)
    return (images.float() * std + mean).clamp(0, 1)


# The image cache ----------------------------------------------------------------------------------

@dataclass
class ImageCache:
    """Images decoded and resized once: ``images`` ``(N, S, S, 3)`` uint8 (an array or a read-only
    ``np.memmap``), ``keypoints`` ``(N, J, 2)`` float32 pixels of the ``S x S`` image, ``visible``
    ``(N, J)``, ``orig_size`` ``(N, 2)`` ``(W, H)``, ``record_index`` ``(N,)`` each image's place
    in the records list (not ``arange(N)`` when bad images were skipped)."""

    images: np.ndarray
    keypoints: np.ndarray
    visible: np.ndarray
    orig_size: np.ndarray
    record_index: np.ndarray
    size: int
    path: Path | None = None
    report: SkipReport = field(default_factory=SkipReport)
    shard: tuple[int, int] | None = None  # (rank, world_size) of one process's share

    def __len__(self) -> int:
        return len(self.images)


def _cache_key(records: list[dict], size: int) -> str:
    """The cache's identity: format, size, and per record the image file's path, size and time,
    keypoints and visibility."""
    h = hashlib.sha256(f"handpose-cache-{CACHE_FORMAT}-{size}".encode())
    for rec in records:
        try:
            st = os.stat(rec["image_path"])
            stamp = (st.st_size, st.st_mtime_ns)
        except OSError:
            stamp = None
        h.update(json.dumps([rec["image_path"], stamp, list(map(float, rec["keypoints"])),
                             rec.get("visible")]).encode())
    return h.hexdigest()


def _meta_path(path: Path) -> Path:
    return path.with_name(path.name + ".meta.npz")


def check_record_size(rec: dict, w: int, h: int) -> None:
    """:func:`.records.check_record_fits` for the image's actual ``w x h``: keypoints resized by
    another image's size would train on wrong labels without a sign."""
    check_record_fits(rec, rec["image_path"], (w, h))


def _write_error(path: Path, err: OSError, nbytes: int) -> OSError:
    need = f"{nbytes / 1e9:.1f} GB" if nbytes >= 1e9 else f"{nbytes / 1e6:.1f} MB"
    return OSError(f"could not write {path}: {err.strerror or err}. The cache needs about {need} "
                   f"in {path.parent}: free space there, pass another path, or path=None to keep "
                   "the cache in memory.")


def _new_array_file(path: Path, shape: tuple) -> tuple[Path, np.memmap]:
    """A temporary ``.npy`` beside ``path``, memory-mapped for writing, its disk space reserved:
    ``open_memmap`` makes a sparse file, and writing through the map into a hole the disk cannot
    fill kills the process with SIGBUS (a Colab kernel simply dies). Reserving the blocks first
    turns a full disk into an ``OSError`` here, before any decoding."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        if hasattr(os, "posix_fallocate"):
            with open(tmp, "r+b") as f:
                try:
                    os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
                except OSError as err:
                    if err.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                        raise  # else the filesystem cannot reserve space; carry on without
    except BaseException:
        tmp.unlink()
        raise
    return tmp, array


def _load_cache(path: Path, key: str, size: int) -> ImageCache | None:
    try:
        with np.load(_meta_path(path), allow_pickle=False) as meta:
            if str(meta["key"]) != key:
                return None
            images = np.load(path, mmap_mode="r")
            fields = {k: meta[k] for k in ("keypoints", "visible", "orig_size", "record_index")}
            skipped = [tuple(s) for s in json.loads(str(meta["skipped"]))]
            report = SkipReport(seen=int(meta["seen"]), skipped=skipped)
    except (OSError, ValueError, KeyError):
        return None  # missing, unreadable or from an older format: rebuild
    k = len(fields["keypoints"])
    if images.dtype != np.uint8 or len(images) < k or images.shape[1:] != (size, size, 3):
        return None
    return ImageCache(images=images[:k], size=size, path=path, report=report, **fields)


def build_image_cache(records: list[dict], size: int, path: str | Path | None = None,
                      skip_bad: bool = False, num_threads: int | None = None,
                      progress: bool = True, log=print, shard=None) -> ImageCache:
    """Decode and resize every record's image once into a uint8 ``(N, size, size, 3)`` array.

    * ``path=None``: in memory, ``N * size**2 * 3`` bytes (FreiHAND's 130,240 training images:
      19.6 GB at 224, 6.4 GB at 128; Colab has about 12 GB, so a path or a smaller size).
    * ``path="…/train_224.npy"``: written there (keypoints in ``….meta.npz``) and memory-mapped.
      The same records and size reuse it; any change rebuilds it. Files get their names only
      when complete; a full disk raises ``OSError`` before decoding. Use local disk, not Drive.
    * ``shard=(rank, world_size)`` (``torchrun``): only that process's share, every
      ``world_size``-th record from ``rank``, in a file of its own (``train_224.shard0of4.npy``).

    Images are squashed to a square; keypoints follow (:func:`resize_keypoints`). An unreadable
    image raises :class:`~handpose_utils.images.ImageReadError` naming the file (``skip_bad``:
    left out, counted in ``cache.report``); a size other than its record's raises.
    """
    if not records:
        raise ValueError("build_image_cache: no records")
    path = Path(path) if path is not None else None
    if shard is not None:
        rank, world_size = shard
        if path is not None:
            path = path.with_name(f"{path.stem}.shard{rank}of{world_size}.npy")
        # shorter shares repeat the first records: DDP hangs on a process with fewer batches
        mine = np.arange(rank, len(records), world_size)
        mine = np.concatenate([mine, np.arange(math.ceil(len(records) / world_size) - len(mine))])
        cache = build_image_cache([records[i] for i in mine], size, path, skip_bad, num_threads,
                                  progress, log)
        if len(cache) < len(mine):  # a process with fewer images would leave DDP waiting
            raise ImageReadError(f"process {rank} of {world_size} skipped images of its shard, so "
                                 "it would run fewer batches than the others; remove them from "
                                 f"the records:\n{cache.report}")
        cache.record_index, cache.shard = mine[cache.record_index], (rank, world_size)
        return cache
    if path is not None:
        remove_stale_temporaries(path.parent, (path.name, _meta_path(path).name), log)
        key = _cache_key(records, size)
        cached = _load_cache(path, key, size)
        if cached is not None:
            if log and cached.report.n_skipped:
                log(f"image cache {path}: {cached.report}")
            return cached

    n = len(records)
    kp_all = np.stack([keypoints_array(r) for r in records])
    vis_all = np.stack([visible_array(r) for r in records])
    shape = (n, size, size, 3)
    try:  # an array in memory, or a temporary file (tmp) beside path
        tmp, images = ((None, np.empty(shape, np.uint8)) if path is None
                       else _new_array_file(path, shape))
    except OSError as err:
        raise _write_error(path, err, math.prod(shape)) from err
    try:
        keep, orig_size, report = [], [], SkipReport()

        def work(i):  # decoded straight to size x size RGB, upright: resize_keypoints is exact
            image_path = records[i]["image_path"]
            try:
                with open_image(image_path) as im:
                    return decode_pixels(im, image_path, square=size)
            except ImageReadError as err:
                if not skip_bad:
                    raise
                return err

        def decoded():  # in the records' order
            # PIL releases the GIL while decoding and resizing, so threads use both Colab cores.
            # Chunks bound the decoded images waiting in memory, and the work wasted on an error.
            with ThreadPoolExecutor(num_threads or max(1, env.default_num_workers())) as pool:
                for start in range(0, n, 256):
                    yield from pool.map(work, range(start, min(n, start + 256)))

        bar = env.progress_bar(decoded(), progress, total=n, desc=f"caching {size}px", leave=False)
        for i, res in enumerate(bar):
            report.seen += 1
            if isinstance(res, ImageReadError):
                report.skipped.append((records[i]["image_path"], str(res)))
                continue
            array, (w, h) = res
            check_record_size(records[i], w, h)
            images[len(keep)] = array  # kept images fill the first rows, the rest stay unused
            keep.append(i)
            orig_size.append((w, h))
        if not keep:
            raise ImageReadError(f"no readable image among {n} records:\n{report}")
        keep = np.asarray(keep, np.int64)
        orig = np.asarray(orig_size, np.float32)
        kps = ((kp_all[keep] + 0.5) * (size / orig[:, None, :]) - 0.5).astype(np.float32)
        if report.n_skipped and log:
            log(f"image cache: {report}")
        if path is None:
            return ImageCache(images[:len(keep)], kps, vis_all[keep], orig, keep, size,
                              report=report)
        try:
            images.flush()
            del images
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
            tmp = None
            # The metadata goes last: the key inside it is what marks the cache as complete.
            atomic_write(_meta_path(path), lambda f: np.savez(
                f, key=np.array(key), keypoints=kps, visible=vis_all[keep], orig_size=orig,
                record_index=keep, seen=np.array(report.seen),
                skipped=np.array(json.dumps(report.skipped))))
        except OSError as err:
            if tmp is None:  # the images reached their final name, the metadata did not
                path.unlink(missing_ok=True)
            cause = err.__cause__ if isinstance(err, WriteError) and err.__cause__ else err
            raise _write_error(path, cause, math.prod(shape)) from err
        return _load_cache(path, key, size)
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


class CachedKeypointDataset(Dataset):
    """An :class:`ImageCache` (or its ``indices``) as a Dataset. ``ds[i]`` is one sample,
    ``ds[list_of_indices]`` a whole batch cut with one fancy-index (no per-sample collate), its
    images channels-last views. ``extras``: per-record arrays, indexed like the records list,
    e.g. ``{"xyz": np.array([r["xyz"] for r in records])}``."""

    def __init__(self, cache: ImageCache, indices=None, extras: dict | None = None):
        self.cache = cache
        self.indices = np.arange(len(cache)) if indices is None else np.asarray(indices, np.int64)
        self.extras = {k: np.asarray(v) for k, v in (extras or {}).items()}

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i):
        if isinstance(i, (int, np.integer)):  # one sample: a batch of one, unbatched
            return {key: value[0] for key, value in self[[i]].items()}
        c = self.cache
        j = self.indices[np.asarray(i, np.int64)]  # fancy indexing copies: writable arrays
        sample = {
            "image": torch.from_numpy(c.images[j]).permute(0, 3, 1, 2),
            "keypoints": torch.from_numpy(c.keypoints[j]),
            "visible": torch.from_numpy(c.visible[j]),
            "index": torch.from_numpy(c.record_index[j]),
            "orig_size": torch.from_numpy(c.orig_size[j]),
        }
        for key, values in self.extras.items():
            sample[key] = torch.as_tensor(values[c.record_index[j]])
        return sample


def _shuffling_sampler(ds, generator, seed: int):
    """A new order each epoch: of a cache built as one process's shard (seeded by its rank too),
    else under ``torchrun`` of this process's 1/N (``DistributedSampler``), else of all."""
    shard = getattr(getattr(ds, "cache", None), "shard", None)
    if shard is not None:
        return DistributedSampler(ds, num_replicas=1, rank=0, seed=seed + shard[0] * 1_000_003)
    state = env.distributed()
    if state.world_size == 1:
        return RandomSampler(ds, generator=generator)
    # pads the last shard with repeated samples: a process with a batch fewer leaves others waiting
    return DistributedSampler(ds, num_replicas=state.world_size, rank=state.rank, seed=seed)


def cached_loader(data, batch_size: int = 32, shuffle: bool = False, drop_last: bool = False,
                  num_workers: int = 0, pin_memory: bool | None = None,
                  generator=None, seed: int = 0) -> DataLoader:
    """A DataLoader whose sampler yields whole batches of indices, each one slice of the cache.
    No workers by default: a batch is a memory copy, cheaper than shipping it between processes.
    The shuffle draws from torch's global RNG (unless ``generator``), so ``fit``'s per-epoch
    seeding fixes every epoch's order; under ``torchrun`` it samples this process's shard (or
    shuffles a cache built as one, ``set_epoch`` seeding it)."""
    ds = data if isinstance(data, CachedKeypointDataset) else CachedKeypointDataset(data)
    base = _shuffling_sampler(ds, generator, seed) if shuffle else SequentialSampler(ds)
    pin = torch.cuda.is_available() if pin_memory is None else pin_memory
    return DataLoader(ds, sampler=BatchSampler(base, batch_size, drop_last), batch_size=None,
                      num_workers=num_workers, pin_memory=pin, persistent_workers=num_workers > 0)


# Augmentation on the device -----------------------------------------------------------------------

def _rand(n: int, lo: float, hi: float, generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64)


def colour_jitter(x: torch.Tensor, brightness: float = 0.0, contrast: float = 0.0,
                  saturation: float = 0.0, grayscale_p: float = 0.0,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Per-sample colour changes of a float ``(B, 3, H, W)`` batch in ``[0, 1]``, on its device;
    no pixel moves, so keypoints and heatmaps stay valid. Each factor is drawn uniformly from
    ``[1 - amount, 1 + amount]``: brightness scales the pixels, contrast scales them about the
    image's mean grey, saturation about each pixel's grey; then a sample turns grey with
    probability ``grayscale_p``. Random numbers come from ``generator`` (default: torch's global
    RNG) on the CPU, so a seed gives the same changes on every device."""
    b = x.shape[0]

    def factors(amount):
        return _rand(b, max(0.0, 1 - amount), 1 + amount, generator).float().to(
            x.device).view(b, 1, 1, 1)

    # ITU-R 601 luma, as PIL's and torchvision's grayscale
    gray_w = torch.tensor((0.299, 0.587, 0.114), device=x.device).view(1, 3, 1, 1)
    if brightness:
        x = x * factors(brightness)
    if contrast:
        m = (x * gray_w).sum(1, keepdim=True).mean((2, 3), keepdim=True)
        x = (x - m) * factors(contrast) + m
    if saturation:
        g = (x * gray_w).sum(1, keepdim=True)
        x = (x - g) * factors(saturation) + g
    if grayscale_p:
        gray = torch.rand(b, generator=generator) < grayscale_p
        g = (x * gray_w).sum(1, keepdim=True).expand_as(x)
        x = torch.where(gray.to(x.device).view(b, 1, 1, 1), g, x)
    return x.clamp(0, 1)


class DeviceAugment(nn.Module):
    """Augment a whole uint8 batch on its device, moving keypoints with the pixels.

    ``forward(images, keypoints)`` takes ``(B, 3, H, W)`` uint8 (or float in ``[0, 1]``) images
    and ``(B, J, 2)`` pixel keypoints and returns float images and moved keypoints. In training
    mode, per sample: a flip with probability ``flip_p``, rotation in ``±rotation`` degrees, scale
    in ``scale``, shift up to ``translate`` of the size (one affine matrix for pixels and
    keypoints), then :func:`colour_jitter` and ImageNet normalisation; in eval mode only the
    normalisation. Uncovered borders get the mean colour; keypoints pushed outside keep their flags.

    A flipped right hand **keeps its joint indices** but looks like a left hand: fine for 2D
    keypoints; for 3D targets or handedness use ``return_params=True`` to mirror them too, or
    ``flip_p=0``. Skeletons with left/right pairs pass ``flip_index`` (e.g.
    ``skeletons.COCO_FLIP_INDEX``): flipped samples swap those joints (and :class:`PrepareBatch`
    their visibility flags). ``generator``: as in :func:`colour_jitter`, the same on every device.
    """

    def __init__(self, flip_p: float = 0.5, rotation: float = 30.0, scale=(0.8, 1.2),
                 translate: float = 0.1, brightness: float = 0.3, contrast: float = 0.3,
                 saturation: float = 0.3, normalize: bool = True, mean=IMAGENET_MEAN,
                 std=IMAGENET_STD, flip_index=None):
        super().__init__()
        self.flip_p, self.rotation, self.scale, self.translate = flip_p, rotation, scale, translate
        self.flip_index = None if flip_index is None else torch.as_tensor(flip_index)
        self.brightness, self.contrast, self.saturation = brightness, contrast, saturation
        self.normalize = normalize
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def extra_repr(self) -> str:
        return (f"flip_p={self.flip_p}, rotation={self.rotation}, scale={self.scale}, "
                f"translate={self.translate}, brightness={self.brightness}, "
                f"contrast={self.contrast}, saturation={self.saturation}")

    def sample_matrices(self, batch: int, height: int, width: int, generator=None):
        """Per-sample forward affine matrices ``(B, 3, 3)`` in pixel coordinates (float64, CPU),
        and the flip flags: ``p' = T(c + t) R(angle) S(scale) F T(-c) p`` about the centre c."""
        flip = torch.rand(batch, generator=generator) < self.flip_p
        angle = _rand(batch, -self.rotation, self.rotation, generator) * math.pi / 180
        s = _rand(batch, self.scale[0], self.scale[1], generator)
        tx = _rand(batch, -self.translate, self.translate, generator) * width
        ty = _rand(batch, -self.translate, self.translate, generator) * height
        f = torch.where(flip, -1.0, 1.0).double()
        cos, sin = torch.cos(angle) * s, torch.sin(angle) * s
        m = torch.zeros(batch, 3, 3, dtype=torch.float64)
        # linear part R S F, with F = diag(f, 1) flipping x
        m[:, 0, 0], m[:, 0, 1] = cos * f, -sin
        m[:, 1, 0], m[:, 1, 1] = sin * f, cos
        centre = torch.tensor([(width - 1) / 2, (height - 1) / 2], dtype=torch.float64)
        m[:, :2, 2] = centre + torch.stack([tx, ty], 1) - m[:, :2, :2] @ centre
        m[:, 2, 2] = 1
        return m, flip

    def swap_flipped(self, values: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
        """Reorder the joints (dim 1) of flipped samples by ``flip_index`` (no-op without one)."""
        if self.flip_index is None or not bool(flip.any()):
            return values
        flip = flip.to(values.device).view(-1, *([1] * (values.dim() - 1)))
        return torch.where(flip, values[:, self.flip_index.to(values.device)], values)

    def _jitter(self, x: torch.Tensor, generator) -> torch.Tensor:
        return colour_jitter(x, self.brightness, self.contrast, self.saturation,
                             generator=generator)

    def forward(self, images: torch.Tensor, keypoints: torch.Tensor | None = None,
                generator: torch.Generator | None = None, return_params: bool = False):
        x = images.float().div_(255) if images.dtype == torch.uint8 else images.float()
        params = {}
        if self.training:
            b, _, h, w = x.shape
            m, flip = self.sample_matrices(b, h, w, generator)
            x = self._jitter(x, generator)
        if self.normalize:  # before the warp: its zeros at uncovered borders are the mean colour
            x = (x - self.mean) / self.std
        if self.training:
            # grid_sample needs the inverse map (output -> input) in [-1, 1] coordinates:
            # u = (2x + 1) / W - 1 is exactly align_corners=False's pixel-centre convention.
            n = torch.tensor([[2 / w, 0, 1 / w - 1], [0, 2 / h, 1 / h - 1], [0, 0, 1]],
                             dtype=torch.float64)
            theta = (n @ torch.linalg.inv(m) @ torch.linalg.inv(n))[:, :2]
            grid = F.affine_grid(theta.float().to(x.device), list(x.shape), align_corners=False)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
            if keypoints is not None:
                mk = m.float().to(keypoints.device)
                keypoints = keypoints.float() @ mk[:, :2, :2].transpose(1, 2) + mk[:, None, :2, 2]
                keypoints = self.swap_flipped(keypoints, flip)
            params = {"matrix": m.float(), "flip": flip}
        return (x, keypoints, params) if return_params else (x, keypoints)


# Loaders and the engine's prepare_batch -----------------------------------------------------------

def make_loaders(train, val=None, *, batch_size: int = 32, num_workers: int | None = None,
                 device=None, drop_last: bool = True, seed: int = 0):
    """``(train_loader, val_loader)`` of caches (:func:`cached_loader`) or per-sample Datasets.
    The training loader shuffles and drops the last partial batch (a batch of 1 upsets
    BatchNorm); under ``torchrun`` it samples this process's shard (``batch_size`` per process),
    while the validation loader covers the whole set (rank 0 evaluates)."""
    device = torch.device(device) if device is not None else env.pick_device()
    pin = device.type == "cuda"

    def one(data, shuffle):
        if data is None:
            return None
        if isinstance(data, (ImageCache, CachedKeypointDataset)):
            return cached_loader(data, batch_size, shuffle=shuffle, drop_last=drop_last and shuffle,
                                 pin_memory=pin, seed=seed)
        workers = env.default_num_workers() if num_workers is None else num_workers
        sampler = _shuffling_sampler(data, None, seed) if shuffle else None
        return DataLoader(data, batch_size=batch_size, sampler=sampler, num_workers=workers,
                          drop_last=drop_last and shuffle, pin_memory=pin,
                          persistent_workers=workers > 0)

    return one(train, True), one(val, False)


def to_device(obj, device):
    """Tensors in ``obj`` (also inside dicts, lists and tuples) moved to ``device``, without
    waiting (pinned memory lets the copy overlap compute); anything else as it is."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


class PrepareBatch:
    """The engine's ``prepare_batch`` for keypoint batches: ``(batch, device, train) ->
    (inputs, targets, extras)``. Moves the batch to ``device``; uint8 images go through
    ``augment`` (training) or only its normalisation, float ones are taken as normalised.
    ``extras`` holds every other batch entry, ``keypoints`` moved with the pixels and, when
    augmenting, the affine ``matrix`` and ``flip`` flags. Targets are ``target_fn(keypoints,
    extras, size)``, by default normalised coordinates ``(B, 2J)`` (2D regression)."""

    def __init__(self, augment: DeviceAugment | None = None, target_fn=None):
        self.augment = augment if augment is not None else DeviceAugment()
        self.target_fn = target_fn

    def __call__(self, batch: dict, device, train: bool):
        batch = to_device(batch, device)
        images = batch.pop("image")
        keypoints = batch["keypoints"]
        if images.dtype == torch.uint8:
            self.augment.to(device).train(train)
            images, keypoints, params = self.augment(images, keypoints, return_params=True)
            batch.update(to_device(params, device))
            if "visible" in batch and "flip" in params:
                batch["visible"] = self.augment.swap_flipped(batch["visible"], params["flip"])
        batch["keypoints"] = keypoints
        size = (images.shape[-1], images.shape[-2])
        if self.target_fn is not None:
            return images, self.target_fn(keypoints, batch, size), batch
        return images, pixels_to_normalized(keypoints, size).flatten(1), batch
