"""Notebook 08's figures, tables and plumbing (``hp.plots.real_hands``): the crop box, the crops
the models see, the heatmap targets, the results tables, real crops with predictions, the
augmentations, the photo (file, upload or webcam) and the FreiHAND evaluation download."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..data import ImageCache
from ..datasets.freihand import download_freihand
from . import draw_hand
from ._layout import finish


def _box_patch(ax, box, color="y", lw=2.0):
    """The square ``box = (x0, y0, side)`` on an image (its first pixel centred on (x0, y0))."""
    x0, y0, side = box
    ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), side, side, fill=False, color=color, lw=lw))


def show_crop_box(image, keypoints, box, crop, crop_keypoints):
    """An image with its keypoints and crop box, next to the crop with the keypoints moved."""
    fig, axes = plt.subplots(1, 2, figsize=(6.5, 3.3))
    axes[0].imshow(image)
    draw_hand(axes[0], keypoints, markersize=8, linewidth=1)
    _box_patch(axes[0], box)
    axes[0].set_title("synthetic image and its crop box", fontsize=9)
    axes[1].imshow(crop)
    draw_hand(axes[1], crop_keypoints, markersize=8, linewidth=1)
    axes[1].set_title(f"the crop, {crop.shape[1]} px", fontsize=9)
    finish(fig, axes)
    plt.show()


def show_input_crops(items, input_size: int):
    """A row of crops ``[(title, image, keypoints, visible or None)]`` as the models see them;
    joints that are not labelled have no position and are not drawn."""
    fig, axes = plt.subplots(1, len(items), figsize=(2.1 * len(items), 2.4))
    for ax, (title, im, kp, vis) in zip(np.atleast_1d(axes), items):
        ax.imshow(im)
        draw_hand(ax, kp, vis, markersize=6, linewidth=1, hidden_style="skip")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.suptitle(f"what the models see: {input_size} x {input_size} crops", y=1.02)
    plt.show()


def show_targets(image, keypoints, maps, joints=((8, "index tip"), (0, "wrist"))):
    """A training crop with its keypoints, and the Gaussian target maps of two joints on it."""
    size = image.shape[0]
    fig, axes = plt.subplots(1, 1 + len(joints), figsize=(8, 2.8))
    axes[0].imshow(image)
    draw_hand(axes[0], keypoints, markersize=6, linewidth=1)
    extent = (-0.5, size - 0.5, size - 0.5, -0.5)  # the map covers the crop, edge to edge
    for ax, (j, label) in zip(axes[1:], joints):
        ax.imshow(image)
        ax.imshow(maps[j], cmap="magma", alpha=0.7, extent=extent)
        ax.set_title(f"target: {label}", fontsize=9)
    finish(fig, axes)
    plt.show()


def _fmt(value, spec):
    """A number, or "-" where there is none (NaN: e.g. the EPE of a teacher that found nothing)."""
    return format(value, spec) if np.isfinite(value) else "-".rjust(len(format(0.0, spec)))


def gap_table(scores, rows=None):
    """PCK@0.05 and EPE on synthetic val and on real photos, and the gap real - synthetic."""
    head = f"{'model':28s} | {'synthetic val':>22s} | {'real photos':>22s} | real - synthetic"
    print(head + "\n" + f"{'':28s} | {'PCK@0.05':>10s} {'EPE px':>11s} | {'PCK@0.05':>10s} "
          f"{'EPE px':>11s} |")
    print("-" * len(head))
    for name in rows or scores:
        s = scores[name]
        line = f"{name:28s} | {100 * s['val']['PCK@0.05']:9.1f}% {_fmt(s['val']['EPE px'], '10.1f')}  |"
        if "real" in s:
            r = s["real"]
            line += f" {100 * r['PCK@0.05']:9.1f}% {_fmt(r['EPE px'], '10.1f')}  | "
            if name == "teacher":  # a gap means little when it finds few synthetic hands
                line += (f"(found: synthetic {100 * s['val']['detected']:.0f}%, "
                         f"real {100 * r['detected']:.0f}%)")
            else:
                line += f"{100 * (r['PCK@0.05'] - s['val']['PCK@0.05']):+.1f} points"
        else:
            line += f" {'-':>10s} {'-':>11s} |"
            if name == "teacher":
                line += f" (found: synthetic {100 * s['val']['detected']:.0f}%)"
        print(line)


def source_table(preds, scores, columns, score, other_count: int = 0):
    """PCK@0.05 and EPE per real source (``columns``: ``[(name, mask)]``, scored with
    ``score(pred, mask)``) and, with ``other_count``, the other renderer's ``scores[name]["other"]``."""
    header = [f"{s} ({int(m.sum())})" for s, m in columns]
    header += [f"RHD, rendered ({other_count})"] if other_count else []
    print(f"{'model':22s} " + " ".join(f"{h:>22s}" for h in header))
    for name in preds:
        cells = []
        for _, m in columns:
            r = score(preds[name]["real"], m) if "real" in preds[name] else None
            cells.append(f"{100 * r['PCK@0.05']:8.1f}% {_fmt(r['EPE px'], '8.1f')} px" if r else "-")
        if other_count:
            o = scores[name].get("other")
            cells.append(f"{100 * o['PCK@0.05']:8.1f}% {_fmt(o['EPE px'], '8.1f')} px" if o else "-")
        print(f"{name:22s} " + " ".join(f"{c:>22s}" for c in cells))


