"""Notebook 07's figures (``hp.plots.hand3d``): RHD samples (image, class mask, depth, 3D), the
canonical frame, score maps per stage, the whole pipeline on one image, and PCK curves."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.colors import ListedColormap, to_rgb

from ..datasets.rhd import read_depth, read_mask
from ..hand3d.canonical import to_canonical
from ..hand3d.crops import (
    boxes_from_keypoints,
    boxes_from_segmentation,
    crop_images,
    paper_normalize,
    to_crop,
)
from ..hand3d.data import HAND_SIDES
from ..hand3d.evaluate import relative_to_root
from ..hand3d.pipeline import Hand3DPipeline
from ..images import read_image
from ..skeletons import FINGER_COLORS, FINGERS, HAND21_NAMES
from . import GT_COLOR, PRED_COLOR, _axes, draw_hand, plot_skeleton_3d, sample_browser
from ._layout import finish


def rhd_mask_colormap() -> ListedColormap:
    """34 colours for RHD class ids: background black, person grey, each finger in its course
    colour (lighter towards the tip), palms tan; right hands a little darker than left ones."""
    colors = [(0, 0, 0), (0.45, 0.45, 0.45)]
    for dim in (1.0, 0.7):  # left, right
        for f in FINGERS:
            base = np.array(to_rgb(FINGER_COLORS[f]))
            for seg in range(3):  # tip -> palm
                colors.append(tuple(np.clip(base * (1.15 - 0.2 * seg) * dim, 0, 1)))
        colors.append(tuple(np.array([0.87, 0.72, 0.53]) * dim))
    return ListedColormap(colors, name="rhd_mask")


def draw_box(ax, box, crop_size: int, color: str, label: str | None = None) -> None:
    """Draw a crop box ``(cx, cy, s)`` (image pixels; side = crop_size / s)."""
    cx, cy, s = (float(v) for v in box)
    half = crop_size / s / 2
    ax.add_patch(plt.Rectangle((cx - half, cy - half), 2 * half, 2 * half, fill=False,
                               edgecolor=color, lw=1.5, label=label))


def show_rhd_sample(record: dict, crop_size: int = 256):
    """One record in four panels: the image with the dominant hand's keypoints and its crop box,
    the class-id mask, the decoded depth map and the 3D joints (camera frame)."""
    fig = plt.figure(figsize=(13, 3.4))
    axes = [fig.add_subplot(1, 4, i + 1, projection="3d" if i == 3 else None) for i in range(4)]
    img = read_image(record["image_path"])
    axes[0].imshow(img)
    kp = np.reshape(record["keypoints"], (21, 2))
    draw_hand(axes[0], kp, record["visible"])
    box = boxes_from_keypoints(torch.tensor(kp)[None].float(), torch.tensor(record["visible"])[None],
                               crop_size, (img.shape[1], img.shape[0]))[0]
    draw_box(axes[0], box, crop_size, "white")
    axes[0].set_title(f"#{record['sample_id']}: dominant hand {record['hand_side']}", fontsize=9)
    axes[1].imshow(read_mask(record["mask_path"]), cmap=rhd_mask_colormap(), vmin=0, vmax=33, interpolation="nearest")
    left, right = record.get("hand_pixels", ["?", "?"])
    axes[1].set_title(f"mask ids: left {left} px, right {right} px", fontsize=9)
    im = axes[2].imshow(read_depth(record["depth_path"]), cmap="viridis")
    fig.colorbar(im, ax=axes[2], fraction=0.046, pad=0.02, label="m")
    axes[2].set_title("depth (decoded)", fontsize=9)
    plot_skeleton_3d(axes[3], record["xyz"])
    axes[3].set_title("xyz (camera frame)", fontsize=9)
    return finish(fig, axes[:3])


def show_canonical_frame(records: list[dict], n: int = 12, viewpoint=None):
    """The same hands in the camera frame (root-relative, scale-normalised, each turned its own
    way) and in the canonical frame (aligned by ``viewpoint``'s R, right hands mirrored), and the
    spread of each joint across the hands in both: what is left for a network to learn."""
    recs = records[:n]
    xyz = torch.tensor(np.array([r["xyz"] for r in records]), dtype=torch.float32)
    right = torch.tensor([r["hand_side"] == "right" for r in records])
    enc = to_canonical(xyz, right, viewpoint=viewpoint)
    fig = plt.figure(figsize=(13, 4.2))
    for k, (key, title) in enumerate((("xyz", "camera frame (root-relative / bone)"),
                                      ("canonical", "canonical frame (+ mirrored right hands)"))):
        ax = fig.add_subplot(1, 3, k + 1, projection="3d")
        for i in range(len(recs)):
            plot_skeleton_3d(ax, enc[key][i].numpy())
        lim = float(enc[key][: len(recs)].abs().max()) * 1.05
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), zlim=(-lim, lim), xlabel="x", ylabel="z",
               zlabel="-y")
        ax.set_title(f"{len(recs)} hands, {title}", fontsize=9)
    ax = fig.add_subplot(1, 3, 3)
    spread = {k: enc[k].std(0).norm(dim=-1).numpy() for k in ("xyz", "canonical")}
    x = np.arange(21)
    ax.bar(x - 0.2, spread["xyz"], 0.4, label="camera frame")
    ax.bar(x + 0.2, spread["canonical"], 0.4, label="canonical frame")
    ax.set_xticks(x[::4], [HAND21_NAMES[i] for i in x[::4]], rotation=30, fontsize=7)
    ax.set(ylabel="std over hands (bone lengths)", title=f"joint spread over {len(records)} hands")
    ax.legend(fontsize=8)
    return finish(fig)


@torch.no_grad()
def show_segmentation(segnet, dataset, indices, crop_size: int = 256, seg_size=None,
                      device=None):
    """HandSegNet on a few samples, one column each: the image with the crop boxes (from the
    segmentation red, from the ground truth green), the annotated hands (class id > 1),
    HandSegNet's hand probability with its IoU, and the crop taken from the hand blob."""
    device = device or next(segnet.parameters()).device
    seg = Hand3DPipeline(segnet, None, None, crop_size=crop_size, seg_size=seg_size).eval()
    fig, axes = plt.subplots(4, len(indices), figsize=(2.6 * len(indices), 10.4), squeeze=False)
    for k, i in enumerate(indices):
        item = dataset[i]
        x = paper_normalize(item["image"][None].to(device))
        h, w = x.shape[-2:]
        boxes, prob, _ = boxes_from_segmentation(seg.segment(x), crop_size, seg.side_range,
                                                 seg.margin)
        gt_box = boxes_from_keypoints(item["keypoints"][None], item["visible"][None],
                                      crop_size, (w, h))[0]
        prob = prob[0].float().cpu().numpy()
        axes[0, k].imshow(item["image"].permute(1, 2, 0).numpy())
        draw_box(axes[0, k], gt_box, crop_size, GT_COLOR)
        draw_box(axes[0, k], boxes[0].cpu(), crop_size, PRED_COLOR)
        axes[0, k].set_title(f"#{i} ({HAND_SIDES[int(item['hand_side'])]})", fontsize=9)
        title = "P(hand)"
        if "mask" in item:
            gt = (item["mask"] > 1).numpy()
            axes[1, k].imshow(gt, cmap="gray", vmin=0, vmax=1)
            inter, union = ((prob > 0.5) & gt).sum(), ((prob > 0.5) | gt).sum()
            title += f", IoU {inter / max(union, 1):.2f}"
        axes[1, k].set_title("annotated hands", fontsize=9)
        axes[2, k].imshow(prob, cmap="magma", vmin=0, vmax=1)
        axes[2, k].set_title(title, fontsize=9)
        axes[3, k].imshow(_overlay(crop_images(x, boxes, crop_size)[0]))
        axes[3, k].set_title(f"crop, scale {float(boxes[0, 2]):.2f}", fontsize=9)
    return finish(fig, axes)


@torch.no_grad()
def show_posenet_stages(posenet, dataset, index: int, crop_size: int = 256,
                        joints=(4, 8, 12, 20), device=None):
    """PoseNet on the ground-truth crop of ``dataset[index]``: the score maps of ``joints`` at
    every stage (rows), the annotated keypoint in green."""
    device = device or next(posenet.parameters()).device
    posenet.eval()
    item = {k: v[None].to(device) for k, v in dataset[index].items()}
    x = paper_normalize(item["image"])
    h, w = x.shape[-2:]
    box = boxes_from_keypoints(item["keypoints"], item["visible"], crop_size, (w, h))
    crop = crop_images(x, box, crop_size)
    maps = posenet(crop)[0]
    gt = to_crop(item["keypoints"], box, crop_size)[0].cpu().numpy()
    return show_scoremaps(crop[0], maps, joints, gt_uv=gt)


def _overlay(crop: torch.Tensor) -> np.ndarray:
    return (crop.float().cpu().permute(1, 2, 0).numpy() + 0.5).clip(0, 1)


def show_scoremaps(crop: torch.Tensor, stage_maps: torch.Tensor, joints=(4, 8, 12, 20),
                   gt_uv=None):
    """PoseNet's score maps of a few ``joints`` for every stage (rows) over the crop.
    ``crop`` (3, C, C) normalised; ``stage_maps`` (stages, 21, S, S). Later stages sharpen and
    fix the maps of the first one using the other keypoints' evidence."""
    c = crop.shape[-1]
    up = F.interpolate(stage_maps.float().cpu(), size=(c, c), mode="bilinear",
                       align_corners=False)
    n_s, n_j = up.shape[0], len(joints)
    fig, axes = plt.subplots(n_s, n_j, figsize=(2.3 * n_j, 2.3 * n_s), squeeze=False)
    img = _overlay(crop)
    for s in range(n_s):
        for k, j in enumerate(joints):
            ax = axes[s, k]
            ax.imshow(img)
            m = up[s, j].numpy()
            ax.imshow(m, cmap="jet", alpha=0.45, vmin=0, vmax=max(float(m.max()), 1e-3))
            if gt_uv is not None:
                ax.scatter(*np.asarray(gt_uv)[j], s=25, c=GT_COLOR, edgecolors="white", lw=0.6)
            ax.set_title(f"stage {s + 1}: {HAND21_NAMES[j]} (max {m.max():.2f})", fontsize=7)
    return finish(fig, axes)


@torch.no_grad()
def show_pipeline(pipeline, dataset, index: int, device=None, crops: str = "segmentation"):
    """The pipeline on ``dataset[index]``, every stage: the hand probability and the crop boxes
    (predicted red, ground truth green), the crop with 2D keypoints, the score maps (maximum over
    joints) and the 3D pose (mm, ground-truth scale, palm root, the error over the visible
    joints: Zimmermann & Brox's full-pipeline protocol)."""
    device = device or next(pipeline.parameters()).device
    pipeline.eval()
    item = dataset[index]
    batch = {k: v[None].to(device) for k, v in item.items()}
    h, w = batch["image"].shape[-2:]
    gt_box = boxes_from_keypoints(batch["keypoints"], batch["visible"], pipeline.crop_size, (w, h))
    out = pipeline(batch["image"], batch["hand_side"],
                   boxes=gt_box if crops == "ground_truth" else None)
    uv_gt = item["keypoints"].numpy()
    vis = item["visible"].numpy()
    fig = plt.figure(figsize=(15, 3.4))
    ax = [fig.add_subplot(1, 4, i + 1, projection="3d" if i == 3 else None) for i in range(4)]
    ax[0].imshow(item["image"].permute(1, 2, 0).numpy())
    if "hand_prob" in out:
        ax[0].imshow(out["hand_prob"][0].float().cpu().numpy(), cmap="magma", alpha=0.45,
                     vmin=0, vmax=1)
    draw_box(ax[0], gt_box[0].cpu(), pipeline.crop_size, GT_COLOR, "GT box")
    draw_box(ax[0], out["boxes"][0].cpu(), pipeline.crop_size, PRED_COLOR, "crop")
    ax[0].set_title(f"#{index} ({HAND_SIDES[int(item['hand_side'])]}): hand probability",
                    fontsize=9)
    ax[1].imshow(_overlay(out["crops"][0]))
    uv_gt_crop = to_crop(item["keypoints"][None], out["boxes"][:1].cpu(), pipeline.crop_size)
    draw_hand(ax[1], uv_gt_crop[0].numpy(), color=GT_COLOR)
    draw_hand(ax[1], out["uv_crop"][0].cpu().numpy(), color=PRED_COLOR)
    c = pipeline.crop_size
    ax[1].set(xlim=(-0.5, c - 0.5), ylim=(c - 0.5, -0.5))
    err = np.linalg.norm(out["uv"][0].cpu().numpy() - uv_gt, axis=-1)[vis]
    ax[1].set_title(f"crop: 2D EPE {err.mean():.1f} px (image px)", fontsize=9)
    ax[2].imshow(_overlay(out["crops"][0]))
    maps = F.interpolate(out["scoremaps"].float(), size=out["crops"].shape[-2:],
                         mode="bilinear", align_corners=False)[0].amax(0).cpu().numpy()
    ax[2].imshow(maps, cmap="jet", alpha=0.5, vmin=0, vmax=max(float(maps.max()), 1e-3))
    ax[2].set_title("score maps (max over the 21)", fontsize=9)
    scale = item["scale"] * 1000  # the ground-truth bone length, in mm
    gt3 = relative_to_root(item["xyz"][None] * 1000, "palm")[0].numpy()
    pred3 = relative_to_root(out["xyz"][:1].float().cpu() * scale, "palm")[0].numpy()
    plot_skeleton_3d(ax[3], gt3, color=GT_COLOR, label="ground truth", unit="mm")
    plot_skeleton_3d(ax[3], pred3, color=PRED_COLOR, label="prediction", unit="mm")
    e3 = np.linalg.norm(pred3 - gt3, axis=-1)[vis].mean() if vis.any() else float("nan")
    ax[3].set_title(f"3D (mm), palm root: EPE {e3:.1f} mm, visible joints", fontsize=9)
    return finish(fig, ax[:3])


def pipeline_browser(pipeline, dataset, device=None, crops: str = "segmentation"):
    """An ipywidgets slider over ``dataset`` showing :func:`show_pipeline` for each sample."""
    sample_browser(range(len(dataset)), lambda i: show_pipeline(pipeline, dataset, i, device, crops))


def plot_eval_pck(results: dict[str, dict], unit: str = "px", ax=None, title: str = ""):
    """PCK curves of ``eval_2d`` / ``eval_3d`` results, AUC in the legend; their ``protocol``
    label in the title when all share one, else in each legend entry."""
    ax = _axes(ax, figsize=(5, 3.6))
    protocols = {res.get("protocol") for res in results.values()} - {None}
    if len(protocols) == 1:
        title = f"{title}\n{protocols.pop()}" if title else protocols.pop()
    for name, res in results.items():
        auc = res.get("auc_20_50", res["auc"])
        label = f"{name} (AUC{' 20-50' if 'auc_20_50' in res else ''} = {auc:.3f})"
        if len(protocols) > 1 and res.get("protocol"):
            label += f"\n{res['protocol']}"
        ax.plot(res["thresholds"], res["pck"], "-o", ms=3, label=label)
    ax.set(xlabel=f"threshold ({unit})", ylabel="PCK", ylim=(0, 1.02), title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return ax.figure
