"""Learning 21 x 3D hand landmarks from a teacher's labels: targets, dataset, model, loss, metrics
and plots for notebook 04.

Targets (an MMPose-style codec: :func:`encode_landmarks` and :func:`decode_landmarks` side by
side). A landmark file holds MediaPipe's normalisation: ``x, y`` in ``[0, 1]`` of the image
width and height, ``z`` the depth relative to the wrist on x's scale. The network regresses 63
numbers::

    x' = 2 x - 1,   y' = 2 y - 1     (the image spans [-1, 1])
    z' = z_scale * z                 (z_scale = 2 keeps z in x' units)

One fixed scale for every sample, so predictions decode back exactly. (The reference divided z
by each sample's own std, which is not invertible from a prediction, and it did the 2x - 1 *in
place on its cached array*, so each read of a sample standardised it again; here the cached
arrays are read-only and encoding always returns new arrays.)

A 64th output (optional, on by default) predicts the **handedness** the teacher reported: its
target is the teacher's probability that the hand is a right hand (``score`` for "Right",
``1 - score`` for "Left", NaN when unknown), learned with a binary cross-entropy on soft labels,
i.e. distillation in the literal sense. It also makes a horizontal flip a correct augmentation:
flipping the image maps ``x' -> -x'``, keeps z and turns a right hand into a left one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import Dataset

from .data import IMAGENET_MEAN, IMAGENET_STD, build_image_cache
from .datasets.ouhands import load_landmark_files
from .downloads import imagenet_state_dict
from .images import read_image
from .metrics import bbox_size, epe, joint_distances, pck
from .skeletons import HAND21_NAMES, NUM_HAND_JOINTS

Z_SCALE = 2.0
NUM_OUTPUTS = 3 * NUM_HAND_JOINTS  # 63

__all__ = [
    "Z_SCALE",
    "encode_landmarks",
    "decode_landmarks",
    "landmarks_to_pixels",
    "LandmarkLabels",
    "load_landmark_labels",
    "LandmarkDataset",
    "MobileNetV2Landmarks",
    "build_landmark_model",
    "load_imagenet_weights",
    "LandmarkLoss",
    "mean_abs_coordinate_error",
    "LandmarkMeter",
    "mean_hand_baseline",
    "show_landmarks",
    "show_prediction",
    "plot_per_joint_errors",
    "prediction_browser",
    "show_class_examples",
]


# --------------------------------------------------------------------------------------------
# The codec


def encode_landmarks(landmarks, z_scale: float = Z_SCALE) -> np.ndarray:
    """``(..., 21, 3)`` MediaPipe landmarks -> ``(..., 63)`` float32 targets
    ``(2x - 1, 2y - 1, z_scale * z)``. Always a new array: the input is never modified."""
    lm = np.asarray(landmarks, dtype=np.float32)
    if lm.shape[-2:] != (NUM_HAND_JOINTS, 3):
        raise ValueError(f"expected (..., 21, 3) landmarks, got shape {lm.shape}")
    out = np.empty_like(lm)
    out[..., :2] = lm[..., :2] * 2.0 - 1.0
    out[..., 2] = lm[..., 2] * z_scale
    return out.reshape(*lm.shape[:-2], NUM_OUTPUTS)


def decode_landmarks(values, z_scale: float = Z_SCALE):
    """Inverse of :func:`encode_landmarks`: ``(..., 63)`` (array or tensor; a 64th handedness
    column is ignored) -> ``(..., 21, 3)`` in MediaPipe's normalisation."""
    values = values[..., :NUM_OUTPUTS]
    lm = values.reshape(*values.shape[:-1], NUM_HAND_JOINTS, 3)
    xy = (lm[..., :2] + 1.0) / 2.0
    z = lm[..., 2:] / z_scale
    if isinstance(lm, torch.Tensor):
        return torch.cat([xy, z], dim=-1)
    return np.concatenate([xy, z], axis=-1)