def methods_table(scores, train_stats, names):
    """Accuracy, parameters and speed of each model on the synthetic validation images."""
    print(f"{'method':22s} {'PCK@0.05':>9s} {'AUC 0-30':>9s} {'EPE px':>7s} {'params':>9s} "
          f"{'train min':>9s} {'train img/s':>11s} {'infer img/s':>11s}")
    for name in names:
        if name not in scores:
            continue
        s, t = scores[name]["val"], train_stats.get(name, {})
        params = f"{t['params']:9,d}" if t else f"{'-':>9s}"
        tmin = f"{t['train min']:9.1f}" if t else f"{'-':>9s}"
        tips = f"{t['train img/s']:11.0f}" if t else f"{'-':>11s}"
        ips = f"{scores[name]['infer img/s']:11.0f}" if "infer img/s" in scores[name] else f"{'-':>11s}"
        print(f"{name:22s} {100 * s['PCK@0.05']:8.1f}% {s['AUC']:9.2f} {_fmt(s['EPE px'], '7.1f')} {params} "
              f"{tmin} {tips} {ips}")


def show_crop_predictions(preds, names, indices, cache, gt, vis, row_labels, frame: int = 224):
    """Crops (rows) by models (columns): ground truth in green, prediction in red, each titled
    with its mean error in pixels of the ``frame`` crop ("no hand" for a miss)."""
    fig, axes = plt.subplots(len(indices), len(names),
                             figsize=(2.2 * len(names), 2.3 * len(indices)), squeeze=False)
    scale = cache.size / frame
    for r, i in enumerate(indices):
        for c, name in enumerate(names):
            ax = axes[r, c]
            ax.imshow(cache.images[i])
            draw_hand(ax, gt[i] * scale, vis[i], color="lime", markersize=4, linewidth=1,
                      hidden_style="skip")
            p = preds[name][i]
            if torch.isfinite(p).all():
                draw_hand(ax, p * scale, color="red", markersize=4, linewidth=1)
                err = float((p - gt[i]).norm(dim=-1)[vis[i]].mean())
                ax.set_title(f"{name}: {err:.0f} px", fontsize=8)
            else:
                ax.set_title(f"{name}: no hand", fontsize=8)
            if c == 0:
                ax.text(-0.08, 0.5, row_labels[r], transform=ax.transAxes, rotation=90,
                        va="center", ha="right", fontsize=8)
            ax.axis("off")
    fig.suptitle(f"green: ground truth, red: prediction (EPE in {frame}-px crop pixels)", y=1.0)
    fig.tight_layout()
    plt.show()


def show_appearance_augment(plain, strong, strong_keypoints, denormalize):
    """One batch through two augmentations: the plain one above, the strong one below (with the
    keypoints, which appearance changes do not move)."""
    n = len(plain)
    fig, axes = plt.subplots(2, n, figsize=(2 * n, 4.4))
    for i in range(n):
        axes[0, i].imshow(denormalize(plain[i]).permute(1, 2, 0).clamp(0, 1))
        axes[1, i].imshow(denormalize(strong[i]).permute(1, 2, 0).clamp(0, 1))
        draw_hand(axes[1, i], strong_keypoints[i], markersize=4, linewidth=1)
    axes[0, 0].set_title("DeviceAugment", fontsize=9)
    axes[1, 0].set_title("AppearanceAugment", fontsize=9)
    finish(fig, axes)
    plt.show()


def show_renderers(rows: dict, n: int = 4):
    """A row of images from each renderer: ``rows`` maps a name to records."""
    fig, axes = plt.subplots(len(rows), n, figsize=(1.9 * n, 2.1 * len(rows)), squeeze=False)
    for r, (name, records) in enumerate(rows.items()):
        for c, rec in enumerate(records[:n]):
            axes[r, c].imshow(plt.imread(rec["image_path"]))
            axes[r, c].set_title(name if c == 0 else "", fontsize=9, loc="left")
    finish(fig, axes)
    plt.show()


