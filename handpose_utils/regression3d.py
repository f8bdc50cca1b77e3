"""Generated from notebooks/05_resnet50_3d_regression.ipynb by `python -m handpose_utils.export`.

Edit the notebook's `#@save regression3d` cells, not this file: the tests check that the two agree."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from handpose_utils import env
from handpose_utils.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CachedKeypointDataset,
    DeviceAugment,
    PrepareBatch,
    build_image_cache,
    denormalize,
    make_loaders,
)
from handpose_utils.downloads import imagenet_state_dict
from handpose_utils.engine import CheckpointError, TrainConfig, evaluate, fit, load_checkpoint
from handpose_utils.images import read_image
from handpose_utils.metrics import (
    PCK3D_THRESHOLDS_MM,
    fraction_within,
    mpjpe,
    pck3d_curve,
    per_sample_epe,
    procrustes_align,
    reproject_with_gt_root,
    reprojection_error,
)
from handpose_utils.plots import GT_COLOR, PRED_COLOR, draw_hand, plot_skeleton_3d
from handpose_utils.skeletons import NUM_HAND_JOINTS
from handpose_utils.splits import count_pose_leak, grouped_split, random_split


# --- from notebooks/05_resnet50_3d_regression.ipynb ---
def _set_3d_limits(ax, *points_mm) -> None:
    p = np.concatenate([np.asarray(q, float).reshape(-1, 3) for q in points_mm])
    span = np.ptp(p, axis=0).max() / 2 + 1.0
    mid = (p.max(0) + p.min(0)) / 2
    ax.set_xlim(mid[0] - span, mid[0] + span)
    ax.set_ylim(mid[2] - span, mid[2] + span)
    ax.set_zlim(-mid[1] - span, -mid[1] + span)
    ax.set_xlabel("x (mm)", fontsize=8)
    ax.set_ylabel("z (mm, depth)", fontsize=8)
    ax.set_zlabel("-y (mm, up)", fontsize=8)
    ax.tick_params(labelsize=6)


def show_prediction_3d(image, gt_xyz, pred_rel, K, root: int = 9,
                       title: str | None = None, elev: float = 20.0, azim: float = -70.0,
                       fig=None):
    """One test sample, ground truth green and prediction red: left, the image with the
    prediction projected through ``K`` after placing its root at the true root (so the root
    coincides by construction); right, both root-relative skeletons in 3D (mm), seen from
    ``elev`` / ``azim`` degrees.

    ``image``: a path or an array; ``gt_xyz``: ``(21, 3)`` absolute metres (camera frame);
    ``pred_rel``: ``(21, 3)`` root-relative metres. Returns the figure."""
    gt = np.asarray(gt_xyz, np.float64).reshape(-1, 3)
    pred = np.asarray(pred_rel, np.float64).reshape(-1, 3)
    Km = np.asarray(K, np.float64)
    img = read_image(image) if isinstance(image, (str, Path)) else np.asarray(image)
    uv_gt = (gt @ Km.T)[:, :2] / (gt @ Km.T)[:, 2:]
    uv_pred = reproject_with_gt_root(pred[None], gt[None], Km, root)[0].numpy()
    gt_mm, pred_mm = root_relative(gt, root) * 1000, pred * 1000
    err = np.linalg.norm(pred_mm - gt_mm, axis=-1).mean()
    if fig is None:
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
    plot_skeleton_3d(ax3, gt_mm, color=GT_COLOR, label="ground truth")
    plot_skeleton_3d(ax3, pred_mm, color=PRED_COLOR, label="prediction")
    _set_3d_limits(ax3, gt_mm, pred_mm)
    ax3.view_init(elev=elev, azim=azim)
    ax3.set_title(f"3D, root-relative: MPJPE {err:.1f} mm", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def show_depth_scale_ambiguity(record: dict, factors=(1.0, 1.5, 2.0)):
    """Why one image fixes neither distance nor size: the hand scaled by ``f`` about the camera
    centre (``f * xyz``: ``f`` times bigger and ``f`` times farther) projects to exactly the same
    pixels, because ``uv = K (f xyz) / (f z) = K xyz / z``. Left: top view of the camera frame
    (x against depth z) with the rays through the joints; right: the projections on the image.
    Returns ``(figure, max pixel difference between the projections)``."""
    xyz = np.asarray(record["xyz"], np.float64)
    K = np.asarray(record["K"], np.float64)
    fig, (ax_top, ax_img) = plt.subplots(1, 2, figsize=(9.5, 4.0))
    from matplotlib.colors import to_hex

    colors = [to_hex(c) for c in plt.cm.viridis(np.linspace(0.1, 0.8, len(factors)))]
    uvs = []
    for f, c in zip(factors, colors):
        p = f * xyz
        uvw = p @ K.T
        uvs.append(uvw[:, :2] / uvw[:, 2:])
        bone = np.linalg.norm(p[9] - p[10]) * 1000
        ax_top.plot(p[:, 0], p[:, 2], "o", ms=3, color=c,
                    label=f"x{f:g}: depth {p[9, 2]:.2f} m, bone 9-10 {bone:.0f} mm")
    far = max(factors) * xyz
    for j in (4, 8, 12, 16, 20, 0):
        ax_top.plot([0, far[j, 0]], [0, far[j, 2]], "-", color="0.75", lw=0.7, zorder=0)
    ax_top.plot([0], [0], "k^", ms=8, label="camera centre")
    ax_top.set(xlabel="x (m)", ylabel="z (m, depth)", title="top view: same rays, other hands")
    ax_top.legend(fontsize=7, loc="upper left")
    ax_img.imshow(read_image(record["image_path"]))
    for uv, c in zip(uvs, colors):
        draw_hand(ax_img, uv, color=c, markersize=10, linewidth=1.2)
    diff = float(max(np.abs(uv - uvs[0]).max() for uv in uvs))
    ax_img.set_title(f"their projections: max difference {diff:.1e} px", fontsize=9)
    ax_img.axis("off")
    fig.tight_layout()
    return fig, diff


def plot_training_metrics(history: Sequence[dict], path=None):
    """The reference's ``training_metrics.png``, extended: loss (train and validation, log
    scale), validation MPJPE and PA-MPJPE (mm), and validation 3D PCK (AUC 0-50 mm, joints within
    20 mm, the reference's within-50-mm "accuracy"). Saved to ``path`` when given."""
    fig, (ax_l, ax_e, ax_p) = plt.subplots(1, 3, figsize=(13, 3.5))
    ep = [r["epoch"] for r in history]

    def line(ax, key, label, scale=1.0):
        values = [r.get(key, np.nan) * scale for r in history]
        if np.isfinite(values).any():
            ax.plot(ep, values, "o-", ms=3, label=label)

    line(ax_l, "train_loss", "train")
    line(ax_l, "val_loss", "validation")
    ax_l.set(xlabel="epoch", title="loss", yscale="log")
    line(ax_e, "val_mpjpe", "MPJPE")
    line(ax_e, "val_pa_mpjpe", "PA-MPJPE")
    ax_e.set(xlabel="epoch", ylabel="mm", title="validation error")
    line(ax_p, "val_pck3d_auc", "AUC 0-50 mm", 100)
    line(ax_p, "val_pa_pck3d_auc", "AUC 0-50 mm, aligned", 100)
    line(ax_p, "val_pck3d@20mm", "within 20 mm", 100)
    line(ax_p, "val_within_50mm", "within 50 mm (ref. 'accuracy')", 100)
    ax_p.set(xlabel="epoch", ylabel="%", title="validation 3D PCK")
    for ax in (ax_l, ax_e, ax_p):
        if ax.lines:
            ax.legend(fontsize=7)
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
    return fig


def plot_pck3d_curves(results: dict[str, tuple], ax=None, title: str = "3D PCK (test)"):
    """3D PCK curves ``{label: (pred_mm, gt_mm)}`` over 0-50 mm, with their AUC in the legend."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5.2, 3.6))
    for label, (pred, gt) in results.items():
        curve, auc = pck3d_curve(pred, gt)
        ax.plot(PCK3D_THRESHOLDS_MM, 100 * curve.numpy(), label=f"{label} (AUC {auc:.3f})")
    ax.set(xlabel="threshold (mm)", ylabel="joints within threshold (%)", title=title,
           ylim=(0, 100), xlim=(0, 50))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return ax.figure


def pose_browser(records: Sequence[dict], pred_rel, root: int = 9):
    """An ipywidgets browser over test predictions: pick the sample and turn the 3D view
    (elevation, azimuth). ``pred_rel`` is ``(N, 21, 3)`` root-relative metres aligned with
    ``records``. Works with ipywidgets 7.7 (Colab) and 8; call :func:`show_prediction_3d` once
    yourself first (``interact`` prints errors instead of raising them)."""
    from ipywidgets import IntSlider, interact

    pred_rel = np.asarray(pred_rel)

    def _show(index=0, elev=20, azim=-70):
        r = records[index]
        show_prediction_3d(r["image_path"], r["xyz"], pred_rel[index], r["K"], root,
                           title=f"test #{index}: pose {r.get('pose_id')}", elev=elev, azim=azim)
        plt.show()

    slider = dict(continuous_update=False)
    interact(_show, index=IntSlider(value=0, min=0, max=len(records) - 1, **slider),
                    elev=IntSlider(value=20, min=-90, max=90, step=5, **slider),
                    azim=IntSlider(value=-70, min=-180, max=180, step=5, **slider))


# --- from notebooks/05_resnet50_3d_regression.ipynb ---
ROOT_JOINT = 9  # middle finger MCP, the reference's (and FreiHAND's ``scale``) root


def root_relative(xyz, root: int = ROOT_JOINT):
    """``(..., J, 3)`` joints minus their root joint. Arrays stay arrays, tensors tensors."""
    return xyz - xyz[..., root : root + 1, :]


@dataclass
class RootRelativeCodec:
    """Camera-frame joints (metres) <-> regression targets. ``normalize=True`` divides by each
    hand's ``scale``; decoding then needs one: the true one (evaluation "with ground-truth
    scale", which flatters MPJPE) or ``default_scale`` (e.g. the mean training scale)."""

    root: int = ROOT_JOINT
    normalize: bool = False
    default_scale: float | None = None

    def _scale(self, scale, like: torch.Tensor) -> torch.Tensor:
        if scale is None:
            if self.default_scale is None:
                raise ValueError("this codec normalises by the hand's scale: pass scale=..., or "
                                 "set default_scale (e.g. the mean training scale)")
            scale = self.default_scale
        s = torch.as_tensor(scale, dtype=like.dtype, device=like.device)
        return s.reshape(-1, 1, 1) if s.dim() else s

    def encode(self, xyz, scale=None) -> torch.Tensor:
        rel = root_relative(torch.as_tensor(xyz).float(), self.root)
        return rel / self._scale(scale, rel) if self.normalize else rel

    def decode(self, outputs, scale=None) -> torch.Tensor:
        out = torch.as_tensor(outputs).float()
        out = out.reshape(*out.shape[:-1], -1, 3) if out.shape[-1] != 3 else out  # (B, 63)
        return out * self._scale(scale, out) if self.normalize else out

    def to_config(self) -> dict:
        return {f"codec_{k}": v for k, v in asdict(self).items()}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**{k[len("codec_"):]: v for k, v in config.items() if k.startswith("codec_")})


