"""The training loop every notebook shares: ``train_one_epoch``, ``evaluate``, ``predict``, ``fit``.

Plain functions (torchvision's ``references/`` style) that know nothing about keypoints; three
callables carry the task: ``prepare_batch(batch, device, train) -> (inputs, targets, extras)``
(:class:`handpose_utils.data.PrepareBatch` for keypoints), ``loss_fn(outputs, targets)`` on
float32 outputs, and ``metrics``, a meter with ``reset``, ``update(outputs, targets, extras)`` and
``compute() -> dict`` (:class:`handpose_utils.metrics.KeypointMeter`) or a function of the whole
validation set. Each epoch is seeded from ``(seed, epoch)``: a resumed run repeats the
uninterrupted one.
"""

from __future__ import annotations

import math
import time
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
from .data import to_device
from .schedules import make_scheduler, resume_schedule

__all__ = ["History", "TrainConfig", "fit", "train_one_epoch", "evaluate", "predict",
           "default_prepare_batch", "FunctionMeter", "NonFiniteLossError",
           "StopTraining", "format_epoch", "epoch_printer", "wrap_distributed",
           "CheckpointError", "load_checkpoint", "save_checkpoint"]  # the last 3 live in checkpoints


class NonFiniteLossError(FloatingPointError):
    """NaN or inf in the loss, the weights or the validation metrics; names the epoch and batch."""


class StopTraining(Exception):
    """Raise from a callback to end ``fit`` cleanly after the current epoch (early stopping)."""


class History(list):
    """One dict per epoch: ``epoch``, ``train_loss``, ``val_<metric>``, ``lr``, ``train_s``
    (training steps), ``time_s`` (with validation). A plain list: it pickles, and
    ``pd.DataFrame(history)`` makes a table of it."""

    def column(self, key: str) -> list:
        return [row.get(key, math.nan) for row in self]

    def best(self, key: str, mode: str = "max") -> dict | None:
        """The row with the best finite ``key``, or None."""
        rows = [r for r in self if key in r and math.isfinite(r[key])]
        return (max if mode == "max" else min)(rows, key=lambda r: r[key], default=None)

    def table(self, keys: Sequence[str] | None = None) -> str:
        """A fixed-width text table of the history (all keys by default)."""
        if not self:
            return "(empty history)"
        keys = list(keys or dict.fromkeys(k for row in self for k in row))  # in order of appearance
        widths = [max(len(k), 9) for k in keys]
        cells = [keys] + [[f"{row[k]:.4g}" if isinstance(row.get(k), float) else
                           str(row.get(k, "")) for k in keys] for row in self]
        return "\n".join("  ".join(c.rjust(w) for c, w in zip(line, widths)) for line in cells)


def format_epoch(row: dict, epochs: int, items: Sequence[tuple] = ()) -> str:
    """``[003/050] train=0.0421 | val=0.0385 | PCK@0.05=72.3% | lr=2.99e-04``; ``items`` are
    ``(metric_key, label, format)`` for the ``val_<metric_key>`` values to print."""
    parts = [f"train={row['train_loss']:.4f}"]
    if "val_loss" in row:
        parts.append(f"val={row['val_loss']:.4f}")
    for key, label, fmt in items:
        if f"val_{key}" in row:
            parts.append(f"{label}={fmt.format(row[f'val_{key}'])}")
    parts.append(f"lr={row['lr']:.2e}")
    return f"[{row['epoch']:03d}/{epochs:03d}] " + " | ".join(parts)


def default_prepare_batch(batch, device, train: bool):
    """``(inputs, targets, *rest)`` tuples or ``{"image", "target", ...}`` dicts, moved as they
    are."""
    if isinstance(batch, dict):
        batch = dict(batch)
        inputs, targets = batch.pop("image"), batch.pop("target", None)
        extras = batch
    else:
        inputs, targets = batch[0], batch[1]
        extras = {"rest": list(batch[2:])} if len(batch) > 2 else {}
    return to_device(inputs, device), to_device(targets, device), to_device(extras, device)


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


