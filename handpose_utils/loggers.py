"""Optional experiment logging for ``engine.fit``: Weights & Biases (``pip install wandb``,
``wandb login``; Colab has it) and TensorBoard (``pip install tensorboard``; Colab has it and
shows it inline). Each is a ``cb(epoch, history)`` callback, off by default."""

from __future__ import annotations

import importlib.util
import math
import shlex
import time

from . import env


def _numbers(row: dict) -> dict:
    """The loggable figures of a history row: numbers, NaN (undefined) left out."""
    return {k: v for k, v in row.items() if isinstance(v, (int, float)) and not math.isnan(v)}


def _available(enabled: bool, module: str, what: str, log) -> bool:
    if enabled and importlib.util.find_spec(module) is None and log:
        log(f"{what} logging is switched on but '{module}' is not installed "
            f"(pip install {module}); training continues without it.")
    return enabled and importlib.util.find_spec(module) is not None


def wandb_callback(enabled: bool = False, project: str = "handpose-course",
                   name: str | None = None, config: dict | None = None, log=print):
    """A ``cb(epoch, history)`` that logs each epoch's row of the history (losses, metrics,
    learning rate, time) to a W&B run started here, or None (saying why, if it was switched on)
    when ``enabled`` is False or ``wandb`` is not installed. Call ``cb.finish()`` at the end."""
    if not _available(enabled, "wandb", "Weights & Biases", log):
        return None
    import wandb
    if wandb.run is not None:  # a new training run gets a new W&B run
        wandb.run.finish()
    run = wandb.init(project=project, name=name, config=dict(config or {}))

    def callback(epoch: int, history) -> None:
        run.log(_numbers(history[-1]), step=epoch)

    callback.run = run
    callback.finish = run.finish
    return callback


def tensorboard_callback(enabled: bool = False, name: str = "run", log=print):
    """A ``cb(epoch, history)`` that writes each epoch's row of the history to TensorBoard event
    files in ``runs_dir()/tensorboard/<name>/<date-time>`` (one folder per training run), or
    None (saying why, if it was switched on) when ``enabled`` is False or ``tensorboard`` is not
    installed. In a notebook it also shows TensorBoard inline, over every run logged so far (what
    ``%tensorboard --logdir`` does); it reloads as epochs arrive. Call ``cb.finish()`` at the end."""
    if not _available(enabled, "tensorboard", "TensorBoard", log):
        return None
    from torch.utils.tensorboard import SummaryWriter

    root = env.runs_dir() / "tensorboard"
    folder = root / name / time.strftime("%Y%m%d-%H%M%S")
    writer = SummaryWriter(str(folder))
    if log:
        log(f"TensorBoard: this run's curves go to {folder}")
    if env.in_notebook():
        from tensorboard import notebook

        notebook.start(shlex.join(["--logdir", str(root)]))

    def callback(epoch: int, history) -> None:
        for key, value in _numbers(history[-1]).items():
            if key != "epoch":  # the step already
                writer.add_scalar(key, value, epoch)
        writer.flush()  # TensorBoard shows the epoch while training goes on

    callback.writer = writer
    callback.finish = writer.close
    return callback
