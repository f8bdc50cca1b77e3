"""Generated from notebooks/04_mobilenetv2_landmarks.ipynb by `python -m handpose_utils.export`.

Edit the notebook's `#@save landmarks` cells, not this file: the tests check that the two agree."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import Dataset

from handpose_utils.data import IMAGENET_MEAN, IMAGENET_STD, build_image_cache
from handpose_utils.datasets.ouhands import load_landmark_files
from handpose_utils.images import read_image
from handpose_utils.metrics import bbox_size, epe, joint_distances, pck
from handpose_utils.metrics3d import mpjpe
from handpose_utils.pretrained import imagenet_state_dict
from handpose_utils.skeletons import NUM_HAND_JOINTS


# --- from notebooks/04_mobilenetv2_landmarks.ipynb ---
def landmarks_to_pixels(landmarks, size):
    """``(..., 21, 3|2)`` -> pixels of ``size`` (W, H) or (N, 2); pixel centres at integers."""
    lm = landmarks[..., :2]
    if isinstance(lm, torch.Tensor):
        size_t = torch.as_tensor(size, dtype=lm.dtype, device=lm.device)
        return lm * (size_t[:, None, :] if size_t.dim() == 2 else size_t) - 0.5
    size_a = np.asarray(size, dtype=np.float64)
    return np.asarray(lm) * (size_a[:, None, :] if size_a.ndim == 2 else size_a) - 0.5


# --- from notebooks/04_mobilenetv2_landmarks.ipynb ---
Z_SCALE = 2.0
NUM_OUTPUTS = 3 * NUM_HAND_JOINTS  # 63


@dataclass(frozen=True)
class LandmarkCodec:
    """MediaPipe landmarks <-> the network's 63 targets ``(2x - 1, 2y - 1, z_scale * z)``."""

    z_scale: float = Z_SCALE

    def encode(self, landmarks) -> np.ndarray:
        """``(..., 21, 3)`` landmarks -> ``(..., 63)`` float32 targets, always a new array."""
        lm = np.asarray(landmarks, dtype=np.float32)
        if lm.shape[-2:] != (NUM_HAND_JOINTS, 3):
            raise ValueError(f"expected (..., 21, 3) landmarks, got shape {lm.shape}")
        out = np.empty_like(lm)
        out[..., :2] = lm[..., :2] * 2.0 - 1.0
        out[..., 2] = lm[..., 2] * self.z_scale
        return out.reshape(*lm.shape[:-2], NUM_OUTPUTS)

    def decode(self, values):
        """``(..., 63)`` array or tensor (a 64th handedness column ignored) -> ``(..., 21, 3)``."""
        values = values[..., :NUM_OUTPUTS]
        lm = values.reshape(*values.shape[:-1], NUM_HAND_JOINTS, 3)
        xy = (lm[..., :2] + 1.0) / 2.0
        z = lm[..., 2:] / self.z_scale
        if isinstance(lm, torch.Tensor):
            return torch.cat([xy, z], dim=-1)
        return np.concatenate([xy, z], axis=-1)

    @staticmethod
    def flip(target: np.ndarray, p_right: float) -> tuple[np.ndarray, float]:
        """The target of the mirrored image (an unknown handedness, NaN, stays unknown)."""
        mirrored = target.reshape(NUM_HAND_JOINTS, 3) * np.array([-1.0, 1.0, 1.0], np.float32)
        return mirrored.reshape(-1), 1.0 - p_right