def landmarks_to_pixels(landmarks, size):
    """``(..., 21, 3|2)`` normalised landmarks -> ``(..., 21, 2)`` pixels of an image of
    ``size = (W, H)`` (or ``(N, 2)`` sizes), pixel centres at integers: ``u = x W - 0.5``."""
    lm = landmarks[..., :2]
    if isinstance(lm, torch.Tensor):
        size_t = torch.as_tensor(size, dtype=lm.dtype, device=lm.device)
        if size_t.dim() == 2:
            size_t = size_t[:, None, :]
        return lm * size_t - 0.5
    size_a = np.asarray(size, dtype=np.float64)
    if size_a.ndim == 2:
        size_a = size_a[:, None, :]
    return np.asarray(lm) * size_a - 0.5


# --------------------------------------------------------------------------------------------
# Labels and dataset


def _read_only(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.flags.writeable = False  # an in-place edit now raises instead of corrupting the cache
    return a


@dataclass(frozen=True)
class LandmarkLabels:
    """The teacher's labels of one split, read once. All arrays are read-only.

    ``landmarks`` ``(N, 21, 3)`` float32 in MediaPipe's normalisation; ``p_right`` ``(N,)`` the
    teacher's probability of a right hand (NaN when the file has no handedness); ``image_size``
    ``(N, 2)`` ``(W, H)`` from the files' ``image_shape``; ``image_paths`` and ``files`` (the
    landmark files) as strings."""

    image_paths: tuple[str, ...]
    files: tuple[str, ...]
    landmarks: np.ndarray
    p_right: np.ndarray
    image_size: np.ndarray

    def __len__(self) -> int:
        return len(self.image_paths)

    def take(self, index) -> LandmarkLabels:
        """A subset (an int ``n`` for the first n, or a sequence of indices)."""
        idx = np.arange(min(index, len(self))) if isinstance(index, int) else np.asarray(index)
        return LandmarkLabels(
            tuple(self.image_paths[i] for i in idx), tuple(self.files[i] for i in idx),
            _read_only(self.landmarks[idx]), _read_only(self.p_right[idx]),
            _read_only(self.image_size[idx]))

    def records(self) -> list[dict]:
        """Course records (``image_path``, 2D ``keypoints`` in pixels, ``width``, ``height``),
        e.g. for :func:`handpose_utils.data.build_image_cache` or ``plots.show_sample``."""
        px = landmarks_to_pixels(self.landmarks, self.image_size)
        return [{"image_path": p, "keypoints": px[i].reshape(-1).tolist(),
                 "width": int(self.image_size[i, 0]), "height": int(self.image_size[i, 1])}
                for i, p in enumerate(self.image_paths)]


def labels_from_files(records: Sequence[dict]) -> LandmarkLabels:
    """:class:`LandmarkLabels` from read landmark files (:func:`read_landmark_file` dicts)."""
    if not records:
        raise ValueError("no landmark records")
    lm = np.array([[[p["x"], p["y"], p["z"]] for p in r["landmarks"]] for r in records],
                  dtype=np.float32)
    p_right = np.full(len(records), np.nan, np.float32)
    for i, r in enumerate(records):
        hand = r.get("handedness")
        if hand:
            p_right[i] = hand["score"] if hand["label"] == "Right" else 1.0 - hand["score"]
    size = np.array([[r["image_shape"][1], r["image_shape"][0]] for r in records], np.int64)
    return LandmarkLabels(tuple(r["image_path"] for r in records),
                          tuple(r.get("landmark_file", "") for r in records),
                          _read_only(lm), _read_only(p_right), _read_only(size))


def load_landmark_labels(landmarks_dir: str | Path, split: str,
                         image_root: str | Path | None = None,
                         limit: int | None = None) -> LandmarkLabels:
    """Read every ``landmarks_dir/<split>/*_landmarks.json`` (validated: exactly 21 landmarks,
    errors name the file) into :class:`LandmarkLabels`. ``limit`` keeps the first files by name
    (the reference's quick test used 32 training and 8 validation samples)."""
    return labels_from_files(load_landmark_files(landmarks_dir, split, image_root, limit))


class LandmarkDataset(Dataset):
    """Images and 63 (+1) regression targets for :class:`MobileNetV2Landmarks`.

    Per sample: the image resized to ``image_size`` squared (the reference's ``Resize``: x and y
    are normalised coordinates, so squashing the aspect ratio leaves them valid), for training
    ``ColorJitter(0.2, 0.2, 0.2, 0.1)`` and ``RandomGrayscale(0.1)`` (geometry-preserving, as in
    the reference) and, if ``hflip_p > 0``, a horizontal flip that mirrors the targets too, then
    ImageNet normalisation.

    ``cache=True`` decodes and resizes every image once at construction
    (:func:`handpose_utils.data.build_image_cache`; unreadable images raise naming the file),
    so epochs only jitter 224 px images; ``cache=False`` reads each image from disk per sample.

    Items are dicts: ``image`` (3, S, S) float, ``target`` (64,) = the encoded landmarks then
    ``p_right`` (NaN if unknown), ``index`` and ``orig_size`` ``(W, H)``. The label arrays are
    read-only and never modified: the same index gives the same target on every read.
    """

    def __init__(self, labels: LandmarkLabels, image_size: int = 224, train: bool = False,
                 z_scale: float = Z_SCALE, hflip_p: float = 0.0, cache: bool = True,
                 jitter=(0.2, 0.2, 0.2, 0.1), grayscale_p: float = 0.1, progress: bool = True):
        from torchvision import transforms as T

        self.labels, self.image_size, self.train = labels, image_size, train
        self.z_scale, self.hflip_p = z_scale, hflip_p
        self.augment = T.Compose([T.ColorJitter(*jitter), T.RandomGrayscale(grayscale_p)]) \
            if train else None
        self.mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
        self.cache = (build_image_cache(labels.records(), image_size, progress=progress)
                      if cache else None)

    def __len__(self) -> int:
        return len(self.labels)

    def _image(self, i: int) -> Image.Image:
        if self.cache is not None:
            return Image.fromarray(self.cache.images[i])
        array = read_image(self.labels.image_paths[i])
        return Image.fromarray(array).resize((self.image_size, self.image_size),
                                             Image.Resampling.BILINEAR)

    def __getitem__(self, i: int) -> dict:
        image = self._image(i)
        if self.augment is not None:
            image = self.augment(image)
        x = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).float().div_(255)
        x = (x - self.mean) / self.std
        target = encode_landmarks(self.labels.landmarks[i], self.z_scale)  # a new array
        p_right = float(self.labels.p_right[i])
        if self.train and self.hflip_p > 0 and torch.rand(()) < self.hflip_p:
            x = x.flip(-1)
            target = target.reshape(NUM_HAND_JOINTS, 3) * np.array([-1.0, 1.0, 1.0], np.float32)
            target = target.reshape(-1)
            p_right = 1.0 - p_right  # a mirrored right hand looks like a left hand (NaN stays)
        return {
            "image": x,
            "target": torch.from_numpy(np.append(target, np.float32(p_right))),
            "index": torch.tensor(i),
            "orig_size": torch.tensor(self.labels.image_size[i], dtype=torch.float32),
        }


