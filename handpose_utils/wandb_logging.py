"""Optional Weights & Biases logging for ``engine.fit`` (``pip install wandb``, ``wandb login``)."""

from __future__ import annotations

import importlib.util
import math


def wandb_callback(enabled: bool = False, project: str = "handpose-course",
                   name: str | None = None, config: dict | None = None, log=print):
    """A ``cb(epoch, history)`` that logs each epoch's row of the history (losses, metrics,
    learning rate, time) to a W&B run started here, or None (saying why, if it was switched on)
    when ``enabled`` is False or ``wandb`` is not installed. Call ``cb.finish()`` at the end."""
    if not enabled:
        return None
    if importlib.util.find_spec("wandb") is None:
        if log:
            log("Weights & Biases logging is switched on but 'wandb' is not installed "
                "(pip install wandb); training continues without it.")
        return None
    import wandb
    if wandb.run is not None:  # a new training run gets a new W&B run
        wandb.run.finish()
    run = wandb.init(project=project, name=name, config=dict(config or {}))

    def callback(epoch: int, history) -> None:
        run.log({k: v for k, v in history[-1].items()
                 if isinstance(v, (int, float)) and not math.isnan(v)}, step=epoch)

    callback.run = run
    callback.finish = run.finish
    return callback
