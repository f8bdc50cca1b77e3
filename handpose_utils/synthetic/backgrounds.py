"""Procedural backgrounds: no downloads, varied enough that a model must find the hand.

FreiHAND shows each pose four times: on the green screen it was recorded on ("gs") and composited
onto three other backgrounds ("hom", "sample", "auto"). :func:`green_screen` stands in for the
first, :func:`random_background` for the others."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int, channels: int = 3):
    """Value noise: a coarse random grid upsampled bicubically, in 0..1."""
    grid = rng.uniform(0, 255, size=(cells, cells, channels)).astype(np.uint8)
    im = Image.fromarray(grid.squeeze() if channels == 1 else grid)
    return np.asarray(im.resize((w, h), Image.BICUBIC), np.float32) / 255.0


def _gradient(rng, h, w):
    c0, c1 = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.ogrid[0:h, 0:w]
    t = ((np.cos(angle) * xs + np.sin(angle) * ys) / max(h, w) + 0.5) % 1.0
    t = t.astype(np.float32)[..., None]
    return (c0 * (1 - t) + c1 * t).astype(np.float32)


def green_screen(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A lit green screen with a vignette and a little sensor noise, (H, W, 3) float in 0..1."""
    green = np.array([rng.uniform(0.1, 0.3), rng.uniform(0.55, 0.8), rng.uniform(0.15, 0.35)])
    ys, xs = np.ogrid[0:h, 0:w]
    cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
    r = (np.hypot(ys - cy, xs - cx) / max(h, w)).astype(np.float32)
    light = 1.0 - rng.uniform(0.2, 0.5) * r**2
    return np.clip(green * light[..., None] * (0.92 + 0.16 * _smooth_noise(rng, h, w, 4)), 0, 1)


def _texture(rng, h, w):
    kind = rng.integers(5)
    if kind == 0:  # soft colour clouds
        return 0.15 + 0.75 * _smooth_noise(rng, h, w, int(rng.integers(3, 9)))
    if kind == 1:  # stripes or checks, rotated
        c0, c1 = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
        period = rng.uniform(8, 40)
        a = rng.uniform(0, np.pi)
        ys, xs = np.mgrid[0:h, 0:w]
        s = np.sin((np.cos(a) * xs + np.sin(a) * ys) * 2 * np.pi / period)
        if rng.uniform() < 0.5:
            s = s * np.sin((-np.sin(a) * xs + np.cos(a) * ys) * 2 * np.pi / period)
        return np.where((s > 0)[..., None], c0, c1) * (0.85 + 0.15 * _smooth_noise(rng, h, w, 5))
    if kind == 2:  # fine multi-octave noise, like fabric or gravel
        img = sum(_smooth_noise(rng, h, w, c) / (i + 1) for i, c in enumerate((4, 16, 56)))
        return np.clip(img / 1.83, 0, 1) * rng.uniform(0.5, 1.0, 3)
    if kind == 3:  # a room: gradient wall with a table edge
        img = _gradient(rng, h, w)
        edge = int(rng.uniform(0.5, 0.95) * h)
        img[edge:] = rng.uniform(0, 1, 3) * (0.8 + 0.2 * _smooth_noise(rng, h - edge, w, 6))
        return img
    return _gradient(rng, h, w)


def random_background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A textured background, (H, W, 3) float in 0..1, most often cluttered with random shapes."""
    img = _texture(rng, h, w)
    if rng.uniform() < 0.6:
        im = Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))
        draw = ImageDraw.Draw(im)
        for _ in range(rng.integers(2, 9)):
            color = tuple(int(c) for c in rng.integers(0, 256, 3))
            x0, y0 = rng.uniform(-0.2, 1.0) * w, rng.uniform(-0.2, 1.0) * h
            x1, y1 = x0 + rng.uniform(0.05, 0.6) * w, y0 + rng.uniform(0.05, 0.6) * h
            shape = rng.integers(3)
            if shape == 0:
                draw.rectangle([x0, y0, x1, y1], fill=color)
            elif shape == 1:
                draw.ellipse([x0, y0, x1, y1], fill=color)
            else:
                draw.line([x0, y0, x1, y1], fill=color, width=int(rng.integers(2, 10)))
        img = np.asarray(im, np.float32) / 255.0
    return np.clip(img, 0, 1).astype(np.float32)