# --- from notebooks/05_resnet50_3d_regression.ipynb ---
def pose3d_metrics(pred_mm, gt_mm, xyz=None, K=None, root: int = ROOT_JOINT,
                   allow_reflection: bool = False) -> dict:
    """Every 3D number of the notebook for root-relative predictions and ground truth in mm
    (``(N, 21, 3)``): ``mpjpe``, ``pa_mpjpe``, ``pck3d_auc`` and ``pa_pck3d_auc`` (0-50 mm),
    ``pck3d@20mm``, ``within_50mm`` (the reference's "accuracy") and, with the absolute ground
    truth ``xyz`` and cameras ``K``, ``reproj_px``.

    What these are, precisely, next to FreiHAND's official ``eval.py``:

    * ``mpjpe`` is **root-relative** (both skeletons with joint 9, the middle MCP, at the
      origin). FreiHAND's unaligned "keypoint error" compares **absolute** camera-frame xyz
      instead, so it also counts where the hand is; the two are not the same number.
    * ``pa_mpjpe`` / ``pa_pck3d_auc``: after a similarity Procrustes alignment that is a
      **rotation** by default; FreiHAND's aligned error also allows a **reflection** (scipy's
      ``orthogonal_procrustes``). ``allow_reflection=True`` gives FreiHAND's alignment: a
      mirror-image prediction then scores 0 instead of tens of millimetres.
    * PCK counts errors ``<=`` the threshold, as FreiHAND does."""
    aligned = procrustes_align(pred_mm, gt_mm, allow_reflection)
    out = {
        "mpjpe": mpjpe(pred_mm, gt_mm),
        "pa_mpjpe": mpjpe(aligned, gt_mm),
        "pck3d_auc": pck3d_curve(pred_mm, gt_mm)[1],
        "pa_pck3d_auc": pck3d_curve(aligned, gt_mm)[1],
        "pck3d@20mm": fraction_within(pred_mm, gt_mm, 20.0),
        "within_50mm": fraction_within(pred_mm, gt_mm, 50.0),
    }
    if xyz is not None and K is not None:
        out["reproj_px"] = reprojection_error(torch.as_tensor(pred_mm) / 1000.0, xyz, K, root)
    return out


