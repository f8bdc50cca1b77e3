"""Generated from notebooks/06_coco_heatmap_training.ipynb by `python -m handpose_utils.export`.

Edit the notebook's `#@save heatmaps` cells, not this file: the tests check that the two agree."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from handpose_utils.skeletons import COCO_FLIP_INDEX


# --- from notebooks/06_coco_heatmap_training.ipynb ---
def gaussian_heatmaps(centres, weight, heatmap_size, sigma: float = 2.0) -> np.ndarray:
    """``(J, h, w)`` float32 heatmaps, one Gaussian ``exp(-d^2 / (2 sigma^2))`` per joint at its
    sub-pixel ``centres`` ``(J, 2)`` (heatmap pixels, not rounded); all zero where ``weight`` is 0.
    """
    w, h = heatmap_size
    centres = np.where(np.asarray(weight)[:, None] > 0, centres, 0.0)  # no NaNs from empty joints
    xs = np.arange(w, dtype=np.float64)
    ys = np.arange(h, dtype=np.float64)
    # Separable: exp(-(dx^2 + dy^2) / 2s^2) = exp(-dx^2 / 2s^2) * exp(-dy^2 / 2s^2), so two 1D
    # profiles and an outer product instead of a 2D exp per pixel.
    gx = np.exp(-((xs[None, :] - centres[:, :1]) ** 2) / (2 * sigma**2))
    gy = np.exp(-((ys[None, :] - centres[:, 1:]) ** 2) / (2 * sigma**2))
    heatmaps = gy[:, :, None] * gx[:, None, :]
    heatmaps *= (np.asarray(weight) > 0)[:, None, None]
    return heatmaps.astype(np.float32)


# --- from notebooks/06_coco_heatmap_training.ipynb ---
DECODE_MODES = ("argmax", "quarter", "dark")


def gaussian_blur(heatmaps: torch.Tensor, kernel: int = 11) -> torch.Tensor:
    """Blur ``(B, J, h, w)`` heatmaps with a ``kernel`` x ``kernel`` Gaussian (OpenCV's sigma for
    that size, zero borders), then rescale each map so its maximum is unchanged (as MMPose's
    DARK does: the blur smooths the shape, the peak height stays the confidence)."""
    if kernel % 2 != 1:
        raise ValueError(f"blur kernel must be odd, got {kernel}")
    sigma = 0.3 * ((kernel - 1) * 0.5 - 1) + 0.8  # cv2.getGaussianKernel's default for this size
    r = kernel // 2
    t = torch.arange(-r, r + 1, dtype=heatmaps.dtype, device=heatmaps.device)
    g = torch.exp(-(t**2) / (2 * sigma**2))
    g = g / g.sum()
    b, j, h, w = heatmaps.shape
    x = heatmaps.reshape(b * j, 1, h, w)
    peak = x.amax(dim=(2, 3), keepdim=True)
    # Zero padding, as MMPose: a reflected border would add a mirror image of a peak near the
    # edge and pull the blurred maximum towards it.
    x = F.conv2d(F.pad(x, (r, r, 0, 0)), g.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, r, r)), g.view(1, 1, -1, 1))
    x = x * peak / x.amax(dim=(2, 3), keepdim=True).clamp_min(1e-12)
    return x.reshape(b, j, h, w)


def argmax_2d(heatmaps: torch.Tensor):
    """The hottest pixel of each ``(B, J, h, w)`` map: ``(px, py, scores, flat_index)``."""
    b, j, h, w = heatmaps.shape
    scores, idx = heatmaps.reshape(b, j, -1).max(dim=-1)
    px = (idx % w).float()
    py = torch.div(idx, w, rounding_mode="floor").float()
    return px, py, scores, idx


def quarter_offsets(heatmaps: torch.Tensor, px, py, idx):
    """SimpleBaseline: a quarter pixel towards the hotter neighbour, in x and in y, where both
    neighbours exist."""
    b, j, h, w = heatmaps.shape
    flat = heatmaps.reshape(b, j, -1)

    def at(dx, dy):
        k = (idx + dx + dy * w).clamp(0, w * h - 1)
        return flat.gather(-1, k[..., None])[..., 0]

    in_x = (px > 0) & (px < w - 1)
    in_y = (py > 0) & (py < h - 1)
    ox = torch.where(in_x, 0.25 * torch.sign(at(1, 0) - at(-1, 0)), torch.zeros_like(px))
    oy = torch.where(in_y, 0.25 * torch.sign(at(0, 1) - at(0, -1)), torch.zeros_like(py))
    return ox, oy


def dark_offsets(heatmaps: torch.Tensor, px, py, blur_kernel: int = 11):
    """DARK: the Newton step ``-H^-1 g`` of the log of the blurred heatmap at the argmax."""
    b, j, h, w = heatmaps.shape
    log = torch.log(gaussian_blur(heatmaps.clamp_min(0), blur_kernel).clamp(1e-3, 50.0))
    pad = F.pad(log.reshape(b * j, 1, h, w), (2, 2, 2, 2), mode="replicate").reshape(b, j, -1)
    wp = w + 4
    x = px.long() + 2
    y = py.long() + 2

    def at(dx, dy):
        return pad.gather(-1, ((y + dy) * wp + (x + dx))[..., None])[..., 0]

    # Central differences: the gradient g and the Hessian H of D = log(heatmap) at the argmax.
    c = at(0, 0)
    dx = 0.5 * (at(1, 0) - at(-1, 0))
    dy = 0.5 * (at(0, 1) - at(0, -1))
    dxx = 0.25 * (at(2, 0) - 2 * c + at(-2, 0))
    dyy = 0.25 * (at(0, 2) - 2 * c + at(0, -2))
    dxy = 0.25 * (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1))
    det = dxx * dyy - dxy**2
    # Only step where the quadratic has a maximum (negative definite Hessian); a step longer
    # than one pixel means the quadratic model does not hold there, so it is clipped.
    ok = (det > 1e-12) & (dxx < 0)
    safe = torch.where(ok, det, torch.ones_like(det))
    ox = -(dyy * dx - dxy * dy) / safe  # -H^-1 g with H^-1 = [[dyy, -dxy], [-dxy, dxx]] / det
    oy = -(dxx * dy - dxy * dx) / safe
    zero = torch.zeros_like(ox)
    return torch.where(ok, ox, zero).clamp(-1, 1), torch.where(ok, oy, zero).clamp(-1, 1)


# --- from notebooks/06_coco_heatmap_training.ipynb ---
def _as_tensor(x) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().float()
    return torch.as_tensor(np.asarray(x), dtype=torch.float32)


@dataclass
class HeatmapCodec:
    """Encode keypoints as Gaussian heatmaps and decode heatmaps back into keypoints.

    ``input_size`` and ``heatmap_size`` are ``(width, height)``: 192x256 in, 48x64 out by default
    (stride 4). ``sigma`` is in heatmap pixels. ``decode_mode`` is ``"argmax"``, ``"quarter"``
    (default, SimpleBaseline) or ``"dark"``; ``blur_kernel`` is DARK's blur size.
    ``occluded_weight`` is the target weight of labelled-but-occluded joints (v = 1; visible ones,
    v = 2, get 1). ``flip_index`` swaps left and right channels in the flip test.
    """

    input_size: tuple[int, int] = (192, 256)
    heatmap_size: tuple[int, int] = (48, 64)
    sigma: float = 2.0
    decode_mode: str = "quarter"
    blur_kernel: int = 11
    occluded_weight: float = 1.0
    flip_index: tuple[int, ...] = COCO_FLIP_INDEX

    def __post_init__(self):
        self.input_size = tuple(int(v) for v in self.input_size)
        self.heatmap_size = tuple(int(v) for v in self.heatmap_size)
        sx = self.input_size[0] / self.heatmap_size[0]
        sy = self.input_size[1] / self.heatmap_size[1]
        if abs(sx - sy) > 1e-9:
            raise ValueError(
                f"input_size {self.input_size} and heatmap_size {self.heatmap_size} have different "
                f"strides in x ({sx}) and y ({sy}); use the same factor (e.g. 4) for both")
        if self.decode_mode not in DECODE_MODES:
            raise ValueError(f"decode_mode must be one of {DECODE_MODES}, got {self.decode_mode!r}")
        self.flip_index = tuple(self.flip_index)

    @classmethod
    def for_input(cls, input_size=(192, 256), stride: int = 4, **kwargs):
        """A codec for an input of ``(width, height)`` with heatmaps ``stride`` times smaller."""
        w, h = input_size
        if w % stride or h % stride:
            raise ValueError(f"input size {input_size} is not divisible by the stride {stride}")
        return cls(input_size=(w, h), heatmap_size=(w // stride, h // stride), **kwargs)

    @property
    def stride(self) -> float:
        return self.input_size[0] / self.heatmap_size[0]

    @property
    def num_keypoints(self) -> int:
        return len(self.flip_index)

    def to_heatmap_coords(self, xy):
        """Input-crop pixels to heatmap pixels: ``h = (x + 0.5) / stride - 0.5``."""
        return (xy + 0.5) / self.stride - 0.5

    def to_input_coords(self, hxy):
        """Heatmap pixels to input-crop pixels: ``x = (h + 0.5) * stride - 0.5``."""
        return (hxy + 0.5) * self.stride - 0.5

    def encode(self, keypoints, visibility=None) -> tuple[np.ndarray, np.ndarray]:
        """Heatmaps ``(J, h, w)`` and target weights ``(J,)`` (float32) for one person:
        ``keypoints`` ``(J, 2)`` in input-crop pixels (or ``(J, 3)`` with COCO's v last),
        ``visibility`` COCO's v (0 unlabelled, 1 occluded, 2 visible; booleans work too).
        A joint that is unlabelled or outside the heatmap gets weight 0 and an empty map."""
        kp = np.asarray(keypoints, dtype=np.float64)
        if kp.ndim != 2 or kp.shape[1] not in (2, 3):
            raise ValueError(f"keypoints must be (J, 2) or (J, 3), got shape {kp.shape}")
        if visibility is None:
            visibility = kp[:, 2] if kp.shape[1] == 3 else np.full(len(kp), 2)
        v = np.asarray(visibility).reshape(-1)
        v = v.astype(np.float64) * (2 if v.dtype == bool else 1)  # True means "visible" (v = 2)
        if len(v) != len(kp):
            raise ValueError(f"{len(kp)} keypoints but {len(v)} visibility flags")
        w, h = self.heatmap_size
        hxy = self.to_heatmap_coords(kp[:, :2])
        inside = (hxy[:, 0] >= -0.5) & (hxy[:, 0] < w - 0.5) & (hxy[:, 1] >= -0.5) & \
                 (hxy[:, 1] < h - 0.5) & np.isfinite(hxy).all(1)
        weight = np.where(v >= 2, 1.0, np.where(v > 0, self.occluded_weight, 0.0)) * inside
        return gaussian_heatmaps(hxy, weight, self.heatmap_size, self.sigma), weight.astype(np.float32)

    def decode(self, heatmaps, mode: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Keypoints ``(B, J, 2)`` in input-crop pixels and scores ``(B, J)`` (the heatmap maxima)
        from heatmaps ``(B, J, h, w)`` (``(J, h, w)`` gives ``(J, 2)``); ``mode`` overrides
        ``decode_mode``. Returns float32 tensors on the heatmaps' device."""
        hm = _as_tensor(heatmaps)
        single = hm.dim() == 3
        if single:
            hm = hm[None]
        if hm.dim() != 4:
            raise ValueError(f"heatmaps must be (B, J, h, w) or (J, h, w), got {tuple(hm.shape)}")
        mode = mode or self.decode_mode
        if mode not in DECODE_MODES:
            raise ValueError(f"decode mode must be one of {DECODE_MODES}, got {mode!r}")
        px, py, scores, idx = argmax_2d(hm)
        if mode == "quarter":
            ox, oy = quarter_offsets(hm, px, py, idx)
            px, py = px + ox, py + oy
        elif mode == "dark":
            ox, oy = dark_offsets(hm, px, py, self.blur_kernel)
            px, py = px + ox, py + oy
        xy = self.to_input_coords(torch.stack([px, py], dim=-1))
        return (xy[0], scores[0]) if single else (xy, scores)

    def flip_keypoints(self, keypoints, visibility=None):
        """Keypoints ``(J, 2)`` of the crop as they are in its mirror image: ``x -> W - 1 - x``
        and left/right joints swapped. Returns ``(keypoints, visibility)`` (arrays)."""
        kp = np.array(keypoints, dtype=np.float64).reshape(-1, 2)
        kp[:, 0] = self.input_size[0] - 1 - kp[:, 0]
        idx = list(self.flip_index)
        v = None if visibility is None else np.asarray(visibility).reshape(-1)[idx]
        return kp[idx], v

    def flip_heatmaps(self, heatmaps: torch.Tensor, shift: int = 0) -> torch.Tensor:
        """Heatmaps predicted for a mirrored input, mapped back: mirror the x axis and swap
        left/right channels. ``shift`` moves the result right by that many heatmap pixels
        (``shift=1`` is SimpleBaseline's ``SHIFT_HEATMAP``; this codec needs ``shift=0``)."""
        out = heatmaps.flip(-1)[:, list(self.flip_index)]
        if shift:
            out = torch.roll(out, shifts=shift, dims=-1)
            if shift > 0:
                out[..., :shift] = out[..., shift:shift + 1]  # SimpleBaseline copies the edge
            else:
                out[..., shift:] = out[..., shift - 1:shift]
        return out

    def flip_average(self, heatmaps: torch.Tensor, flipped_output: torch.Tensor,
                     shift: int = 0) -> torch.Tensor:
        """The flip test: the mean of the heatmaps for the image and, mapped back with
        :meth:`flip_heatmaps`, those for its mirror image."""
        return 0.5 * (heatmaps + self.flip_heatmaps(flipped_output, shift))

    @torch.no_grad()
    def predict_heatmaps(self, model, images: torch.Tensor, flip_test: bool = True,
                         shift: int = 0) -> torch.Tensor:
        """Run ``model`` on normalised ``images`` ``(B, 3, H, W)``; with ``flip_test`` also on the
        mirrored images, averaged as in :meth:`flip_average`. Returns float32 heatmaps."""
        out = model(images).float()
        if flip_test:
            out = self.flip_average(out, model(images.flip(-1)).float(), shift)
        return out


def measure_decoding_error(codec: HeatmapCodec, n: int = 2000, modes=DECODE_MODES,
                           margin: float = 3.0, seed: int = 0) -> dict[str, np.ndarray]:
    """How far each decoding lands from the truth on *perfect* heatmaps: ``n`` random sub-pixel
    keypoints (at least ``margin`` heatmap pixels from the border) encoded and decoded again.
    Returns ``{mode: (n,) errors in input pixels}``."""
    rng = np.random.default_rng(seed)
    w, h = codec.heatmap_size
    hxy = np.c_[rng.uniform(margin, w - 1 - margin, n), rng.uniform(margin, h - 1 - margin, n)]
    xy = codec.to_input_coords(hxy)
    maps = np.stack([codec.encode(p[None], [2])[0][0] for p in xy])[:, None]  # (n, 1, h, w)
    errors = {}
    for mode in modes:
        got, _ = codec.decode(torch.from_numpy(maps), mode)
        errors[mode] = np.linalg.norm(got[:, 0].numpy() - xy, axis=-1)
    return errors
