"""Training throughput, in images per second, for three ways of feeding the same model:

(a) **reference**: the reference project's loop: PIL decode, resize and augmentation per sample
    in at most 2 DataLoader workers (Colab's core count), fp32, NCHW.
(b) **course**: a decode-once uint8 cache, augmentation on the device (:class:`data.DeviceAugment`),
    AMP as :mod:`env` chooses, channels-last memory.
(c) **compute**: one batch already on the device, fed again and again: the ceiling for (b).

All three run :func:`engine.train_one_epoch`, so b/c is what the data pipeline costs and b/a what
the course pipeline gains. The images: 224 x 224 JPEGs drawn with PIL (FreiHAND's size), or the
synthetic FreiHAND renderer's with ``--freihand``.

    python -m handpose_utils.bench
    python -m handpose_utils.bench --models mobile resnet50 --batch 64 --steps 30 --device cuda
"""

from __future__ import annotations

import argparse
import itertools
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import nn
from torch.utils.data import DataLoader, Subset

from . import data as D
from . import env
from .engine import train_one_epoch
from .models import build_model
from .pipelines import KeypointDataset, per_sample_transforms

REFERENCE_WORKERS = 2  # Colab's CPU count


def make_jpeg_records(folder: Path, n: int, size: int = 224, seed: int = 0) -> list[dict]:
    """``n`` random drawings (gradient, ellipses, lines) saved as JPEG, with random keypoints."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    ramp = np.linspace(0, 1, size)[None, :, None]
    records = []
    for i in range(n):
        c0, c1 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        im = Image.fromarray((c0 * (1 - ramp) + c1 * ramp).repeat(size, 0).astype(np.uint8))
        draw = ImageDraw.Draw(im)
        for _ in range(6):
            x0, y0 = rng.integers(0, size - 20, 2)
            w, h = rng.integers(10, size // 2, 2)
            draw.ellipse([int(x0), int(y0), int(x0 + w), int(y0 + h)],
                         fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        kp = rng.uniform(10, size - 10, (21, 2))
        for a, b in zip(kp[:-1], kp[1:]):
            draw.line([tuple(a), tuple(b)], fill=(255, 220, 180), width=4)
        path = folder / f"{i:05d}.jpg"
        im.save(path, "JPEG", quality=90)
        records.append({"image_path": str(path), "keypoints": kp.ravel().tolist(),
                        "width": size, "height": size})
    return records


def freihand_records(folder: Path, n: int) -> list[dict]:
    """Images from the synthetic FreiHAND renderer (slower to make, closer to the course data)."""
    from .datasets.freihand import load_freihand
    from .synthetic.freihand import make_freihand
    root = make_freihand(folder / "synthetic_freihand", n_poses=max(1, math.ceil(n / 4)),
                         progress=False)
    return load_freihand(root)[:n]


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _train_speed(model, batches, prepare, *, device, amp, channels_last, batch, steps,
                 warmup) -> float:
    """Images/s of ``steps`` training steps through the engine, after ``warmup`` untimed ones,
    all read from one stream of ``batches`` (no worker restart between them)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=1e-4)
    scaler = torch.amp.GradScaler("cuda" if device.type == "cuda" else "cpu",
                                  enabled=amp.use_scaler)
    stream = iter(batches)
    common = dict(loss_fn=nn.L1Loss(), optimizer=optimizer, device=device, prepare_batch=prepare,
                  scaler=scaler, amp=amp, channels_last=channels_last, progress=False)
    train_one_epoch(model, stream, max_steps=warmup, **common)
    _sync(device)
    t0 = time.perf_counter()
    train_one_epoch(model, stream, max_steps=steps, **common)
    _sync(device)
    return steps * batch / (time.perf_counter() - t0)


def data_only(loader, prepare, device, batch, steps, warmup) -> float:
    """Images/s of a loader plus ``prepare`` (transfer, augmentation, targets), no model."""
    stream = iter(loader)
    for _ in range(warmup):
        prepare(next(stream), device, True)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        prepare(next(stream), device, True)
    _sync(device)
    return steps * batch / (time.perf_counter() - t0)


