"""The GPU check: the throughput benchmark (bench.py) and one epoch of each of notebooks 03, 05
and 06 at their GPU defaults, into one JSON file (``--out``) and a table.

    python -m handpose_utils.gpu_check                  # on one GPU
    python -m handpose_utils.gpu_check --dry-run        # the same at smoke size, on the CPU

Per part: images/s over ``steps_run`` of the epoch's ``steps_per_epoch`` steps, ``epoch_s`` (their
time scaled to the whole epoch, cuDNN's autotuning included), ``prepare_s`` (rendering the data
the first time: not the epoch's), ``wall_s``, the peak GPU memory and the AMP dtype. The data stay
in ``--data``; the checkpoints go to a temporary folder. A part that fails is recorded with its
error, the others still run, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import shlex
import sys
import tempfile
import time
import traceback
from functools import partial
from pathlib import Path
from unittest import mock

import torch

from . import bench, env, train
from . import regression3d as R
from .checkpoints import load_checkpoint
from .data import make_loaders
from .engine import TrainConfig, fit
from .prepare import prepare_splits
from .prepare.coco import prepare_coco
from .safefiles import write_json


def _epoch_figures(row: dict, batch: int, steps_per_epoch: int, max_steps: int | None) -> dict:
    """A history row's speed; ``epoch_s`` scales the timed steps up to the whole epoch."""
    steps_run = min(steps_per_epoch, max_steps or steps_per_epoch)
    if steps_run == 0:
        raise RuntimeError(f"the training set makes no full batch of {batch}: nothing was timed")
    return {"batch": batch, "steps_run": steps_run, "steps_per_epoch": steps_per_epoch,
            "train_s": row["train_s"], "images_per_s": steps_run * batch / row["train_s"],
            "epoch_s": row["train_s"] * steps_per_epoch / steps_run,
            "train_loss": row["train_loss"]}


def _throughput(device, data: Path, run_dir: Path, max_steps: int | None) -> dict:
    """bench.py as the README runs it: batch 32, 224 x 224, its three models."""
    size, batch = env.smoke_or(224, 64), env.smoke_or(32, 4)
    rows = bench.run(env.smoke_or(("simple", "mobile", "resnet50"), ("simple",)), size, batch,
                     steps=env.smoke_or(None, 2), warmup=env.smoke_or(None, 1), device=device,
                     n_images=env.smoke_or(256, 8))
    return {"size": size, "batch": batch, "models": {row.pop("model"): row for row in rows}}


def _hands_data(s: dict, data: Path) -> int:
    """Notebook 03's synthetic FreiHAND (made if missing); its number of training images."""
    return len(prepare_splits("synthetic", data, n_poses=s["n_poses"], seed=s["seed"])[0])


def _coco_data(s: dict, data: Path) -> int:
    """Notebook 06's synthetic COCO (made if missing); its number of training people."""
    return len(prepare_coco("synthetic", data, n_train=s["n_train_images"],
                            n_val=s["n_val_images"], seed=s["seed"], width=s["image_size"][0],
                            height=s["image_size"][1])["train"])


