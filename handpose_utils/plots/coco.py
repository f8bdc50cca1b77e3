"""Notebook 06's figures: people (GT green, prediction red), crops, targets, heatmaps,
augmentations, decoding error, OKS and AP. Loaded lazily as ``hp.plots.coco``."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..images import read_image
from ..skeletons import COCO17_NAMES, COCO_OKS_SIGMAS, COCO_SKELETON, coco_part_side
from . import GT_COLOR, PRED_COLOR, _axes
from ._layout import finish

SIDE_COLORS = {"left": "#1f77b4", "right": "#ff7f0e", "center": "#2ca02c"}


def _np(x):
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _rgb(image) -> np.ndarray:
    """A crop ``(3, H, W)`` or ``(H, W, 3)`` as a uint8 ``(H, W, 3)`` array."""
    img = _np(image)
    return (img.transpose(1, 2, 0) if img.ndim == 3 and img.shape[0] == 3 else img).astype("uint8")


def draw_person(ax, keypoints, visibility=None, color: str | None = None, linewidth: float = 2.0,
                markersize: float = 14, label: str | None = None) -> None:
    """A COCO-17 skeleton ``(17, 2)`` or ``(17, 3)`` (v last) in ``color``, or :data:`SIDE_COLORS`.
    Joints with visibility 0 are skipped; occluded ones (1) are drawn hollow."""
    kp = _np(keypoints).astype(float).reshape(len(COCO17_NAMES), -1)
    if kp.shape[1] == 3 and visibility is None:
        visibility = kp[:, 2]
    kp = kp[:, :2]
    v = np.full(len(kp), 2) if visibility is None else _np(visibility).reshape(-1)
    c = np.array([color or SIDE_COLORS[coco_part_side(name)] for name in COCO17_NAMES])
    for a, b in COCO_SKELETON:
        if v[a] > 0 and v[b] > 0:
            ax.plot(kp[[a, b], 0], kp[[a, b], 1], "-", color=c[b], lw=linewidth, alpha=0.85,
                    solid_capstyle="round")
    shown, hidden = v == 2, (v > 0) & (v < 2)
    ax.scatter(kp[shown, 0], kp[shown, 1], s=markersize, c=list(c[shown]), edgecolors="white",
               linewidths=0.5, zorder=3, label=label)
    if hidden.any():
        ax.scatter(kp[hidden, 0], kp[hidden, 1], s=markersize, facecolors="none",
                   edgecolors=list(c[hidden]), linewidths=1.2, zorder=3)


def group_by_image(records: Sequence[dict], results: Sequence[dict] = ()) -> list[dict]:
    """Per image, in the records' order: ``{"image_id", "image_path", "people", "preds"}``."""
    images: dict[int, dict] = {}
    for r in records:
        i = int(r["image_id"])
        images.setdefault(i, {"image_id": i, "image_path": r["image_path"], "people": [],
                              "preds": []})["people"].append(r)
    for p in results:
        if int(p["image_id"]) in images:
            images[int(p["image_id"])]["preds"].append(p)
    return list(images.values())


def show_image(entry: dict, ax=None, boxes: bool = True, gt_color: str | None = GT_COLOR):
    """A :func:`group_by_image` entry: GT people green (None: by side), boxes, predictions red."""
    ax = _axes(ax, figsize=(6, 4.5))
    ax.imshow(read_image(entry["image_path"]))
    for k, p in enumerate(entry["people"]):
        draw_person(ax, np.reshape(p["keypoints"], (-1, 2)), p.get("visible"), color=gt_color,
                    linewidth=1.6, markersize=10, label="ground truth" if k == 0 else None)
        if boxes and "bbox" in p:
            ax.add_patch(plt.Rectangle(p["bbox"][:2], *p["bbox"][2:], fill=False,
                                       ec=gt_color or "white", lw=0.8, ls="--"))
    for k, p in enumerate(entry["preds"]):
        draw_person(ax, np.reshape(p["keypoints"], (-1, 3))[:, :2], color=PRED_COLOR,
                    linewidth=1.2, markersize=8, label="prediction" if k == 0 else None)
    if entry["preds"] or (entry["people"] and gt_color):
        ax.legend(loc="lower right", fontsize=7)
    ax.set_title(f"image {entry['image_id']}: {len(entry['people'])} people", fontsize=9)
    ax.axis("off")
    return ax


