"""Notebook 02's figures (``hp.plots.splits``): how the splits differ in hand size, keypoint
spread and where the hands are."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np

from ..records import keypoints_array


def hand_size(records: Sequence[dict]) -> np.ndarray:
    """Longer side (px) of each record's keypoint bounding box."""
    kp = np.stack([keypoints_array(r) for r in records])
    return np.ptp(kp, axis=1).max(axis=1)


def keypoint_spread(records: Sequence[dict]) -> np.ndarray:
    """Root-mean-square distance (px) of each record's keypoints from their centroid."""
    kp = np.stack([keypoints_array(r) for r in records])
    return np.sqrt(((kp - kp.mean(1, keepdims=True)) ** 2).sum(-1).mean(-1))


def plot_split_distributions(splits: dict[str, Sequence[dict]], bins: int = 20):
    """Histograms of hand size and keypoint spread, and the hand centres, for each split."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    splits = {k: v for k, v in splits.items() if len(v)}
    for ax, measure, title in ((axes[0], hand_size, "hand size: keypoint bbox longer side"),
                               (axes[1], keypoint_spread,
                                "keypoint spread (RMS distance to centroid)")):
        values = {k: measure(v) for k, v in splits.items()}
        edges = np.linspace(min(v.min() for v in values.values()),
                            max(v.max() for v in values.values()), bins + 1)
        for name, v in values.items():
            poses = {r["pose_id"] for r in splits[name] if "pose_id" in r}
            count = f"{len(v)} images" + (f" of {len(poses)} poses" if poses else "")
            ax.hist(v, bins=edges, density=True, histtype="step", lw=2,
                    label=f"{name} ({count})")
        ax.set(title=title, xlabel="pixels")
    axes[0].set_ylabel("density")
    for name, recs in splits.items():
        c = np.stack([keypoints_array(r).mean(0) for r in recs])
        axes[2].scatter(c[:, 0], c[:, 1], s=4, alpha=0.5, label=name)
    axes[2].invert_yaxis()
    axes[2].set_aspect("equal")
    axes[2].set(title="hand centres in the image", xlabel="u (px)", ylabel="v (px)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig
