"""Checkpoints: one file (:func:`save_checkpoint`, :func:`load_checkpoint`) and the policy of
a run folder (:class:`Checkpointer`, after timm's ``CheckpointSaver``)."""

from __future__ import annotations

import math
import random
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from . import env, safefiles

CHECKPOINT_FILES = ("best.pth", "last.pth")
# what a resumed run may change without training something else: the hardware and the length
RESUMABLE_CHANGES = ("amp", "channels_last", "epochs", "world_size")


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read or written, or does not fit the model. Names the file."""


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module behind ``torch.compile`` and ``DistributedDataParallel``."""
    while hasattr(model, "_orig_mod") or isinstance(model, DistributedDataParallel):
        model = model._orig_mod if hasattr(model, "_orig_mod") else model.module
    return model


def total_magnitude(tensors) -> torch.Tensor:
    """The sum of all magnitudes, a 0-dim tensor on their device: NaN/inf exactly when a value
    is. One fused reduction, no copy to the host: cheap enough after every optimiser step."""
    tensors = list(tensors)
    return nn.utils.get_total_norm(tensors, norm_type=1.0) if tensors else torch.zeros(())


def _nonfinite_names(state: dict) -> list[str]:
    floats = {k: v for k, v in state.items()
              if isinstance(v, torch.Tensor) and v.is_floating_point()}
    if not floats or math.isfinite(float(total_magnitude(floats.values()))):
        return []
    return [k for k, v in floats.items() if not bool(torch.isfinite(v).all())]


def rng_state() -> dict:
    """Python, NumPy, torch and CUDA RNG states, in types ``weights_only`` accepts."""
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
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])


def save_checkpoint(path, model: nn.Module, optimizer=None, scheduler=None, scaler=None,
                    epoch: int = 0, history=None, best: dict | None = None,
                    config: dict | None = None) -> Path:
    """Save everything needed to resume, atomically; refuses NaN/inf weights (a checkpoint is
    something to go back to). A failed write names the file and keeps the previous one."""
    path = Path(path)
    weights = unwrap(model).state_dict()
    bad = _nonfinite_names(weights)
    if bad:
        raise CheckpointError(
            f"refusing to write {path}: the model holds NaN/inf values in "
            f"{', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}. A checkpoint must be worth "
            f"going back to; the previous {path.name}, if any, is left as it was.")
    state = {"format": 1, "model": weights, "epoch": int(epoch), "rng": rng_state(),
             "history": [dict(r) for r in (history or [])], "best": dict(best) if best else None,
             "config": dict(config or {})}
    for key, obj in (("optimizer", optimizer), ("scheduler", scheduler), ("scaler", scaler)):
        state[key] = obj.state_dict() if obj is not None else None
    return safefiles.atomic_write(path, lambda f: torch.save(state, f), error=CheckpointError)


def load_checkpoint(path, model: nn.Module | None = None, optimizer=None, scheduler=None,
                    scaler=None, restore_rng: bool = False, map_location="cpu", check=None) -> dict:
    """Load with ``weights_only=True`` (no code runs), call ``check(dict)`` if given, restore the
    objects, return the dict; a missing, corrupt or unfitting file raises an error naming it."""
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
                              "save it with save_checkpoint")
    if check is not None:  # e.g. refuse other settings before anything is overwritten
        check(ckpt)
    if model is not None:
        try:
            unwrap(model).load_state_dict(ckpt["model"])
        except RuntimeError as err:
            raise CheckpointError(
                f"checkpoint {path} does not fit this model: {err}. Build the same architecture "
                "(build_model name and num_outputs) as the run that saved it.") from err
    for obj, key in ((optimizer, "optimizer"), (scheduler, "scheduler"), (scaler, "scaler")):
        if obj is not None and ckpt.get(key):  # an empty scaler state: a run without fp16
            obj.load_state_dict(ckpt[key])
    if restore_rng and ckpt.get("rng"):
        set_rng_state(ckpt["rng"])
    return ckpt