# --------------------------------------------------------------------------------------------
# Model


def load_imagenet_weights(model: nn.Module, timeout: float = 30.0, log=print) -> bool:
    """Load torchvision's ImageNet MobileNetV2 weights (``IMAGENET1K_V1``, 14 MB, cached in
    ``~/.cache/torch/hub/checkpoints``) into ``model`` (a torchvision ``mobilenet_v2``; the
    classifier is skipped). Returns True on success. When they cannot be had (no internet, a
    corrupt file) it prints why and returns False: the model keeps its random initialisation."""
    from torchvision.models import MobileNet_V2_Weights

    weights = MobileNet_V2_Weights.IMAGENET1K_V1
    state = imagenet_state_dict(weights, "the MobileNetV2 backbone", timeout, log)
    if state is None:  # the reference itself used pretrained=False: slower, but it learns
        return False
    state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    bad = [k for k in missing if k.startswith("features.")]
    if bad or unexpected:
        raise RuntimeError(f"ImageNet weights do not fit MobileNetV2: missing {bad[:4]}, "
                           f"unexpected {list(unexpected)[:4]}")
    if log:
        log("loaded ImageNet weights (MobileNet_V2_Weights.IMAGENET1K_V1) into the backbone")
    return True


class MobileNetV2Landmarks(nn.Module):
    """torchvision MobileNetV2 with the reference's regression head:
    ``Dropout -> Linear(1280, 512) -> ReLU -> Dropout -> Linear(512, 63)`` (Xavier-initialised),
    plus, with ``handedness=True``, a ``Linear(512, 1)`` handedness logit on the same 512
    features. ``forward`` returns ``(B, 63)`` or ``(B, 64)`` (landmarks, then the logit)."""

    def __init__(self, num_landmarks: int = NUM_HAND_JOINTS, handedness: bool = True,
                 dropout: float = 0.2):
        super().__init__()
        from torchvision.models import mobilenet_v2

        backbone = mobilenet_v2(weights=None)
        self.features = backbone.features
        self.pool = nn.AdaptiveAvgPool2d(1)
        width = backbone.last_channel  # 1280
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(width, 512),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(512, num_landmarks * 3),
        )
        self.handedness = nn.Linear(512, 1) if handedness else None
        self.pretrained = False
        for m in [*self.classifier, self.handedness]:
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = torch.flatten(self.pool(self.features(x)), 1)
        hidden = self.classifier[:4](f)
        out = self.classifier[4](hidden)
        if self.handedness is not None:
            out = torch.cat([out, self.handedness(hidden)], dim=1)
        return out


