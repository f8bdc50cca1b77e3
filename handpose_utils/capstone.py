"""Generated from notebooks/08_real_hands_capstone.ipynb by `python -m handpose_utils.export`.

Edit the notebook's `#@save capstone` cells, not this file: the tests check that the two agree."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from handpose_utils.data import DeviceAugment, colour_jitter
from handpose_utils.heatmaps import HeatmapCodec
from handpose_utils.models import UNetSoftArgmax
from handpose_utils.skeletons import HAND21_FLIP_INDEX

# --- from notebooks/08_real_hands_capstone.ipynb ---
MEAN_COLOUR = (124, 116, 104)  # ImageNet's mean in uint8: 0 after normalisation


def hand_box(keypoints, visible=None, scale: float = 1.5) -> tuple[float, float, int]:
    """Square box ``(x0, y0, side)``, ``scale`` x the visible ``keypoints``' box's long side."""
    kp = np.asarray(keypoints, np.float64).reshape(-1, 2)
    vis = np.ones(len(kp), bool) if visible is None else np.asarray(visible).reshape(-1).astype(bool)
    if vis.sum() < 2:
        raise ValueError(f"hand_box needs at least 2 visible keypoints, got {int(vis.sum())}")
    lo, hi = kp[vis].min(0), kp[vis].max(0)
    side = int(np.ceil(scale * max(hi - lo)))
    cx, cy = (lo + hi) / 2
    return float(cx - side / 2), float(cy - side / 2), side


def to_hand_crop(keypoints, box, size: int) -> np.ndarray:
    x0, y0, side = box
    return (np.asarray(keypoints, np.float64) - (x0, y0) + 0.5) * (size / side) - 0.5


def from_hand_crop(keypoints, box, size: int) -> np.ndarray:
    x0, y0, side = box
    return (np.asarray(keypoints, np.float64) + 0.5) * (side / size) - 0.5 + (x0, y0)


def crop_image(image: np.ndarray, box, size: int) -> np.ndarray:
    """``size x size`` uint8 crop of ``box``: bilinear sub-pixel shift, then area-mean resize."""
    x0, y0, side = box
    # PIL's affine map sends each output pixel (x, y) to the input point (x + x0, y + y0)
    square = Image.fromarray(np.ascontiguousarray(image, np.uint8)).transform(
        (side, side), Image.Transform.AFFINE, (1, 0, x0, 0, 1, y0),
        resample=Image.Resampling.BILINEAR, fillcolor=MEAN_COLOUR)
    resample = Image.Resampling.BOX if size < side else Image.Resampling.BILINEAR  # BOX: area mean
    return np.asarray(square.resize((size, size), resample))


# --- from notebooks/08_real_hands_capstone.ipynb ---
REAL_SOURCES = ("freihand", "rhd", "onehand10k")
PHOTO_SOURCES = ("freihand", "onehand10k")  # RHD is rendered, like our training data


def load_onehand10k(root) -> list[dict]:
    root = Path(root)
    ann_path = root / "annotations.json"
    try:
        data = json.loads(ann_path.read_text())
        images = {im["id"]: im for im in data["images"]}
        annotations = data["annotations"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{ann_path}: not a readable OneHand10K annotation file ({err!r}); it "
                         "needs 'images' and 'annotations' as in COCO") from err
    samples = []
    for ann in annotations:
        kp = np.asarray(ann.get("keypoints", []), np.float64)
        if kp.shape != (63,) or ann.get("image_id") not in images:
            raise ValueError(f"{ann_path}: annotation {ann.get('id')} needs 63 keypoint numbers "
                             f"and a known image_id, got {kp.shape[0]} and {ann.get('image_id')}")
        path = root / "images" / images[ann["image_id"]]["file_name"]
        if not path.is_file():
            raise FileNotFoundError(f"{path} (annotation {ann.get('id')} of {ann_path}) is missing")
        kp = kp.reshape(21, 3)
        samples.append({"image_path": str(path), "keypoints": kp[:, :2], "visible": kp[:, 2] > 0,
                        "source": "onehand10k", "group": f"onehand10k-{ann['image_id']}"})
    return samples


def load_real_hands(real_dir, max_per_source: int | None = None) -> list[dict]:
    """Samples of ``real_dir``'s ``freihand/`` (or a ``FreiHAND_pub_v2`` folder itself; evaluation
    split if there, else training), ``rhd/`` and ``onehand10k/``, each source in whole groups."""
    from handpose_utils.datasets.freihand import find_freihand_root, load_freihand
    from handpose_utils.datasets.rhd import load_rhd
    from handpose_utils.records import keypoints_array, visible_array
    real_dir = Path(real_dir)
    if not real_dir.is_dir():
        raise FileNotFoundError(f"REAL_DIR {real_dir} is not a folder: point it to a folder with "
                                f"any of {', '.join(REAL_SOURCES)} in their native layouts")
    found = {}
    for folder in (real_dir / "freihand", real_dir):
        root = find_freihand_root(folder)
        if (root / "evaluation_xyz.json").is_file() or (root / "training_xyz.json").is_file():
            split = "evaluation" if (root / "evaluation_xyz.json").is_file() else "training"
            found["freihand"] = [{"image_path": r["image_path"], "keypoints": keypoints_array(r),
                                  "visible": np.ones(21, bool), "source": "freihand",
                                  "group": f"freihand-{split}-{r['pose_id']}"}
                                 for r in load_freihand(root, split)]
            break
    if (real_dir / "rhd").is_dir():
        found["rhd"] = [{"image_path": r["image_path"], "keypoints": keypoints_array(r),
                         "visible": visible_array(r).astype(bool), "source": "rhd",
                         "group": f"rhd-{r['sample_id']}"}
                        for r in load_rhd(real_dir / "rhd", "training")]
    if (real_dir / "onehand10k" / "annotations.json").is_file():
        found["onehand10k"] = load_onehand10k(real_dir / "onehand10k")
    if not found:
        raise FileNotFoundError(f"no real hand data in {real_dir}: expected any of "
                                f"{', '.join(f'{s}/' for s in REAL_SOURCES)} in native layouts")
    samples = []
    for source in REAL_SOURCES:
        picked = found.get(source, [])
        if max_per_source is not None and len(picked) > max_per_source:
            # whole groups, spread over the set: never one FreiHAND pose cut in two
            groups = list(dict.fromkeys(s["group"] for s in picked))
            keep, n = set(), 0
            for g in groups[:: max(1, len(groups) * 4 // max_per_source)] + groups:
                if n >= max_per_source:
                    break
                if g not in keep:
                    keep.add(g)
                    n += sum(s["group"] == g for s in picked)
            picked = [s for s in picked if s["group"] in keep]
        samples += picked
    return samples


# --- from notebooks/08_real_hands_capstone.ipynb ---
def crop_cache(samples, boxes, size: int, frame: int = 224, keypoints=None, to_crop=to_hand_crop):
    """An ``ImageCache`` of ``samples`` cropped at ``boxes``, ``orig_size`` ``frame x frame``."""
    from handpose_utils.data import ImageCache
    from handpose_utils.images import read_image
    n = len(samples)
    images = np.zeros((n, size, size, 3), np.uint8)
    kps = np.zeros((n, 21, 2), np.float32)
    vis = np.zeros((n, 21), bool)
    for i, (sample, box) in enumerate(zip(samples, boxes)):
        images[i] = crop_image(read_image(sample["image_path"]), box, size)
        kp = sample["keypoints"] if keypoints is None else keypoints[i]
        kps[i] = to_crop(kp, box, size)
        vis[i] = sample["visible"] if keypoints is None else True
    return ImageCache(images=images, keypoints=kps, visible=vis,
                      orig_size=np.full((n, 2), frame, np.int64), record_index=np.arange(n), size=size)


# --- from notebooks/08_real_hands_capstone.ipynb ---
class UNetDirect(UNetSoftArgmax):
    def __init__(self, num_outputs: int = 42, width: int = 16):
        super().__init__(num_outputs, width)
        del self.up8, self.up4, self.heatmaps  # unused: no parameters counted that do nothing
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8 * width, 256),
                                  nn.ReLU(inplace=True), nn.Linear(256, num_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.down16(self.down8(self.down4(self.down2(x)))))


class UNetHeatmap(UNetSoftArgmax):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x)


def hand_codec(input_size: int, sigma: float = 1.5, stride: int = 4) -> HeatmapCodec:
    """Notebook 06's codec for square hand crops: DARK decoding, HAND21 (no left/right swap)."""
    return HeatmapCodec.for_input((input_size, input_size), stride=stride, sigma=sigma,
                                  decode_mode="dark", flip_index=HAND21_FLIP_INDEX)