class Pose3DMeter:
    """The engine's metrics object for 3D regression: decodes each batch's outputs to
    root-relative millimetres, keeps them with the ground truth (``extras["xyz"]``, never the
    augmented targets) and cameras, and computes :func:`pose3d_metrics` over the **whole** set
    (the reference averaged per batch, which weights a small last batch like a full one)."""

    def __init__(self, codec: RootRelativeCodec, root: int = ROOT_JOINT):
        self.codec, self.root = codec, root
        self.log_items = [("mpjpe", "MPJPE", "{:.1f}mm"), ("pa_mpjpe", "PA-MPJPE", "{:.1f}mm"),
                          ("pck3d_auc", "AUC", "{:.3f}")]
        self.reset()

    def reset(self) -> None:
        self._parts: dict[str, list] = {k: [] for k in ("pred", "gt", "xyz", "K", "index")}

    @torch.no_grad()
    def update(self, outputs, targets, extras: dict) -> None:
        scale = extras.get("scale")
        pred = self.codec.decode(outputs.detach().float().cpu(),
                                 None if scale is None else scale.cpu())
        xyz = extras["xyz"].detach().float().cpu()
        self._parts["pred"].append(pred * 1000.0)
        self._parts["gt"].append(root_relative(xyz, self.root) * 1000.0)
        self._parts["xyz"].append(xyz)
        self._parts["K"].append(extras["K"].detach().float().cpu())
        if "index" in extras:
            self._parts["index"].append(extras["index"].detach().cpu().long())

    def arrays(self) -> dict:
        """``pred`` and ``gt`` (N, 21, 3) root-relative mm, ``xyz`` (N, 21, 3) absolute metres,
        ``K`` (N, 3, 3) and ``index`` (N,) into the records."""
        if not self._parts["pred"]:
            raise RuntimeError("Pose3DMeter is empty: evaluate a loader first")
        return {k: torch.cat(v) for k, v in self._parts.items() if v}

    def compute(self) -> dict:
        a = self.arrays()
        return pose3d_metrics(a["pred"], a["gt"], a["xyz"], a["K"], self.root)