def build_landmark_model(pretrained: bool = True, handedness: bool = True, dropout: float = 0.2,
                         timeout: float = 30.0, log=print) -> MobileNetV2Landmarks:
    """:class:`MobileNetV2Landmarks`, with ImageNet weights in the backbone when ``pretrained``
    and they can be downloaded (else a clear message and random initialisation;
    ``model.pretrained`` says which)."""
    model = MobileNetV2Landmarks(handedness=handedness, dropout=dropout)
    if pretrained:
        model.pretrained = load_imagenet_weights(model, timeout=timeout, log=log)
    return model


# --------------------------------------------------------------------------------------------
# Loss and metrics


class LandmarkLoss(nn.Module):
    """SmoothL1 (``beta=0.02``, the reference's) on the 63 landmark targets, plus
    ``handedness_weight`` x binary cross-entropy between the handedness logit and the teacher's
    soft label ``p_right`` (samples without handedness are left out)."""

    def __init__(self, beta: float = 0.02, handedness_weight: float = 0.1):
        super().__init__()
        self.beta, self.handedness_weight = beta, handedness_weight

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        loss = F.smooth_l1_loss(outputs[:, :NUM_OUTPUTS], targets[:, :NUM_OUTPUTS],
                                beta=self.beta)
        if self.handedness_weight and outputs.shape[1] > NUM_OUTPUTS:
            p = targets[:, NUM_OUTPUTS]
            known = torch.isfinite(p)
            if bool(known.any()):
                bce = F.binary_cross_entropy_with_logits(outputs[known, NUM_OUTPUTS], p[known])
                loss = loss + self.handedness_weight * bce
        return loss


def mean_abs_coordinate_error(pred, target) -> float:
    """The reference's "MPJPE": the mean absolute difference over the 63 coordinates,
    ``mean |pred - target|``. It is an L1 coordinate error, **not** a per-joint position error
    (which is Euclidean per joint); for the same predictions it is smaller."""
    p = torch.as_tensor(pred)[..., :NUM_OUTPUTS].float()
    t = torch.as_tensor(target)[..., :NUM_OUTPUTS].float()
    return float((p - t).abs().mean())