def _nonfinite_message(epoch, batch, n_batches, loss, weights, amp) -> str:
    where = f"epoch {epoch}, batch {batch}" + (f"/{n_batches}" if n_batches else "")
    if not math.isfinite(loss):  # checked first: its step ran before the weights' check
        fp16 = "fp16 overflow under AMP (try amp=False or bfloat16); "
        return (f"loss is {loss} at {where}. Training stopped. Likely causes: a learning rate "
                "too high (try 10x lower, warm-up epochs or grad_clip=1.0); "
                + (fp16 if amp.dtype == torch.float16 else "") + "bad targets (NaN/inf "
                "keypoints, or targets not normalised the way the loss expects); or a "
                "non-finite input image.")
    return (f"the weights became NaN/inf (the sum of their magnitudes is {weights}) in the "
            f"optimizer step of {where}, although that batch's loss was finite ({loss:.4g}). "
            "Training stopped. Likely causes: a NaN/inf gradient from a finite loss (a square "
            "root, log or division at 0 in the loss or the model), or a learning rate so high "
            "that the weights overflow (try 10x lower, or grad_clip=1.0).")


def _check_finite(pending: list, checked: int, epoch: int, n_batches, amp,
                  sync: bool = False) -> int:
    """``pending`` holds per batch ``(loss, total_magnitude of the weights after its step)`` on
    the device. Raise at the first non-finite one, else clear it and return the count checked.
    With ``sync`` the window is summed over the processes first: a NaN in one stops all of
    them at the same batch (alone, it would leave the others waiting for its gradients)."""
    if not pending:
        return checked
    window = torch.stack([torch.stack(column).float() for column in zip(*pending)], 1)
    if sync:
        local = window.clone()
        torch_dist.all_reduce(window)
        window = torch.where(torch.isfinite(window), local, window)
    window = window.cpu()  # one device-to-host copy per window
    bad = (~torch.isfinite(window)).any(1).nonzero()
    if len(bad):
        i = int(bad[0])
        where = f" (in process {env.distributed().rank} or another)" if sync else ""
        raise NonFiniteLossError(_nonfinite_message(
            epoch, checked + i + 1, n_batches, float(window[i, 0]), float(window[i, 1]), amp)
            + where)
    checked += len(pending)
    pending.clear()
    return checked


def train_one_epoch(model, loader, *, loss_fn, optimizer, device, prepare_batch=None,
                    scaler=None, amp=None, channels_last: bool = False, grad_clip=None,
                    epoch: int = 1, max_steps: int | None = None, check_every: int | None = None,
                    progress: bool = True) -> float:
    """Train for one pass over ``loader`` (or ``max_steps`` batches); the mean loss per sample.

    The loss and the weights after each step are checked for NaN/inf (:class:`NonFiniteLossError`
    names the batch) every ``check_every`` steps: every step on CPU, every 20 on CUDA, where
    reading a value back makes the CPU wait for the GPU. Under DDP every process stops at the
    first bad batch of any of them."""
    device = torch.device(device)
    amp = _amp(amp, device)
    prepare_batch = prepare_batch or default_prepare_batch
    check_every = check_every or (20 if device.type == "cuda" else 1)
    sync = isinstance(getattr(model, "_orig_mod", model), DistributedDataParallel)
    model.train()
    n_batches = _len(loader)
    if max_steps is not None:
        n_batches = max_steps if n_batches is None else min(n_batches, max_steps)
    total = torch.zeros((), device=device, dtype=torch.float64)
    count = 0
    pending: list[tuple] = []  # (loss, weights' finiteness) not yet checked, on the device
    checked = 0
    # what must stay finite: the parameters and the floating buffers (BatchNorm's statistics)
    weights = [t for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()]
    # a disabled scaler (fp32, bf16) passes the loss, the gradients and the step through as they are
    scaler = scaler if scaler is not None else torch.amp.GradScaler(device.type, enabled=False)
    bar = env.progress_bar(loader, progress, total=n_batches, desc=f"epoch {epoch} train",
                           leave=False, dynamic_ncols=True)
    for step, batch in enumerate(bar, start=1):
        inputs, targets, _ = prepare_batch(batch, device, True)
        inputs = _channels_last(inputs, channels_last)
        with torch.autocast(device.type, dtype=amp.dtype, enabled=amp.enabled):
            outputs = model(inputs)
        loss = loss_fn(_float(outputs), targets)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if grad_clip:
            scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(optimizer)
        scaler.update()
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
    """``fn(outputs, targets, extras) -> dict`` as a meter: every batch concatenated on the CPU."""

    def __init__(self, fn: Callable):
        self.fn = fn
        self.log_items = getattr(fn, "log_items", [])
        self.reset()

    def reset(self):
        self.outputs, self.targets, self.extras = [], [], []

    def update(self, outputs, targets, extras):
        self.outputs.append(to_device(outputs, "cpu"))
        self.targets.append(to_device(targets, "cpu"))
        self.extras.append(to_device(extras, "cpu"))

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
    return metrics if metrics is None or hasattr(metrics, "update") else FunctionMeter(metrics)