def _train_cli(task: str, make_data, device, data: Path, run_dir: Path, max_steps) -> dict:
    """One epoch of ``python -m handpose_utils.train TASK`` at its defaults for ``device``, in
    this process so that its GPU memory is measured, after ``make_data`` made its data."""
    t0 = time.perf_counter()
    n_train = make_data(train.defaults(task, device.type == "cuda", env.is_smoke()), data)
    prepare_s = time.perf_counter() - t0
    argv = [task, "--epochs", "1", "--device", str(device), "--data", str(data),
            "--run-dir", str(run_dir), "--no-resume", "--max-steps", str(max_steps)]
    if train.main(argv) != 0:  # it has printed why
        raise RuntimeError(f"python -m handpose_utils.train {shlex.join(argv)} failed (see above)")
    ckpt = load_checkpoint(run_dir / "last.pth")
    batch = ckpt["config"]["global_batch"]
    return {"prepare_s": prepare_s, **_epoch_figures(ckpt["history"][-1], batch,
                                                     n_train // batch, max_steps)}


def _pose3d(device, data: Path, run_dir: Path, max_steps: int | None) -> dict:
    """Notebook 05's training cells at its GPU defaults: ResNet-50 with ImageNet weights,
    224 px, batch 64, MSE, dropout 0.5, lr 1e-4, geometric augmentation."""
    size, batch = env.smoke_or(224, 32), env.smoke_or(64, 8)
    t0 = time.perf_counter()
    train_records, val_records, _ = prepare_splits("synthetic", data,
                                                   n_poses=env.smoke_or(3000, 12), seed=0)
    prepare_s = time.perf_counter() - t0
    train_ds = R.pose3d_dataset(train_records, size, progress=False)
    val_ds = R.pose3d_dataset(val_records, size, progress=False)
    codec = R.RootRelativeCodec(default_scale=float(train_ds.extras["scale"].mean()))
    train_loader, val_loader = make_loaders(train_ds, val_ds, batch_size=batch, device=device)
    env.seed_everything(0)
    model = R.build_pose3d_model(pretrained=env.smoke_or(True, False), dropout=0.5)
    config = TrainConfig(epochs=1, lr=1e-4, weight_decay=1e-4, best_metric="val_mpjpe",
                         mode="min", checkpoint_dir=run_dir, device=device, max_steps=max_steps,
                         live_plot=False, settings=R.run_config(codec, size, model))
    history = fit(model, train_loader, val_loader, config, loss_fn=R.pose3d_loss("mse"),
                  prepare_batch=R.pose3d_prepare_batch(codec, R.pose3d_augment(True)),
                  metrics=R.Pose3DMeter(codec))
    return {"prepare_s": prepare_s, **_epoch_figures(history[-1], batch, len(train_loader),
                                                     max_steps)}


PARTS = {"throughput": _throughput, "notebook03": partial(_train_cli, "hands", _hands_data),
         "notebook05": _pose3d, "notebook06": partial(_train_cli, "coco", _coco_data)}


def _run_part(name: str, device, data: Path, run_dir: Path, max_steps, same: dict) -> dict:
    """One part, its failure recorded instead of raised; the peak memory is the part's own."""
    print(f"\n=== gpu_check: {name}", flush=True)
    gc.collect()  # the previous part's tensors, so that they do not count here
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    try:
        row = {"ok": True, **PARTS[name](device, data, run_dir, max_steps)}
    except (Exception, SystemExit) as err:  # train.py refuses bad settings with SystemExit
        traceback.print_exc()
        row = {"ok": False, "error": f"{type(err).__name__}: {err}",
               "traceback": traceback.format_exc()}
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {**row, "wall_s": time.perf_counter() - t0, "peak_gpu_mem_mb": peak, **same}


COLUMNS = {"images/s": "images_per_s", "s/epoch": "epoch_s", "steps run": "steps_run",
           "per epoch": "steps_per_epoch", "prepare s": "prepare_s", "wall s": "wall_s",
           "peak MiB": "peak_gpu_mem_mb"}


def _table(parts: dict) -> str:
    """One line per part; the benchmark's, one per model with its course pipeline's images/s."""
    lines = ["part".ljust(22) + "".join(f"{h:>10}" for h in COLUMNS)]
    for name, row in parts.items():
        rows = {f"{name} {model}": {**row, "images_per_s": v["course"]}
                for model, v in row.get("models", {}).items()} or {name: row}
        for label, r in rows.items():
            cells = [r.get(k) for k in COLUMNS.values()]
            lines.append(label.ljust(22) + "".join(f"{'-' if c is None else round(c, 1):>10}"
                                                   for c in cells)
                         + ("" if r["ok"] else f"  FAILED: {r['error'][:100]}"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m handpose_utils.gpu_check", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="gpu_check.json", help="the JSON file (default gpu_check.json)")
    p.add_argument("--data", help="data folder (default: HANDPOSE_DATA, else the course's data/; "
                   "with --dry-run its smoke/ sub-folder)")
    p.add_argument("--max-steps", type=int, help="training steps per epoch (default: all)")
    p.add_argument("--dry-run", action="store_true", help="everything tiny, on the CPU")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = p.parse_args(argv)
    if args.max_steps is not None and args.max_steps < 1:
        p.error(f"--max-steps {args.max_steps}: give 1 or more, or leave it out for whole epochs")
    if not (args.dry_run or torch.cuda.is_available()):
        p.error("no CUDA GPU here (in Colab: Runtime > Change runtime type); --dry-run runs the "
                "check at smoke size on the CPU")
    device = torch.device("cpu" if args.dry_run else "cuda")
    # The notebooks' smoke mode sizes the dry run (and only it): train.py and env read it.
    with mock.patch.dict(os.environ, {env.SMOKE_VAR: "1" if args.dry_run else "0"}):
        data = Path(args.data) if args.data else env.data_dir()
        same = {"amp": env.amp_settings(device).describe(), "device_name": (
            torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine())}
        results = {"command": shlex.join(["python", "-m", "handpose_utils.gpu_check", *argv]),
                   "dry_run": args.dry_run, "device": str(device), **same,
                   "torch": torch.__version__, "cuda": torch.version.cuda,
                   "cudnn": torch.backends.cudnn.version(), "data": str(data),
                   "max_steps": args.max_steps, "parts": {}, "failed": [], "total_s": 0.0}
        write_json(args.out, results, indent=1)  # an unwritable --out fails now, not at the end
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="handpose-gpu-check-") as runs:
            for name in PARTS:
                row = _run_part(name, device, data, Path(runs) / name, args.max_steps, same)
                results["parts"][name] = row
                results["failed"] += [] if row["ok"] else [name]
                results["total_s"] = time.perf_counter() - t0
                write_json(args.out, results, indent=1)  # after each part: a crash keeps them
    print(f"\n{_table(results['parts'])}\n\n{results['total_s']:.0f} s on {same['device_name']}, "
          f"written to {args.out}; failed parts: {', '.join(results['failed']) or 'none'}")
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
