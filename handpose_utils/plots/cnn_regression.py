"""Notebook 03's figures: predictions against ground truth on validation images, a slider over
them, and the table that compares the models."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import sample_browser, show_grid, show_sample


def show_predictions(records: Sequence[dict], preds, indices=None, cols: int = 4, size: float = 2.6,
                     errors=None):
    """Validation images with ground truth (green) and predictions ``(N, 21, 2)`` in image pixels
    (red): ``indices`` (default: the first ``cols`` * 2), their ``errors`` (px) in the titles."""
    preds = np.asarray(preds)
    indices = list(range(min(len(records), cols * 2))) if indices is None else list(indices)
    titles = [f"#{i}" + (f"  EPE {errors[i]:.1f}px" if errors is not None else "") for i in indices]
    return show_grid([records[i] for i in indices], cols=cols, size=size, titles=titles,
                     preds=[preds[i] for i in indices])


def prediction_browser(records: Sequence[dict], preds):
    """A slider over validation images showing ground truth (green) and prediction (red)."""
    preds = np.asarray(preds)
    sample_browser(range(len(records)),
                   lambda i: show_sample(records[i], pred=preds[i], title=f"#{i}"))


def results_table(rows: dict[str, dict], floatfmt: str = "{:.3f}") -> str:
    """A fixed-width text table of ``{row name: {column: value}}`` (integers with thousands
    separators, floats with ``floatfmt``)."""
    cols: list[str] = []
    for r in rows.values():
        cols += [c for c in r if c not in cols]

    def fmt(v):
        if isinstance(v, bool) or v is None:
            return str(v)
        if isinstance(v, (int, np.integer)):
            return f"{v:,d}"
        if isinstance(v, (float, np.floating)):
            return floatfmt.format(v)
        return str(v)

    table = [["model"] + cols] + [[name] + [fmt(r.get(c, "")) for c in cols]
                                  for name, r in rows.items()]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(c.rjust(w) if i else c.ljust(w)
                               for i, (c, w) in enumerate(zip(row, widths))) for row in table)
