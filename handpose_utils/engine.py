"""The training engine shared by every notebook: ``fit``, ``evaluate``, ``predict``, checkpoints.

Written in the style of torchvision's ``references/`` scripts: plain functions, one loop you can
read top to bottom. Nothing here knows about keypoints; three small callables carry the task:

* ``prepare_batch(batch, device, train) -> (inputs, targets, extras)`` moves a batch to the device,
  augments or normalises it and builds the targets. ``extras`` (a dict) carries whatever the
  metrics need (visibility, original image size, indices). For keypoints use
  :class:`handpose_utils.data.PrepareBatch`; the default, :func:`default_prepare_batch`, takes
  ``(inputs, targets)`` tuples or ``{"image", "target"}`` dicts.
* ``loss_fn(outputs, targets) -> scalar``; outputs are cast to float32 first, so losses never run
  in half precision. Any ``nn.Module`` loss works (``nn.L1Loss()``), and ``targets`` may be a dict
  when a loss needs more (e.g. visibility weights).
* ``metrics``: an object with ``reset()``, ``update(outputs, targets, extras)`` and
  ``compute() -> dict`` (e.g. :class:`handpose_utils.metrics.KeypointMeter`), or a plain function
  ``fn(outputs, targets, extras) -> dict`` that gets the whole validation set concatenated. An
  optional ``log_items`` attribute, a list of ``(key, label, format)``, says what to print each
  epoch.

Reproducibility: at the start of each epoch ``fit`` seeds Python, NumPy and torch from
``(seed, epoch)``. Shuffling (a ``RandomSampler`` draws from torch's RNG when an epoch starts),
dropout and device augmentation therefore depend only on the epoch, so a resumed run repeats the
uninterrupted one exactly (CPU augmentation in *persistent* DataLoader workers is the exception:
those workers keep their own RNG streams).

Several processes (``torchrun``, see :func:`handpose_utils.env.init_distributed`): when a
process group runs, ``fit`` wraps the model in ``DistributedDataParallel`` (gradients are
averaged over the processes in every ``backward()``), optionally converts BatchNorm to
``SyncBatchNorm`` (``TrainConfig(sync_bn=True)``, CUDA only), calls ``set_epoch`` on the
training loader's ``DistributedSampler`` (each process trains on its own shard, reshuffled each
epoch) and offsets the per-epoch seed by the rank (the processes augment differently). The
training loss is averaged over the processes; rank 0 alone evaluates the whole validation set,
logs, plots, writes checkpoints and runs the callbacks, and sends its epoch row (and a callback's
decision to stop) to the others, so every process holds the same history and takes the same
decisions. Checkpoints hold the plain module's weights, so a run saved by N processes resumes in
any number of them.
"""

from __future__ import annotations

import errno
import math
import os
import random
import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as torch_dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from . import env

__all__ = [
    "History",
    "TrainConfig",
    "fit",
    "train_one_epoch",
    "evaluate",
    "predict",
    "save_checkpoint",
    "load_checkpoint",
    "remove_stale_temporaries",
    "rng_state",
    "set_rng_state",
    "make_scheduler",
    "default_prepare_batch",
    "plot_history",
    "LivePlot",
    "FunctionMeter",
    "CheckpointError",
    "NonFiniteLossError",
    "StopTraining",
    "format_epoch",
]


class CheckpointError(RuntimeError):
    """A checkpoint file cannot be read or written, or does not fit the model. The message names
    the file."""


class NonFiniteLossError(FloatingPointError):
    """Training produced NaN or infinite numbers: the loss, the weights after an optimiser step,
    or the validation loss / best metric. The message names the epoch (and the batch), and says
    which weights the model holds afterwards."""


class StopTraining(Exception):
    """Raise from a callback to end ``fit`` cleanly after the current epoch (early stopping)."""


# --------------------------------------------------------------------------------------------
# History


class History(list):
    """One dict per epoch (``epoch``, ``train_loss``, ``val_loss``, ``val_<metric>``..., ``lr``,
    ``train_s`` (training steps), ``time_s`` (the whole epoch, validation included)). A plain
    list, so it pickles, saves in checkpoints and converts to pandas with ``pd.DataFrame(history)``.
    """

    def column(self, key: str) -> list:
        return [row.get(key, math.nan) for row in self]

    def best(self, key: str, mode: str = "max") -> dict | None:
        """The row with the best finite ``key``, or None."""
        rows = [r for r in self if key in r and math.isfinite(r[key])]
        if not rows:
            return None
        pick = max if mode == "max" else min
        return pick(rows, key=lambda r: r[key])

    def table(self, keys: Sequence[str] | None = None) -> str:
        """A fixed-width text table of the history (all keys by default)."""
        if not self:
            return "(empty history)"
        if keys is None:
            keys = []
            for row in self:
                keys += [k for k in row if k not in keys]
        widths = [max(len(k), 9) for k in keys]
        lines = ["  ".join(k.rjust(w) for k, w in zip(keys, widths))]
        for row in self:
            cells = []
            for k, w in zip(keys, widths):
                v = row.get(k, "")
                cells.append((f"{v:.4g}" if isinstance(v, float) else str(v)).rjust(w))
            lines.append("  ".join(cells))
        return "\n".join(lines)


def plot_history(history: Sequence[dict], keys: Sequence[str] | None = None, fig=None):
    """Loss curves (left) and validation metrics (right) against the epoch. Returns the figure.

    ``keys`` picks the metrics for the right panel (default: every ``val_*`` except the loss).
    Fractions (PCK, AUC, AP: every value in [0, 1]) share its left axis; metrics in other units
    (EPE in pixels, MPJPE in mm) go on a second axis at its right, so neither flattens the other.
    Passing ``fig`` redraws into it (live plot).
    """
    import matplotlib.pyplot as plt

    if fig is None:
        fig, _ = plt.subplots(1, 2, figsize=(10, 3.5))
        plt.close(fig)  # we display it ourselves; this keeps Jupyter from showing it twice
    for ax in fig.axes:
        ax.clear()
    ax_loss, ax_metric = fig.axes[:2]
    epochs = [r["epoch"] for r in history]
    for key, label in (("train_loss", "train"), ("val_loss", "val")):
        values = [r.get(key, math.nan) for r in history]
        if any(math.isfinite(v) for v in values):
            ax_loss.plot(epochs, values, "o-", ms=3, label=label)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    if history:
        ax_loss.legend()
    if keys is None:
        keys = []
        for r in history:
            keys += [k for k in r if k.startswith("val_") and k != "val_loss" and k not in keys]
    series = {k: [r.get(k, math.nan) for r in history] for k in keys}
    fractions = [k for k, v in series.items()
                 if all(0.0 <= x <= 1.0 for x in v if math.isfinite(x))]
    others = [k for k in keys if k not in fractions]
    lines = []
    for key in fractions:
        lines += ax_metric.plot(epochs, series[key], "o-", ms=3, label=key[4:])
    ax_metric.set(xlabel="epoch", title="validation metrics")
    if fractions:
        ax_metric.set_ylabel("fraction")
    if others:
        ax_other = fig.axes[2] if len(fig.axes) > 2 else ax_metric.twinx()
        for key in others:
            lines += ax_other.plot(epochs, series[key], "s--", ms=3, label=key[4:],
                                   color=f"C{(len(lines)) % 10}")
        ax_other.set_ylabel(", ".join(k[4:] for k in others) + " (dashed)")
    if lines and history:
        ax_metric.legend(lines, [ln.get_label() for ln in lines], fontsize=8)
    fig.tight_layout()
    return fig


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class LivePlot:
    """A history figure that updates in place in Jupyter and Colab: it is shown once with
    ``display(fig, display_id=True)`` and refreshed with ``handle.update(fig)``, which (unlike
    ``clear_output``) leaves the tqdm bars and printed lines of the same cell alone. Outside a
    notebook it does nothing."""

    def __init__(self, enabled: bool = True, keys: Sequence[str] | None = None):
        self.enabled = enabled and _in_notebook()
        self.keys = keys  # the metrics to draw (default: every val_* metric)
        self.fig = None
        self.handle = None

    def update(self, history) -> None:
        if not self.enabled or not history:
            return
        from IPython.display import display

        self.fig = plot_history(history, keys=self.keys, fig=self.fig)
        if self.handle is None:
            self.handle = display(self.fig, display_id=True)
        else:
            self.handle.update(self.fig)