def gaussian_targets(keypoints: torch.Tensor, codec: HeatmapCodec):
    """Heatmaps ``(B, J, h, w)`` and weights ``(B, J)`` (0 off the map) of pixel ``keypoints``."""
    w, h = codec.heatmap_size
    hxy = codec.to_heatmap_coords(keypoints.float())  # (B, J, 2) heatmap pixels
    xs = torch.arange(w, device=keypoints.device, dtype=torch.float32)
    ys = torch.arange(h, device=keypoints.device, dtype=torch.float32)
    gx = torch.exp(-(xs - hxy[..., :1]) ** 2 / (2 * codec.sigma**2))  # (B, J, w)
    gy = torch.exp(-(ys - hxy[..., 1:]) ** 2 / (2 * codec.sigma**2))  # (B, J, h)
    inside = ((hxy[..., 0] >= -0.5) & (hxy[..., 0] < w - 0.5) & (hxy[..., 1] >= -0.5)
              & (hxy[..., 1] < h - 0.5))
    weight = inside.float()
    return gy[..., :, None] * gx[..., None, :] * weight[..., None, None], weight


# --- from notebooks/08_real_hands_capstone.ipynb ---
def pck_with_misses(pred, gt, threshold: float, visible=None) -> float:
    """The fraction of the labelled joints (``visible``, default all) within ``threshold`` px of
    ``gt``. A missed image has NaN predictions: ``NaN <= t`` is False, so they count as wrong."""
    dist = np.linalg.norm(np.asarray(pred, np.float64) - np.asarray(gt, np.float64), axis=-1)
    vis = np.ones(dist.shape, bool) if visible is None else np.asarray(visible, bool)
    n = int(vis.sum())  # no labelled joint: nothing to score, so NaN (undefined)
    return float(((dist <= threshold) & vis).sum() / n) if n else float("nan")


