"""Reading images: EXIF orientation applied everywhere, every PIL mode converted to 8-bit RGB
correctly or refused by name."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import ExifTags, Image, ImageOps

from handpose_utils import data as D
from handpose_utils.images import ImageReadError, decode_pixels, image_size, read_image


def blocks(width=48, height=32, seed=0) -> np.ndarray:
    """An RGB picture of 8 x 8 blocks in 12 colours: few enough for a palette to hold exactly."""
    rng = np.random.default_rng(seed)
    colours = rng.integers(0, 256, (12, 3))
    grid = rng.integers(0, 12, (height // 8 + 1, width // 8 + 1))
    return colours[grid.repeat(8, 0).repeat(8, 1)[:height, :width]].astype(np.uint8)


def grey(width=48, height=32) -> np.ndarray:
    """A grey ramp from 0 to 255 plus noise: every value a scaling could get wrong is there."""
    rng = np.random.default_rng(1)
    ramp = np.linspace(0, 255, width)[None, :] + rng.normal(0, 20, (height, width))
    out = np.clip(ramp, 0, 255).round().astype(np.uint8)
    out[0, 0], out[0, 1] = 0, 255
    return out


# --------------------------------------------------------------------------------------------
# EXIF orientation: a phone stores a portrait photo sideways and says how to turn it


# orientation -> how to store an upright picture so that the tag turns it back
STORED = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90,
          8: Image.Transpose.ROTATE_270}


def oriented_jpeg(path, orientation, width=251, height=191, dot=(180.0, 60.0)):
    """A JPEG whose upright picture (width x height, odd sizes so that JPEG draft leaves a partial
    pixel) has a white dot at ``dot`` on black; stored turned, with the EXIF orientation tag."""
    ys, xs = np.mgrid[0:height, 0:width]
    upright = np.exp(-((xs - dot[0]) ** 2 + (ys - dot[1]) ** 2) / (2 * 6.0**2))
    upright = np.stack([(upright * 255).round().astype(np.uint8)] * 3, -1)
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    Image.fromarray(upright).transpose(STORED[orientation]).save(path, quality=95,
                                                                 exif=exif.tobytes())
    return upright


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_applied_by_every_reader(tmp_path, orientation):
    path = tmp_path / f"phone_{orientation}.jpg"
    upright = oriented_jpeg(path, orientation)
    with Image.open(path) as im:
        assert im.size == ((191, 251) if orientation in (6, 8) else (251, 191))  # as stored
        want = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    assert image_size(path) == (251, 191)
    got = read_image(path)
    assert np.array_equal(got, want)  # the same pixels PIL's own exif_transpose gives
    assert np.abs(got.astype(int) - upright).mean() < 2  # and the picture as it was taken
    # The cache decodes through JPEG draft and resizes before turning: the dot must still be
    # where the upright keypoint says, to a fraction of a cache pixel.
    rng = np.random.default_rng(orientation)
    kp = np.concatenate([[[180.0, 60.0]], rng.uniform(20, 170, (20, 2))])
    record = {"image_path": str(path), "keypoints": kp.ravel().tolist(), "width": 251,
              "height": 191}
    cache = D.build_image_cache([record], 64, progress=False)
    assert cache.orig_size.tolist() == [[251, 191]]
    image = cache.images[0, :, :, 0].astype(np.float64)
    ys, xs = np.mgrid[0:64, 0:64]
    found = np.array([(image * xs).sum(), (image * ys).sum()]) / image.sum()
    assert np.abs(found - cache.keypoints[0, 0]).max() < 0.15, (found, cache.keypoints[0, 0])


# --------------------------------------------------------------------------------------------
# Pixel modes


def test_16_bit_png_reads_at_the_brightness_it_states(tmp_path):
    """An I;16 PNG (IR and depth cameras) holding an 8-bit picture times 257: PIL's convert
    clips it nearly white (mean 248.9); read at its bit depth, it is the picture again."""
    picture = np.clip(grey() * 0.6, 0, 255).round().astype(np.uint8)
    path = tmp_path / "ir.png"
    Image.fromarray(picture.astype(np.uint16) * 257).save(path)
    with Image.open(path) as im:
        assert im.mode == "I;16"
    got = read_image(path)
    assert np.array_equal(got, np.stack([picture] * 3, -1))
    assert got.mean() == pytest.approx(picture.mean()) and picture.mean() < 100
    record = {"image_path": str(path), "keypoints": [20.0, 10.0] * 21, "width": 48, "height": 32}
    cache = D.build_image_cache([record], 32, progress=False)
    assert abs(cache.images[0].mean() - picture.mean()) < 2


def wide(mode: str, values: np.ndarray) -> Image.Image:
    """An image of a 16-bit mode from an integer array, in that mode's byte order."""
    order = {"I;16": "<u2", "I;16L": "<u2", "I;16B": ">u2", "I;16N": "=u2"}[mode]
    return Image.frombytes(mode, values.shape[::-1], values.astype(order).tobytes())


