"""A camera's effects on a composited render: white balance and exposure, vignetting, defocus,
motion blur and sensor noise, each drawn at random within the ranges real photos cover.

The image stays in sRGB values: with the power-law approximation (linear = sRGB ** 2.2), a gain
in linear light is the same as the gain ** (1 / 2.2) on sRGB values, so no conversion is needed."""

from __future__ import annotations

import numpy as np
from PIL import Image


def jpeg_quality(rng: np.random.Generator) -> int:
    """A JPEG quality like phone and web photos'."""
    return int(rng.integers(60, 96))


def _shifted_sum(img: np.ndarray, shifts: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Sum of ``weights``-weighted copies of ``img`` shifted by integer ``shifts`` (dy, dx);
    the border is extended so that the edges do not darken."""
    r = int(np.abs(shifts).max())
    padded = np.pad(img, ((r, r), (r, r), (0, 0)), mode="edge")
    h, w = img.shape[:2]
    out, term = np.zeros_like(img), np.empty_like(img)
    for (dy, dx), weight in zip(shifts, weights):
        out += np.multiply(padded[r + dy:r + dy + h, r + dx:r + dx + w], weight, out=term)
    return out


def camera_effects(img: np.ndarray, rng: np.random.Generator, *, white_balance=True,
                   vignette=True, defocus=True, motion_blur=True, noise=True) -> np.ndarray:
    """(H, W, 3) float image in 0..1 (the composited photo, before quantisation) -> the same, float32,
    with a camera's effects. Each effect draws its parameters from ``rng`` only when switched on,
    always in the same order, so a given seed and set of switches gives the same photo."""
    if not (isinstance(img, np.ndarray) and img.ndim == 3 and img.shape[2] == 3
            and np.issubdtype(img.dtype, np.floating)):
        raise ValueError(f"img must be an (H, W, 3) float array, got {type(img).__name__} "
                         f"{getattr(img, 'shape', '')} {getattr(img, 'dtype', '')}; "
                         "for a uint8 photo pass img / 255")
    if not (img.min() >= 0 and img.max() <= 1):  # also catches NaN
        raise ValueError(f"img must hold values in 0..1 (got {img.min()}..{img.max()}); "
                         "clip it, or divide a 0..255 image by 255")
    out = img.astype(np.float32, copy=True)
    h, w = out.shape[:2]
    side = min(h, w)
    # Optics first (vignetting, blur), then the sensor (noise), then the camera's processing
    # (white balance and exposure gains, which scale the noise too, as in a real camera).
    if vignette and rng.random() < 0.8:
        strength = rng.uniform(0, 0.35)
        cy, cx = (h - 1) / 2 + rng.uniform(-0.1, 0.1) * h, (w - 1) / 2 + rng.uniform(-0.1, 0.1) * w
        r2 = ((np.arange(h, dtype=np.float32) - np.float32(cy)) ** 2)[:, None] + (
            (np.arange(w, dtype=np.float32) - np.float32(cx)) ** 2)
        out *= (1 - np.float32(strength / r2.max()) * r2)[..., None]
    if defocus and rng.random() < 0.35:
        sigma = rng.uniform(0.1, 0.6) * 0.01 * side
        k = np.arange(-int(np.ceil(3 * sigma)), int(np.ceil(3 * sigma)) + 1)
        weights = np.exp(-0.5 * (k / sigma) ** 2)
        weights /= weights.sum()
        zeros = np.zeros_like(k)
        out = _shifted_sum(_shifted_sum(out, np.stack([zeros, k], 1), weights),
                           np.stack([k, zeros], 1), weights)
    if motion_blur and rng.random() < 0.25:
        length, angle = rng.uniform(0, 0.015) * side, rng.uniform(0, np.pi)
        step = np.array([np.sin(angle), np.cos(angle)])
        step /= np.abs(step).max()  # one pixel per tap along the line's main axis
        m = int(round(length / 2 / np.hypot(*step)))
        # Taps at -m..m, rounded symmetrically: the kernel is centred, so no keypoint moves.
        shifts = np.rint(np.arange(-m, m + 1)[:, None] * step).astype(int)
        out = _shifted_sum(out, shifts, np.full(2 * m + 1, 1 / (2 * m + 1)))
    if noise:
        # Variance a * signal + b (shot + read noise); ``level`` is the std at mid grey, from a
        # clean photo to a dim phone photo.
        level, shot = np.exp(rng.uniform(np.log(0.002), np.log(0.04))), rng.uniform(0.5, 0.95)
        # Uniform draws (u - 0.5) * std * sqrt(12) have the variance wanted: a third of the cost
        # of normal draws, and at these levels, quantised, they look the same.
        std = np.sqrt(out * np.float32(24 * shot * level ** 2) + np.float32(12 * (1 - shot) * level ** 2))
        draws = rng.random(out.shape, dtype=np.float32)
        draws -= np.float32(0.5)
        draws *= std
        out += draws
        if rng.random() < 0.3:  # chroma noise: low-frequency colour blotches, no brightness
            coarse = rng.standard_normal((3, h // 4 + 1, w // 4 + 1), dtype=np.float32)
            coarse -= coarse.mean(0)  # before resizing: cheaper, and the same result
            blotches = np.stack([np.asarray(Image.fromarray(c).resize((w, h), Image.BILINEAR))
                                 for c in coarse], -1)
            out += blotches * np.float32(rng.uniform(0.2, 0.6) * level)
    if white_balance:
        # Log gains in linear light: warm tungsten (t < 0: red up, blue down) to cool daylight,
        # a green/magenta tint, and an exposure of -0.5..+0.3 stops.
        t, tint, stops = rng.uniform(-1, 1), rng.uniform(-0.05, 0.05), rng.uniform(-0.5, 0.3)
        log_gain = np.array([-0.25 * t, tint, 0.25 * t]) + stops * np.log(2)
        out *= np.exp(log_gain / 2.2).astype(np.float32)
    return np.clip(out, 0, 1, out=out)