class LandmarkMeter:
    """Accumulates a validation pass (the engine's meter protocol) and computes:

    * ``mpjpe``: the **true** MPJPE, the mean Euclidean distance per joint, in the normalised
      target units (x', y', z'; the image is 2 units wide and high);
    * ``mpjpe_px``: the same for x and y only, in pixels of the original image;
    * ``mean_abs``: the reference's "MPJPE", mean |delta| over the 63 coordinates, same units;
    * ``err_x_px``, ``err_y_px``, ``err_z_px``: mean |delta| per axis in pixels (z on x's scale);
    * ``pck@0.1``, ``pck@0.2`` (and ``pck`` = PCK@0.2): 2D, a joint is correct within that
      fraction of the teacher's keypoint box (the longer side of the tight box around its 21
      landmarks; MMPose divides by the annotation's box, which is larger, so this is stricter);
    * ``handedness_acc`` when the model predicts handedness and the labels have it.
    """

    def __init__(self, z_scale: float = Z_SCALE, alphas: Sequence[float] = (0.1, 0.2)):
        self.z_scale, self.alphas = z_scale, tuple(alphas)
        self.log_items = [("mpjpe", "MPJPE", "{:.4f}"), ("mpjpe_px", "MPJPE2D", "{:.1f}px"),
                          ("mean_abs", "mean|Δ|(ref 'MPJPE')", "{:.4f}"),
                          ("pck", f"PCK@{self.alphas[-1]:g} (keypoint box)", "{:.1%}")]
        self.reset()

    def reset(self) -> None:
        self._out, self._tgt, self._size, self._index = [], [], [], []

    @torch.no_grad()
    def update(self, outputs, targets, extras=None) -> None:
        extras = extras or {}
        self._out.append(outputs.detach().float().cpu())
        self._tgt.append(targets.detach().float().cpu())
        size = extras.get("orig_size")
        self._size.append(size.detach().float().cpu() if size is not None else
                          torch.full((len(outputs), 2), math.nan))
        if "index" in extras:
            self._index.append(extras["index"].detach().cpu().long())

    def arrays(self) -> dict:
        """``pred`` / ``gt`` (N, 21, 3) in MediaPipe's normalisation, ``pred_px`` / ``gt_px``
        (N, 21, 2) original pixels, ``errors_px`` (N, 21), ``size`` (N, 2), ``index`` (N,),
        ``outputs`` / ``targets`` (raw), ``p_right_pred`` (N,) if predicted."""
        if not self._out:
            raise RuntimeError("LandmarkMeter is empty: call update() first")
        out, tgt, size = torch.cat(self._out), torch.cat(self._tgt), torch.cat(self._size)
        pred, gt = decode_landmarks(out, self.z_scale), decode_landmarks(tgt, self.z_scale)
        pred_px, gt_px = landmarks_to_pixels(pred, size), landmarks_to_pixels(gt, size)
        a = {"outputs": out, "targets": tgt, "pred": pred, "gt": gt, "size": size,
             "pred_px": pred_px, "gt_px": gt_px, "errors_px": joint_distances(pred_px, gt_px)}
        if self._index:
            a["index"] = torch.cat(self._index)
        if out.shape[1] > NUM_OUTPUTS:
            a["p_right_pred"] = torch.sigmoid(out[:, NUM_OUTPUTS])
        return a

    def compute(self) -> dict:
        a = self.arrays()
        out, tgt = a["outputs"], a["targets"]
        enc_p = out[:, :NUM_OUTPUTS].reshape(-1, NUM_HAND_JOINTS, 3)
        enc_t = tgt[:, :NUM_OUTPUTS].reshape(-1, NUM_HAND_JOINTS, 3)
        res = {"mpjpe": epe(enc_p, enc_t), "mpjpe_px": epe(a["pred_px"], a["gt_px"]),
               "mean_abs": mean_abs_coordinate_error(out, tgt)}
        d = (a["pred"] - a["gt"]).abs()
        w, h = a["size"][:, 0, None], a["size"][:, 1, None]
        res["err_x_px"] = float((d[..., 0] * w).mean())
        res["err_y_px"] = float((d[..., 1] * h).mean())
        res["err_z_px"] = float((d[..., 2] * w).mean())
        box = bbox_size(a["gt_px"])
        for alpha in self.alphas:
            res[f"pck@{alpha:g}"] = pck(a["pred_px"], a["gt_px"], alpha, norm=box)
        res["pck"] = res[f"pck@{self.alphas[-1]:g}"]
        if "p_right_pred" in a:
            p = tgt[:, NUM_OUTPUTS]
            known = torch.isfinite(p)
            if bool(known.any()):
                right_pred = a["p_right_pred"][known] > 0.5
                res["handedness_acc"] = float((right_pred == (p[known] > 0.5)).float().mean())
        return res