COLOUR = ["RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "P", "PA"]
GREY = {  # mode -> an image of it holding grey()'s picture, at that mode's scale
    "L": lambda g: Image.fromarray(g),
    "LA": lambda g: Image.fromarray(g).convert("LA"),
    "I;16": lambda g: wide("I;16", g.astype(np.uint16) * 257),
    "I;16L": lambda g: wide("I;16L", g.astype(np.uint16) * 257),
    "I;16B": lambda g: wide("I;16B", g.astype(np.uint16) * 257),
    "I;16N": lambda g: wide("I;16N", g.astype(np.uint16) * 257),
    "I": lambda g: Image.fromarray(g.astype(np.int32) * 257),
    # beyond 16 bits and float: stretched from their own minimum to maximum
    "I negative": lambda g: Image.fromarray(g.astype(np.int32) * 3 - 400),
    "F": lambda g: Image.fromarray(g.astype(np.float32) / 255 * 2.5 + 0.3),  # metres
}


@pytest.mark.parametrize("mode", COLOUR)
def test_colour_modes_convert_to_the_same_picture(mode):
    picture = blocks()
    im = Image.fromarray(picture)
    im = im.convert(mode) if mode not in ("P", "PA") else im.quantize(16).convert(mode)
    got = decode_pixels(im, "x.png")[0]
    assert got.shape == (32, 48, 3) and got.dtype == np.uint8
    diff = np.abs(got.astype(int) - picture)
    # 8-bit LAB and HSV lose precision (littleCMS's LAB gives the same), a palette rounds colours
    assert diff.mean() < 2 and diff.max() <= {"LAB": 24, "HSV": 5}.get(mode, 3)


@pytest.mark.parametrize("mode", list(GREY))
def test_grey_and_wide_modes_convert_to_the_same_picture(mode):
    picture = grey()
    im = GREY[mode](picture)
    assert im.mode == mode.split()[0]
    got = decode_pixels(im, "x.png")[0]
    assert got.shape == (32, 48, 3) and got.dtype == np.uint8
    assert np.abs(got.astype(int) - picture[..., None]).max() <= 1
    assert np.array_equal(decode_pixels(im, "x.png", mode="L")[0], got[..., 0])


@pytest.mark.parametrize("mode", ["La", "RGBa"])
def test_modes_without_a_correct_conversion_are_refused_by_name(mode):
    with pytest.raises(ImageReadError, match=rf"odd\.tif: its pixel mode '{mode}'.*8-bit RGB"):
        decode_pixels(Image.new(mode, (4, 4)), "odd.tif")


def as_grey(picture):
    return np.stack([np.asarray(Image.fromarray(picture).convert("L"))] * 3, -1)


@pytest.mark.parametrize("fmt, make, want, tolerance", [
    ("jpg", lambda p: Image.fromarray(p).convert("CMYK"), lambda p: p, 12),  # a print shop's
    # a palette PNG with a transparent colour: the colours as stored, alpha dropped
    ("png", lambda p: Image.fromarray(p).quantize(16), lambda p: p, 3),
    ("png", lambda p: Image.fromarray(p).convert("LA"), as_grey, 0),
    ("tif", lambda p: Image.fromarray(p).convert("LAB"), lambda p: p, 24),
    ("tif", lambda p: Image.fromarray(p).convert("YCbCr"), lambda p: p, 3),
    ("tif", lambda p: wide("I;16B", p[..., 1].astype(np.uint16) * 257),
     lambda p: np.stack([p[..., 1]] * 3, -1), 0),
])
def test_files_in_other_modes_read_as_their_picture(tmp_path, fmt, make, want, tolerance):
    picture = blocks()
    im = make(picture)
    if im.mode == "P":
        im.info["transparency"] = 0
    path = tmp_path / f"image.{fmt}"
    im.save(path, **({"quality": 95} if fmt == "jpg" else {}))
    with Image.open(path) as back:
        assert back.mode == im.mode
    got = read_image(path)
    assert got.shape == (32, 48, 3) and got.dtype == np.uint8
    diff = np.abs(got.astype(int) - want(picture))
    assert diff.mean() < 2 and diff.max() <= tolerance


def test_float_image_with_nan_is_refused_not_called_corrupt(tmp_path):
    depth = np.full((8, 8), 1.5, np.float32)
    depth[2, 3] = np.nan
    path = tmp_path / "depth.tif"
    Image.fromarray(depth).save(path)
    with pytest.raises(ImageReadError, match=r"depth\.tif: it holds NaN") as err:
        read_image(path)
    assert "corrupt" not in str(err.value)
