"""The training loop every notebook shares: ``train_one_epoch``, ``evaluate``, ``predict``, ``fit``.

Plain functions in the style of torchvision's ``references/``. Nothing here knows about
keypoints; three callables carry the task:

* ``prepare_batch(batch, device, train) -> (inputs, targets, extras)`` moves a batch to the
  device, augments it and builds the targets; ``extras`` (a dict) carries what the metrics need.
  Keypoints use :class:`handpose_utils.data.PrepareBatch`; :func:`default_prepare_batch` takes
  ``(inputs, targets)`` tuples or ``{"image", "target"}`` dicts.
* ``loss_fn(outputs, targets) -> scalar``, on outputs cast to float32 (never in half precision).
* ``metrics``: an object with ``reset()``, ``update(outputs, targets, extras)`` and
  ``compute() -> dict`` (:class:`handpose_utils.metrics.KeypointMeter`), or a function of the
  whole validation set; its ``log_items`` ``(key, label, format)`` say what each epoch prints.

Checkpoints and resuming are :class:`handpose_utils.checkpoints.Checkpointer`'s job; printing and
the live plot are callbacks; several processes (``torchrun``) are :func:`wrap_distributed`'s.
Each epoch is seeded from ``(seed, epoch)``, so a resumed run repeats the uninterrupted one.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.distributed as torch_dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from . import env
from .checkpoints import (
    Checkpointer,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
    total_magnitude,
    unwrap,
)

__all__ = ["History", "TrainConfig", "fit", "train_one_epoch", "evaluate", "predict",
           "make_scheduler", "default_prepare_batch", "FunctionMeter", "NonFiniteLossError",
           "StopTraining", "format_epoch", "epoch_printer", "wrap_distributed",
           # re-exported from checkpoints, where they live
           "CheckpointError", "load_checkpoint", "save_checkpoint"]


class NonFiniteLossError(FloatingPointError):
    """Training produced NaN or infinite numbers (the loss, the weights after a step, or the
    validation loss / best metric). Names the epoch and batch, and which weights the model holds
    afterwards."""


class StopTraining(Exception):
    """Raise from a callback to end ``fit`` cleanly after the current epoch (early stopping)."""


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


def _to_device(obj, device):
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, dict):
        return {k: _to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_device(v, device) for v in obj)
    return obj


def _is_ddp(model: nn.Module) -> bool:
    return isinstance(getattr(model, "_orig_mod", model), DistributedDataParallel)


def _float_tensors(model: nn.Module) -> list[torch.Tensor]:
    """Parameters and floating buffers (BatchNorm's statistics): what must stay finite."""
    return [t for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()]


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
        pending.append((loss.detach(), total_magnitude(weights)))
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


def fit(model: nn.Module, train_loader, val_loader=None, config: TrainConfig | None = None, *,
        loss_fn: Callable, prepare_batch: Callable | None = None, metrics=None,
        optimizer: torch.optim.Optimizer | None = None,
        callbacks: Sequence[Callable] = ()) -> History:
    """Train ``model`` as ``config`` says, validating after each epoch; returns the History.

    The plain loop (train one epoch, evaluate), plus what a long run needs: AMP and a learning
    rate schedule; checkpoints, resume and the best epoch (:class:`Checkpointer`); several
    processes (:func:`wrap_distributed`); and ``callbacks(epoch, history)`` after each epoch's
    checkpoint: the printed line and the live plot are two, and raising :class:`StopTraining`
    in one stops early. A NaN/inf stops with :class:`NonFiniteLossError`: nothing of that
    epoch is saved, and the model gets the last good weights back."""
    cfg, dist = _checked(config, val_loader), env.distributed()
    device, log = _device(cfg.device, dist), cfg.log if dist.is_main else None
    amp = _amp(cfg.amp, device)
    model = model.to(device, memory_format=_layout(cfg.channels_last))
    model, train_model = wrap_distributed(model, device, cfg.sync_bn, train_loader, log)
    run_model = torch.compile(train_model) if cfg.compile else train_model
    eval_model = run_model if dist.world_size == 1 else model  # rank 0 evaluates alone
    optimizer = optimizer or torch.optim.AdamW(model.parameters(), lr=cfg.lr,
                                               weight_decay=cfg.weight_decay)
    sched = make_scheduler(optimizer, cfg.scheduler, cfg.epochs, cfg.warmup_epochs)
    scaler = torch.amp.GradScaler(device.type, enabled=amp.use_scaler)
    meter, progress = _meter(metrics), cfg.progress and dist.is_main
    ckpt = Checkpointer(cfg.checkpoint_dir, cfg.drive_dir, cfg.best_metric, cfg.mode, log)
    run = _run_config(cfg, optimizer, amp, model, dist.world_size)
    history, start = History(), 1
    if cfg.resume and (saved := ckpt.resume(model, optimizer, scaler, run)) is not None:
        sched = _resume_scheduler(sched, cfg.scheduler, optimizer, saved, cfg.epochs,
                                  cfg.warmup_epochs, run, log)
        history, start = History(saved["history"]), saved["epoch"] + 1
    ckpt.start(new_run=start == 1)
    if start > cfg.epochs and log:
        log(f"nothing to do: {start - 1} of {cfg.epochs} epochs already done")
    callbacks = [*_feedback(cfg, meter, dist.is_main), *callbacks]
    for epoch in range(start, cfg.epochs + 1):
        _start_epoch(cfg.seed, epoch, dist.rank, train_loader)
        t0, lr = time.perf_counter(), optimizer.param_groups[0]["lr"]
        try:
            loss = train_one_epoch(
                run_model, train_loader, loss_fn=loss_fn, optimizer=optimizer, device=device,
                prepare_batch=prepare_batch, scaler=scaler, amp=amp,
                channels_last=cfg.channels_last, grad_clip=cfg.grad_clip, epoch=epoch,
                max_steps=cfg.max_steps, progress=progress)
        except NonFiniteLossError as err:  # nothing of this epoch is saved
            raise NonFiniteLossError(f"{err} {ckpt.restore_last_good(model)}") from err
        row = {"epoch": epoch, "train_loss": _mean_over_processes(loss, device)}
        train_s = time.perf_counter() - t0
        if sched is not None:
            sched.step()
        if val_loader is not None and dist.is_main:
            val = evaluate(eval_model, val_loader, loss_fn=loss_fn, prepare_batch=prepare_batch,
                           metrics=meter, device=device, amp=amp, progress=progress,
                           channels_last=cfg.channels_last, desc=f"epoch {epoch} val")
            row.update({f"val_{k}": float(v) for k, v in val.items()})
        row.update(lr=lr, train_s=train_s, time_s=time.perf_counter() - t0)
        history.append(env.from_rank0(row))  # every process decides alike
        _check_validation(history[-1], cfg.best_metric, ckpt, model)
        ckpt.save(ckpt.update(history[-1]), model=model, optimizer=optimizer, scheduler=sched,
                  scaler=scaler, epoch=epoch, history=history, config=run)
        if _run_callbacks(callbacks, epoch, history, dist.is_main, log):
            break
    ckpt.report(len(history))
    return history


def _checked(config, val_loader) -> TrainConfig:
    cfg = config if config is not None else TrainConfig()
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"fit's config must be a hp.TrainConfig, not {type(cfg).__name__}")
    if val_loader is None and cfg.best_metric.startswith("val_"):
        raise ValueError(
            f"best_metric {cfg.best_metric!r} needs a validation loader; without one use "
            "TrainConfig(best_metric='train_loss')")
    return cfg


