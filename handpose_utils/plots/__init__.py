"""The figures several lessons share: skeletons on images, sample grids, 3D skeletons,
per-joint errors, PCK curves and a widget browser.
One lesson's figures are in ``hp.plots.<topic>`` (``plots/<topic>.py``, loaded on first use).

Every widget browser wraps a plain plotting function: call that function once directly first
(``interact`` prints an error as text instead of raising it).
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np

from .. import env
from ..images import read_image
from ..records import keypoints_array, visible_array
from ..skeletons import HAND21_BONES, hand21_bone_colors, hand21_joint_colors
from ._layout import finish

GT_COLOR = "#2ca02c"  # green: ground truth
PRED_COLOR = "#d62728"  # red: prediction


def draw_hand(ax, keypoints, visible=None, color: str | None = None, linewidth: float = 2.0,
              markersize: float = 18, label: str | None = None,
              hidden_style: str = "hollow") -> None:
    """Draw a HAND21 skeleton on ``ax``, each finger in its colour or all in ``color``. Joints
    not ``visible`` are drawn hollow (occluded) or, with ``hidden_style="skip"``, not at all with
    their bones (unlabelled joints: OneHand10K and RHD store them at (0, 0), no position)."""
    if hidden_style not in ("hollow", "skip"):
        raise ValueError(f"hidden_style must be 'hollow' or 'skip', got {hidden_style!r}")
    kp = np.asarray(keypoints, dtype=float).reshape(-1, 2)
    vis = np.ones(len(kp), bool) if visible is None else np.asarray(visible, bool)
    bone_colors = [color] * len(HAND21_BONES) if color else hand21_bone_colors()
    joint_colors = [color] * len(kp) if color else hand21_joint_colors()
    for (a, b), c in zip(HAND21_BONES, bone_colors):
        if hidden_style == "skip" and not (vis[a] and vis[b]):
            continue
        ax.plot(kp[[a, b], 0], kp[[a, b], 1], "-", color=c, lw=linewidth, alpha=0.9,
                solid_capstyle="round")
    face = np.array(joint_colors, dtype=object)
    ax.scatter(kp[vis, 0], kp[vis, 1], s=markersize, c=list(face[vis]), edgecolors="white",
               linewidths=0.6, zorder=3, label=label)
    if (~vis).any() and hidden_style == "hollow":
        ax.scatter(kp[~vis, 0], kp[~vis, 1], s=markersize, facecolors="none",
                   edgecolors=list(face[~vis]), linewidths=1.2, zorder=3)


def _axes(ax, figsize=(4, 4)):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def show_sample(record: dict, ax=None, title: str | None = None, pred=None, show_ids: bool = False):
    """Show a record's image with its skeleton; with ``pred``, GT in green and prediction in red."""
    ax = _axes(ax)
    ax.imshow(read_image(record["image_path"]))
    kp = keypoints_array(record)
    if pred is None:
        draw_hand(ax, kp, visible_array(record))
    else:
        draw_hand(ax, kp, color=GT_COLOR, label="ground truth")
        draw_hand(ax, np.asarray(pred).reshape(-1, 2), color=PRED_COLOR, label="prediction")
    if show_ids:
        for j, (x, y) in enumerate(kp):
            ax.annotate(str(j), (x, y), xytext=(3, -3), textcoords="offset points", fontsize=7,
                        color="white")
    if title is None:
        parts = [f"pose {record['pose_id']}" if "pose_id" in record else None,
                 f"v{record['version']}" if "version" in record else None]
        title = " ".join(p for p in parts if p)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    return ax