def mean_hand_baseline(train: LandmarkLabels, val: LandmarkLabels, z_scale: float = Z_SCALE,
                       alphas: Sequence[float] = (0.1, 0.2)) -> dict:
    """The score to beat: :class:`LandmarkMeter`'s metrics on ``val`` for a "student" that
    ignores the image and always predicts the training labels' mean hand (and the mean
    handedness). A regressor that has not learned to look at the hand ends up here."""
    mean = encode_landmarks(train.landmarks, z_scale).mean(0)
    p = float(np.nanmean(train.p_right)) if np.isfinite(train.p_right).any() else 0.5
    logit = math.log(max(p, 1e-6) / max(1 - p, 1e-6))
    n = len(val)
    outputs = torch.tensor(np.tile(np.append(mean, logit), (n, 1)), dtype=torch.float32)
    targets = torch.tensor(np.concatenate(
        [encode_landmarks(val.landmarks, z_scale), val.p_right[:, None]], axis=1))
    meter = LandmarkMeter(z_scale, alphas)
    meter.update(outputs, targets, {"orig_size": torch.tensor(val.image_size, dtype=torch.float32)})
    return meter.compute()


# --------------------------------------------------------------------------------------------
# Plots


def show_landmarks(image, landmarks, ax=None, title: str | None = None, depth: bool = True):
    """An image (array or path) with its 21 landmarks (MediaPipe normalisation), joints coloured
    by z (blue = closer to the camera than the wrist, red = farther) when ``depth``; and, if
    ``depth``, a second panel seen from above (x against z) to show what z encodes."""
    from .plots import draw_hand

    img = read_image(image) if isinstance(image, (str, Path)) else np.asarray(image)
    h, w = img.shape[:2]
    lm = np.asarray(landmarks, float)
    px = landmarks_to_pixels(lm, (w, h))
    if ax is None:
        _, axes = plt.subplots(1, 2 if depth else 1, figsize=(10 if depth else 5, 3.8),
                               squeeze=False, gridspec_kw={"width_ratios": [1.4, 1]} if depth
                               else None)
        axes = axes[0]
    else:
        axes = [ax]
    axes[0].imshow(img)
    draw_hand(axes[0], px)
    if depth:
        lim = max(np.abs(lm[:, 2]).max(), 1e-3)
        axes[0].scatter(px[:, 0], px[:, 1], c=lm[:, 2], cmap="coolwarm", vmin=-lim, vmax=lim,
                        s=14, zorder=4, edgecolors="black", linewidths=0.3)
    axes[0].set_title(title or "landmarks (joint colour = z)", fontsize=9)
    axes[0].axis("off")
    if depth and len(axes) > 1:
        top = np.stack([lm[:, 0] * w, lm[:, 2] * w], axis=1)  # both in pixels of x
        draw_hand(axes[1], top)
        axes[1].axhline(0, color="grey", lw=0.8, ls="--")
        axes[1].invert_yaxis()  # the camera at the top: negative z (closer) plotted up
        axes[1].set_aspect("equal", adjustable="datalim")
        axes[1].set(xlabel="x (px)", ylabel="z × W (px, on x's scale)",
                    title="seen from above, camera at the top: z relative to the wrist (dashed)")
        axes[1].title.set_fontsize(9)
    return axes