def mean_pose(records: Sequence[dict], root: int = ROOT_JOINT) -> np.ndarray:
    """The mean root-relative pose of ``records`` ``(21, 3)`` in metres: the baseline that
    predicts the same hand for every image. A model must beat it to have learned anything."""
    return root_relative(pose3d_extras(records)["xyz"], root).mean(0)


def metrics_table(results: dict[str, dict]) -> str:
    """A Markdown table of :func:`pose3d_metrics` results, one column per model or split
    (``{"ResNet-50": {...}, "mean pose": {...}}``); display with ``IPython.display.Markdown``."""
    rows = [("mpjpe", "MPJPE, root-relative: joint 9 at the origin (mm)", "{:.1f}"),
            ("pa_mpjpe", "PA-MPJPE, Procrustes-aligned, rotations only (mm)", "{:.1f}"),
            ("pck3d_auc", "3D PCK AUC, 0-50 mm, root-relative", "{:.3f}"),
            ("pa_pck3d_auc", "3D PCK AUC, 0-50 mm, aligned", "{:.3f}"),
            ("pck3d@20mm", "joints within 20 mm", "{:.1%}"),
            ("within_50mm", "joints within 50 mm (reference's \"accuracy\")", "{:.1%}"),
            ("reproj_px", "2D reprojection error, GT root (px)", "{:.1f}")]
    names = list(results)
    lines = ["| metric | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for key, label, fmt in rows:
        if any(key in results[n] for n in names):
            cells = [fmt.format(results[n][key]) if key in results[n] else "" for n in names]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --- from notebooks/05_resnet50_3d_regression.ipynb ---
def rotation_about_z(theta) -> torch.Tensor:
    """``(..., 3, 3)`` rotations by ``theta`` (radians) about the camera's optical axis z."""
    theta = torch.as_tensor(theta, dtype=torch.float64)
    c, s = torch.cos(theta), torch.sin(theta)
    r = torch.zeros(*theta.shape, 3, 3, dtype=torch.float64)
    r[..., 0, 0], r[..., 0, 1], r[..., 1, 0], r[..., 1, 1] = c, -s, s, c
    r[..., 2, 2] = 1.0
    return r


def in_plane(matrix: torch.Tensor) -> torch.Tensor:
    """The 3D rotation (a reflection for flips) about z that the image warp ``matrix``
    ``(B, 3, 3)`` applies: its linear part ``L = s Q`` divided by the zoom ``s``."""
    lin = matrix[:, :2, :2].float()
    det = lin[:, 0, 0] * lin[:, 1, 1] - lin[:, 0, 1] * lin[:, 1, 0]
    q = lin / det.abs().sqrt().clamp(min=1e-12)[:, None, None]
    r3 = torch.eye(3, dtype=q.dtype, device=q.device).repeat(len(q), 1, 1)
    r3[:, :2, :2] = q
    return r3


def rotate_xyz_like_image(xyz: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Camera-frame joints ``(B, J, 3)`` as seen in the image warped by ``matrix``."""
    return xyz.float() @ in_plane(matrix).to(xyz.device).transpose(1, 2)


def input_camera(K: torch.Tensor, orig_size: torch.Tensor, input_size: int,
                 matrix: torch.Tensor | None = None) -> torch.Tensor:
    """Camera matrices ``(B, 3, 3)`` in the network input's pixels: ``K``, then the resize to
    ``input_size`` (pixel centres: ``x' = (x + 0.5) S / W - 0.5``), then ``matrix`` if given:
    ``K' = M D K R_z^T``."""
    K = K.float()
    size = orig_size.float().to(K.device)
    d = torch.zeros_like(K)
    sx, sy = input_size / size[:, 0], input_size / size[:, 1]
    d[:, 0, 0], d[:, 1, 1], d[:, 2, 2] = sx, sy, 1.0
    d[:, 0, 2], d[:, 1, 2] = 0.5 * sx - 0.5, 0.5 * sy - 0.5
    if matrix is None:
        return d @ K
    m = matrix.float().to(K.device)
    return m @ d @ K @ in_plane(m).transpose(1, 2)


class Pose3DTargets:
    """``target_fn`` for the shared ``PrepareBatch``: rotates ``extras["xyz"]`` like the image
    (when augmented) and encodes it. Leaves ``extras["xyz_input"]`` and ``extras["K_input"]``
    (joints and camera of the network input) for checks; ``xyz`` and ``K`` stay the original."""

    def __init__(self, codec):
        self.codec = codec

    def __call__(self, keypoints, extras: dict, size) -> torch.Tensor:
        xyz = extras["xyz"].float()
        matrix = extras.get("matrix")
        if matrix is not None:
            xyz = rotate_xyz_like_image(xyz, matrix)
        extras["xyz_input"] = xyz
        if "K" in extras and "orig_size" in extras:
            extras["K_input"] = input_camera(extras["K"], extras["orig_size"], size[0], matrix)
        return self.codec.encode(xyz, extras.get("scale"))


# --- from notebooks/05_resnet50_3d_regression.ipynb ---
def pose3d_extras(records: Sequence[dict]) -> dict[str, np.ndarray]:
    """Per-record arrays for :class:`~handpose_utils.data.CachedKeypointDataset`'s ``extras``:
    ``xyz`` ``(N, 21, 3)`` metres, ``K`` ``(N, 3, 3)``, ``scale`` ``(N,)`` (float32)."""
    missing = [k for k in ("xyz", "K") if k not in records[0]]
    if missing:
        raise KeyError(f"records need {missing} for 3D targets: read them with "
                       "handpose_utils.load_freihand (or prepare_splits)")
    xyz = np.asarray([r["xyz"] for r in records], np.float32)
    scale = np.asarray([r.get("scale", np.nan) for r in records], np.float32)
    scale = np.where(np.isfinite(scale), scale, np.linalg.norm(xyz[:, 9] - xyz[:, 10], axis=-1))
    return {"xyz": xyz, "K": np.asarray([r["K"] for r in records], np.float32),
            "scale": scale.astype(np.float32)}


def pose3d_dataset(records: Sequence[dict], image_size: int, cache_path=None,
                   progress: bool = True, log=print) -> CachedKeypointDataset:
    """The records' images decoded once at ``image_size`` (in memory, or memory-mapped at
    ``cache_path``; see :func:`~handpose_utils.data.build_image_cache`, which raises naming any
    unreadable file) with their 3D joints, camera and scale as extras."""
    cache = build_image_cache(list(records), image_size, path=cache_path, progress=progress,
                              log=log)
    return CachedKeypointDataset(cache, extras=pose3d_extras(records))


def pose3d_augment(geometric: bool = True, flip_p: float = 0.0, rotation: float = 30.0,
                   scale=(0.85, 1.15), translate: float = 0.05,
                   jitter: float = 0.3) -> DeviceAugment:
    """The shared :class:`~handpose_utils.data.DeviceAugment` configured for 3D targets.

    ``geometric=True``: in-plane rotation, zoom and shift (and flips with ``flip_p``), with the
    3D targets transformed to match by :class:`Pose3DTargets`. ``geometric=False``: colour
    jitter only, the safe choice when targets are *not* transformed (the reference used none).
    """
    if not geometric:
        return DeviceAugment(flip_p=0.0, rotation=0.0, scale=(1.0, 1.0), translate=0.0,
                             brightness=jitter, contrast=jitter, saturation=jitter)
    return DeviceAugment(flip_p=flip_p, rotation=rotation, scale=scale, translate=translate,
                         brightness=jitter, contrast=jitter, saturation=jitter)


def pose3d_prepare_batch(codec: RootRelativeCodec, augment: DeviceAugment | None = None
                         ) -> PrepareBatch:
    """The engine's ``prepare_batch`` for 3D regression: the shared pipeline (uint8 batch ->
    device augmentation and ImageNet normalisation) with :class:`Pose3DTargets`."""
    return PrepareBatch(augment if augment is not None else pose3d_augment(),
                        target_fn=Pose3DTargets(codec))


def show_augmented_batch(prepare_batch: PrepareBatch, dataset: CachedKeypointDataset,
                         indices=range(4), seed: int = 0):
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
        ax.axis("off")
    fig.tight_layout()
    return fig


# --- from notebooks/05_resnet50_3d_regression.ipynb ---
ARCHS = {"resnet50": "ResNet50_Weights", "resnet34": "ResNet34_Weights",
         "resnet18": "ResNet18_Weights"}


class ResNetPose3D(nn.Module):
    """torchvision ResNet (``arch``) without its classifier, and the reference's head:
    ``Linear(2048, 1024) -> ReLU -> Dropout(0.5) -> Linear(1024, 63)``, as ``(B, 21, 3)``."""

    def __init__(self, num_joints: int = NUM_HAND_JOINTS, hidden: int = 1024,
                 dropout: float = 0.5, arch: str = "resnet50"):
        super().__init__()
        import torchvision

        if arch not in ARCHS:
            raise ValueError(f"arch must be one of {sorted(ARCHS)}, got {arch!r}")
        self.backbone = getattr(torchvision.models, arch)(weights=None)
        features = self.backbone.fc.in_features  # 2048 for ResNet-50, 512 for 18/34
        self.backbone.fc = nn.Identity()
        self.head = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(inplace=True),
                                  nn.Dropout(dropout), nn.Linear(hidden, num_joints * 3))
        nn.init.normal_(self.head[3].weight, std=1e-3)  # first predictions near the root
        nn.init.zeros_(self.head[3].bias)
        self.num_joints, self.hidden, self.dropout, self.arch = num_joints, hidden, dropout, arch
        self.pretrained = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x)).view(x.shape[0], self.num_joints, 3)


