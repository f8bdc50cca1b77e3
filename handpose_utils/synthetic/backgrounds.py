"""Procedural backgrounds: no downloads, varied enough that a model must find the hand.

FreiHAND shows each pose four times: on the green screen it was recorded on ("gs") and composited
onto three other backgrounds ("hom", "sample", "auto"). :func:`green_screen` stands in for the
first, :func:`random_background` for the others."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter


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


_WOOD = np.array([0.56, 0.38, 0.23])  # a mid brown, scaled from dark walnut to pale birch


def _muted(rng, lo, hi, tint=0.07):
    """A desaturated colour: a grey of brightness lo..hi nudged a little towards a random hue."""
    return np.clip(rng.uniform(lo, hi) * (1 + rng.normal(0, tint, 3)), 0, 1)


def _rgb(c):
    return tuple(int(v) for v in np.clip(np.asarray(c) * 255, 0, 255))


def _image(a, h, w):
    """A float (h', w', 3) array in 0..1 as an RGB image stretched to (w, h)."""
    return Image.fromarray((np.clip(a, 0, 1) * 255).astype(np.uint8)).resize((w, h), Image.BILINEAR)


def _blur(im, sigma):
    """A Gaussian blur, a wide one on a reduced copy: it looks the same, and PIL's blur costs as
    much at every radius."""
    k = max(1, round(sigma / 1.5))
    small = im.reduce(k).filter(ImageFilter.GaussianBlur(sigma / k))
    return small.resize(im.size, Image.BILINEAR) if k > 1 else small


def _surface(rng, h, w, top):
    """A desk or floor whose far edge is row ``top``, (h, w, 3): wood grain bunching up towards the
    far edge (perspective), laminate, paper or a fabric's fine weave."""
    kind = rng.integers(4)
    color = [_WOOD * rng.uniform(0.45, 1.4), _muted(rng, 0.5, 0.95), _muted(rng, 0.85, 1),
             _muted(rng, 0.25, 0.7, 0.1)][kind]
    near = np.log1p(np.maximum(np.arange(h) - top, 0) * rng.uniform(10, 60) / h)
    grain = np.interp(near * rng.uniform(15, 40), np.arange(200), rng.uniform(0, 1, 200))
    pattern = grain[:, None] + 0.4 * _smooth_noise(rng, h, w, 48, 1) - 0.7
    if kind == 3:
        pattern = _smooth_noise(rng, h, w, max(w // 3, 8), 1) - 0.5
    return color * (1 + [rng.uniform(0.15, 0.35), 0.04, 0.03, 0.25][kind] * pattern)[..., None]


def _clutter(draw, shadow, rng, x, y, s):
    """An object about ``s`` wide on row ``y``: a sheet of paper, or with a soft contact shadow a
    book, box or screen (a front face, a lit top, a darker side) or a mug or bottle (a cylinder lit
    from one side) trailing a cable."""
    c = _WOOD * rng.uniform(0.45, 1.4) if rng.uniform() < 0.2 else _muted(rng, 0.1, 0.9, 0.25)
    w = s * rng.uniform(0.25, 1.2)
    top = y - w * rng.uniform(0.3, 2.5)
    if rng.uniform() < 0.15:  # a sheet of paper lying flat, foreshortened, casting no shadow
        sheet = [(x, y), (x + w, y), (x + 1.1 * w, y - 0.3 * w), (x + 0.1 * w, y - 0.3 * w)]
        return draw.polygon(sheet, _rgb(_muted(rng, 0.85, 1, 0.02)))
    darkness = int(rng.integers(110, 200))
    shadow.ellipse([x - 0.2 * w, y - 0.1 * s, x + 1.3 * w, y + 0.12 * s], darkness)
    if rng.uniform() < 0.5:
        d = s * rng.uniform(0.05, 0.3)
        dx = d if rng.uniform() < 0.5 else -d  # the side face shows on the right or on the left
        xs = x + w if dx > 0 else x
        draw.polygon([(xs, y), (xs + dx, y - d), (xs + dx, top - d), (xs, top)], _rgb(0.6 * c))
        draw.polygon([(x, top), (x + dx, top - d), (x + w + dx, top - d), (x + w, top)], _rgb(c))
        draw.rectangle([x, top, x + w, y], _rgb(0.85 * c))
        if rng.uniform() < 0.3:  # a screen: a dark panel inside the frame
            inset = 0.06 * w
            draw.rectangle([x + inset, top + inset, x + w - inset, y - 2 * inset], _rgb(0.1 * c))
        return
    e = 0.18 * w  # the rim's half height: the camera looks slightly down on it
    draw.ellipse([x, y - e, x + w, y + e], _rgb(0.8 * c))
    draw.rectangle([x, top, x + w, y], _rgb(0.8 * c))
    draw.rectangle([x + 0.15 * w, top, x + 0.55 * w, y], _rgb(c))
    draw.ellipse([x, top - e, x + w, top + e], _rgb(0.45 * c))
    if rng.uniform() < 0.4:  # a cable: a Bezier curve from the object's foot across the desk
        t = np.linspace(0, 1, 24)[:, None]
        mid, end = np.array([x + w, y]) + rng.normal(0, 1.5 * s, (2, 2))
        pts = (1 - t) ** 2 * (x + w, y) + 2 * t * (1 - t) * mid + t**2 * end
        cable = _rgb(_muted(rng, 0.05, 0.3))
        draw.line([tuple(p) for p in pts], cable, max(2, int(s / 20)), "curve")


def _scenery(rng, draw, h, w, floor):
    """What is on the wall above row ``floor``: a window, a door, shelves or a framed picture."""
    kind = rng.integers(4)
    frame = _rgb(_WOOD * rng.uniform(0.45, 1.4) if rng.uniform() < 0.5 else _muted(rng, 0.8, 1))
    bw = max(2, int(w * rng.uniform(0.012, 0.03)))
    x0, y0 = rng.uniform(-0.2, 0.7) * w, rng.uniform(0, 0.3) * floor
    x1 = x0 + rng.uniform(0.15, 0.3 if kind == 1 else 0.6) * w  # doors are narrow
    y1 = floor if kind == 1 else min(floor, y0 + rng.uniform(0.15, 0.45) * h)
    xm, ym = (x0 + x1) / 2, (y0 + y1) / 2
    if kind == 0:  # a window: bright, overexposed glass split by mullions
        glass = _rgb(_muted(rng, 0.85, 1, 0.05) * [0.9, 0.95, 1])
        draw.rectangle([x0, y0, x1, y1], glass, frame, bw)
        draw.line([(xm, y0), (xm, y1)], frame, bw)
        draw.line([(x0, ym), (x1, ym)], frame, bw)
    elif kind == 1:  # a door with its knob
        draw.rectangle([x0, y0, x1, y1], _rgb(_muted(rng, 0.4, 0.9)), frame, bw)
        draw.ellipse([x1 - 4 * bw, ym - bw, x1 - 2 * bw, ym + bw], (70, 70, 70))
    elif kind == 2:  # shelves holding rows of books
        for y in np.linspace(y1, y0 + 0.3 * (y1 - y0), int(rng.integers(1, 4))):
            x = x0
            while x < x1:
                book = w * rng.uniform(0.015, 0.05)
                draw.rectangle([x, y - (y1 - y0) * rng.uniform(0.12, 0.28), x + book, y],
                               _rgb(_muted(rng, 0.1, 0.8, 0.35)))
                x += book + rng.uniform(0, 2)
            draw.rectangle([x0 - bw, y, x1 + bw, y + 1.5 * bw], frame)
    else:  # a poster or a painting in a frame
        draw.rectangle([x0, y0, x1, y1], _rgb(_muted(rng, 0.3, 0.9, 0.3)), frame, bw)
        for _ in range(rng.integers(1, 4)):  # blobs of colour, kept inside the frame
            r = rng.uniform(0.1, 0.4) * min(x1 - x0, y1 - y0)
            cx, cy = rng.uniform(x0 + r, x1 - r), rng.uniform(y0 + r, y1 - r)
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], _rgb(_muted(rng, 0.1, 0.9, 0.35)))