def show_prediction(image, gt, pred, ax=None, title: str | None = None, errors: bool = True):
    """The image with the teacher's landmarks (green) and the student's (red), a thin line from
    each teacher joint to its prediction, and, with ``errors``, a bar chart of the per-joint
    pixel errors beside it. ``gt`` and ``pred`` are (21, 3|2) in MediaPipe's normalisation."""
    from .plots import GT_COLOR, PRED_COLOR, draw_hand

    img = read_image(image) if isinstance(image, (str, Path)) else np.asarray(image)
    h, w = img.shape[:2]
    gt_px = landmarks_to_pixels(np.asarray(gt, float), (w, h))
    pred_px = landmarks_to_pixels(np.asarray(pred, float), (w, h))
    err = np.linalg.norm(pred_px - gt_px, axis=-1)
    if ax is None:
        fig, axes = plt.subplots(1, 2 if errors else 1, figsize=(11 if errors else 5.5, 3.8),
                                 squeeze=False,
                                 gridspec_kw={"width_ratios": [1.5, 1]} if errors else None)
        axes = axes[0]
    else:
        axes = [ax]
    ax0 = axes[0]
    ax0.imshow(img)
    for (x0, y0), (x1, y1) in zip(gt_px, pred_px):
        ax0.plot([x0, x1], [y0, y1], "-", color="white", lw=0.8, alpha=0.8)
    draw_hand(ax0, gt_px, color=GT_COLOR, label="teacher")
    draw_hand(ax0, pred_px, color=PRED_COLOR, label="student")
    ax0.legend(loc="lower right", fontsize=7)
    ax0.set_title(title or f"mean 2D error {err.mean():.1f} px", fontsize=9)
    ax0.axis("off")
    if errors and len(axes) > 1:
        plot_per_joint_errors(err, ax=axes[1], title="this image: error per joint")
    return axes


def plot_per_joint_errors(errors, ax=None, title: str = "mean error per joint", unit: str = "px"):
    """A bar per HAND21 joint: ``errors`` is (21,) or (N, 21) (then averaged over N)."""
    from .skeletons import hand21_joint_colors

    e = np.asarray(errors, float)
    if e.ndim == 2:
        e = np.nanmean(e, axis=0)
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 3))
    ax.bar(range(len(e)), e, color=hand21_joint_colors(), edgecolor="black", linewidth=0.4)
    ax.set_xticks(range(len(e)))
    ax.set_xticklabels(HAND21_NAMES[: len(e)], rotation=70, fontsize=7)
    ax.set_ylabel(unit)
    ax.set_title(title, fontsize=9)
    return ax


def prediction_browser(image_paths: Sequence[str], gt, pred):
    """An ipywidgets slider over predictions calling :func:`show_prediction` (ipywidgets 7 and
    8). Call ``show_prediction`` once yourself first: ``interact`` prints errors instead of
    raising them."""
    from ipywidgets import IntSlider, interact

    gt, pred = np.asarray(gt), np.asarray(pred)

    def _show(index=0):
        show_prediction(image_paths[index], gt[index], pred[index],
                        title=f"{Path(image_paths[index]).name}")
        plt.show()

    interact(_show, index=IntSlider(value=0, min=0, max=len(image_paths) - 1, step=1,
                                           continuous_update=False))


def show_class_examples(records: Sequence[dict], cols: int = 5, size: float = 2.4,
                        titles: dict | None = None):
    """The first image of each class in OUHANDS records (:func:`~handpose_utils.load_ouhands`),
    titled with the class letter (and ``titles[class]`` if given, e.g. the synthetic gesture)."""
    first: dict[str, dict] = {}
    for rec in records:
        first.setdefault(rec["class"], rec)
    classes = sorted(first)
    rows = max(1, math.ceil(len(classes) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * size, rows * size * 0.8), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, cls in zip(axes.flat, classes):
        ax.imshow(read_image(first[cls]["image_path"]))
        extra = f" ({titles[cls]})" if titles and cls in titles else ""
        ax.set_title(f"class {cls}{extra}: {first[cls]['subject']}", fontsize=8)
    fig.tight_layout()
    return fig
