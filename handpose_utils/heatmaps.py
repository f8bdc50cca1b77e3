"""Generated from notebooks/06_coco_heatmap_training.ipynb by `python -m handpose_utils.export`.

Edit the notebook's `#@save heatmaps` cells, not this file: the tests check that the two agree."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from handpose_utils.skeletons import COCO_FLIP_INDEX


# --- from notebooks/06_coco_heatmap_training.ipynb ---
def gaussian_heatmap(center, size, sigma: float = 2.0) -> np.ndarray:
    """One joint's target, ``(h, w)`` for ``size = (w, h)``: ``exp(-d^2 / (2 sigma^2))`` around the
    sub-pixel ``center = (x, y)`` (heatmap pixels, not rounded)."""
    w, h = size
    # Separable: exp(-(dx^2 + dy^2) / 2s^2) = exp(-dx^2 / 2s^2) * exp(-dy^2 / 2s^2).
    gx = np.exp(-((np.arange(w) - center[0]) ** 2) / (2 * sigma**2))
    gy = np.exp(-((np.arange(h) - center[1]) ** 2) / (2 * sigma**2))
    return gy[:, None] * gx[None, :]


def gaussian_heatmaps(centres, weight, heatmap_size, sigma: float = 2.0,
                      gaussian=gaussian_heatmap) -> np.ndarray:
    """``(J, h, w)`` float32 targets: ``gaussian(centre, heatmap_size, sigma)`` for each joint of
    ``centres`` ``(J, 2)``, all zero where ``weight`` is 0."""
    w, h = heatmap_size
    maps = np.zeros((len(centres), h, w), np.float32)
    for j in np.flatnonzero(np.asarray(weight) > 0):
        maps[j] = gaussian(np.array(centres[j], float), (w, h), sigma)
    return maps


# --- from notebooks/06_coco_heatmap_training.ipynb ---
DECODE_MODES = ("argmax", "quarter", "dark")


def dark_decode(heatmap) -> tuple[float, float]:
    """DARK on one ``(h, w)`` heatmap: ``(x, y)`` in heatmap pixels, the argmax moved by one Newton
    step on ``D = log H`` (central differences). The argmax itself at the border, or where ``D``
    has no maximum."""
    hm = np.asarray(heatmap, dtype=np.float64)
    h, w = hm.shape
    y, x = np.unravel_index(np.argmax(hm), hm.shape)
    if not (0 < x < w - 1 and 0 < y < h - 1):
        return float(x), float(y)
    D = np.log(np.maximum(hm[y - 1:y + 2, x - 1:x + 2], 1e-10))  # 3x3 around the argmax, D[1, 1]
    gx, gy = 0.5 * (D[1, 2] - D[1, 0]), 0.5 * (D[2, 1] - D[0, 1])
    dxx, dyy = D[1, 2] - 2 * D[1, 1] + D[1, 0], D[2, 1] - 2 * D[1, 1] + D[0, 1]
    dxy = 0.25 * (D[2, 2] - D[2, 0] - D[0, 2] + D[0, 0])
    det = dxx * dyy - dxy**2
    if not (det > 1e-12 and dxx < 0):  # not a maximum: no step
        return float(x), float(y)
    # -H^-1 g with H^-1 = [[dyy, -dxy], [-dxy, dxx]] / det
    return float(x - (dyy * gx - dxy * gy) / det), float(y - (dxx * gy - dxy * gx) / det)


def gaussian_blur(heatmaps: torch.Tensor, kernel: int = 11) -> torch.Tensor:
    """``(B, J, h, w)`` heatmaps blurred by a ``kernel``-wide Gaussian, each peak kept as high."""
    if kernel % 2 != 1:
        raise ValueError(f"blur kernel must be odd, got {kernel}")
    sigma = 0.3 * ((kernel - 1) * 0.5 - 1) + 0.8  # cv2.getGaussianKernel's default for this size
    r = kernel // 2
    t = torch.arange(-r, r + 1, dtype=heatmaps.dtype, device=heatmaps.device)
    g = torch.exp(-(t**2) / (2 * sigma**2))
    g = g / g.sum()
    x = heatmaps.reshape(-1, 1, *heatmaps.shape[-2:])
    peak = x.amax(dim=(2, 3), keepdim=True)
    # Zero padding: a reflected border would add a mirror image of a peak near the edge.
    x = F.conv2d(F.pad(x, (r, r, 0, 0)), g.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, r, r)), g.view(1, 1, -1, 1))
    return (x * peak / x.amax(dim=(2, 3), keepdim=True).clamp_min(1e-12)).reshape(heatmaps.shape)


def argmax_2d(heatmaps: torch.Tensor):
    """The hottest pixel of each ``(B, J, h, w)`` map: ``(px, py, scores, flat_index)``."""
    b, j, h, w = heatmaps.shape
    scores, idx = heatmaps.reshape(b, j, -1).max(dim=-1)
    return (idx % w).float(), torch.div(idx, w, rounding_mode="floor").float(), scores, idx


def quarter_offsets(heatmaps: torch.Tensor, px, py, idx):
    """SimpleBaseline: a quarter pixel towards the hotter neighbour, in x and in y."""
    b, j, h, w = heatmaps.shape
    flat = heatmaps.reshape(b, j, -1)

    def at(dx, dy):
        return flat.gather(-1, (idx + dx + dy * w).clamp(0, w * h - 1)[..., None])[..., 0]

    ox = torch.where((px > 0) & (px < w - 1), 0.25 * torch.sign(at(1, 0) - at(-1, 0)), 0.0)
    oy = torch.where((py > 0) & (py < h - 1), 0.25 * torch.sign(at(0, 1) - at(0, -1)), 0.0)
    return ox, oy


# --- from notebooks/06_coco_heatmap_training.ipynb ---
@dataclass
class HeatmapCodec:
    """Keypoints -> Gaussian heatmaps (``encode``) and back (``decode``). Sizes are ``(width,
    height)``; ``sigma`` in heatmap pixels; ``decode_mode`` one of ``DECODE_MODES``; v = 1 joints
    get ``occluded_weight``; ``gaussian`` draws one target (06.1), ``dark`` refines one peak (06.2)."""

    input_size: tuple[int, int] = (192, 256)
    heatmap_size: tuple[int, int] = (48, 64)
    sigma: float = 2.0
    decode_mode: str = "quarter"
    blur_kernel: int = 11
    occluded_weight: float = 1.0
    flip_index: tuple[int, ...] = COCO_FLIP_INDEX
    gaussian: Callable = field(default=gaussian_heatmap, repr=False)
    dark: Callable = field(default=dark_decode, repr=False)

    def __post_init__(self):
        self.input_size, self.heatmap_size = tuple(map(int, self.input_size)), tuple(map(int, self.heatmap_size))
        if abs((sx := self.input_size[0] / self.heatmap_size[0]) - (sy := self.input_size[1] / self.heatmap_size[1])) > 1e-9:
            raise ValueError(f"input_size {self.input_size} and heatmap_size {self.heatmap_size} have "
                             f"different strides in x ({sx}) and y ({sy}); use one factor (e.g. 4)")
        if self.decode_mode not in DECODE_MODES:
            raise ValueError(f"decode_mode must be one of {DECODE_MODES}, got {self.decode_mode!r}")
        self.flip_index = tuple(self.flip_index)

    @classmethod
    def for_input(cls, input_size=(192, 256), stride: int = 4, **kwargs):
        """A codec for an input of ``(width, height)`` with heatmaps ``stride`` times smaller."""
        if input_size[0] % stride or input_size[1] % stride:
            raise ValueError(f"input size {input_size} is not divisible by the stride {stride}")
        return cls(input_size=input_size, heatmap_size=(input_size[0] // stride, input_size[1] // stride), **kwargs)

    stride = property(lambda self: self.input_size[0] / self.heatmap_size[0])
    num_keypoints = property(lambda self: len(self.flip_index))

    def to_heatmap_coords(self, xy):
        return (xy + 0.5) / self.stride - 0.5

    def to_input_coords(self, hxy):
        return (hxy + 0.5) * self.stride - 0.5

    def encode(self, keypoints, visibility=None) -> tuple[np.ndarray, np.ndarray]:
        """Heatmaps ``(J, h, w)`` and weights ``(J,)`` for one person's ``keypoints`` ``(J, 2)`` in
        crop pixels (or ``(J, 3)`` with v last); unlabelled or outside the map: weight 0, no peak."""
        kp = np.asarray(keypoints, dtype=np.float64)
        if kp.ndim != 2 or kp.shape[1] not in (2, 3):
            raise ValueError(f"keypoints must be (J, 2) or (J, 3), got shape {kp.shape}")
        if visibility is None:
            visibility = kp[:, 2] if kp.shape[1] == 3 else np.full(len(kp), 2)
        v = np.asarray(visibility).reshape(-1)
        v = v.astype(np.float64) * (2 if v.dtype == bool else 1)  # True means "visible" (v = 2)
        if len(v) != len(kp):
            raise ValueError(f"{len(kp)} keypoints but {len(v)} visibility flags")
        hxy = self.to_heatmap_coords(kp[:, :2])
        inside = np.isfinite(hxy).all(1) & (hxy >= -0.5).all(1) & (hxy < np.array(self.heatmap_size) - 0.5).all(1)
        weight = np.where(v >= 2, 1.0, np.where(v > 0, self.occluded_weight, 0.0)) * inside
        return gaussian_heatmaps(hxy, weight, self.heatmap_size, self.sigma, self.gaussian), weight.astype(np.float32)

    def decode(self, heatmaps, mode: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Keypoints ``(B, J, 2)`` in crop pixels and scores ``(B, J)`` (the maxima) of heatmaps
        ``(B, J, h, w)`` (or ``(J, h, w)``); ``mode`` overrides ``decode_mode``."""
        hm = heatmaps.detach().float() if torch.is_tensor(heatmaps) else torch.as_tensor(np.asarray(heatmaps)).float()
        single = hm.dim() == 3
        hm = hm[None] if single else hm
        if hm.dim() != 4:
            raise ValueError(f"heatmaps must be (B, J, h, w) or (J, h, w), got {tuple(hm.shape)}")
        mode = mode or self.decode_mode
        if mode not in DECODE_MODES:
            raise ValueError(f"decode mode must be one of {DECODE_MODES}, got {mode!r}")
        px, py, scores, idx = argmax_2d(hm)
        if mode != "argmax":
            ox, oy = quarter_offsets(hm, px, py, idx) if mode == "quarter" else self.dark_offsets(hm, px, py)
            px, py = px + ox, py + oy
        xy = self.to_input_coords(torch.stack([px, py], dim=-1))
        return (xy[0], scores[0]) if single else (xy, scores)

    def dark_offsets(self, heatmaps: torch.Tensor, px, py):
        """``dark`` on each blurred map, as offsets from the argmax (at most one pixel)."""
        blurred = gaussian_blur(heatmaps.clamp_min(0), self.blur_kernel).clamp(1e-3, 50.0)
        start = torch.stack([px, py], -1).reshape(-1, 2).cpu().numpy().astype(np.float64)
        found = start.copy()
        with np.errstate(all="ignore"):
            for k, m in enumerate(blurred.cpu().numpy().reshape(-1, *heatmaps.shape[-2:])):
                try:
                    found[k] = np.asarray(self.dark(m), dtype=np.float64).reshape(2)
                except (ArithmeticError, ValueError, IndexError):  # e.g. a singular Hessian
                    pass
        off = np.clip(np.nan_to_num(found - start, nan=0.0, posinf=0.0, neginf=0.0), -1, 1)
        off = torch.as_tensor(off, dtype=torch.float32, device=heatmaps.device).reshape(*px.shape, 2)
        return off[..., 0], off[..., 1]

    def flip_keypoints(self, keypoints, visibility=None):
        """The crop's keypoints ``(J, 2)`` and visibility as they are in its mirror image."""
        kp = np.array(keypoints, dtype=np.float64).reshape(-1, 2)
        kp[:, 0] = self.input_size[0] - 1 - kp[:, 0]
        idx = list(self.flip_index)
        return kp[idx], None if visibility is None else np.asarray(visibility).reshape(-1)[idx]

    def flip_heatmaps(self, heatmaps: torch.Tensor, shift: int = 0) -> torch.Tensor:
        """Heatmaps of mirrored crops mapped back (mirror x, swap left/right), then ``shift``
        pixels right (SimpleBaseline's ``shift=1``; this codec needs none)."""
        out = heatmaps.flip(-1)[:, list(self.flip_index)]
        columns = (torch.arange(out.shape[-1]) - shift).clamp(0, out.shape[-1] - 1)
        return out[..., columns] if shift else out  # shifted, the edge column repeats

    def flip_average(self, heatmaps: torch.Tensor, flipped_output: torch.Tensor, shift: int = 0):
        """The flip test: the mean of the crops' heatmaps and their mirror images', mapped back."""
        return 0.5 * (heatmaps + self.flip_heatmaps(flipped_output, shift))

    @torch.no_grad()
    def predict_heatmaps(self, model, images: torch.Tensor, flip_test: bool = True, shift: int = 0):
        """``model``'s float32 heatmaps of normalised ``images`` ``(B, 3, H, W)``, flip-averaged."""
        out = model(images).float()
        return self.flip_average(out, model(images.flip(-1)).float(), shift) if flip_test else out


def measure_decoding_error(codec: HeatmapCodec, n: int = 2000, modes=DECODE_MODES,
                           margin: float = 3.0, seed: int = 0) -> dict[str, np.ndarray]:
    """``{mode: (n,) errors in input pixels}`` of each decoding on *perfect* heatmaps: ``n`` random
    sub-pixel keypoints (``margin`` heatmap pixels from the border) encoded and decoded again."""
    rng = np.random.default_rng(seed)
    w, h = codec.heatmap_size
    xy = codec.to_input_coords(np.c_[rng.uniform(margin, w - 1 - margin, n), rng.uniform(margin, h - 1 - margin, n)])
    maps = torch.from_numpy(np.stack([codec.encode(p[None], [2])[0] for p in xy]))  # (n, 1, h, w)
    return {mode: np.linalg.norm(codec.decode(maps, mode)[0][:, 0].numpy() - xy, axis=-1) for mode in modes}
