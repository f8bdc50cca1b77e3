"""Notebook 04's figures (``hp.plots.landmarks``): landmarks with their depth, teacher against
truth, student against its labels, per-joint errors, the training targets, augmentations and the
loss (the lesson's code is in the notebook and ``handpose_utils.landmarks``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ..data import denormalize
from ..datasets.ouhands import landmark_file_path, read_landmark_file
from ..images import read_image
from ..landmarks import landmarks_to_pixels
from . import GT_COLOR, PRED_COLOR, draw_hand, plot_per_joint_error, sample_browser
from ._layout import finish


def _as_image(image) -> np.ndarray:
    return read_image(image) if isinstance(image, (str, Path)) else np.asarray(image)


def _two_panels(width: float, ratios) -> list:
    """A row of two axes, ``width`` inches wide together, as wide as ``ratios`` says."""
    return list(plt.subplots(1, 2, figsize=(width, 3.8), gridspec_kw={"width_ratios": ratios})[1])


def show_landmarks(image, landmarks, title: str | None = None):
    """An image (array or path) with its 21 landmarks (MediaPipe normalisation): grey bones,
    joints coloured by z (blue = closer to the camera than the wrist, a colour bar says how
    much), and a second panel seen from above (x against z)."""
    img = _as_image(image)
    h, w = img.shape[:2]
    lm = np.asarray(landmarks, float)
    px = landmarks_to_pixels(lm, (w, h))
    axes = _two_panels(10, [1.4, 1])
    axes[0].imshow(img)
    draw_hand(axes[0], px, color="lightgrey")  # the joints' colour is z's alone
    lim = max(np.abs(lm[:, 2]).max(), 1e-3)
    dots = axes[0].scatter(px[:, 0], px[:, 1], c=lm[:, 2], cmap="coolwarm", vmin=-lim, vmax=lim,
                           s=14, zorder=4, edgecolors="black", linewidths=0.3)
    bar = axes[0].figure.colorbar(dots, ax=axes[0], orientation="horizontal", fraction=0.05,
                                  pad=0.03, aspect=40)
    bar.set_label("joint colour: z (blue: closer to the camera than the wrist)", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    axes[0].set_title(title or "landmarks (joint colour = z)", fontsize=9)
    axes[0].axis("off")
    draw_hand(axes[1], np.stack([lm[:, 0] * w, lm[:, 2] * w], axis=1))  # both in x's pixels
    axes[1].axhline(0, color="grey", lw=0.8, ls="--")
    axes[1].invert_yaxis()  # the camera at the top: negative z (closer) plotted up
    axes[1].set_aspect("equal", adjustable="datalim")
    axes[1].set(xlabel="x (px)", ylabel="z × W (px, on x's scale)",
                title="seen from above, camera at the top: z relative to the wrist (dashed)")
    axes[1].title.set_fontsize(9)
    return axes


def show_prediction(image, gt, pred, title: str | None = None, labels: str = "labels"):
    """The labelled landmarks (green, named ``labels`` in the legend: "truth" or "teacher") and
    the student's (red) on the image, a line from each labelled joint to its prediction, and
    the per-joint pixel errors beside it."""
    img = _as_image(image)
    h, w = img.shape[:2]
    gt_px = landmarks_to_pixels(np.asarray(gt, float), (w, h))
    pred_px = landmarks_to_pixels(np.asarray(pred, float), (w, h))
    err = np.linalg.norm(pred_px - gt_px, axis=-1)
    axes = _two_panels(11, [1.5, 1])
    axes[0].imshow(img)
    for (x0, y0), (x1, y1) in zip(gt_px, pred_px):
        axes[0].plot([x0, x1], [y0, y1], "-", color="white", lw=0.8, alpha=0.8)
    draw_hand(axes[0], gt_px, color=GT_COLOR, label=labels)
    draw_hand(axes[0], pred_px, color=PRED_COLOR, label="student")
    axes[0].legend(loc="lower right", fontsize=7)
    axes[0].set_title(title or f"mean 2D error {err.mean():.1f} px", fontsize=9)
    axes[0].axis("off")
    plot_per_joint_error({"student": err}, ax=axes[1], title="this image: error per joint")
    return axes


def landmark_browser(image_paths: Sequence[str], gt, pred, labels: str = "labels") -> None:
    """A slider calling :func:`show_prediction` for each image (``labels`` names ``gt``)."""
    gt, pred = np.asarray(gt), np.asarray(pred)
    sample_browser(range(len(image_paths)), lambda i: show_prediction(
        image_paths[i], gt[i], pred[i], labels=labels, title=Path(image_paths[i]).name))


def show_class_examples(records: Sequence[dict], cols: int = 5, size: float = 2.4,
                        titles: dict | None = None):
    """The first image of each class in OUHANDS records, titled with the class letter (and
    ``titles[class]`` if given, e.g. the synthetic gesture)."""
    first: dict[str, dict] = {}
    for rec in records:
        first.setdefault(rec["class"], rec)
    classes = sorted(first)
    rows = max(1, math.ceil(len(classes) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * size, rows * size * 0.8), squeeze=False)
    for ax, cls in zip(axes.flat, classes):
        ax.imshow(read_image(first[cls]["image_path"]))
        extra = f" ({titles[cls]})" if titles and cls in titles else ""
        ax.set_title(f"class {cls}{extra}: {first[cls]['subject']}", fontsize=8)
    return finish(fig, axes)


def show_teacher_vs_truth(teacher_dir, truth_dir, split: str, check: dict, n_found: int = 3):
    """A few images of ``split``: MediaPipe's landmarks (red) against the true ones (green): the
    best, middle and worst of the hands it found (``check`` from
    ``mediapipe_labels.compare_with_ground_truth``) and one it missed, if any."""
    def pixels(record, size):
        lm = np.array([[p["x"], p["y"]] for p in record["landmarks"]])
        return landmarks_to_pixels(lm, size)

    found = sorted(check.get("per_image_px", {}).items(), key=lambda kv: kv[1])
    picks = [found[k] for k in sorted({0, len(found) // 2, len(found) - 1})] if found else []
    picks = picks[:n_found] + [(name, None) for name in check["missed"][:1]]
    if not picks:
        print(f"{split}: no images to show")
        return None
    fig, axes = plt.subplots(1, len(picks), figsize=(3.6 * len(picks), 3), squeeze=False)
    for ax, (name, err) in zip(axes[0], picks):
        truth = read_landmark_file(landmark_file_path(truth_dir, split, name))
        img = read_image(truth["image_path"])
        size = (img.shape[1], img.shape[0])
        ax.imshow(img)
        draw_hand(ax, pixels(truth, size), color=GT_COLOR, label="truth")
        if err is None:
            ax.set_title(f"{name}: no hand found", fontsize=8)
        else:
            teacher = read_landmark_file(landmark_file_path(teacher_dir, split, name))
            draw_hand(ax, pixels(teacher, size), color=PRED_COLOR, label="MediaPipe")
            ax.set_title(f"{name}: {err:.1f} px", fontsize=8)
        ax.legend(loc="lower right", fontsize=6)
    return finish(fig, axes)


def plot_targets(targets):
    """Histograms of the encoded training targets ``(N, 63)``: x', y' and z' over all joints."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 2.6), sharey=True)
    for axis, (ax, name) in enumerate(zip(axes, ("x'", "y'", "z'"))):
        v = np.asarray(targets).reshape(-1, 21, 3)[..., axis].ravel()
        ax.hist(v, bins=60, color="C0")
        ax.set_title(f"{name}: min {v.min():+.2f}, max {v.max():+.2f}", fontsize=9)
    axes[0].set_ylabel("joints")
    fig.suptitle("the training targets, all joints", fontsize=10)
    return finish(fig)