def score_points(pred, gt, visible=None, frame: int = 224, alpha: float = 0.05,
                 thresholds=tuple(range(31)), pck=pck_with_misses) -> dict:
    """PCK@alpha (of ``frame``), PCK curve (both with ``pck``), its AUC, EPE px, detection rate
    over the ``visible`` joints. A missed image (NaN) is wrong in PCK and AUC, left out of EPE."""
    pred = torch.as_tensor(pred, dtype=torch.float64).cpu().numpy()
    gt = torch.as_tensor(gt, dtype=torch.float64).cpu().numpy()
    vis = (np.ones(gt.shape[:2], bool) if visible is None
           else torch.as_tensor(visible).bool().cpu().numpy())
    found = np.isfinite(pred).all((1, 2))  # (N,)
    dist = np.linalg.norm(pred - gt, axis=-1)  # (N, J), NaN for a miss
    curve = [float(pck(pred, gt, t, vis)) for t in thresholds]
    auc = float(np.trapezoid(curve, thresholds) / (thresholds[-1] - thresholds[0]))
    seen = vis & found[:, None]
    return {"PCK@0.05": float(pck(pred, gt, alpha * frame, vis)), "AUC": auc,
            "EPE px": float(dist[seen].mean()) if seen.any() else float("nan"),
            "detected": float(found.mean()), "curve": curve}