def load_imagenet_backbone(model: ResNetPose3D, weights: str = "IMAGENET1K_V1",
                           timeout: float = 30.0, log=print) -> bool:
    """Load torchvision's ImageNet weights for ``model.arch`` (ResNet-50 ``IMAGENET1K_V1``, the
    reference's, 98 MB; or ``IMAGENET1K_V2``) into ``model.backbone``, caching them in
    ``~/.cache/torch/hub/checkpoints``. Returns True on success. When they cannot be had (no
    internet, a corrupt file) it says why and returns False: the backbone keeps its random
    initialisation."""
    import torchvision

    enum = getattr(torchvision.models, ARCHS[model.arch])
    w = enum[weights]
    state = imagenet_state_dict(w, f"the {model.arch} backbone", timeout, log)
    if state is None:
        return False
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    missing, unexpected = model.backbone.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise RuntimeError(f"ImageNet weights do not fit the {model.arch} backbone: missing "
                           f"{list(missing)[:4]}, unexpected {list(unexpected)[:4]}")
    if log:
        log(f"loaded ImageNet weights ({enum.__name__}.{weights}) into the backbone")
    return True


def build_pose3d_model(pretrained: bool = True, dropout: float = 0.5, hidden: int = 1024,
                       arch: str = "resnet50", weights: str = "IMAGENET1K_V1",
                       timeout: float = 30.0, log=print) -> ResNetPose3D:
    """:class:`ResNetPose3D` (ResNet-50 by default), with ImageNet weights in the backbone when
    ``pretrained`` and they can be downloaded (else a clear message and random initialisation).
    """
    model = ResNetPose3D(hidden=hidden, dropout=dropout, arch=arch)
    if pretrained:
        model.pretrained = load_imagenet_backbone(model, weights, timeout=timeout, log=log)
    return model


