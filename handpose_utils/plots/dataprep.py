"""Notebook 01's figures (``hp.plots.dataprep``): a projection on its image, the background
versions of one pose, the same keypoints on a resized copy, and how often each joint is visible."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ..camera import project
from ..images import read_image
from ..skeletons import hand21_joint_colors
from . import draw_hand, plot_skeleton_3d, show_grid, show_sample
from ._layout import finish


def show_projection(image, xyz, K, uv=None, uv_far=None):
    """The camera-frame joints ``xyz`` in 3D, and their pixels ``uv`` (default ``K xyz / z``) on
    ``image`` with the principal point of ``K``; with ``uv_far``, the projection of ``2 * xyz``,
    a third panel draws it over ``uv``."""
    K = np.asarray(K)
    uv = project(xyz, K) if uv is None else uv
    n = 2 if uv_far is None else 3
    fig = plt.figure(figsize=(4 * n, 4))
    ax3 = fig.add_subplot(1, n, 1, projection="3d")
    plot_skeleton_3d(ax3, xyz)
    ax3.set_title("xyz (camera frame, metres)", fontsize=9)
    axes = [fig.add_subplot(1, n, k) for k in range(2, n + 1)]
    axes[0].imshow(image)
    draw_hand(axes[0], uv)
    axes[0].scatter([K[0, 2]], [K[1, 2]], marker="+", s=120, c="yellow", label="principal point")
    axes[0].legend(loc="lower right", fontsize=7)
    axes[0].set_title(f"uv = K·xyz / z on the image (fx = {K[0, 0]:.0f} px)", fontsize=9)
    if uv_far is not None:
        axes[1].imshow(image)
        draw_hand(axes[1], uv, color="white", linewidth=4, label="xyz")
        draw_hand(axes[1], uv_far, color="tab:orange", label="2 × xyz")
        axes[1].legend(loc="lower right", fontsize=7)
        gap = np.abs(np.asarray(uv_far) - uv).max()
        axes[1].set_title(f"2 × xyz: max pixel change {gap:.1e} px", fontsize=9)
    return finish(fig, axes)


def show_versions(records, pose_id: int, size: float = 2.6):
    """All background versions of one pose side by side (same hand, same keypoints)."""
    same = sorted((r for r in records if r.get("pose_id") == pose_id), key=lambda r: r["version"])
    if not same:
        raise ValueError(f"no record with pose_id {pose_id}")
    names = ("gs", "hom", "sample", "auto")
    titles = [f"pose {pose_id}, version {r['version']} ({names[r['version']]})" for r in same]
    return show_grid(same, cols=len(same), size=size, titles=titles)


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
    return finish(fig, axes)


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
    return finish(fig)