def show_landmark_augmentations(dataset, index: int = 0, draws: int = 5):
    """One training image as cached (no augmentation) and ``draws`` augmented draws of it."""
    fig, axes = plt.subplots(1, draws + 1, figsize=(13, 2.5))
    axes[0].imshow(dataset.cache.images[index])
    axes[0].set_title("no augmentation", fontsize=8)
    for k, ax in enumerate(axes[1:], 1):
        ax.imshow(denormalize(dataset[index]["image"]).permute(1, 2, 0))
        ax.set_title(f"training draw {k}", fontsize=8)
    return finish(fig, axes)


def plot_landmark_loss(beta: float):
    """The landmark loss per target (SmoothL1 with ``beta`` against L1 and the quadratic) and the
    binary cross-entropy on a soft handedness label, against the logit."""
    import torch
    import torch.nn.functional as F
    d = torch.linspace(-0.1, 0.1, 401)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3))
    axes[0].plot(d, F.smooth_l1_loss(d, torch.zeros_like(d), beta=beta, reduction="none"),
                 label=f"SmoothL1, β = {beta}")
    axes[0].plot(d, d.abs(), "--", label="L1")
    axes[0].plot(d, d**2 / (2 * beta), ":", label="d² / 2β")
    axes[0].set(ylim=(0, 0.1), xlabel="error d (target units)", title="the landmark loss per target")
    axes[0].legend(fontsize=8)
    logit = torch.linspace(-6, 6, 200)
    for p in (1.0, 0.8, 0.5):
        bce = F.binary_cross_entropy_with_logits(logit, torch.full_like(logit, p), reduction="none")
        axes[1].plot(logit, bce, label=f"p_right = {p}")
    axes[1].set(xlabel="handedness logit ℓ", title="BCE on a soft label: minimum at σ(ℓ) = p")
    axes[1].legend(fontsize=8)
    return fig