def _forward(model, loader, prepare_batch, device, amp, channels_last, progress, desc):
    """Eval-mode outputs (float32) batch by batch: ``(outputs, targets, extras, batch size)``."""
    device = torch.device(device) if device is not None else env.pick_device()
    amp = _amp(amp, device)
    prepare_batch = prepare_batch or default_prepare_batch
    model.eval()
    for batch in env.progress_bar(loader, progress, total=_len(loader), desc=desc, leave=False,
                                  dynamic_ncols=True):
        inputs, targets, extras = prepare_batch(batch, device, False)
        inputs = _channels_last(inputs, channels_last)
        with torch.autocast(device.type, dtype=amp.dtype, enabled=amp.enabled):
            outputs = model(inputs)
        yield _float(outputs), targets, extras, _batch_size(inputs)


@torch.no_grad()
def evaluate(model, loader, *, loss_fn=None, prepare_batch=None, metrics=None, device=None,
             amp=None, channels_last: bool = True, progress: bool = True,
             desc: str = "eval") -> dict:
    """Loss (if ``loss_fn``) and ``metrics`` over ``loader`` in eval mode, e.g. ``{"loss": 0.03,
    "pck": 0.72, "epe": 4.1}``. The meter keeps its arrays afterwards for deeper analysis."""
    meter = _meter(metrics)
    if meter is not None:
        meter.reset()
    total, count = 0.0, 0
    for outputs, targets, extras, bs in _forward(model, loader, prepare_batch, device, amp,
                                                 channels_last, progress, desc):
        if loss_fn is not None:
            total += float(loss_fn(outputs, targets)) * bs
        count += bs
        if meter is not None:
            meter.update(outputs, targets, extras)
    out = {"loss": total / count} if loss_fn is not None and count else {}
    if meter is not None and count:
        out.update(meter.compute())
    return out


@torch.no_grad()
def predict(model, loader, *, prepare_batch=None, device=None, amp=None,
            channels_last: bool = True, return_extras: bool = False, progress: bool = True):
    """Model outputs for every batch of ``loader`` (eval mode), concatenated on the CPU as
    float32; with ``return_extras=True`` also the concatenated tensor ``extras`` (``index``,
    ``orig_size``, ...) that map outputs back to records and pixels."""
    outs, extras_all = [], {}
    for outputs, _, extras, _ in _forward(model, loader, prepare_batch, device, amp,
                                          channels_last, progress, "predict"):
        outs.append(outputs.cpu())
        for k, v in extras.items() if return_extras else ():
            if isinstance(v, torch.Tensor):
                extras_all.setdefault(k, []).append(v.cpu())
    outputs = torch.cat(outs)
    if return_extras:
        return outputs, {k: torch.cat(v) for k, v in extras_all.items()}
    return outputs


LOSS_METRICS = ("val_loss", "train_loss")  # the only metrics whose direction fit knows


