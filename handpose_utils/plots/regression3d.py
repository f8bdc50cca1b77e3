"""Notebook 05's figures (``hp.plots.regression3d``): predictions in 2D and 3D, the depth-size
ambiguity, Procrustes alignment, the rotation check, training curves, 3D PCK curves, the split
experiment's charts and tables, a per-epoch figure callback and a 3D browser."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import to_hex
from PIL import Image

from ..camera import project
from ..data import denormalize
from ..images import read_image
from ..metrics3d import PCK3D_THRESHOLDS_MM, pck3d_curve, reproject_with_gt_root
from ..skeletons import MIDDLE_MCP
from . import GT_COLOR, PRED_COLOR, _axes, draw_hand, plot_skeleton_3d
from ._layout import finish
from .history import plot_history


def show_prediction_3d(image, gt_xyz, pred_rel, K, root: int = MIDDLE_MCP,
                       title: str | None = None, elev: float = 20.0, azim: float = -70.0):
    """One test sample, ground truth green and prediction red: the image (a path or an array)
    with the prediction ``pred_rel`` (root-relative metres) projected through ``K`` at the true
    root of ``gt_xyz`` (absolute metres), and both root-relative skeletons in 3D (mm), seen from
    ``elev`` / ``azim`` degrees."""
    gt = np.asarray(gt_xyz, np.float64).reshape(-1, 3)
    pred = np.asarray(pred_rel, np.float64).reshape(-1, 3)
    img = read_image(image) if isinstance(image, (str, Path)) else np.asarray(image)
    uv_gt = project(gt, K)
    uv_pred = reproject_with_gt_root(pred[None], gt[None], K, root)[0].numpy()
    gt_mm, pred_mm = (gt - gt[root]) * 1000, pred * 1000
    err = np.linalg.norm(pred_mm - gt_mm, axis=-1).mean()
    fig = plt.figure(figsize=(8.6, 4.0))
    ax2 = fig.add_subplot(1, 2, 1)
    ax2.imshow(img)
    draw_hand(ax2, uv_gt, color=GT_COLOR, label="ground truth")
    draw_hand(ax2, uv_pred, color=PRED_COLOR, label="prediction")
    ax2.set_xlim(-0.5, img.shape[1] - 0.5)
    ax2.set_ylim(img.shape[0] - 0.5, -0.5)
    ax2.legend(loc="lower right", fontsize=7)
    ax2.set_title("2D: prediction placed at the true root", fontsize=9)
    ax2.axis("off")
    ax3 = fig.add_subplot(1, 2, 2, projection="3d")
    plot_skeleton_3d(ax3, gt_mm, color=GT_COLOR, label="ground truth", unit="mm")
    plot_skeleton_3d(ax3, pred_mm, color=PRED_COLOR, label="prediction", unit="mm")
    ax3.view_init(elev=elev, azim=azim)
    ax3.set_title(f"3D, root-relative: MPJPE {err:.1f} mm", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return finish(fig)


def show_target_spread(xyz, rel):
    """Histograms: the depth of joint 9 (where the hand is) next to every joint's distance from
    joint 9 (the hand's shape). ``xyz`` absolute and ``rel`` root-relative ``(N, 21, 3)`` metres."""
    xyz, rel = np.asarray(xyz), np.asarray(rel)
    fig, (ax_a, ax_b) = plt.subplots(1, 2, figsize=(10, 3))
    ax_a.hist(xyz[:, 9, 2], bins=40, color="tab:blue")
    ax_a.set(xlabel="depth z of joint 9 (m)", ylabel="images", title="absolute: where the hand is")
    ax_b.hist(np.linalg.norm(rel, axis=-1).ravel() * 1000, bins=40, color="tab:orange")
    ax_b.set(xlabel="distance of a joint from joint 9 (mm)",
             title="root-relative: the hand's shape")
    return finish(fig)


def show_depth_scale_ambiguity(record: dict, factors=(1.0, 1.5, 2.0)):
    """The hand scaled by each of ``factors`` about the camera centre (``f`` times bigger and
    farther): a top view (x against depth z) with the rays through the joints, and the
    projections on the image."""
    xyz = np.asarray(record["xyz"], np.float64)
    fig, (ax_top, ax_img) = plt.subplots(1, 2, figsize=(9.5, 4.0))
    colors = [to_hex(c) for c in plt.cm.viridis(np.linspace(0.1, 0.8, len(factors)))]
    ax_img.imshow(read_image(record["image_path"]))
    for f, c in zip(factors, colors):
        p = f * xyz
        bone = np.linalg.norm(p[9] - p[10]) * 1000
        ax_top.plot(p[:, 0], p[:, 2], "o", ms=3, color=c,
                    label=f"x{f:g}: depth {p[9, 2]:.2f} m, bone 9-10 {bone:.0f} mm")
        draw_hand(ax_img, project(p, record["K"]), color=c, markersize=10, linewidth=1.2)
    far = max(factors) * xyz
    for j in (4, 8, 12, 16, 20, 0):
        ax_top.plot([0, far[j, 0]], [0, far[j, 2]], "-", color="0.75", lw=0.7, zorder=0)
    ax_top.plot([0], [0], "k^", ms=8, label="camera centre")
    ax_top.set(xlabel="x (m)", ylabel="z (m, depth)", title="top view: same rays, other hands")
    ax_top.legend(fontsize=7, loc="upper left")
    ax_img.set_title("their projections on the image", fontsize=9)
    return finish(fig, ax_img)


def show_alignment(gt_mm, pred_mm, aligned_mm):
    """Ground truth (green) with a prediction before and after Procrustes alignment (red), in mm,
    each titled with its mean joint error."""
    gt, shown = np.asarray(gt_mm, float).reshape(-1, 3), {}
    shown["before alignment"] = np.asarray(pred_mm, float).reshape(-1, 3)
    shown["after Procrustes"] = np.asarray(aligned_mm, float).reshape(-1, 3)
    fig = plt.figure(figsize=(9, 4))
    for k, (name, pts) in enumerate(shown.items()):
        ax = fig.add_subplot(1, 2, k + 1, projection="3d")
        plot_skeleton_3d(ax, gt, color=GT_COLOR, label="ground truth", unit="mm")
        plot_skeleton_3d(ax, pts, color=PRED_COLOR, label="prediction", unit="mm")
        err = np.linalg.norm(pts - gt, axis=-1).mean()
        ax.set_title(f"{name}: {err:.1f} mm", fontsize=9)
    return finish(fig)


def show_rotation_check(image, uv, uv_moved, uv_projected, theta: float):
    """The image with its keypoints ``uv`` (left), and the image rotated by ``theta`` radians
    about its centre (right) with the keypoints moved by the pixel warp (green skeleton) and the
    rotated 3D joints projected through the new camera (red crosses)."""
    img = np.asarray(image)
    # PIL's rotate turns counter-clockwise on screen; Q (y pointing down) turns clockwise
    rotated = np.asarray(Image.fromarray(img).rotate(-np.degrees(theta),
                                                     resample=Image.Resampling.BILINEAR))
    fig, axes = plt.subplots(1, 2, figsize=(7, 3.5))
    axes[0].imshow(img)
    draw_hand(axes[0], uv, color=GT_COLOR)
    axes[0].set_title("original", fontsize=9)
    axes[1].imshow(rotated)
    draw_hand(axes[1], uv_moved, color=GT_COLOR)
    p = np.asarray(uv_projected)
    axes[1].scatter(p[:, 0], p[:, 1], marker="x", s=18, c=PRED_COLOR, zorder=4)
    axes[1].set_title(f"rotated {np.degrees(theta):.0f}°: warped 2D (green), "
                      "R_z·xyz through K' (red)", fontsize=9)
    return finish(fig, axes)


def show_augmented_batch(prepare_batch, dataset, indices=range(4), seed: int = 0):
    """Training-mode batches through ``prepare_batch``: the augmented images with the 2D
    keypoints moved by the warp (green) and the 3D targets rotated to match projected through
    the updated camera (red crosses). If the 3D transform were wrong, the two would part."""
    batch = dataset[list(indices)]
    torch.manual_seed(seed)
    images, _, extras = prepare_batch(batch, torch.device("cpu"), True)
    xyz, K = extras["xyz_input"], extras["K_input"]
    uvw = xyz @ K.transpose(1, 2)
    uv = (uvw[..., :2] / uvw[..., 2:]).numpy()
    fig, axes = plt.subplots(1, len(images), figsize=(2.6 * len(images), 2.9))
    axes = np.atleast_1d(axes)
    for k, ax in enumerate(axes):
        ax.imshow(denormalize(images[k]).permute(1, 2, 0).numpy())
        draw_hand(ax, extras["keypoints"][k].numpy(), color=GT_COLOR, markersize=8)
        ax.scatter(uv[k, :, 0], uv[k, :, 1], marker="x", s=14, c=PRED_COLOR, zorder=4)
        gap = np.linalg.norm(uv[k] - extras["keypoints"][k].numpy(), axis=-1).max()
        ax.set_title(f"max gap {gap:.2g} px", fontsize=8)
    return finish(fig, axes)


class EpochVisualizer:
    """A ``fit`` callback: after every epoch, predict a few fixed test samples (eval mode, no
    gradients, the mode restored) and save ``epoch_NNN_test_K.png`` (:func:`show_prediction_3d`)
    and ``training_metrics.png`` (``plot_history``) into ``out_dir``; ``self.saved`` lists the
    files. ``codec`` decodes the outputs to root-relative metres."""

    def __init__(self, model, dataset, records: Sequence[dict], codec, prepare_batch, out_dir,
                 indices: Sequence[int] = (0,)):
        self.model, self.codec, self.prepare_batch = model, codec, prepare_batch
        self.out_dir = Path(out_dir)
        self.batch = dataset[list(indices)]
        self.records = [records[int(i)] for i in self.batch["index"]]
        self.saved: list[Path] = []

    @torch.no_grad()
    def predict(self) -> torch.Tensor:
        """Root-relative metres ``(K, 21, 3)`` for the fixed samples."""
        device = next(self.model.parameters()).device
        was_training = self.model.training
        self.model.eval()
        try:
            inputs, _, extras = self.prepare_batch(self.batch, device, False)
            out = self.model(inputs).float()
        finally:
            self.model.train(was_training)
        return torch.as_tensor(self.codec.decode(out, extras.get("scale"))).cpu()

    def __call__(self, epoch: int, history) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        pred = self.predict().numpy()
        for k, rec in enumerate(self.records):
            fig = show_prediction_3d(rec["image_path"], rec["xyz"], pred[k], rec["K"],
                                     title=f"epoch {epoch}, test sample {k}")
            path = self.out_dir / f"epoch_{epoch:03d}_test_{k}.png"
            fig.savefig(path, dpi=90)
            plt.close(fig)
            self.saved.append(path)
        keys = ["val_mpjpe", "val_pa_mpjpe", "val_pck3d_auc", "val_within_50mm"]
        plot_history(history, keys).savefig(self.out_dir / "training_metrics.png", dpi=110)


def plot_pck3d_curves(results: dict[str, tuple], ax=None, title: str = "3D PCK (test)"):
    """3D PCK curves ``{label: (pred_mm, gt_mm)}`` over 0-50 mm, with their AUC in the legend."""
    ax = _axes(ax, figsize=(5.2, 3.6))
    for label, (pred, gt) in results.items():
        curve, auc = pck3d_curve(pred, gt)
        ax.plot(PCK3D_THRESHOLDS_MM, 100 * curve.numpy(), label=f"{label} (AUC {auc:.3f})")
    ax.set(xlabel="threshold (mm)", ylabel="joints within threshold (%)", title=title,
           ylim=(0, 100), xlim=(0, 50))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return ax.figure


def metrics_table(results: dict[str, dict]) -> str:
    """A Markdown table of ``pose3d_metrics`` results, one column per model or split
    (``{"ResNet-50": {...}, "mean pose": {...}}``); display with ``IPython.display.Markdown``."""
    rows = [("mpjpe", "MPJPE, root-relative: joint 9 at the origin (mm)", "{:.1f}"),
            ("pa_mpjpe", "PA-MPJPE, Procrustes-aligned, rotations only (mm)", "{:.1f}"),
            ("pck3d_auc", "3D PCK AUC, 0-50 mm, root-relative", "{:.3f}"),
            ("pa_pck3d_auc", "3D PCK AUC, 0-50 mm, aligned", "{:.3f}"),
            ("pck3d@20mm", "joints within 20 mm", "{:.1%}"),
            ("within_50mm", "joints within 50 mm", "{:.1%}"),
            ("reproj_px", "2D reprojection error, GT root (px)", "{:.1f}")]
    names = list(results)
    lines = ["| metric | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for key, label, fmt in rows:
        if any(key in results[n] for n in names):
            cells = [fmt.format(results[n][key]) if key in results[n] else "" for n in names]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_split_comparison(rows: Sequence[dict]):
    """Bars of ``compare_splits``' test MPJPE and PA-MPJPE per split, and for each split its
    test images split into poses seen in training and poses never seen."""
    fig, (ax_a, ax_b) = plt.subplots(1, 2, figsize=(10, 3.4))
    names = [r["split"] for r in rows]
    x = np.arange(len(rows))
    for k, (key, label) in enumerate((("mpjpe", "MPJPE"), ("pa_mpjpe", "PA-MPJPE"))):
        bars = ax_a.bar(x + (k - 0.5) * 0.38, [r[key] for r in rows], 0.38, label=label)
        ax_a.bar_label(bars, fmt="%.1f", fontsize=7)
    ax_a.set_xticks(x, names, fontsize=8)
    ax_a.set(ylabel="mm (test, lower is better)", title="each model on its own test set")
    ax_a.legend(fontsize=7)
    for k, (key, label) in enumerate((("mpjpe_seen_poses", "pose also in train"),
                                      ("mpjpe_unseen_poses", "pose never in train"))):
        vals = [r[key] for r in rows]
        bars = ax_b.bar(x + (k - 0.5) * 0.38, np.nan_to_num(vals), 0.38, label=label)
        ax_b.bar_label(bars, labels=[f"{v:.1f}\n({n})" if np.isfinite(v) else "none"
                                     for v, n in zip(vals, [r[f"n_{key[6:]}"] for r in rows])],
                       fontsize=7)
    ax_b.set_xticks(x, names, fontsize=8)
    ax_b.set(ylabel="MPJPE (mm)", title="test images by pose: seen in training or not")
    ax_b.legend(fontsize=7)
    return finish(fig)


def split_comparison_table(rows: Sequence[dict]) -> str:
    """``compare_splits``' rows as a Markdown table."""
    lines = ["| split | train images | test images | test poses also in train | test MPJPE (mm) "
             "| test PA-MPJPE (mm) | MPJPE, poses seen in train | MPJPE, poses never seen |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]

    def cell(r, key, n_key):
        return f"{r[key]:.1f} ({r[n_key]} images)" if r[n_key] else "none"

    for r in rows:
        lines.append(f"| {r['split']} | {r['train_images']} | {r['test_images']} | "
                     f"{r['test_poses_in_train']} | {r['mpjpe']:.1f} ± {r['mpjpe_sem']:.1f} | "
                     f"{r['pa_mpjpe']:.1f} | {cell(r, 'mpjpe_seen_poses', 'n_seen_poses')} | "
                     f"{cell(r, 'mpjpe_unseen_poses', 'n_unseen_poses')} |")
    return "\n".join(lines)


def pose_browser(records: Sequence[dict], pred_rel, root: int = MIDDLE_MCP):
    """An ipywidgets browser over test predictions ``pred_rel`` (root-relative metres): pick the
    sample and turn the 3D view. The first sample is drawn once first (``interact`` prints
    errors instead of raising them)."""
    from ipywidgets import IntSlider, interact
    pred_rel = np.asarray(pred_rel)
    first = records[0]
    plt.close(show_prediction_3d(first["image_path"], first["xyz"], pred_rel[0], first["K"], root))

    def _show(index=0, elev=20, azim=-70):
        r = records[index]
        show_prediction_3d(r["image_path"], r["xyz"], pred_rel[index], r["K"], root,
                           title=f"test #{index}: pose {r.get('pose_id')}", elev=elev, azim=azim)
        plt.show()

    slider = dict(continuous_update=False)
    interact(_show, index=IntSlider(value=0, min=0, max=len(records) - 1, **slider),
             elev=IntSlider(value=20, min=-90, max=90, step=5, **slider),
             azim=IntSlider(value=-70, min=-180, max=180, step=5, **slider))