def show_prediction_grid(images: Sequence[dict], cols: int = 3, size: float = 4.0,
                         gt_color: str | None = GT_COLOR, boxes: bool = False):
    """A grid of :func:`show_image` figures."""
    rows = max(1, int(np.ceil(len(images) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * size, rows * size * 0.8), squeeze=False)
    for ax, entry in zip(axes.flat, images):
        show_image(entry, ax=ax, boxes=boxes, gt_color=gt_color)
    return finish(fig, axes.flat[len(images):])


def show_heatmaps(image, heatmaps, target_weight=None, keypoints=None, names=COCO17_NAMES,
                  cols: int = 6, size: float = 1.9, title: str | None = None):
    """The crop with its keypoints, then each joint's heatmap over it, with its peak and weight."""
    img, hm = _rgb(image), _np(heatmaps)
    J, (H, W) = hm.shape[0], img.shape[:2]
    rows = int(np.ceil((J + 1) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * size, rows * size * H / W))
    axes = axes.ravel()
    axes[0].imshow(img)
    if keypoints is not None:  # (J, 3) with v, or (J, 2) visible where the weight is not 0
        vis = None if target_weight is None else 2 * (_np(target_weight) > 0)
        draw_person(axes[0], keypoints, vis if np.shape(keypoints)[-1] == 2 else None,
                    linewidth=1.2, markersize=8)
    axes[0].set_title(title or "crop", fontsize=8)
    extent = (-0.5, W - 0.5, H - 0.5, -0.5)  # heatmap pixels stretched over the crop's extent
    for j in range(J):
        ax = axes[j + 1]
        ax.imshow(img, alpha=0.45)
        ax.imshow(hm[j], cmap="magma", alpha=0.65, extent=extent, vmin=0,
                  vmax=max(float(hm.max()), 1e-6))
        label = f"{names[j]}\nmax {hm[j].max():.2f}"
        if target_weight is not None:
            label += f", w={float(_np(target_weight).reshape(-1)[j]):g}"
        ax.set_title(label, fontsize=6.5)
    return finish(fig, axes)


def show_person_crops(record: dict, center, size, input_size, rotations=(0.0, 30.0)):
    """A person's image with its crop box, then the crop (and keypoints) at each rotation."""
    from ..topdown import apply_affine, crop_matrix, warp_image
    image = read_image(record["image_path"])
    kp = np.asarray(record["keypoints"], float).reshape(-1, 2)
    labelled = np.asarray(record["visible"]) > 0
    center, size = np.asarray(center, float), np.asarray(size, float)
    fig, axes = plt.subplots(1, 1 + len(rotations), figsize=(3.7 * (1 + len(rotations)), 4))
    axes[0].imshow(image)
    axes[0].add_patch(plt.Rectangle(center - size / 2, *size, fill=False, color="yellow"))
    axes[0].scatter(*kp[labelled].T, s=8, c="red")
    axes[0].set_title("image and crop box")
    for ax, rot in zip(axes[1:], rotations):
        M = crop_matrix(center, size, input_size, rotation=rot)
        ax.imshow(warp_image(image, M, input_size))
        ax.scatter(*apply_affine(kp, M)[labelled].T, s=8, c="red")
        ax.set_title(f"crop, rotation {rot:.0f}°")
    return finish(fig, axes)


def show_target_centres(maps: dict, mu):
    """Target heatmaps ``{title: (h, w) map}`` with centre of mass and peak, a cross at ``mu``."""
    fig, axes = plt.subplots(1, len(maps), figsize=(3.5 * len(maps), 3))
    for ax, (name, hm) in zip(np.atleast_1d(axes), maps.items()):
        hm = np.asarray(hm, float)
        ys, xs = np.mgrid[: hm.shape[0], : hm.shape[1]]
        cx, cy = (hm * xs).sum() / hm.sum(), (hm * ys).sum() / hm.sum()
        ax.imshow(hm, cmap="magma")
        ax.plot(*np.asarray(mu, float)[:2], "c+", ms=14)
        ax.set_title(f"{name}\npeak {hm.max():.3f}, centre of mass ({cx:.2f}, {cy:.2f})",
                     fontsize=8)
    return finish(fig)


def show_colour_draws(crop, draws):
    """A uint8 crop ``(3, H, W)`` and its recoloured copies ``(n, 3, H, W)`` in one row."""
    fig, axes = plt.subplots(1, 1 + len(draws), figsize=(12, 2.6))
    titles = ["original"] + [f"draw {k + 1}" for k in range(len(draws))]
    for ax, img, title in zip(axes, [crop, *draws], titles):
        ax.imshow(_rgb(img))
        ax.set_title(title, fontsize=8)
    return finish(fig, axes)


def show_person_augmentations(dataset, index: int, n: int = 6, size: float = 2.0,
                              seed: int = 0):
    """``n`` augmented crops of person ``index`` of a training ``TopDownDataset``, keypoints decoded
    from their *target* heatmaps (which must follow flips and rotations); torch's RNG unchanged."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        items = [dataset[index] for _ in range(n)]
    W, H = dataset.codec.input_size
    fig, axes = plt.subplots(1, n, figsize=(n * size, size * H / W + 0.4))
    for ax, (image, heatmaps, weight, meta) in zip(np.atleast_1d(axes), items):
        ax.imshow(_rgb(image))
        xy, _ = dataset.codec.decode(heatmaps, "dark")
        draw_person(ax, xy.numpy(), (weight.numpy() > 0) * 2, linewidth=1.2, markersize=8)
        ax.set_title(f"rot {float(meta['rotation']):+.0f}°, "
                     f"{'flipped' if bool(meta['flip']) else 'not flipped'}", fontsize=7)
    return finish(fig, axes)


def plot_decoding_error(errors: dict, stride: float | None = None):
    """Histograms of ``{mode: errors}`` in input pixels (``heatmaps.measure_decoding_error``)."""
    fig, ax = plt.subplots(figsize=(7, 3.2))
    bins = np.linspace(0, max(float(np.max(e)) for e in errors.values()) * 1.02 + 1e-6, 40)
    for mode, e in errors.items():
        ax.hist(e, bins=bins, histtype="step", lw=2, label=f"{mode}: mean {np.mean(e):.2f} px")
    if stride:
        ax.axvline(stride / 2, color="grey", ls=":", lw=1)
        ax.text(stride / 2, ax.get_ylim()[1] * 0.9, " half a heatmap pixel", fontsize=7,
                color="grey")
    ax.set(xlabel="error on perfect heatmaps (input pixels)", ylabel="keypoints",
           title="decoding error alone: quantisation and sub-pixel refinement")
    ax.legend(fontsize=8)
    return finish(fig)


def plot_oks_tolerance(record: dict, ax=None, sigmas=COCO_OKS_SIGMAS, level: float = 0.5):
    """A ground-truth person and, around each labelled joint, the circle where its similarity
    ``exp(-d^2 / (2 s^2 k^2))`` drops to ``level`` (``s^2`` the area, ``k = 2 sigma``)."""
    ax = _axes(ax, figsize=(5, 5))
    ax.imshow(read_image(record["image_path"]))
    kp = np.asarray(record["keypoints"], float).reshape(-1, 2)
    v = np.asarray(record["visible"])
    radius = 2 * np.asarray(sigmas) * np.sqrt(record["area"]) * np.sqrt(2 * np.log(1 / level))
    draw_person(ax, kp, v, color=GT_COLOR, linewidth=1.4, markersize=8)
    for j in np.flatnonzero(v > 0):
        ax.add_patch(plt.Circle(kp[j], radius[j], fill=False, ec="yellow", lw=1))
    x, y, w, h = record["bbox"]
    pad = 0.15 * max(w, h)
    ax.set(xlim=(x - pad, x + w + pad), ylim=(y + h + pad, y - pad))
    ax.set_title(f"OKS tolerance (similarity {level}) for area {record['area']:.0f} px²",
                 fontsize=8)
    ax.axis("off")
    return ax


def plot_oks_histogram(oks, thresholds=(0.5, 0.75)):
    """Per-person OKS, AP50's and AP75's thresholds marked: the share right of one ~ its recall."""
    oks = np.asarray(oks, float)
    oks = oks[np.isfinite(oks)]
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.hist(oks, bins=np.linspace(0, 1, 41), color="#4c72b0")
    for t in thresholds:
        share = float((oks >= t).mean()) if len(oks) else float("nan")
        ax.axvline(t, color="k", ls="--", lw=1)
        ax.text(t, ax.get_ylim()[1] * 0.92, f" OKS≥{t}: {share:.0%}", fontsize=8)
    ax.set(xlabel="OKS of the prediction with its own ground truth", ylabel="people",
           title=f"{len(oks)} people, median OKS {np.median(oks) if len(oks) else np.nan:.2f}")
    return finish(fig)


def plot_ap_bars(rows: dict[str, dict], keys=("AP", "AP50", "AP75", "AR")):
    """Grouped bars: one group per statistic, one bar per named evaluation."""
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    width = 0.8 / max(len(rows), 1)
    x = np.arange(len(keys))
    for i, (name, stats) in enumerate(rows.items()):
        vals = [stats.get(k, np.nan) for k in keys]
        bars = ax.bar(x + i * width - 0.4 + width / 2, vals, width, label=name)
        ax.bar_label(bars, labels=[f"{v:.2f}" if np.isfinite(v) and v >= 0.005 else ""
                                   for v in vals], fontsize=6)
    ax.set_xticks(x, keys)
    ax.set(ylim=(0, 1.05), ylabel="score", title="COCO keypoint AP / AR (OKS)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1, 1))
    return finish(fig)
