"""Training curves: the history figure and the live plot ``fit`` draws while it trains."""

from __future__ import annotations

import math
from collections.abc import Sequence

from .. import env


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
    if keys is None:  # every validation metric, in order of appearance
        keys = list(dict.fromkeys(k for r in history for k in r
                                  if k.startswith("val_") and k != "val_loss"))
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


class LivePlot:
    """The callback ``fit`` runs for its live plot: a history figure that updates in place in
    Jupyter and Colab. Shown once with ``display(fig, display_id=True)`` and refreshed with
    ``handle.update(fig)``, which (unlike ``clear_output``) leaves the tqdm bars and printed
    lines of the same cell alone. Outside a notebook it does nothing."""

    def __init__(self, enabled: bool = True, keys: Sequence[str] | None = None):
        self.enabled = enabled and env.in_notebook()
        self.keys = keys  # the metrics to draw (default: every val_* metric)
        self.fig = self.handle = None  # drawn and shown at the first epoch

    def __call__(self, epoch: int, history) -> None:
        if not self.enabled or not history:
            return
        from IPython.display import display

        self.fig = plot_history(history, keys=self.keys, fig=self.fig)
        if self.handle is None:
            self.handle = display(self.fig, display_id=True)
        else:
            self.handle.update(self.fig)