# --- from notebooks/04_mobilenetv2_landmarks.ipynb ---
def _read_only(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.flags.writeable = False  # an in-place edit now raises instead of corrupting the cache
    return a


@dataclass(frozen=True)
class LandmarkLabels:
    """One split's labels (``files``: the landmark files; ``image_size``: ``(W, H)``)."""

    image_paths: tuple[str, ...]
    files: tuple[str, ...]
    landmarks: np.ndarray
    p_right: np.ndarray
    image_size: np.ndarray

    def __len__(self) -> int:
        return len(self.image_paths)

    def take(self, index):
        """A subset (an int ``n`` for the first n, or a sequence of indices)."""
        idx = np.arange(min(index, len(self))) if isinstance(index, int) else np.asarray(index)
        return LandmarkLabels(
            tuple(self.image_paths[i] for i in idx), tuple(self.files[i] for i in idx),
            _read_only(self.landmarks[idx]), _read_only(self.p_right[idx]),
            _read_only(self.image_size[idx]))

    def records(self) -> list[dict]:
        """Course records (``image_path``, 2D ``keypoints`` in pixels, ``width``, ``height``)."""
        px = landmarks_to_pixels(self.landmarks, self.image_size)
        return [{"image_path": p, "keypoints": px[i].reshape(-1).tolist(),
                 "width": int(self.image_size[i, 0]), "height": int(self.image_size[i, 1])}
                for i, p in enumerate(self.image_paths)]


def labels_from_files(records: Sequence[dict]) -> LandmarkLabels:
    """:class:`LandmarkLabels` from read landmark files (``read_landmark_file`` dicts)."""
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
    """``landmarks_dir/<split>/*_landmarks.json`` (first ``limit`` by name); errors name files."""
    return labels_from_files(load_landmark_files(landmarks_dir, split, image_root, limit))


# --- from notebooks/04_mobilenetv2_landmarks.ipynb ---
class LandmarkDataset(Dataset):
    """Items ``image``, ``target`` (64,), ``index``, ``orig_size`` (W, H); ``labels`` unchanged."""

    def __init__(self, labels: LandmarkLabels, image_size: int = 224, train: bool = False,
                 z_scale: float = Z_SCALE, hflip_p: float = 0.0, cache: bool = True,
                 jitter=(0.2, 0.2, 0.2, 0.1), grayscale_p: float = 0.1, progress: bool = True):
        from torchvision import transforms as T

        self.labels, self.image_size, self.train = labels, image_size, train
        self.codec, self.z_scale, self.hflip_p = LandmarkCodec(z_scale), z_scale, hflip_p
        self.augment = (T.Compose([T.ColorJitter(*jitter), T.RandomGrayscale(grayscale_p)])
                        if train else None)
        self.mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
        self.cache = (build_image_cache(labels.records(), image_size, progress=progress)
                      if cache else None)

    def __len__(self) -> int:
        return len(self.labels)

    def _image(self, i: int) -> Image.Image:
        if self.cache is not None:
            return Image.fromarray(self.cache.images[i])
        return Image.fromarray(read_image(self.labels.image_paths[i])).resize(
            (self.image_size, self.image_size), Image.Resampling.BILINEAR)

    def __getitem__(self, i: int) -> dict:
        image = self._image(i)
        if self.augment is not None:
            image = self.augment(image)
        x = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).float().div_(255)
        x = (x - self.mean) / self.std
        target = self.codec.encode(self.labels.landmarks[i])  # a new array
        p_right = float(self.labels.p_right[i])
        if self.train and self.hflip_p > 0 and torch.rand(()) < self.hflip_p:
            x = x.flip(-1)
            target, p_right = self.codec.flip(target, p_right)
        return {"image": x, "target": torch.from_numpy(np.append(target, np.float32(p_right))),
                "index": torch.tensor(i),
                "orig_size": torch.tensor(self.labels.image_size[i], dtype=torch.float32)}


# --- from notebooks/04_mobilenetv2_landmarks.ipynb ---
class MobileNetV2Landmarks(nn.Module):
    """MobileNetV2 features -> pool -> 63 landmark outputs (+ the handedness logit: 64)."""

    def __init__(self, num_landmarks: int = NUM_HAND_JOINTS, handedness: bool = True,
                 dropout: float = 0.2):
        super().__init__()
        from torchvision.models import mobilenet_v2

        backbone = mobilenet_v2(weights=None)
        self.features = backbone.features  # (B, 1280, S/32, S/32)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(backbone.last_channel, 512), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(512, num_landmarks * 3))
        self.handedness = nn.Linear(512, 1) if handedness else None
        self.pretrained = False  # set by build_landmark_model when ImageNet weights load
        for m in [*self.classifier, self.handedness]:
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)  # start every prediction at the image centre

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = torch.flatten(self.pool(self.features(x)), 1)  # (B, 1280)
        hidden = self.classifier[:4](f)  # (B, 512): shared by both outputs
        out = self.classifier[4](hidden)  # (B, 63) landmarks
        if self.handedness is not None:
            out = torch.cat([out, self.handedness(hidden)], dim=1)  # (B, 64): + the logit
        return out


# --- from notebooks/04_mobilenetv2_landmarks.ipynb ---
def load_imagenet_weights(model: nn.Module, timeout: float = 30.0, log=print) -> bool:
    """``IMAGENET1K_V1`` into ``model`` (classifier skipped); False when they cannot be had."""
    from torchvision.models import MobileNet_V2_Weights

    weights = MobileNet_V2_Weights.IMAGENET1K_V1
    state = imagenet_state_dict(weights, "the MobileNetV2 backbone", timeout, log)
    if state is None:
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