def _device(device, dist) -> torch.device:
    device = torch.device(device) if device is not None else env.pick_device()
    if dist.enabled and device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())  # init_distributed's GPU
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: cuDNN picks its fastest
    return device


def _layout(channels_last: bool):
    return torch.channels_last if channels_last else torch.preserve_format


def _run_config(cfg: TrainConfig, optimizer, amp, model, world_size: int) -> dict:
    """What defines the run, saved in every checkpoint (a resume with other values is refused)."""
    group = optimizer.param_groups[0]
    return {
        # the base rate: a scheduler's constructor has already applied its first factor to "lr"
        "epochs": cfg.epochs, "lr": group.get("initial_lr", group["lr"]),
        "weight_decay": cfg.weight_decay,
        "scheduler": cfg.scheduler if isinstance(cfg.scheduler, (str, type(None))) else "custom",
        "warmup_epochs": cfg.warmup_epochs, "grad_clip": cfg.grad_clip, "amp": amp.describe(),
        "channels_last": cfg.channels_last, "seed": cfg.seed, "model": type(unwrap(model)).__name__,
        "world_size": world_size, **cfg.settings,
    }


def epoch_printer(epochs: int, items: Sequence[tuple] = (), log: Callable = print) -> Callable:
    """The callback that prints each epoch's line (:func:`format_epoch`)."""
    return lambda epoch, history: log(format_epoch(history[-1], epochs, items))