@torch.no_grad()
def predict_points(model, cache, to_points, batch_size: int = 64, channels_last: bool = True):
    """Keypoints ``(N, J, 2)`` in the original-size pixels of every ``cache`` image, images/s."""
    import time

    from handpose_utils.data import DeviceAugment, PrepareBatch, cached_loader
    device = next(model.parameters()).device
    prepare = PrepareBatch(DeviceAugment())
    model.eval()
    warm = next(iter(cached_loader(cache, batch_size)))  # the first batch pays for set-up
    model(prepare(warm, device, train=False)[0])
    if device.type == "cuda":
        torch.cuda.synchronize()
    out, start = [], time.perf_counter()
    for batch in cached_loader(cache, batch_size):
        inputs, _, extras = prepare(batch, device, train=False)
        if channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        out.append(to_points(model(inputs), extras).float().cpu())
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return torch.cat(out), len(cache) / max(seconds, 1e-9)


def teacher_points(samples, boxes, frame: int = 224, to_crop=to_hand_crop, **kwargs) -> np.ndarray:
    """MediaPipe's hand nearest each box's centre, in its ``frame`` crop (NaN if none)."""
    from handpose_utils.images import read_image
    from handpose_utils.mediapipe_labels import detect_hands
    out = np.full((len(samples), 21, 2), np.nan)
    for i, (sample, box) in enumerate(zip(samples, boxes)):
        image = sample["image"] if "image" in sample else read_image(sample["image_path"])
        hands = detect_hands(image, **kwargs)
        if hands:
            centre = np.array(box[:2]) + box[2] / 2
            best = min(hands, key=lambda h: np.linalg.norm(h["keypoints"].mean(0) - centre))
            out[i] = to_crop(best["keypoints"], box, frame)
    return out


# --- from notebooks/08_real_hands_capstone.ipynb ---
class AppearanceAugment(DeviceAugment):
    """DeviceAugment plus colour mix, gamma, grey, blur and noise: no pixel moves."""

    def __init__(self, *args, mix: float = 0.25, gamma: float = 0.4, gray_p: float = 0.15,
                 blur_p: float = 0.3, noise: float = 0.04, **kwargs):
        super().__init__(*args, **kwargs)
        self.mix, self.gamma, self.gray_p, self.blur_p, self.noise = mix, gamma, gray_p, blur_p, noise

    def extra_repr(self) -> str:
        return (super().extra_repr() + f", mix={self.mix}, gamma={self.gamma}, "
                f"gray_p={self.gray_p}, blur_p={self.blur_p}, noise={self.noise}")

    def _jitter(self, x: torch.Tensor, generator) -> torch.Tensor:
        x = super()._jitter(x, generator)  # brightness, contrast, saturation
        b = x.shape[0]

        def rand(*shape):
            return torch.rand(*shape, generator=generator).to(x.device)

        mix = torch.eye(3, device=x.device) + self.mix * (2 * rand(b, 3, 3) - 1)
        mix = mix / mix.sum(-1, keepdim=True)  # each output channel keeps grey grey
        x = torch.einsum("bij,bjhw->bihw", mix, x).clamp(0, 1)
        gamma = 1 + self.gamma * (2 * rand(b, 1, 1, 1) - 1)
        x = x.clamp_min(1e-6) ** gamma
        x = colour_jitter(x, grayscale_p=self.gray_p, generator=generator)
        blurred = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
        x = torch.where(rand(b, 1, 1, 1) < self.blur_p, blurred, x)
        sigma = self.noise * rand(b, 1, 1, 1)
        x = x + sigma * torch.randn(x.shape, generator=generator).to(x.device)
        return x.clamp(0, 1)