def show_grid(records: Sequence[dict], cols: int = 4, size: float = 2.6, titles=None, preds=None):
    """A grid of samples with skeletons (and predictions, if given)."""
    n = len(records)
    rows = max(1, int(np.ceil(n / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * size, rows * size), squeeze=False)
    for i, ax in zip(range(n), axes.flat):
        show_sample(records[i], ax=ax, title=None if titles is None else titles[i],
                    pred=None if preds is None else preds[i])
    return finish(fig, axes.flat[n:])  # the grid's empty cells without a frame


def plot_skeleton_3d(ax, xyz, color: str | None = None, label: str | None = None,
                     unit: str = "m"):
    """Draw a HAND21 skeleton in 3D (camera frame: x right, y down, z away from the camera), in
    an equal-sided box around every skeleton drawn on ``ax``."""
    p = np.asarray(xyz, dtype=float).reshape(-1, 3)
    colors = [color] * len(HAND21_BONES) if color else hand21_bone_colors()
    for (a, b), c in zip(HAND21_BONES, colors):
        ax.plot(p[[a, b], 0], p[[a, b], 2], -p[[a, b], 1], "-", color=c, lw=2)
    ax.scatter(p[:, 0], p[:, 2], -p[:, 1], s=10, c=color or hand21_joint_colors(), label=label)
    ax.set(xlabel=f"x ({unit})", ylabel=f"z ({unit}, depth)", zlabel=f"-y ({unit}, up)")
    ax.skeletons = [*getattr(ax, "skeletons", []), p]
    everything = np.concatenate(ax.skeletons)
    span = np.ptp(everything, axis=0).max() / 2 * 1.05 + 1e-6
    mid = (everything.max(0) + everything.min(0)) / 2
    ax.set(xlim=(mid[0] - span, mid[0] + span), ylim=(mid[2] - span, mid[2] + span),
           zlim=(-mid[1] - span, -mid[1] + span))
    return ax


def sample_browser(records: Sequence[dict], show=show_sample, **kwargs):
    """An ipywidgets slider (7.7 in Colab, or 8) over ``records`` that calls
    ``show(records[i], **kwargs)``. Call ``show(records[0])`` once yourself first."""
    from ipywidgets import IntSlider, interact

    def _show(index=0):
        show(records[index], **kwargs)
        plt.show()

    interact(_show, index=IntSlider(value=0, min=0, max=len(records) - 1, step=1,
                                           continuous_update=False))


# Model comparison -----------------------------------------------------------------------------

def plot_per_joint_error(errors: dict, ax=None, unit: str = "px", title: str = "error per joint"):
    """Grouped bars: mean error per HAND21 joint for each model, ``{name: (21,) errors}`` (or
    ``(N, 21)``, averaged over N)."""
    from ..skeletons import HAND21_NAMES

    ax = _axes(ax, figsize=(12, 3.2))
    n = len(errors)
    width = 0.8 / max(n, 1)
    x = np.arange(len(HAND21_NAMES))
    for k, (name, e) in enumerate(errors.items()):
        e = np.asarray(e, float)
        ax.bar(x + (k - (n - 1) / 2) * width, np.nanmean(e, 0) if e.ndim == 2 else e, width,
               label=name)
    ax.set_xticks(x)
    ax.set_xticklabels(HAND21_NAMES, rotation=60, ha="right", fontsize=8)
    ax.set(ylabel=f"mean error ({unit})", title=title)
    ax.legend(fontsize=8)
    return ax


def plot_pck_curves(curves: dict[str, tuple], ax=None, xlabel: str = "threshold (px)"):
    """PCK against the threshold for each model: ``{name: (thresholds, curve, auc)}``."""
    ax = _axes(ax, figsize=(5, 3.5))
    for name, (thr, curve, auc) in curves.items():
        ax.plot(np.asarray(thr), 100 * np.asarray(curve), lw=2, label=f"{name} (AUC {auc:.3f})")
    ax.set(xlabel=xlabel, ylabel="% correct keypoints", title="PCK curve", ylim=(0, 100))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def show_source(*objects) -> None:
    """Show the source of package functions or classes, so the learner reads the code a notebook
    is about to use (``hp.show_source(hp.metrics.pck)``): highlighted in a notebook, else printed."""
    import inspect

    text = "\n\n".join(inspect.getsource(obj).rstrip() for obj in objects)
    if not env.in_notebook():
        return print(text)
    from IPython.display import Markdown, display

    display(Markdown(f"```python\n{text}\n```"))


def __getattr__(name: str):
    """A lesson's figures load on first use: ``hp.plots.landmarks`` imports
    ``handpose_utils/plots/landmarks.py``."""
    import importlib.util  # binds importlib too

    if importlib.util.find_spec(f"{__name__}.{name}") is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return importlib.import_module(f"{__name__}.{name}")