def renderer_table(judged: dict, heads: dict, n_real: int, n_joints: int):
    """MediaPipe on each renderer's images, then each head's real-photo PCK@0.05 after training on
    each renderer: ``heads[head][renderer] = score dict``. Changes in points and in joints."""
    for name, r in judged.items():
        print(f"MediaPipe on the {name}: hand found in {100 * r['found']:.1f}% of {r['images']} images; "
              f"where found, keypoints {r['error_px']:.1f} px from the labels (224 px images)")
    if not heads:
        return
    names = list(next(iter(heads.values())))
    print(f"\nreal photos: {n_real} images, {n_joints} labelled joints (one joint = "
          f"{100 / max(n_joints, 1):.2f} PCK points)")
    print(f"{'PCK@0.05 (EPE) on photos':26s}" + "".join(f"{n:>22s}" for n in names)
          + f"{'change':>24s}")
    for head, by in heads.items():
        pcks = [by[n]["PCK@0.05"] for n in names]
        diff = pcks[-1] - pcks[0]
        times = f", {pcks[-1] / pcks[0]:.1f}x" if pcks[0] > 0 else ""
        print(f"{head:26s}" + "".join(f"{100 * p:10.1f}% ({by[n]['EPE px']:5.1f} px)"
                                      for p, n in zip(pcks, names))
              + f"{100 * diff:+10.1f} pts ({round(diff * n_joints):+d} joints{times})")


def mix_caches(synthetic, real, n_synthetic: int, seed: int = 0):
    """An ``ImageCache`` of ``n_synthetic`` images drawn from ``synthetic`` and the ``real`` crops
    repeated so that they make about a fifth of it; returns it and the repeat count."""
    repeat = max(1, n_synthetic // (4 * len(real)))
    pick = np.random.default_rng(seed).choice(len(synthetic), n_synthetic, replace=False)

    def cat(field):
        return np.concatenate([getattr(synthetic, field)[pick]] + [getattr(real, field)] * repeat)

    mixed = ImageCache(images=cat("images"), keypoints=cat("keypoints"), visible=cat("visible"),
                       orig_size=cat("orig_size"),
                       record_index=np.arange(n_synthetic + repeat * len(real)), size=synthetic.size)
    return mixed, repeat


def show_photo(photo, course_keypoints, box, hands, teacher: bool):
    """A photo with the course model's keypoints and its crop box, next to the teacher's
    keypoints (``hands``: ``detect_hands``'s result)."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.6))
    for ax, title in zip(axes, ("course model", "teacher (MediaPipe)")):
        ax.imshow(photo)
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    draw_hand(axes[0], course_keypoints, markersize=10, linewidth=1.5)
    _box_patch(axes[0], box, lw=1.5)
    if hands:
        draw_hand(axes[1], hands[0]["keypoints"], markersize=10, linewidth=1.5)
    else:
        axes[1].set_title("teacher: no hand found" if teacher else "teacher: not installed",
                          fontsize=10)
    plt.show()


def webcam_photo(path, quality: float = 0.9) -> Path:
    """Colab's camera snippet: shows the webcam with a Capture button, saves a JPEG at ``path``."""
    from base64 import b64decode

    from google.colab.output import eval_js
    from IPython.display import Javascript, display

    display(Javascript("""
    async function takePhoto(quality) {
      const div = document.createElement('div');
      const capture = document.createElement('button');
      capture.textContent = 'Capture';
      div.appendChild(capture);
      const video = document.createElement('video');
      video.style.display = 'block';
      const stream = await navigator.mediaDevices.getUserMedia({video: true});
      document.body.appendChild(div);
      div.appendChild(video);
      video.srcObject = stream;
      await video.play();
      google.colab.output.setIframeHeight(document.documentElement.scrollHeight, true);
      await new Promise((resolve) => capture.onclick = resolve);
      const canvas = document.createElement('canvas');
      canvas.width = video.videoWidth;
      canvas.height = video.videoHeight;
      canvas.getContext('2d').drawImage(video, 0, 0);
      stream.getVideoTracks()[0].stop();
      div.remove();
      return canvas.toDataURL('image/jpeg', quality);
    }"""))
    data = eval_js(f"takePhoto({quality})")
    Path(path).write_bytes(b64decode(data.split(",")[1]))
    return Path(path)


def get_photo(photo, data_root, fallback) -> tuple[Path, bool]:
    """The photo to try the models on and whether it is mirrored: a path, ``None`` (``fallback``)
    or in Colab ``"upload"`` (a file dialog) or ``"webcam"`` (a mirror image)."""
    if photo == "upload":
        from google.colab import files

        return Path(next(iter(files.upload()))), False
    if photo == "webcam":
        return webcam_photo(Path(data_root) / "webcam.jpg"), True
    return Path(photo if photo is not None else fallback), False


def download_freihand_evaluation(root) -> Path:
    """FreiHAND's evaluation archive only (724 MB: 3,960 real images with keypoints), extracted
    into ``root/freihand/FreiHAND_pub_v2`` by :func:`.datasets.freihand.download_freihand`;
    returns ``root/freihand``."""
    download_freihand(Path(root) / "freihand", training=False)
    return Path(root) / "freihand"