def _feedback(cfg: TrainConfig, meter, main: bool) -> list:
    """``fit``'s own callbacks on rank 0: the epoch's line and the live plot of its metrics."""
    if not main:
        return []
    items = (list(cfg.log_items) if cfg.log_items is not None
             else list(getattr(meter, "log_items", [])))
    out = [epoch_printer(cfg.epochs, items, cfg.log)] if cfg.log else []
    if cfg.live_plot:
        from .plots.history import LivePlot

        out.append(LivePlot(keys=[f"val_{key}" for key, _, _ in items] or None))
    return out


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch) % 2**63


_RANK_SEED = 0x9E3779B97F4A7C15  # a large odd constant: rank r's epoch seeds differ from rank 0's


def _start_epoch(seed: int | None, epoch: int, rank: int, loader) -> None:
    """Seed the epoch (each process its own augmentation, rank 0 that of a single process) and
    tell a ``DistributedSampler`` the epoch (else every epoch repeats the first one's order)."""
    if seed is not None:
        env.seed_everything((_epoch_seed(seed, epoch) + rank * _RANK_SEED) % 2**63)
    sampler = _distributed_sampler(loader)
    if sampler is not None:
        sampler.set_epoch(epoch)


def _mean_over_processes(value: float, device) -> float:
    """The training loss of all processes: equal shards, so the mean of their means."""
    world_size = env.distributed().world_size
    if world_size == 1:
        return value
    total = torch.tensor([value], device=device, dtype=torch.float64)
    torch_dist.all_reduce(total)
    return float(total) / world_size


def _check_validation(row: dict, best_metric: str, ckpt: Checkpointer, model) -> None:
    for key in dict.fromkeys(("val_loss", best_metric)):
        if key in row and not math.isfinite(row[key]):
            raise NonFiniteLossError(
                f"validation {key} is {row[key]} at epoch {row['epoch']} (the weights are "
                "finite). Training stopped; nothing of this epoch was saved. Likely causes: "
                "outputs that overflow in evaluation (fp16 AMP: try amp=False), NaN targets in the "
                "validation set, or a validation set without labelled keypoints. "
                + ckpt.restore_last_good(model))


def _run_callbacks(callbacks, epoch: int, history, main: bool, log) -> bool:
    """Rank 0 runs the callbacks; every process learns whether one asked to stop."""
    stop = None
    if main:
        try:
            for callback in callbacks:
                callback(epoch, history)
        except StopTraining as err:
            stop = str(err)
    stop = env.from_rank0(stop)
    if stop is not None and log:
        log(f"stopped after epoch {epoch}: {stop}")
    return stop is not None


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