def pose3d_loss(kind: str = "mse") -> nn.Module:
    """``"mse"`` (the reference: mean squared error over the 63 coordinates) or ``"l1"`` (mean
    absolute error: less dominated by the few worst joints)."""
    losses = {"mse": nn.MSELoss, "l1": nn.L1Loss}
    if kind not in losses:
        raise ValueError(f"loss must be one of {sorted(losses)}, got {kind!r}")
    return losses[kind]()


# --- from notebooks/05_resnet50_3d_regression.ipynb ---
def run_config(codec: RootRelativeCodec, image_size: int, model: ResNetPose3D,
               **extra) -> dict:
    """What :func:`load_pose3d_model` needs to rebuild the model and decode its outputs; pass it
    as ``TrainConfig(settings=...)`` so every checkpoint carries it (numbers and strings only)."""
    return {"task": "pose3d", "image_size": int(image_size), "arch": model.arch,
            "hidden": model.hidden, "dropout": model.dropout, **codec.to_config(), **extra}


class EpochVisualizer:
    """A ``fit`` callback: after every epoch, predict a few fixed test samples (eval mode, under
    ``torch.no_grad``, the mode restored afterwards) and save ``epoch_NNN_test_K.png`` (2D
    overlay and 3D skeleton, green ground truth, red prediction) and ``training_metrics.png``
    into ``out_dir`` (``<run>/results``). ``self.saved`` lists the files written."""

    def __init__(self, model: nn.Module, dataset: CachedKeypointDataset, records: Sequence[dict],
                 codec: RootRelativeCodec, prepare_batch: PrepareBatch, out_dir,
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
        return self.codec.decode(out, extras.get("scale")).cpu()

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
        fig = plot_training_metrics(history, self.out_dir / "training_metrics.png")
        plt.close(fig)


# --- from notebooks/05_resnet50_3d_regression.ipynb ---
def _sem_over_poses(errors: torch.Tensor, pose_ids: Sequence) -> float:
    """Standard error of the mean error, treating each pose (all its images) as one sample."""
    per_pose: dict = {}
    for e, pid in zip(errors.tolist(), pose_ids):
        per_pose.setdefault(pid, []).append(e)
    means = np.array([np.mean(v) for v in per_pose.values()])
    return float(means.std(ddof=1) / np.sqrt(len(means))) if len(means) > 1 else float("nan")


def compare_splits(records: Sequence[dict], *, fractions=(0.6, 0.2, 0.2), image_size: int = 128,
                   epochs: int = 5, batch_size: int = 32, lr: float = 1e-4,
                   weight_decay: float = 1e-4, pretrained: bool = False, loss: str = "mse",
                   dropout: float = 0.5,
                   geometric_aug: bool = True, codec: RootRelativeCodec | None = None,
                   arch: str = "resnet50", seed: int = 0, device=None,
                   max_steps: int | None = None, progress: bool = False,
                   log=print) -> list[dict]:
    """Train the same model with the same budget twice and score each on its own test part:

    * ``"random per image"``: the reference's split, ``fractions`` (60/20/20) of the *images*
      at random, so most test poses have a sibling image (other background) in training;
    * ``"grouped by pose"``: the same fractions of *poses*; no test pose is in training.

    Both train on the same number of images (the larger training part is cut to the smaller's
    size: grouped parts can differ by a few images) from the same initial weights, for
    ``epochs`` epochs (at most ``max_steps`` batches each) without validation. Returns one dict per
    split: sizes, ``test_poses_in_train`` (leaked/total), the test :func:`pose3d_metrics`,
    ``mpjpe_sem`` (the standard error of the test MPJPE over test *poses*, since the images of
    one pose are not independent: differences smaller than two or three of these are noise), and
    the test MPJPE over images whose pose is / is not in training (``mpjpe_seen_poses``,
    ``mpjpe_unseen_poses``, with counts ``n_seen_poses``, ``n_unseen_poses``)."""
    records = list(records)
    codec = codec or RootRelativeCodec()
    cache = build_image_cache(records, image_size, progress=progress, log=log)
    extras = pose3d_extras(records)
    position = {id(r): i for i, r in enumerate(records)}
    splits = {"random per image": random_split(records, fractions, seed),
              "grouped by pose": grouped_split(records, fractions, "pose_id", seed)}
    n_train = min(len(parts[0]) for parts in splits.values())
    rows = []
    for name, (train, _, test) in splits.items():
        if len(train) > n_train:  # same budget: drop a random few (no pose can leak this way)
            keep = np.sort(np.random.default_rng(seed).permutation(len(train))[:n_train])
            train = [train[i] for i in keep]
        leak = count_pose_leak(train, test)
        env.seed_everything(seed)  # same initial weights for both
        model = build_pose3d_model(pretrained, dropout=dropout, arch=arch, log=None)
        prep = pose3d_prepare_batch(codec, pose3d_augment(geometric_aug))
        train_loader, test_loader = make_loaders(
            CachedKeypointDataset(cache, [position[id(r)] for r in train], extras),
            CachedKeypointDataset(cache, [position[id(r)] for r in test], extras),
            batch_size=batch_size, device=device)
        train_config = TrainConfig(
            epochs=epochs, lr=lr, weight_decay=weight_decay, device=device, seed=seed,
            best_metric="train_loss", max_steps=max_steps, live_plot=False, progress=progress,
            log=None)
        history = fit(model, train_loader, None, train_config, loss_fn=pose3d_loss(loss),
                      prepare_batch=prep)
        meter = Pose3DMeter(codec)
        metrics = evaluate(model, test_loader, prepare_batch=prep, metrics=meter, device=device,
                           progress=progress)
        a = meter.arrays()
        train_poses = {r["pose_id"] for r in train}
        seen = torch.tensor([records[int(i)]["pose_id"] in train_poses for i in a["index"]])
        err = per_sample_epe(a["pred"], a["gt"])  # mean over joints, per image
        row = {"split": name, "train_images": len(train), "test_images": len(test),
               "test_poses_in_train": f"{leak['leaked_groups']}/{leak['groups']}",
               "leaked_fraction": leak["leaked_fraction"],
               "train_loss": history[-1]["train_loss"], **metrics,
               "mpjpe_sem": _sem_over_poses(err, [records[int(i)]["pose_id"] for i in a["index"]]),
               "n_seen_poses": int(seen.sum()), "n_unseen_poses": int((~seen).sum()),
               "mpjpe_seen_poses": float(err[seen].mean()) if seen.any() else float("nan"),
               "mpjpe_unseen_poses": float(err[~seen].mean()) if (~seen).any() else float("nan")}
        rows.append(row)
        if log:
            log(f"{name:17s} train {len(train):5d} images | test {len(test):4d} images, "
                f"{leak['leaked_groups']}/{leak['groups']} test poses also in train | "
                f"test MPJPE {metrics['mpjpe']:.1f} mm, PA-MPJPE {metrics['pa_mpjpe']:.1f} mm")
    return rows


def plot_split_comparison(rows: Sequence[dict]):
    """Bars of :func:`compare_splits`' test MPJPE and PA-MPJPE per split, and for each split its
    test images split into poses seen in training and poses never seen."""
    fig, (ax_a, ax_b) = plt.subplots(1, 2, figsize=(10, 3.4))
    names = [r["split"] for r in rows]
    x = np.arange(len(rows))
    for k, (key, label) in enumerate((("mpjpe", "MPJPE"), ("pa_mpjpe", "PA-MPJPE"))):
        vals = [r[key] for r in rows]
        bars = ax_a.bar(x + (k - 0.5) * 0.38, vals, 0.38, label=label)
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
    fig.tight_layout()
    return fig


def split_comparison_table(rows: Sequence[dict]) -> str:
    """:func:`compare_splits`' rows as a Markdown table."""
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


# --- from notebooks/05_resnet50_3d_regression.ipynb ---
def load_pose3d_model(path, device=None, log=print):
    """Evaluate-only: rebuild the model from a checkpoint written by ``fit`` with
    :func:`run_config`. Returns ``(model in eval mode, codec, checkpoint dict)``; the image size
    is ``checkpoint["config"]["image_size"]``. Errors name the file."""
    ckpt = load_checkpoint(path)
    cfg = ckpt.get("config") or {}
    if cfg.get("task") != "pose3d":
        raise CheckpointError(f"{path} was not written by notebook 05's training (its config has "
                              f"task={cfg.get('task')!r}); pass TrainConfig(settings=run_config(...))")
    model = ResNetPose3D(hidden=cfg["hidden"], dropout=cfg["dropout"],
                         arch=cfg.get("arch", "resnet50"))
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as err:
        raise CheckpointError(f"checkpoint {path} does not fit ResNetPose3D: {err}") from err
    device = torch.device(device) if device is not None else env.pick_device()
    if log:
        best = ckpt.get("best") or {}
        log(f"loaded {path}: epoch {ckpt.get('epoch')}, image size {cfg['image_size']}"
            + (f", best {best.get('metric')} = {best['value']:.4g} at epoch {best.get('epoch')}"
               if best.get("value") is not None else ""))
    return model.to(device).eval(), RootRelativeCodec.from_config(cfg), ckpt


def load_input_image(image, image_size: int) -> np.ndarray:
    """An image file (decoded exactly as the training cache does; an unreadable file raises
    :class:`~handpose_utils.images.ImageReadError` naming it) or an ``(H, W, 3)`` uint8 array,
    as the ``(S, S, 3)`` uint8 network input."""
    if isinstance(image, (str, Path)):
        record = {"image_path": str(image), "keypoints": [0.0] * 2 * NUM_HAND_JOINTS}
        return np.asarray(build_image_cache([record], image_size, progress=False,
                                            log=None).images[0])
    from PIL import Image

    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB array, got {array.shape} {array.dtype}")
    return np.asarray(Image.fromarray(array).resize((image_size, image_size),
                                                    Image.Resampling.BILINEAR))


@torch.no_grad()
def predict_image(model: nn.Module, image, image_size: int, codec: RootRelativeCodec,
                  scale: float | None = None, device=None) -> np.ndarray:
    """Single-image inference: the 21 joints ``(21, 3)`` in **metres, relative to the middle
    MCP** (joint 9), for an image path or ``(H, W, 3)`` uint8 array.

    The model expects what it was trained on: a FreiHAND-like crop with the hand in the middle.
    The absolute position is not predicted (one image cannot fix it); to draw the joints on the
    image, place the root somewhere known, e.g. :func:`metrics.reproject_with_gt_root`. ``scale``
    is only used by a normalising codec (default: its ``default_scale``)."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    x = torch.from_numpy(load_input_image(image, image_size).copy()).permute(2, 0, 1)[None]
    x = x.to(device).float().div(255)
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    was_training = model.training
    model.eval()
    try:
        out = model((x - mean) / std).float().cpu()
    finally:
        model.train(was_training)
    return codec.decode(out, scale)[0].numpy()