def format_epoch(row: dict, epochs: int, items: Sequence[tuple] = ()) -> str:
    """One line per epoch, e.g.
    ``[003/050] train=0.0421 | val=0.0385 | PCK@0.05=72.3% | lr=2.99e-04``.
    ``items`` are ``(metric_key, label, format)``; ``val_<metric_key>`` is printed if present."""
    parts = [f"train={row['train_loss']:.4f}"]
    if "val_loss" in row:
        parts.append(f"val={row['val_loss']:.4f}")
    for key, label, fmt in items:
        if f"val_{key}" in row:
            parts.append(f"{label}={fmt.format(row[f'val_{key}'])}")
    parts.append(f"lr={row['lr']:.2e}")
    return f"[{row['epoch']:03d}/{epochs:03d}] " + " | ".join(parts)


# --------------------------------------------------------------------------------------------
# Checkpoints


def rng_state() -> dict:
    """Python, NumPy, torch CPU and CUDA RNG states, in types ``torch.load(weights_only=True)``
    accepts (lists, numbers, tensors)."""
    py = random.getstate()
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` captured."""
    v, keys, gauss = state["python"]
    random.setstate((v, tuple(keys), gauss))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == \
            torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def _unwrap(model: nn.Module) -> nn.Module:
    """The plain module behind ``torch.compile`` and ``DistributedDataParallel`` (whose
    state_dict keys carry an ``_orig_mod.`` / ``module.`` prefix)."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, DistributedDataParallel):
            model = model.module
        else:
            return model


def _is_ddp(model: nn.Module) -> bool:
    """Whether ``model`` is (or compiles) a ``DistributedDataParallel`` wrapper."""
    return isinstance(getattr(model, "_orig_mod", model), DistributedDataParallel)


def _write_error(path: Path, err: Exception) -> str:
    full = (isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)) or \
        "unexpected pos" in str(err)
    hint = ("The disk (or the Drive quota) is probably full; torch reports a write that ran out "
            "of space as 'unexpected pos'. Free some space (delete old runs or previous-* "
            "folders) or choose a checkpoint_dir on another disk."
            if full else "Check that the folder exists, is writable and has free disk space.")
    return (f"could not write {path}: {type(err).__name__}: {err}. {path.name} was left as it "
            f"was (the previous save, if any, is intact). {hint}")


def _atomic_write(path: Path, write: Callable) -> None:
    """Write through a temporary file in the same folder, fsync, then ``os.replace``: readers
    see the old file or the new one, never half of one, even if the runtime dies mid-save.
    The temporary's name, ``.<name>.<pid>.<random>.tmp``, lets a later run tell the leftovers
    of a killed save from a save in progress (:func:`remove_stale_temporaries`). A failed write
    raises :class:`CheckpointError` naming the file and the reason."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp",
                               dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, Exception):  # not KeyboardInterrupt: that stays what it is
            raise CheckpointError(_write_error(path, err)) from err
        raise
    try:  # make the rename itself durable (POSIX); harmless where unsupported
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def save_checkpoint(path, model: nn.Module, optimizer=None, scheduler=None, scaler=None,
                    epoch: int = 0, history=None, best: dict | None = None,
                    config: dict | None = None) -> Path:
    """Save everything needed to resume, atomically: model, optimiser, scheduler and GradScaler
    states, the last finished ``epoch``, RNG states, ``history``, the ``best`` metric record and
    a small ``config`` dict (numbers and strings). Returns the path.

    Refuses (:class:`CheckpointError`) to write a model with NaN or infinite weights or floating
    buffers: a checkpoint is something to go back to. A write that fails (disk full) raises
    :class:`CheckpointError` naming the file; the previous file stays intact."""
    path = Path(path)
    weights = _unwrap(model).state_dict()
    bad = _nonfinite_names(weights)
    if bad:
        raise CheckpointError(
            f"refusing to write {path}: the model holds NaN/inf values in "
            f"{', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}. A checkpoint must be worth "
            f"going back to; the previous {path.name}, if any, is left as it was.")
    state = {
        "format": 1,
        "model": weights,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "epoch": int(epoch),
        "rng": rng_state(),
        "history": [dict(r) for r in (history or [])],
        "best": dict(best) if best else None,
        "config": dict(config or {}),
    }
    _atomic_write(path, lambda f: torch.save(state, f))
    return path


def _finiteness(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """A 0-dim tensor on the tensors' device that is NaN or inf when any of their values is:
    the sum of all magnitudes (L1 norm). Finite values could only overflow it beyond 3e38, far
    past any trained network. One fused foreach reduction on CUDA (per tensor on the CPU: about
    2x faster there than the largest magnitude) and no device-to-host copy, so it can run after
    every optimiser step; the value is read back with the loss, every ``check_every`` steps."""
    if not tensors:
        return torch.zeros(())
    return nn.utils.get_total_norm(tensors, norm_type=1.0)


def _float_tensors(model: nn.Module) -> list[torch.Tensor]:
    """Parameters and floating buffers (BatchNorm's running statistics): what a checkpoint must
    hold finite. ``num_batches_tracked`` and other integer buffers cannot be NaN."""
    return [t for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()]


def _nonfinite_names(state: dict) -> list[str]:
    """The names of the floating tensors in ``state`` that hold a NaN or an infinity."""
    floats = {k: v for k, v in state.items()
              if isinstance(v, torch.Tensor) and v.is_floating_point()}
    if not floats or math.isfinite(float(_finiteness(list(floats.values())))):
        return []
    return [k for k, v in floats.items() if not bool(torch.isfinite(v).all())]


# Leftovers of a killed save: ".last.pth.<pid>.<random>.tmp" (save_checkpoint),
# ".last.pth.<pid>.tmp" (Drive copies), and the same without the pid (older versions).
_TEMPORARY = re.compile(r"^\.[^/]+\.pth\.(?:(?P<pid>\d+)\.)?(?:[a-z0-9_]+\.)?tmp$")
STALE_TEMPORARY_S = 60


def _pid_alive(pid: int | None) -> bool:
    """Whether ``pid`` is a running process on this machine (False when unknown: no pid in the
    name, or no safe way to ask, as on Windows where ``os.kill`` terminates)."""
    if pid is None or pid <= 0 or os.name != "posix":
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)  # signal 0 only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except (OverflowError, OSError):
        return False
    return True


def remove_stale_temporaries(folder, log: Callable | None = print,
                             min_age_s: float = STALE_TEMPORARY_S) -> list[Path]:
    """Delete the temporary files that killed checkpoint saves left in ``folder`` (a checkpoint
    each, e.g. 48 MB). Only the course's own names (``.<name>.pth.<pid>.<random>.tmp``, see
    :func:`save_checkpoint`), and only when nobody can still be writing them: unchanged for
    ``min_age_s`` seconds and not named after a live process of this machine (a folder on
    Drive may be shared with another runtime, whose saves keep their file's time fresh).
    Returns the removed paths; ``fit`` calls it for its checkpoint and Drive folders."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    now, removed, size = time.time(), [], 0
    for path in sorted(folder.iterdir()):
        match = _TEMPORARY.match(path.name)
        if not match or not path.is_file():
            continue
        pid = int(match["pid"]) if match["pid"] else None
        try:
            stat = path.stat()
            if now - stat.st_mtime < min_age_s or _pid_alive(pid):
                continue
            path.unlink()
        except OSError:  # gone meanwhile, or not ours to delete: leave it
            continue
        removed.append(path)
        size += stat.st_size
    if removed and log:
        log(f"removed {len(removed)} stale temporary file(s) of interrupted checkpoint saves "
            f"from {folder} ({size / 1e6:.0f} MB): {', '.join(p.name for p in removed)}")
    return removed


CHECKPOINT_FILES = ("best.pth", "last.pth")


def _set_aside_previous_run(folder: Path, stamp: str, log) -> Path | None:
    """Move ``folder``'s best.pth and last.pth into a new ``folder/previous-<stamp>/`` so a new
    run cannot overwrite them. Returns that folder, or None when there was nothing to move."""
    files = [folder / name for name in CHECKPOINT_FILES if (folder / name).is_file()]
    if not files:
        return None
    dest, n = folder / f"previous-{stamp}", 1
    while dest.exists():  # two starts within one second
        n += 1
        dest = folder / f"previous-{stamp}-{n}"
    try:
        dest.mkdir(parents=True)
        for f in files:
            os.replace(f, dest / f.name)
    except OSError as err:
        raise CheckpointError(
            f"could not move the previous run's {', '.join(f.name for f in files)} in {folder} "
            f"to {dest} ({err}); nothing was overwritten. Move them yourself, pass another "
            "checkpoint_dir / drive_dir, or resume=True to continue that run.") from err
    if log:
        log(f"new run: moved the previous run's {' and '.join(f.name for f in files)} from "
            f"{folder} to {dest} (resume=True would have continued it)")
    return dest


# Settings that may change between an interrupted run and its resumption without changing what
# is trained: the hardware (AMP, memory layout, number of processes) and the planned length.
RESUMABLE_CHANGES = ("amp", "channels_last", "epochs", "world_size")


def _check_resume_config(path: Path, saved: dict, current: dict) -> None:
    """Refuse to resume a checkpoint made with other settings (another input size, dataset or
    learning rate would silently continue a different experiment)."""
    diff = {k: (saved[k], current[k]) for k in saved.keys() & current.keys()
            if k not in RESUMABLE_CHANGES and saved[k] != current[k]}
    if diff:
        changes = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in sorted(diff.items()))
        raise CheckpointError(
            f"{path} was saved by a run with other settings ({changes}). Resuming would mix two "
            "experiments. Use another checkpoint_dir for the new settings, or pass resume=False "
            "to start over (the old best.pth and last.pth move to a previous-<time> folder).")


def load_checkpoint(path, model: nn.Module | None = None, optimizer=None, scheduler=None,
                    scaler=None, restore_rng: bool = False, map_location="cpu") -> dict:
    """Load a checkpoint with ``torch.load(weights_only=True)`` (no arbitrary code runs) and
    restore the given objects from it. Returns the checkpoint dict (``epoch``, ``history``,
    ``best``, ``config``, ...).

    Raises ``FileNotFoundError`` or :class:`CheckpointError`, both naming the file, when it is
    missing, truncated or corrupt, or does not fit ``model``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise CheckpointError(
            f"cannot read checkpoint {path} ({type(err).__name__}: {err}). The file is truncated "
            "or corrupt, e.g. a save or a Drive copy was interrupted. Delete it and resume from "
            "another checkpoint (last.pth / best.pth, or the copy on Drive), or retrain."
        ) from err
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise CheckpointError(f"{path} is not a course checkpoint (no 'model' entry); "
                              "save it with engine.save_checkpoint")
    if model is not None:
        try:
            _unwrap(model).load_state_dict(ckpt["model"])
        except RuntimeError as err:
            raise CheckpointError(
                f"checkpoint {path} does not fit this model: {err}. Build the same architecture "
                "(build_model name and num_outputs) as the run that saved it."
            ) from err
    for obj, key in ((optimizer, "optimizer"), (scheduler, "scheduler"), (scaler, "scaler")):
        # an empty scaler state comes from a run without fp16 (CPU, bf16): keep the fresh scaler
        if obj is not None and ckpt.get(key):
            obj.load_state_dict(ckpt[key])
    if restore_rng and ckpt.get("rng"):
        set_rng_state(ckpt["rng"])
    return ckpt


# --------------------------------------------------------------------------------------------
# One epoch


def _to_device(obj, device):
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, dict):
        return {k: _to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_device(v, device) for v in obj)
    return obj


def default_prepare_batch(batch, device, train: bool):
    """``(inputs, targets, *rest)`` tuples or ``{"image": ..., "target": ..., **extras}`` dicts,
    moved to ``device`` as they are (no augmentation, no dtype change)."""
    if isinstance(batch, dict):
        batch = dict(batch)
        inputs, targets = batch.pop("image"), batch.pop("target", None)
        extras = batch
    else:
        inputs, targets = batch[0], batch[1]
        extras = {"rest": list(batch[2:])} if len(batch) > 2 else {}
    return _to_device(inputs, device), _to_device(targets, device), _to_device(extras, device)


def _float(obj):
    """Outputs to float32 (losses and metrics are computed in full precision)."""
    if isinstance(obj, torch.Tensor):
        return obj.float() if obj.is_floating_point() else obj
    if isinstance(obj, dict):
        return {k: _float(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_float(v) for v in obj)
    return obj


def _batch_size(inputs) -> int:
    if isinstance(inputs, torch.Tensor):
        return inputs.shape[0]
    if isinstance(inputs, dict):
        return _batch_size(next(iter(inputs.values())))
    return _batch_size(inputs[0])


def _amp(amp, device: torch.device) -> env.AmpSettings:
    """``None``/``True``: the environment's choice; ``False``: off; a dtype or AmpSettings: that."""
    if amp is None or amp is True:
        return env.amp_settings(device)
    if amp is False:
        return env.AmpSettings(None, False)
    if isinstance(amp, torch.dtype):
        return env.AmpSettings(amp, amp == torch.float16 and device.type == "cuda")
    return amp


def _channels_last(inputs, enabled: bool):
    if enabled and isinstance(inputs, torch.Tensor) and inputs.dim() == 4:
        return inputs.contiguous(memory_format=torch.channels_last)
    return inputs


def _len(loader) -> int | None:
    try:
        return len(loader)
    except TypeError:  # an IterableDataset without __len__
        return None


def _progress(iterable, total, desc, enabled):
    from tqdm.auto import tqdm

    # disable is passed only to switch bars off: otherwise tqdm's own TQDM_DISABLE /
    # TQDM_MININTERVAL environment defaults (handy in CI) still apply.
    off = {} if enabled else {"disable": True}
    return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True, **off)


def _nonfinite_message(epoch, batch, n_batches, value, amp: env.AmpSettings) -> str:
    return (
        f"loss is {value} at epoch {epoch}, batch {batch}"
        + (f"/{n_batches}" if n_batches else "")
        + ". Training stopped. Likely "
        "causes: a learning rate too high (try 10x lower, warm-up epochs or grad_clip=1.0); "
        + ("fp16 overflow under AMP (try amp=False or bfloat16); " if amp.dtype == torch.float16
           else "")
        + "bad targets (NaN/inf keypoints, or targets not normalised the way the loss expects); "
        "or a non-finite input image."
    )


def _nonfinite_weights_message(epoch, batch, n_batches, value, loss) -> str:
    return (
        f"the weights became NaN/inf (the sum of their magnitudes is {value}) in the optimizer "
        f"step of epoch {epoch}, batch {batch}" + (f"/{n_batches}" if n_batches else "")
        + f", although that batch's loss was finite ({loss:.4g}). Training stopped. Likely "
        "causes: a NaN/inf gradient from a finite loss (a square root, log or division at 0 in "
        "the loss or the model), or a learning rate so high that the weights overflow (try 10x "
        "lower, or grad_clip=1.0)."
    )


def _check_finite(pending: list, checked: int, epoch: int, n_batches, amp,
                  sync: bool = False) -> int:
    """``pending`` holds, per batch, ``(loss, finiteness of the weights after its step)`` as
    device tensors (:func:`_finiteness`). Raise :class:`NonFiniteLossError` at the first batch
    whose loss or weights are NaN/inf, naming it; else empty ``pending`` and return the new
    count of checked batches. With ``sync`` (several processes) the window is summed over the
    processes first, so a NaN in any of them stops all of them at the same batch (one alone
    would leave the others waiting for its gradients)."""
    if not pending:
        return checked
    losses = torch.stack([loss for loss, _ in pending]).float()
    weights = torch.stack([w for _, w in pending]).float()
    window = torch.stack([losses, weights], 1)
    if sync:
        local = window.clone()
        torch_dist.all_reduce(window)
        window = torch.where(torch.isfinite(window), local, window)
    window = window.cpu()  # one device-to-host copy per window
    bad = (~torch.isfinite(window)).any(1).nonzero()
    if len(bad):
        i = int(bad[0])
        loss, weight = float(window[i, 0]), float(window[i, 1])
        where = f" (in process {env.distributed().rank} or another)" if sync else ""
        if not math.isfinite(loss):  # checked first: its step ran before the weights' check
            raise NonFiniteLossError(
                _nonfinite_message(epoch, checked + i + 1, n_batches, loss, amp) + where)
        raise NonFiniteLossError(
            _nonfinite_weights_message(epoch, checked + i + 1, n_batches, weight, loss) + where)
    checked += len(pending)
    pending.clear()
    return checked


def train_one_epoch(model, loader, *, loss_fn, optimizer, device, prepare_batch=None,
                    scaler=None, amp=None, channels_last: bool = False, grad_clip=None,
                    epoch: int = 1, max_steps: int | None = None, check_every: int | None = None,
                    progress: bool = True) -> float:
    """Train for one pass over ``loader`` (or ``max_steps`` batches). Returns the mean loss per
    sample.

    The loss, and the weights after each optimiser step, are checked for NaN/inf every
    ``check_every`` steps (default: every step on CPU, every 20 on CUDA, where reading a value
    back forces the CPU to wait for the GPU; the check still names the exact batch). A step
    adds one reduction over the parameters and floating buffers (:func:`_finiteness`), left on
    the device until the check: a step that turns the weights into NaN is caught even when its
    own loss was finite (e.g. the last step of an epoch). Either raises
    :class:`NonFiniteLossError`. A ``DistributedDataParallel`` model makes the check
    collective: every process stops at the first bad batch of any of them.
    """
    device = torch.device(device)
    amp = _amp(amp, device)
    prepare_batch = prepare_batch or default_prepare_batch
    check_every = check_every or (20 if device.type == "cuda" else 1)
    sync = _is_ddp(model)
    model.train()
    n_batches = _len(loader)
    if max_steps is not None:
        n_batches = max_steps if n_batches is None else min(n_batches, max_steps)
    total = torch.zeros((), device=device, dtype=torch.float64)
    count = 0
    pending: list[tuple] = []  # (loss, weights' finiteness) not yet checked, on the device
    checked = 0
    weights = _float_tensors(model)
    bar = _progress(loader, n_batches, f"epoch {epoch} train", progress)
    step = 0
    for step, batch in enumerate(bar, start=1):
        inputs, targets, _ = prepare_batch(batch, device, True)
        inputs = _channels_last(inputs, channels_last)
        with torch.autocast(device.type, dtype=amp.dtype, enabled=amp.enabled):
            outputs = model(inputs)
        loss = loss_fn(_float(outputs), targets)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None and scaler.is_enabled():
            scaler.scale(loss).backward()
            if grad_clip:
                scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            if grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
        bs = _batch_size(inputs)
        total += loss.detach().double() * bs
        count += bs
        pending.append((loss.detach(), _finiteness(weights)))
        if step % check_every == 0 or step == n_batches:
            checked = _check_finite(pending, checked, epoch, n_batches, amp, sync)
            bar.set_postfix(loss=f"{float(total) / count:.4f}")
        if max_steps is not None and step >= max_steps:
            break
    _check_finite(pending, checked, epoch, n_batches, amp, sync)  # a loader shorter than len()
    bar.close()
    if count == 0:
        raise ValueError("the training loader produced no batches (dataset smaller than one "
                         "batch with drop_last=True?)")
    return float(total) / count


class FunctionMeter:
    """Adapts ``fn(outputs, targets, extras) -> dict`` to the meter protocol by concatenating
    every batch (on the CPU). Fine for small outputs; write a real meter for large ones."""

    def __init__(self, fn: Callable):
        self.fn = fn
        self.log_items = getattr(fn, "log_items", [])
        self.reset()

    def reset(self):
        self.outputs, self.targets, self.extras = [], [], []

    def update(self, outputs, targets, extras):
        self.outputs.append(_to_device(outputs, "cpu"))
        self.targets.append(_to_device(targets, "cpu"))
        self.extras.append(_to_device(extras, "cpu"))

    def compute(self) -> dict:
        def cat(parts):
            first = parts[0]
            if isinstance(first, torch.Tensor):
                return torch.cat(parts)
            if isinstance(first, dict):
                return {k: cat([p[k] for p in parts]) for k in first
                        if isinstance(first[k], (torch.Tensor, dict))}
            return parts

        return self.fn(cat(self.outputs), cat(self.targets), cat(self.extras))


def _meter(metrics):
    if metrics is None or hasattr(metrics, "update"):
        return metrics
    return FunctionMeter(metrics)


@torch.no_grad()
def evaluate(model, loader, *, loss_fn=None, prepare_batch=None, metrics=None, device=None,
             amp=None, channels_last: bool = True, progress: bool = True,
             desc: str = "eval") -> dict:
    """Loss (if ``loss_fn``) and ``metrics`` over ``loader`` in eval mode. Returns a dict, e.g.
    ``{"loss": 0.03, "pck": 0.72, "pck@0.05": 0.72, "auc": 0.81, "epe": 4.1}``. The meter keeps
    its accumulated arrays afterwards (``KeypointMeter.arrays()``) for deeper analysis."""
    device = torch.device(device) if device is not None else env.pick_device()
    amp = _amp(amp, device)
    prepare_batch = prepare_batch or default_prepare_batch
    meter = _meter(metrics)
    if meter is not None:
        meter.reset()
    model.eval()
    total, count = 0.0, 0
    for batch in _progress(loader, _len(loader), desc, progress):
        inputs, targets, extras = prepare_batch(batch, device, False)
        inputs = _channels_last(inputs, channels_last)
        with torch.autocast(device.type, dtype=amp.dtype, enabled=amp.enabled):
            outputs = model(inputs)
        outputs = _float(outputs)
        bs = _batch_size(inputs)
        if loss_fn is not None:
            total += float(loss_fn(outputs, targets)) * bs
        count += bs
        if meter is not None:
            meter.update(outputs, targets, extras)
    out = {}
    if loss_fn is not None and count:
        out["loss"] = total / count
    if meter is not None and count:
        out.update(meter.compute())
    return out


@torch.no_grad()
def predict(model, loader, *, prepare_batch=None, device=None, amp=None,
            channels_last: bool = True, return_extras: bool = False,
            progress: bool = True):
    """Model outputs for every batch of ``loader`` (eval mode, no augmentation), concatenated on
    the CPU as float32. With ``return_extras=True`` also the concatenated tensor ``extras`` (e.g.
    ``index``, ``orig_size``, ``keypoints``) to map outputs back to records and pixels."""
    device = torch.device(device) if device is not None else env.pick_device()
    amp = _amp(amp, device)
    prepare_batch = prepare_batch or default_prepare_batch
    model.eval()
    outs, extras_all = [], {}
    for batch in _progress(loader, _len(loader), "predict", progress):
        inputs, _, extras = prepare_batch(batch, device, False)
        inputs = _channels_last(inputs, channels_last)
        with torch.autocast(device.type, dtype=amp.dtype, enabled=amp.enabled):
            outs.append(_float(model(inputs)).cpu())
        if return_extras:
            for k, v in extras.items():
                if isinstance(v, torch.Tensor):
                    extras_all.setdefault(k, []).append(v.cpu())
    outputs = torch.cat(outs)
    if return_extras:
        return outputs, {k: torch.cat(v) for k, v in extras_all.items()}
    return outputs


# --------------------------------------------------------------------------------------------
# fit


def make_scheduler(optimizer, scheduler, epochs: int, warmup_epochs: int = 0):
    """An epoch-level LR scheduler (stepped once per epoch, as in torchvision's
    references):

    * ``"cosine"``: cosine decay to 0 over ``epochs - warmup_epochs``, after an optional linear
      warm-up: warm-up epoch ``e`` (0-based) runs at ``(e + 1) / (warmup_epochs + 1)`` of the
      learning rate, so even a single warm-up epoch trains (at half the rate), never idles at 1%;
    * ``"step"``: ``StepLR``, lr x 0.1 every ``epochs // 3`` epochs (after the warm-up);
    * ``None``: constant (or only the warm-up);
    * a callable ``f(optimizer) -> scheduler``, or a scheduler object, used as is.
    """
    from torch.optim import lr_scheduler as sch

    if scheduler is not None and not isinstance(scheduler, str):
        return scheduler(optimizer) if callable(scheduler) and not hasattr(
            scheduler, "state_dict") else scheduler
    main_epochs = max(1, epochs - warmup_epochs)
    if scheduler == "cosine":
        main = sch.CosineAnnealingLR(optimizer, T_max=main_epochs)
    elif scheduler == "step":
        main = sch.StepLR(optimizer, step_size=max(1, main_epochs // 3), gamma=0.1)
    elif scheduler is None:
        main = sch.LambdaLR(optimizer, lambda e: 1.0) if warmup_epochs else None
    else:
        raise ValueError(
            f"unknown scheduler {scheduler!r}: use 'cosine', 'step', None or a callable")
    if not warmup_epochs:
        return main
    warm = sch.LinearLR(optimizer, start_factor=1 / (warmup_epochs + 1), total_iters=warmup_epochs)
    return sch.SequentialLR(optimizer, [warm, main], milestones=[warmup_epochs])


def _cosine_tail(optimizer, start: int, factor: float, epochs: int, done: int):
    """The cosine of a run whose length changed after ``start`` epochs: from ``factor`` x the
    base rate (epoch ``start``'s rate) down towards 0 over epochs ``start + 1 .. epochs``,
    positioned for epoch ``done + 1``. The last epoch still trains (at a small rate), as in
    :func:`make_scheduler`'s cosine."""
    from torch.optim.lr_scheduler import LambdaLR

    remaining = epochs - start

    def lr_factor(k):  # k = 0 for epoch start + 1
        return factor * (1 + math.cos(math.pi * (k + 1) / (remaining + 1))) / 2

    # last_epoch = k - 1 makes the constructor's own step land on k (needs initial_lr, which
    # the restored optimiser state carries)
    return LambdaLR(optimizer, lr_factor, last_epoch=done - start - 1)


def _resume_scheduler(sched, scheduler, optimizer, ckpt: dict, epochs: int, warmup_epochs: int,
                      run_config: dict, log):
    """The LR scheduler to continue a run with, after its optimiser state was restored.

    With an unchanged plan, the saved scheduler state, exactly. When ``epochs`` changed, a
    schedule built for the old length would follow the old curve (a 2-epoch cosine resumed to
    5 epochs would run 1e-2, 5e-3, 0, 5e-3, 1e-2), so a ``"cosine"`` schedule is re-planned:
    still in its warm-up, it follows the fresh plan for the new length (the warm-up does not
    depend on it); after that, a cosine from the last finished epoch's rate down over the
    remaining epochs (:func:`_cosine_tail`; recorded in the config as ``cosine_tail_epoch`` /
    ``cosine_tail_factor`` so a later resume rebuilds it). ``"step"`` keeps its step interval
    and None stays constant (neither rises nor hits 0); a custom scheduler continues from its
    saved state, with a note in the log.
    """
    saved = ckpt.get("config") or {}
    done, old_epochs = int(ckpt["epoch"]), saved.get("epochs", epochs)
    tail = saved.get("cosine_tail_epoch"), saved.get("cosine_tail_factor")
    if sched is None or done >= epochs:  # nothing left to schedule
        return sched
    if scheduler != "cosine" or (old_epochs == epochs and tail[0] is None):
        if ckpt.get("scheduler"):
            sched.load_state_dict(ckpt["scheduler"])
        if old_epochs != epochs and log:
            kind = (f"{scheduler!r} schedule" if isinstance(scheduler, str) or scheduler is None
                    else "custom scheduler")
            log(f"epochs changed from {old_epochs} to {epochs}: the {kind} continues from its "
                "saved state (built for the old length; if it depends on the number of epochs, "
                "start a new run with resume=False)")
        return sched
    if old_epochs == epochs:  # a re-planned cosine, interrupted again
        start, factor = int(tail[0]), float(tail[1])
    elif done <= warmup_epochs:
        for group in optimizer.param_groups:  # the chained schedulers start from the base rate
            group["lr"] = group["initial_lr"]
        fresh = make_scheduler(optimizer, "cosine", epochs, warmup_epochs)
        with warnings.catch_warnings():  # "scheduler.step() before optimizer.step()": on purpose
            warnings.simplefilter("ignore")
            for _ in range(done):
                fresh.step()
        if log:
            log(f"epochs changed from {old_epochs} to {epochs} during the warm-up: the "
                f"schedule follows the plan for {epochs} epochs")
        return fresh
    else:
        start = done
        factor = ckpt["history"][-1]["lr"] / optimizer.param_groups[0]["initial_lr"]
        if log:
            log(f"epochs changed from {old_epochs} to {epochs}: the cosine continues from the "
                f"last epoch's learning rate ({ckpt['history'][-1]['lr']:.2e}) down over the "
                f"remaining {epochs - done} epoch(s)")
    run_config.update(cosine_tail_epoch=start, cosine_tail_factor=factor)
    return _cosine_tail(optimizer, start, factor, epochs, done)


def _restore_last_good(model: nn.Module, ckpt_dir: Path | None) -> str:
    """After a non-finite stop: load the last checkpoint's weights into ``model`` and say so."""
    last = ckpt_dir / "last.pth" if ckpt_dir is not None else None
    if last is None or not last.is_file():
        why = "fit ran without checkpoint_dir" if ckpt_dir is None else "no epoch finished yet"
        return (f"The model's weights were not restored ({why}): they hold NaN/inf; rebuild the "
                "model before using it.")
    try:
        ckpt = load_checkpoint(last, model)
    except (CheckpointError, OSError) as err:
        return f"The model's weights were not restored: {err}"
    return (f"The model now holds the weights of epoch {ckpt['epoch']} from {last}; that file "
            "and best.pth are left as they were.")


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch) % 2**63


def _copy_to_drive(src: Path, drive_dir: Path | None, log) -> None:
    if drive_dir is None:
        return
    try:
        drive_dir.mkdir(parents=True, exist_ok=True)
        dst = drive_dir / src.name
        tmp = drive_dir / f".{src.name}.{os.getpid()}.tmp"
        try:
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)
        finally:
            if tmp.exists():
                tmp.unlink()
    except OSError as err:  # Drive hiccups must not kill a long run; the local copy is intact
        if log:
            log(f"warning: could not copy {src.name} to {drive_dir}: {err}")


LOSS_METRICS = ("val_loss", "train_loss")  # the only metrics whose direction fit knows


@dataclass
class TrainConfig:
    """Everything :func:`fit` needs besides the model, the data and the task's callables.

    One object instead of two dozen keyword arguments, in the style of nanoGPT's config: make one,
    print it, change a field with ``dataclasses.replace(cfg, epochs=20)`` or ``cfg.replace(...)``.

    * Optimisation: ``epochs``; AdamW with ``lr`` and ``weight_decay`` (unless ``fit`` gets an
      ``optimizer``); ``scheduler`` ``"cosine"`` (default), ``"step"``, None or a callable
      ``f(optimizer, epochs)`` (see :func:`make_scheduler`), stepped per epoch after
      ``warmup_epochs`` of linear warm-up; ``grad_clip`` clips the global gradient norm.
    * Speed: ``amp`` None takes :func:`env.amp_settings` (fp16 + GradScaler on a T4, bf16 on
      Ampere and newer, off on CPU); ``channels_last`` (NHWC, on by default: faster on GPUs and
      on the CPU's oneDNN); ``compile`` wraps the model in ``torch.compile``; ``device`` None
      picks CUDA when there is one.
    * Best model: ``best_metric`` is a key of the epoch's row (``"val_pck"``, ``"val_mpjpe"``,
      ...) and ``mode`` says whether ``"max"`` or ``"min"`` is better. Only the losses have a
      known direction (min); any other metric needs ``mode`` spelled out.
    * Checkpoints: ``checkpoint_dir`` (``last.pth`` every epoch, ``best.pth`` when the best metric
      improves), ``resume`` (continue from ``last.pth``), ``drive_dir`` (copies on a mounted
      Google Drive).
    * ``seed`` (per-epoch seeding, so a resumed run repeats an uninterrupted one), ``max_steps``
      (batches per epoch: smoke runs, benchmarks).
    * Feedback: ``live_plot``, ``progress`` (tqdm bars), ``log`` (a function that takes a line,
      None for silence), ``log_items`` (what each epoch's line shows).
    * ``settings``: whatever else defines the run (model name, input size, dataset, ...).
      Numbers and strings; they are saved in every checkpoint, and resuming with different
      settings is refused with a message naming them.
    * Several processes (``torchrun``): ``sync_bn`` converts BatchNorm layers to
      ``SyncBatchNorm``, whose batch statistics pool every process's samples (worth it when the
      per-process batch is small); CUDA only, ignored (with a note) on the CPU or in a single
      process. Everything else about DDP is automatic (see the module docstring).
    """

    epochs: int = 10
    lr: float = 3e-4
    weight_decay: float = 1e-4
    scheduler: str | Callable | None = "cosine"
    warmup_epochs: int = 0
    grad_clip: float | None = None
    amp: bool | None = None
    channels_last: bool = True
    compile: bool = False
    device: str | torch.device | None = None
    best_metric: str = "val_loss"
    mode: str | None = None
    checkpoint_dir: str | Path | None = None
    resume: bool = False
    drive_dir: str | Path | None = None
    seed: int | None = 0
    max_steps: int | None = None
    live_plot: bool = True
    progress: bool = True
    log: Callable | None = print
    log_items: Sequence[tuple] | None = None
    settings: dict = field(default_factory=dict)
    sync_bn: bool = False

    def __post_init__(self):
        if self.mode is None:
            if self.best_metric not in LOSS_METRICS:
                raise ValueError(
                    f"TrainConfig(best_metric={self.best_metric!r}) needs mode='max' or "
                    "mode='min': say whether a higher or a lower value is better")
            self.mode = "min"
        if self.mode not in ("max", "min"):
            raise ValueError(f"TrainConfig(mode={self.mode!r}): use 'max' or 'min'")
        if self.resume and self.checkpoint_dir is None:
            raise ValueError("TrainConfig(resume=True) needs a checkpoint_dir to resume from")
        if self.epochs < 0:
            raise ValueError(f"TrainConfig(epochs={self.epochs}): needs 0 or more")

    def replace(self, **changes) -> TrainConfig:
        """A copy with some fields changed (``dataclasses.replace``)."""
        return replace(self, **changes)


def fit(
    model: nn.Module,
    train_loader,
    val_loader=None,
    config: TrainConfig | None = None,
    *,
    loss_fn: Callable,
    prepare_batch: Callable | None = None,
    metrics=None,
    optimizer: torch.optim.Optimizer | None = None,
    callbacks: Sequence[Callable] = (),
) -> History:
    """Train ``model`` as ``config`` (a :class:`TrainConfig`) says, validating after each epoch.
    Returns the :class:`History`: one row per epoch.

    Each epoch is the plain loop a notebook writes by hand (forward, loss, ``backward()``, step,
    then evaluate), plus what a long run needs:

    * The task's parts are the callables of the module docstring: ``prepare_batch``, ``loss_fn``
      and ``metrics``. ``optimizer`` replaces the default AdamW(``config.lr``,
      ``config.weight_decay``).
    * **Mixed precision** (``config.amp``), **channels-last**, optional ``torch.compile``; on
      CUDA, cuDNN autotuning is switched on (fixed input sizes).
    * **Checkpoints.** With ``config.checkpoint_dir``: ``last.pth`` after every epoch and
      ``best.pth`` when ``config.best_metric`` improves in the direction ``config.mode``, written
      atomically (see :func:`save_checkpoint`). ``config.resume`` continues from ``last.pth``
      (model, optimiser, scheduler, scaler, epoch, RNG, history); with the per-epoch seeding the
      result equals an uninterrupted run. A finished run resumed with more epochs trains on: a
      cosine schedule continues from the last epoch's rate down over the added epochs (see
      :func:`_resume_scheduler`). A run that starts from scratch never overwrites an earlier
      one: its ``best.pth`` and ``last.pth`` move to a new
      ``<checkpoint_dir>/previous-<YYYYmmdd-HHMMSS>/`` folder (and the Drive copies to
      ``<drive_dir>/previous-<...>/``), named in the log; nothing is deleted. Temporary files
      of killed saves (``.last.pth.<pid>.<random>.tmp``) are removed at the start
      (:func:`remove_stale_temporaries`). ``config.drive_dir`` (Colab) copies each checkpoint
      there after saving, and resuming falls back to it when the local file is gone (a new
      runtime). Mount Drive first::

          from google.colab import drive
          drive.mount("/content/drive")
          cfg = TrainConfig(checkpoint_dir="/content/runs/03",
                            drive_dir="/content/drive/MyDrive/handpose/03")

    * **Feedback.** tqdm bars with the running loss, one log line per epoch (
      ``[003/050] train=0.0421 | val=0.0385 | PCK@0.05=72.3% | lr=2.99e-04``) and a live plot in
      notebooks.
    * ``callbacks``: functions ``cb(epoch, history)`` called after each epoch's checkpoint; raise
      :class:`StopTraining` in one to stop early.

    A NaN or infinite loss, weights that turn NaN/inf in an optimiser step (checked after every
    step, see :func:`train_one_epoch`), or a NaN/inf validation loss or best metric stop the run
    with :class:`NonFiniteLossError`, naming the epoch (and batch). Nothing of that epoch is
    saved, so ``last.pth`` and ``best.pth`` keep the last good epoch, and the model in memory
    gets that epoch's weights back (the message says so; without ``checkpoint_dir`` it says
    they were not restored).
    """
    cfg = config if config is not None else TrainConfig()
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"fit's config must be a hp.TrainConfig, not {type(cfg).__name__}")
    dist = env.distributed()
    main = dist.is_main
    epochs, seed, channels_last = cfg.epochs, cfg.seed, cfg.channels_last
    log = cfg.log if main else None  # one voice: rank 0's
    progress = cfg.progress and main
    scheduler, warmup_epochs = cfg.scheduler, cfg.warmup_epochs
    if val_loader is None and cfg.best_metric.startswith("val_"):
        raise ValueError(
            f"best_metric {cfg.best_metric!r} needs a validation loader; without one use "
            "TrainConfig(best_metric='train_loss')")
    device = torch.device(cfg.device) if cfg.device is not None else env.pick_device()
    if dist.enabled and device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())  # init_distributed's GPU
    amp = _amp(cfg.amp, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model, train_model = wrap_distributed(model, device, cfg.sync_bn, train_loader, log)
    run_model = torch.compile(train_model) if cfg.compile else train_model
    # rank 0 evaluates alone: with the plain module (DDP's forward would wait for the others)
    eval_model = run_model if dist.world_size == 1 else model
    if optimizer is None:
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr,
                                      weight_decay=cfg.weight_decay)
    sched = make_scheduler(optimizer, scheduler, epochs, warmup_epochs)
    scaler = torch.amp.GradScaler("cuda" if device.type == "cuda" else "cpu",
                                  enabled=amp.use_scaler)
    meter = _meter(metrics)
    items = (list(cfg.log_items) if cfg.log_items is not None
             else list(getattr(meter, "log_items", [])))
    ckpt_dir = Path(cfg.checkpoint_dir) if cfg.checkpoint_dir is not None else None
    drive = Path(cfg.drive_dir) if cfg.drive_dir is not None else None
    run_config = {
        # the base rate: a scheduler's constructor has already applied its first factor to "lr"
        "epochs": epochs, "lr": optimizer.param_groups[0].get("initial_lr",
                                                              optimizer.param_groups[0]["lr"]),
        "weight_decay": cfg.weight_decay,
        "scheduler": scheduler if isinstance(scheduler, str) or scheduler is None else "custom",
        "warmup_epochs": warmup_epochs, "grad_clip": cfg.grad_clip, "amp": amp.describe(),
        "channels_last": channels_last, "seed": seed, "model": type(_unwrap(model)).__name__,
        "world_size": dist.world_size, **cfg.settings,
    }

    history = History()
    best: dict | None = None
    start = 1
    if cfg.resume:
        last = ckpt_dir / "last.pth"
        if main and not last.is_file() and drive is not None and (drive / "last.pth").is_file():
            ckpt_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(drive / "last.pth", last)
            if (drive / "best.pth").is_file() and not (ckpt_dir / "best.pth").is_file():
                shutil.copyfile(drive / "best.pth", ckpt_dir / "best.pth")
        env.barrier()  # every process reads the same last.pth
        if last.is_file():
            _check_resume_config(last, load_checkpoint(last).get("config", {}), run_config)
            ckpt = load_checkpoint(last, model, optimizer, None, scaler, restore_rng=True)
            if log:
                saved_ws = (ckpt.get("config") or {}).get("world_size", 1)
                by = (f", saved by {saved_ws} process(es), resumed by {dist.world_size}"
                      if saved_ws != dist.world_size else "")
                log(f"resumed from {last}: {ckpt['epoch']} epoch(s) done{by}")
            sched = _resume_scheduler(sched, scheduler, optimizer, ckpt, epochs, warmup_epochs,
                                      run_config, log)
            history = History(ckpt["history"])
            best = ckpt.get("best")
            start = ckpt["epoch"] + 1
        elif log:
            log(f"resume: no checkpoint in {ckpt_dir}, starting from scratch")
        env.barrier()  # all have read it before rank 0 may move it aside
    if ckpt_dir is not None and main:
        folders = [f for f in (ckpt_dir, drive) if f is not None]
        for folder in folders:
            remove_stale_temporaries(folder, log)
        if start == 1:  # a new run: keep the files of an earlier one out of its way
            stamp = time.strftime("%Y%m%d-%H%M%S")
            for folder in folders:
                _set_aside_previous_run(folder, stamp, log)
    env.barrier()
    if start > epochs and log:
        log(f"nothing to do: {start - 1} of {epochs} epochs already done")

    # the metrics of the epoch line (the meter's log_items), not every number it computes
    plot = LivePlot(cfg.live_plot and main, keys=[f"val_{key}" for key, _, _ in items] or None)
    for epoch in range(start, epochs + 1):
        if seed is not None:  # each process its own augmentation; rank 0 that of a single one
            env.seed_everything((_epoch_seed(seed, epoch) + dist.rank * _RANK_SEED) % 2**63)
        _set_sampler_epoch(train_loader, epoch)
        t0 = time.perf_counter()
        lr_now = optimizer.param_groups[0]["lr"]
        try:
            train_loss = train_one_epoch(
                run_model, train_loader, loss_fn=loss_fn, optimizer=optimizer, device=device,
                prepare_batch=prepare_batch, scaler=scaler, amp=amp,
                channels_last=channels_last, grad_clip=cfg.grad_clip, epoch=epoch,
                max_steps=cfg.max_steps, progress=progress)
        except NonFiniteLossError as err:  # nothing of this epoch is saved
            raise NonFiniteLossError(f"{err} {_restore_last_good(model, ckpt_dir)}") from err
        if dist.world_size > 1:  # equal shards (DistributedSampler): the mean of the means
            total = torch.tensor([train_loss], device=device, dtype=torch.float64)
            torch_dist.all_reduce(total)
            train_loss = float(total) / dist.world_size
        train_s = time.perf_counter() - t0
        if sched is not None:
            sched.step()
        row = {"epoch": epoch, "train_loss": train_loss}
        if val_loader is not None and main:
            val = evaluate(eval_model, val_loader, loss_fn=loss_fn, prepare_batch=prepare_batch,
                           metrics=meter, device=device, amp=amp, channels_last=channels_last,
                           progress=progress, desc=f"epoch {epoch} val")
            row.update({f"val_{k}": float(v) for k, v in val.items()})
        row["lr"] = lr_now
        row["train_s"] = train_s  # training steps only: images/s = images per epoch / train_s
        row["time_s"] = time.perf_counter() - t0
        row = env.from_rank0(row)  # every process holds rank 0's row, and decides alike
        history.append(row)

        if best is None or best.get("metric") is None:
            best = {"metric": cfg.best_metric, "mode": cfg.mode, "value": None, "epoch": None}
        if best["metric"] not in row:
            raise KeyError(f"best_metric {best['metric']!r} is not among this epoch's values "
                           f"{sorted(row)}: set TrainConfig(best_metric=...) to one of them")
        for key in dict.fromkeys(("val_loss", best["metric"])):
            if key in row and not math.isfinite(row[key]):
                raise NonFiniteLossError(
                    f"validation {key} is {row[key]} at epoch {epoch} (the weights are finite). "
                    "Training stopped; nothing of this epoch was saved. Likely causes: outputs "
                    "that overflow in evaluation (fp16 AMP: try amp=False), NaN targets in the "
                    "validation set, or a validation set without labelled keypoints. "
                    + _restore_last_good(model, ckpt_dir))
        value = row[best["metric"]]
        improved = math.isfinite(value) and (
            best["value"] is None
            or (value > best["value"] if best["mode"] == "max" else value < best["value"]))
        if improved:
            best.update(value=value, epoch=epoch)

        if ckpt_dir is not None:
            if main:
                state = dict(model=model, optimizer=optimizer, scheduler=sched, scaler=scaler,
                             epoch=epoch, history=history, best=best, config=run_config)
                if improved:
                    _copy_to_drive(save_checkpoint(ckpt_dir / "best.pth", **state), drive, log)
                _copy_to_drive(save_checkpoint(ckpt_dir / "last.pth", **state), drive, log)
            env.barrier()  # nobody runs ahead of a checkpoint being written

        if log:
            log(format_epoch(row, epochs, items))
        plot.update(history)
        stop = None
        if main:
            try:
                for cb in callbacks:
                    cb(epoch, history)
            except StopTraining as err:
                stop = str(err)
        stop = env.from_rank0(stop)
        if stop is not None:
            if log:
                log(f"stopped after epoch {epoch}: {stop}")
            break
    if log and best and best.get("epoch") is not None and len(history) > 1:
        log(f"best {best['metric']} = {best['value']:.4g} at epoch {best['epoch']}")
    return history


_RANK_SEED = 0x9E3779B97F4A7C15  # a large odd constant: rank r's epoch seeds differ from rank 0's


def wrap_distributed(model: nn.Module, device: torch.device, sync_bn: bool = False,
                     train_loader=None, log=print) -> tuple[nn.Module, nn.Module]:
    """What ``fit`` does for several processes (``torchrun``): ``(model, train_model)``.

    In a single process both are ``model``. With a process group of N > 1 processes,
    ``train_model`` is ``DistributedDataParallel(model)``: every ``backward()`` averages the
    gradients over the processes, so each takes the same step. ``sync_bn`` first converts
    BatchNorm to ``SyncBatchNorm`` (batch statistics over every process's samples; CUDA only).
    ``model`` stays the plain module: rank 0 evaluates with it alone (DDP's forward would wait
    for the others) and checkpoints hold its weights, so a run resumes on any number of
    processes. Each epoch ``fit`` also calls ``set_epoch`` on the loader's
    ``DistributedSampler``, so that every process draws a new 1/N of the data."""
    dist = env.distributed()
    if sync_bn and dist.enabled and device.type == "cuda":
        # in place below the top level; the new layers keep the same Parameter objects, so an
        # optimizer built on model.parameters() before fit still holds them
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    elif sync_bn and log:
        log("sync_bn: ignored (SyncBatchNorm needs CUDA and several processes; this run has "
            f"{dist.world_size} process(es) on {device.type})")
    if dist.world_size == 1:
        return model, model
    if log and train_loader is not None and _distributed_sampler(train_loader) is None:
        log(f"warning: the training loader has no DistributedSampler, so each of the "
            f"{dist.world_size} processes trains on the whole data set; build it with "
            "hp.make_loaders / hp.data.cached_loader after init_distributed")
    return model, DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None)


def _distributed_sampler(loader):
    """The ``DistributedSampler`` (or any sampler with ``set_epoch``) behind ``loader``, or None:
    a plain ``sampler``, one inside a ``BatchSampler`` (:func:`handpose_utils.data.cached_loader`),
    or the loader's ``batch_sampler``."""
    for top in (getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None)):
        for candidate in (top, getattr(top, "sampler", None)):
            if candidate is not None and hasattr(candidate, "set_epoch"):
                return candidate
    return None


def _set_sampler_epoch(loader, epoch: int) -> None:
    """``DistributedSampler.set_epoch``: without it every epoch repeats the first one's order."""
    sampler = _distributed_sampler(loader)
    if sampler is not None:
        sampler.set_epoch(epoch)