def room_background(rng: np.random.Generator, h: int, w: int, blur: bool = True) -> np.ndarray:
    """A photo-like scene of the kind hand photos are taken in, (H, W, 3) float32 in 0..1: a wall
    with a window, door, shelves or picture, often a room corner and a desk with books, mugs,
    screens and cables on it, or outdoors; unevenly lit and, with ``blur``, out of focus (the camera
    focuses on the hand). The scene drawn does not depend on ``blur``."""
    outdoor = rng.uniform() < 0.15
    horizon = int(rng.uniform(0.25, 0.75) * h)
    h2, w2 = (h + 1) // 2, (w + 1) // 2  # textures are made at half size: enough detail, faster
    if outdoor:  # a sky over a tree line of multi-octave foliage
        sky = np.linspace(0, 1, h2)[:, None, None]
        img = (1 - sky) * _muted(rng, 0.55, 0.8, 0.03) * [0.8, 0.9, 1.1] + sky * _muted(rng, 0.8, 1)
        octaves = (5, 20, w2 // 3 + 8)
        leaves = sum(_smooth_noise(rng, h2, w2, c, 1) / (i + 1) for i, c in enumerate(octaves))
        treeline = horizon / 2 - h2 * 0.2 * _smooth_noise(rng, 1, w2, 6, 1)[0]
        green = _muted(rng, 0.3, 0.55, 0.05) * [0.8, 1.1, 0.6] * (leaves / 1.2)[..., None]
        im = _image(np.where((np.arange(h2)[:, None] > treeline)[..., None], green, img), h, w)
    else:  # a painted wall; in a corner the second wall gets less light
        wall = _muted(rng, 0.5, 0.97)
        im = Image.new("RGB", (w, h), _rgb(wall))
        if rng.uniform() < 0.4:
            corner = [rng.uniform(0.15, 0.85) * w, 0, w, h]
            ImageDraw.Draw(im).rectangle(corner, _rgb(wall * rng.uniform(0.65, 0.9)))
        _scenery(rng, ImageDraw.Draw(im), h, w, horizon)
    draw = ImageDraw.Draw(im)
    shadow_im = Image.new("L", (w, h), 255)
    if rng.uniform() < (0.4 if outdoor else 0.8):  # a desk or a floor, its far edge a little tilted
        tilt = rng.uniform(-0.04, 0.04) * w
        edge = (0, horizon - tilt), (w, horizon + tilt)
        mask = Image.new("L", (w, h), 0)
        ImageDraw.Draw(mask).polygon([*edge, (w, h), (0, h)], 255)
        surface = _surface(rng, h2, w2, (horizon - abs(tilt)) / 2)
        im.paste(_image(surface, h, w), mask=mask)
        draw.line(edge, _rgb(1.2 * surface[min(horizon // 2 + 1, h2 - 1), w2 // 2]), h // 150 + 1)
        for y in np.sort(rng.uniform(horizon, 1.1 * h, rng.integers(1, 6))):
            s = 0.45 * (y - 0.7 * horizon)  # nearer objects look bigger
            _clutter(draw, ImageDraw.Draw(shadow_im), rng, rng.uniform(-0.1, 0.9) * w, y, s)
    # light falls off from one side and towards the corners, and the paint is not quite even
    ys, xs = np.ogrid[-1:1:complex(0, h), -1:1:complex(0, w)]
    a = rng.uniform(0, 2 * np.pi)
    light = 1 - rng.uniform(0.1, 0.4) * (1 + np.cos(a) * xs + np.sin(a) * ys) / 2
    light = light * (1 - rng.uniform(0.05, 0.3) * (xs**2 + ys**2) / 2)
    light = light * (0.93 + 0.07 * _smooth_noise(rng, h, w, 4, 1))
    light = light * np.asarray(_blur(shadow_im, max(2, 0.01 * max(h, w))), np.float32)
    light = Image.fromarray(light.astype(np.uint8))
    im = ImageChops.multiply(im, Image.merge("RGB", (light, light, light)))
    sigma = max(h, w) * rng.uniform(0, 0.025) * (rng.uniform() < 0.85)
    if blur and sigma > 0.3:  # depth of field: the camera focuses on the hand, not the room
        im = _blur(im, sigma)
    return np.asarray(im, np.float32) / 255


def scene_background(rng: np.random.Generator, h: int, w: int, style=None) -> np.ndarray:
    """A room (``style.rooms``, a :class:`~.style.RenderStyle`) or, without, a procedural pattern."""
    return room_background(rng, h, w) if style is not None and style.rooms else \
        random_background(rng, h, w)