class Checkpointer:
    """The checkpoint policy of one run folder (``folder=None``: only track the best epoch).

    * ``last.pth`` every epoch, ``best.pth`` when ``best_metric`` improves (``mode``).
    * A new run never overwrites a finished one: its files move to ``previous-<time>/``.
    * :meth:`resume` continues from ``last.pth`` (Drive's on a fresh runtime) if the settings
      are the saved ones (:data:`RESUMABLE_CHANGES` aside).
    * ``drive_dir``: a copy of each file on Google Drive (a failed copy only warns).
    Only rank 0 writes and logs; every process reads and waits at the same points."""

    def __init__(self, folder=None, drive_dir=None, best_metric: str = "val_loss",
                 mode: str = "min", log=print):
        self.folder = Path(folder) if folder is not None else None
        self.drive = Path(drive_dir) if drive_dir is not None and folder is not None else None
        self.main = env.distributed().is_main
        self.log = log if self.main else None
        self.best = {"metric": best_metric, "mode": mode, "value": None, "epoch": None}

    def _say(self, line: str) -> None:
        return self.log and self.log(line)

    def resume(self, model, optimizer, scaler, run_config: dict) -> dict | None:
        """Load ``last.pth`` into the objects and return it, or None when there is none."""
        last = self.folder / "last.pth"
        if self.main and not last.is_file() and self.drive and (self.drive / "last.pth").is_file():
            self.folder.mkdir(parents=True, exist_ok=True)
            for name in CHECKPOINT_FILES:  # a fresh runtime: the local copy is gone
                if (self.drive / name).is_file() and not (self.folder / name).is_file():
                    shutil.copyfile(self.drive / name, self.folder / name)
        env.barrier()  # every process reads the same last.pth
        if not last.is_file():
            self._say(f"resume: no checkpoint in {self.folder}, starting from scratch")
            env.barrier()
            return None
        ckpt = load_checkpoint(last, model, optimizer, None, scaler, restore_rng=True, check=(
            lambda saved: self.check_settings(last, saved.get("config", {}), run_config)))
        saved_ws = (ckpt.get("config") or {}).get("world_size", 1)
        ws = run_config.get("world_size", 1)
        self._say(f"resumed from {last}: {ckpt['epoch']} epoch(s) done" + (
            f", saved by {saved_ws} process(es), resumed by {ws}" if saved_ws != ws else ""))
        self._resume_best(ckpt)
        env.barrier()  # all have read it before rank 0 may move files
        return ckpt

    def _resume_best(self, ckpt: dict) -> None:
        saved = ckpt.get("best") or {}
        metric, mode = self.best["metric"], self.best["mode"]
        if (saved.get("metric"), saved.get("mode")) == (metric, mode):
            self.best = dict(saved)
            return
        # another rule than the saved run's: the best row of its history by the new one
        rows = [r for r in ckpt.get("history") or [] if math.isfinite(r.get(metric, math.nan))]
        if rows:
            row = (max if mode == "max" else min)(rows, key=lambda r: r[metric])
            self.best.update(value=row[metric], epoch=row["epoch"])
        if saved.get("metric"):
            self._say(f"resume: the saved run chose its best by {saved['metric']!r} "
                      f"({saved.get('mode')}), this one by {metric!r} ({mode}): the best so far "
                      f"is recomputed from the history (epoch {self.best['epoch']}); best.pth is "
                      "replaced when a later epoch beats it")

    @staticmethod
    def check_settings(path: Path, saved: dict, current: dict) -> None:
        """Refuse to resume with other settings: that would continue a different experiment."""
        diff = {k: (saved[k], current[k]) for k in saved.keys() & current.keys()
                if k not in RESUMABLE_CHANGES and saved[k] != current[k]}
        if diff:
            changes = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in sorted(diff.items()))
            raise CheckpointError(
                f"{path} was saved by a run with other settings ({changes}). Resuming would mix "
                "two experiments. Use another checkpoint_dir for the new settings, or pass "
                "resume=False to start over (the old best.pth and last.pth move to a "
                "previous-<time> folder).")

    def start(self, new_run: bool) -> None:
        """Before the first batch: test that the folders can be written, clear leftovers of
        killed saves, and move a finished run's files out of a new run's way."""
        if self.folder is not None and self.main:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            for folder in (f for f in (self.folder, self.drive) if f is not None):
                try:
                    safefiles.atomic_write(folder / ".write-test", lambda f: f.write(b"ok"),
                                           error=CheckpointError).unlink()
                except CheckpointError as err:
                    if folder == self.folder:
                        raise
                    self._say(f"warning: no copies on Drive this run: {err}")
                    self.drive = None
                    continue
                safefiles.remove_stale_temporaries(folder, CHECKPOINT_FILES, self.log)
                if new_run:
                    self._set_aside(folder, stamp)
        env.barrier()

    def _set_aside(self, folder: Path, stamp: str) -> None:
        files = [folder / name for name in CHECKPOINT_FILES if (folder / name).is_file()]
        if not files:
            return
        dest, n = folder / f"previous-{stamp}", 1
        while dest.exists():  # two starts within one second
            n += 1
            dest = folder / f"previous-{stamp}-{n}"
        try:
            dest.mkdir(parents=True)
            for f in files:
                f.replace(dest / f.name)
        except OSError as err:
            raise CheckpointError(
                f"could not move the previous run's {', '.join(f.name for f in files)} in "
                f"{folder} to {dest} ({err}); nothing was overwritten. Move them yourself, pass "
                "another checkpoint_dir / drive_dir, or resume=True to continue that run.") from err
        self._say(f"new run: moved the previous run's {' and '.join(f.name for f in files)} "
                  f"from {folder} to {dest} (resume=True would have continued it)")

    def update(self, row: dict) -> bool:
        """Track the best epoch; True when ``row`` is a new best."""
        metric, value = self.best["metric"], row.get(self.best["metric"])
        if value is None:
            raise KeyError(f"best_metric {metric!r} is not among this epoch's values "
                           f"{sorted(row)}: set TrainConfig(best_metric=...) to one of them")
        undefined = [k for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)]
        if undefined:  # kept in the history as they are, but never without a word
            self._say(f"warning: epoch {row['epoch']}: {', '.join(undefined)} not finite (NaN: "
                      "nothing to score, e.g. no visible joint; inf: a diverged loss)")
        old = self.best["value"]
        better = old is None or (value > old if self.best["mode"] == "max" else value < old)
        if math.isfinite(value) and better:
            self.best.update(value=value, epoch=row["epoch"])
            return True
        return False

    def save(self, improved: bool, **state) -> None:
        """``last.pth`` (and ``best.pth`` when ``improved``), with their Drive copies."""
        if self.folder is not None and self.main:
            for name in ("best.pth", "last.pth") if improved else ("last.pth",):
                self._copy_to_drive(save_checkpoint(self.folder / name, best=self.best, **state))
        if self.folder is not None:
            env.barrier()  # nobody runs ahead of a checkpoint being written

    def _copy_to_drive(self, src: Path) -> None:
        if self.drive is None:
            return
        try:
            def copy(f):
                with open(src, "rb") as source:
                    shutil.copyfileobj(source, f)

            safefiles.atomic_write(self.drive / src.name, copy)
        except OSError as err:  # a Drive hiccup must not kill a long run; the local copy is whole
            self._say(f"warning: could not copy {src.name} to {self.drive}: {err}")

    def restore_last_good(self, model: nn.Module) -> str:
        """After a non-finite stop: load ``last.pth``'s weights into ``model`` and say so."""
        last = self.folder / "last.pth" if self.folder is not None else None
        if last is None or not last.is_file():
            why = ("fit ran without checkpoint_dir" if last is None else "no epoch finished yet")
            return (f"The model's weights were not restored ({why}): they hold NaN/inf; rebuild "
                    "the model before using it.")
        try:
            ckpt = load_checkpoint(last, model)
        except (CheckpointError, OSError) as err:
            return f"The model's weights were not restored: {err}"
        return (f"The model now holds the weights of epoch {ckpt['epoch']} from {last}; that file "
                "and best.pth are left as they were.")

    def report(self, n_epochs: int) -> None:
        if self.best["epoch"] is not None and n_epochs > 1:
            self._say(f"best {self.best['metric']} = {self.best['value']:.4g} at epoch "
                      f"{self.best['epoch']}")