def build_landmark_model(pretrained: bool = True, handedness: bool = True, dropout: float = 0.2,
                         timeout: float = 30.0, log=print) -> MobileNetV2Landmarks:
    """:class:`MobileNetV2Landmarks`, with ImageNet weights when ``pretrained`` and available."""
    model = MobileNetV2Landmarks(handedness=handedness, dropout=dropout)
    if pretrained:
        model.pretrained = load_imagenet_weights(model, timeout=timeout, log=log)
    return model


# --- from notebooks/04_mobilenetv2_landmarks.ipynb ---
class LandmarkLoss(nn.Module):
    """SmoothL1 on the 63 targets + ``handedness_weight`` x BCE on the soft label ``p_right``."""

    def __init__(self, beta: float = 0.02, handedness_weight: float = 0.1):
        super().__init__()
        self.beta, self.handedness_weight = beta, handedness_weight

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        loss = F.smooth_l1_loss(outputs[:, :NUM_OUTPUTS], targets[:, :NUM_OUTPUTS],
                                beta=self.beta)
        if self.handedness_weight and outputs.shape[1] > NUM_OUTPUTS:  # a handedness output
            p = targets[:, NUM_OUTPUTS]
            known = torch.isfinite(p)
            if bool(known.any()):
                bce = F.binary_cross_entropy_with_logits(outputs[known, NUM_OUTPUTS], p[known])
                loss = loss + self.handedness_weight * bce
        return loss


# --- from notebooks/04_mobilenetv2_landmarks.ipynb ---
def mean_abs_coordinate_error(pred, target) -> float:
    """``mean |pred - target|`` over the 63 coordinates: not a per-joint position error."""
    p = torch.as_tensor(pred)[..., :NUM_OUTPUTS].float()
    t = torch.as_tensor(target)[..., :NUM_OUTPUTS].float()
    return float((p - t).abs().mean())


# --- from notebooks/04_mobilenetv2_landmarks.ipynb ---
class LandmarkMeter:
    """A validation pass's metrics (above); ``mpjpe(pred, gt)`` in target units gives ``mpjpe``."""

    def __init__(self, z_scale: float = Z_SCALE, alphas: Sequence[float] = (0.1, 0.2),
                 mpjpe=mpjpe):
        self.codec, self.alphas, self.mpjpe = LandmarkCodec(z_scale), tuple(alphas), mpjpe
        self.z_scale = z_scale
        self.log_items = [("mpjpe", "MPJPE", "{:.4f}"), ("mpjpe_px", "MPJPE2D", "{:.1f}px"),
                          ("mean_abs", "mean|Δ|", "{:.4f}"),
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
        """Decoded ``pred``/``gt`` (N, 21, 3), ``pred_px``/``gt_px``/``errors_px``, raw batches."""
        if not self._out:
            raise RuntimeError("LandmarkMeter is empty: call update() first")
        out, tgt, size = torch.cat(self._out), torch.cat(self._tgt), torch.cat(self._size)
        pred, gt = self.codec.decode(out), self.codec.decode(tgt)
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
        points = lambda v: v[:, :NUM_OUTPUTS].reshape(-1, NUM_HAND_JOINTS, 3)
        res = {"mpjpe": float(self.mpjpe(points(out), points(tgt))),
               "mpjpe_px": epe(a["pred_px"], a["gt_px"]),
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
            known = torch.isfinite(tgt[:, NUM_OUTPUTS])
            if bool(known.any()):
                right = a["p_right_pred"][known] > 0.5
                res["handedness_acc"] = float((right == (tgt[known, NUM_OUTPUTS] > 0.5))
                                              .float().mean())
        return res


def mean_hand_baseline(train: LandmarkLabels, val: LandmarkLabels, z_scale: float = Z_SCALE,
                       alphas: Sequence[float] = (0.1, 0.2), mpjpe=mpjpe) -> dict:
    """:class:`LandmarkMeter`'s metrics on ``val`` for the training labels' mean hand."""
    codec = LandmarkCodec(z_scale)
    mean = codec.encode(train.landmarks).mean(0)
    p = float(np.nanmean(train.p_right)) if np.isfinite(train.p_right).any() else 0.5
    logit = math.log(max(p, 1e-6) / max(1 - p, 1e-6))
    outputs = torch.tensor(np.tile(np.append(mean, logit), (len(val), 1)), dtype=torch.float32)
    targets = torch.tensor(np.concatenate([codec.encode(val.landmarks), val.p_right[:, None]],
                                          axis=1))
    meter = LandmarkMeter(z_scale, alphas, mpjpe)
    meter.update(outputs, targets, {"orig_size": torch.tensor(val.image_size, dtype=torch.float32)})
    return meter.compute()