@dataclass
class TrainConfig:
    """Everything :func:`fit` needs besides the model, the data and the task's callables: one
    object instead of two dozen keyword arguments (nanoGPT's style). Print it, or change a field
    with ``cfg.replace(epochs=20)``."""

    # optimisation: AdamW (unless fit gets an optimizer), a per-epoch schedule after a warm-up
    epochs: int = 10
    lr: float = 3e-4
    weight_decay: float = 1e-4
    scheduler: str | Callable | None = "cosine"  # "cosine", "step", None, f(optimizer)
    warmup_epochs: int = 0
    restart_schedule: bool = False  # a resume adding epochs: a new cosine from lr over them
    grad_clip: float | None = None  # clip the global gradient norm
    # speed: AMP None = env.amp_settings (fp16 + GradScaler on a T4, bf16 on Ampere, off on CPU)
    amp: bool | None = None
    channels_last: bool = True  # NHWC: faster on GPUs and on the CPU's oneDNN
    compile: bool = False  # torch.compile
    device: str | torch.device | None = None  # None: CUDA when there is one
    # the best epoch: a key of the epoch's row; only the losses' direction (min) goes unsaid
    best_metric: str = "val_loss"
    mode: str | None = None  # "max" or "min"
    # checkpoints (see Checkpointer): last.pth each epoch, best.pth; copies on Google Drive (in
    # drive_dir, or where env.use_drive keeps them)
    checkpoint_dir: str | Path | None = None
    resume: bool = False
    drive_dir: str | Path | None = None
    seed: int | None = 0  # per-epoch seeding: a resumed run repeats an uninterrupted one
    max_steps: int | None = None  # batches per epoch (smoke runs, benchmarks)
    # feedback: the live plot, tqdm bars, log(line) (None: silence), what each epoch prints
    live_plot: bool = True
    progress: bool = True
    log: Callable | None = print
    log_items: Sequence[tuple] | None = None
    # whatever else defines the run (model, input size, dataset): saved in every checkpoint, and
    # a resume with other values is refused, naming them
    settings: dict = field(default_factory=dict)
    sync_bn: bool = False  # torchrun on GPUs: BatchNorm statistics over every process's samples

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
    model = model.to(device, memory_format=torch.channels_last if cfg.channels_last
                     else torch.preserve_format)
    model, train_model = wrap_distributed(model, device, cfg.sync_bn, train_loader, log)
    run_model = torch.compile(train_model) if cfg.compile else train_model
    eval_model = run_model if dist.world_size == 1 else model  # rank 0 evaluates alone
    optimizer = optimizer or torch.optim.AdamW(model.parameters(), lr=cfg.lr,
                                               weight_decay=cfg.weight_decay)
    sched = make_scheduler(optimizer, cfg.scheduler, cfg.epochs, cfg.warmup_epochs)
    scaler = torch.amp.GradScaler(device.type, enabled=amp.use_scaler)
    meter, progress = _meter(metrics), cfg.progress and dist.is_main
    drive = cfg.drive_dir or env.drive_copy(cfg.checkpoint_dir)  # USE_DRIVE: copies on Drive
    ckpt = Checkpointer(cfg.checkpoint_dir, drive, cfg.best_metric, cfg.mode, log)
    run = _run_config(cfg, optimizer, amp, model, dist.world_size)
    history, start = History(), 1
    if cfg.resume and (saved := ckpt.resume(model, optimizer, scaler, run)) is not None:
        sched = resume_schedule(sched, cfg.scheduler, optimizer, saved, cfg.epochs,
                                  cfg.warmup_epochs, run, log, cfg.restart_schedule)
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
    if val_loader is None and cfg.best_metric.startswith("val_") and env.distributed().is_main:
        raise ValueError(  # (only rank 0 evaluates: the others need no validation set)
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


_RANK_SEED = 0x9E3779B97F4A7C15  # a large odd constant: rank r's epoch seeds differ from rank 0's


def _start_epoch(seed: int | None, epoch: int, rank: int, loader) -> None:
    """Seed the epoch (each process its own augmentation, rank 0 that of a single process) and
    tell a ``DistributedSampler`` the epoch (else every epoch repeats the first one's order)."""
    if seed is not None:
        env.seed_everything((seed * 1_000_003 + epoch + rank * _RANK_SEED) % 2**63)
    if (sampler := _distributed_sampler(loader)) is not None:
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
    """Several processes (``torchrun``): ``(model, train_model)``, both ``model`` in one process.
    With N > 1, ``train_model`` is ``DistributedDataParallel(model)``: each ``backward()``
    averages the gradients, so every process takes the same step (BatchNorm still normalises
    each process's own images unless ``sync_bn`` converts it, CUDA only). ``model`` stays the
    plain module: rank 0 evaluates with it alone and checkpoints hold its weights, so a run
    resumes on any number of processes."""
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
    """The sampler with ``set_epoch`` behind ``loader`` (plain, in a ``BatchSampler``, or the
    ``batch_sampler``), or None."""
    for top in (getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None)):
        for candidate in (top, getattr(top, "sampler", None)):
            if candidate is not None and hasattr(candidate, "set_epoch"):
                return candidate
    return None