def run(models=("simple", "mobile", "resnet50"), size=224, batch=32, steps=None, warmup=None,
        device=None, n_images=256, use_freihand=False, log=print) -> list[dict]:
    """Measure every model in the three modes; print a table and return its rows."""
    device = torch.device(device) if device is not None else env.pick_device()
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here")
    gpu = device.type == "cuda"
    steps = steps or (30 if gpu else 3)
    warmup = warmup or (5 if gpu else 1)
    amp = env.amp_settings(device)
    channels_last = True  # the engine's default on every device (faster on CPUs too)
    total = batch * (steps + warmup + 1)
    # the course's rule: no worker processes in smoke mode (the tests, gpu_check's dry run)
    workers = 0 if env.is_smoke() else min(REFERENCE_WORKERS, env.default_num_workers())
    rows = []
    with tempfile.TemporaryDirectory(prefix="handpose-bench-") as tmp:
        t0 = time.perf_counter()
        records = (freihand_records(Path(tmp), n_images) if use_freihand
                   else make_jpeg_records(Path(tmp) / "jpg", n_images))
        t_make = time.perf_counter() - t0
        t0 = time.perf_counter()
        cache = D.build_image_cache(records, size, path=Path(tmp) / f"cache_{size}.npy",
                                    progress=False)
        t_cache = time.perf_counter() - t0
        log(f"torch {torch.__version__} | device {device}"
            + (f" ({torch.cuda.get_device_name(device)})" if gpu else "")
            + f" | {torch.get_num_threads()} threads | course: AMP {amp.describe()}, "
            f"channels_last={channels_last} | reference: fp32, NCHW, {workers} workers")
        log(f"{len(records)} JPEGs {'(synthetic FreiHAND) ' if use_freihand else ''}made in "
            f"{t_make:.1f}s; cache {size}px built once in {t_cache:.2f}s "
            f"({len(records) / t_cache:.0f} img/s, {cache.images.nbytes / 2**20:.0f} MiB); "
            f"batch {batch}, {warmup} warm-up + {steps} timed steps per mode")

        # Both datasets repeat their images to `total` samples: one loader pass covers a run.
        per_sample = KeypointDataset(records, size, transform=per_sample_transforms(True))
        ref_ds = Subset(per_sample, np.resize(np.arange(len(per_sample)), total))
        course_ds = D.CachedKeypointDataset(cache, indices=np.resize(np.arange(len(cache)), total))
        prepare_course = D.PrepareBatch(D.DeviceAugment())

        ref_loader = lambda: DataLoader(ref_ds, batch_size=batch, shuffle=True, drop_last=True,
                                        num_workers=workers, pin_memory=gpu,
                                        persistent_workers=workers > 0)
        course_loader = lambda: D.cached_loader(course_ds, batch, shuffle=True, drop_last=True,
                                                pin_memory=gpu)

        # The data paths alone (no model): what each can feed at most.
        data_ref = data_only(ref_loader(), prepare_course, device, batch, steps, warmup)
        data_course = data_only(course_loader(), prepare_course, device, batch, steps, warmup)
        log(f"data only (no model): reference loader {data_ref:.0f} img/s | "
            f"course cache + device augmentation {data_course:.0f} img/s")
        timing = dict(device=device, batch=batch, steps=steps, warmup=warmup)
        for name in models:
            torch.manual_seed(0)
            row = {"model": name}
            row["reference"] = _train_speed(build_model(name), ref_loader(), prepare_course,
                                            amp=env.AmpSettings(None, False),
                                            channels_last=False, **timing)
            row["course"] = _train_speed(build_model(name), course_loader(), prepare_course,
                                         amp=amp, channels_last=channels_last, **timing)
            x = torch.randn(batch, 3, size, size, device=device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            fixed = (x, torch.rand(batch, 42, device=device), {})
            row["compute"] = _train_speed(build_model(name), itertools.repeat(fixed),
                                          lambda b, dev, train: b, amp=amp,
                                          channels_last=channels_last, **timing)
            rows.append(row)
            log(_format_row(row, size, batch, header=len(rows) == 1))
    return rows


def _format_row(row, size, batch, header=False) -> str:
    lines = []
    if header:
        lines.append(f"{'model':<10} {'size':>4} {'batch':>5} | {'(a) reference':>14} "
                     f"{'(b) course':>11} {'(c) compute':>12} | {'b/a':>5} {'b/c':>5}")
        lines.append("-" * len(lines[0]))
    a, b, c = row["reference"], row["course"], row["compute"]
    lines.append(f"{row['model']:<10} {size:>4} {batch:>5} | {a:>10.1f} i/s {b:>7.1f} i/s "
                 f"{c:>8.1f} i/s | {b / a:>5.2f} {b / c:>5.2f}")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m handpose_utils.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["simple", "mobile", "resnet50"],
                   help="build_model names (default: simple mobile resnet50)")
    p.add_argument("--size", type=int, default=224, help="input size (default 224)")
    p.add_argument("--batch", type=int, default=32, help="batch size (default 32)")
    p.add_argument("--steps", type=int, help="timed steps per mode (default 30 on CUDA, 3 on CPU)")
    p.add_argument("--warmup", type=int, help="untimed warm-up steps (default 5 on CUDA, 1 on CPU)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: env.pick_device())")
    p.add_argument("--images", type=int, default=256,
                   help="distinct JPEGs to generate (default 256)")
    p.add_argument("--freihand", action="store_true",
                   help="use the synthetic FreiHAND renderer's images instead of drawings")
    args = p.parse_args(argv)
    run(args.models, args.size, args.batch, args.steps, args.warmup, args.device, args.images,
        args.freihand)


if __name__ == "__main__":
    main()
