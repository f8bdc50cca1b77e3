"""Figures of notebook 01 (data preparation): a projection on its image, the same keypoints on a
resized copy, and how often each joint is visible."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ..images import read_image
from ..skeletons import hand21_joint_colors
from . import draw_hand, plot_skeleton_3d, show_sample


def show_projection(image, xyz, K, uv, uv_far):
    """Three panels: the camera-frame joints ``xyz`` in 3D; their pixels ``uv`` on ``image`` with the
    principal point of ``K``; and ``uv_far``, the projection of ``2 * xyz``, over ``uv``."""
    K = np.asarray(K)
    fig = plt.figure(figsize=(12, 4))
    ax3 = fig.add_subplot(1, 3, 1, projection="3d")
    plot_skeleton_3d(ax3, xyz)
    ax3.set_title("xyz (camera frame, metres)", fontsize=9)
    left, right = fig.add_subplot(1, 3, 2), fig.add_subplot(1, 3, 3)
    left.imshow(image)
    draw_hand(left, uv)
    left.scatter([K[0, 2]], [K[1, 2]], marker="+", s=120, c="yellow", label="principal point")
    left.legend(loc="lower right", fontsize=7)
    left.set_title("uv = K·xyz / z on the image", fontsize=9)
    right.imshow(image)
    draw_hand(right, uv, color="white", linewidth=4, label="xyz")
    draw_hand(right, uv_far, color="tab:orange", label="2 × xyz")
    right.legend(loc="lower right", fontsize=7)
    right.set_title(f"2 × xyz: max pixel change {np.abs(np.asarray(uv_far) - uv).max():.1e} px",
                    fontsize=9)
    for ax in (left, right):
        ax.axis("off")
    fig.tight_layout()
    return fig


def show_resized(image, keypoints, small, small_keypoints):
    """``image`` with its ``keypoints`` next to ``small`` (a resized copy) with ``small_keypoints``,
    both at the same scale per pixel, so that a squashed copy looks squashed."""
    h, w = np.asarray(image).shape[:2]
    sh, sw = np.asarray(small).shape[:2]
    fig, axes = plt.subplots(1, 2, figsize=(8, 4), gridspec_kw={"width_ratios": [w, sw]})
    for ax, im, kp, title in ((axes[0], image, keypoints, f"{w} x {h} px"),
                              (axes[1], small, small_keypoints, f"resized to {sw} x {sh} px")):
        ax.imshow(im, extent=(-0.5, im.shape[1] - 0.5, im.shape[0] - 0.5, -0.5))
        draw_hand(ax, kp)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    return fig


def show_visibility(record: dict, mask_path, visible):
    """A record with its hidden joints hollow, its hand mask (when ``mask_path`` exists) and the
    share of records in which each joint is visible (``visible``: ``(N, 21)`` flags)."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), gridspec_kw={"width_ratios": [1, 1, 2]})
    show_sample(record, ax=axes[0], title="hollow = hidden joint")
    if mask_path.exists():
        axes[1].imshow(read_image(mask_path, mode="L") > 127, cmap="gray")
        axes[1].set_title("hand mask")
    axes[1].axis("off")
    axes[2].bar(range(21), np.asarray(visible).mean(0) * 100, color=hand21_joint_colors())
    axes[2].set(xlabel="joint", ylabel="% visible", title="how often each joint is visible",
                ylim=(0, 100))
    fig.tight_layout()
    return fig
