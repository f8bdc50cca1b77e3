"""Reading images with errors that name the bad file and what to do. Nothing here substitutes a
blank image for an unreadable one: a run that quietly learns from black squares is worse than one
that stops. Skipping bad files is asked for (``skip_bad=True``), counted and reported."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError
from PIL.Image import Transpose


class ImageReadError(OSError):
    """An image is missing, truncated, not an image or in a mode with no 8-bit version; the
    message names the file."""


# EXIF orientation -> the turn that makes the stored pixels upright (ImageOps.exif_transpose's
# table): phones store a portrait photo sideways, orientation 6 or 8; 5 to 8 swap width and height.
_UPRIGHT = {2: Transpose.FLIP_LEFT_RIGHT, 3: Transpose.ROTATE_180, 4: Transpose.FLIP_TOP_BOTTOM,
            5: Transpose.TRANSPOSE, 6: Transpose.ROTATE_270, 7: Transpose.TRANSVERSE,
            8: Transpose.ROTATE_90}


@contextmanager
def open_image(path: str | Path):
    """``PIL.Image.open(path)``; a missing file, or one that fails to decode inside the ``with``
    block, raises :class:`ImageReadError` naming the file and what to do."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"image file not found: {path}. Check the dataset root, or re-create "
                             "the dataset (make_freihand for the synthetic default, "
                             "download_freihand for real data).")
    try:
        with Image.open(path) as im:
            yield im
    except ImageReadError:
        raise  # already names the file and the fix
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageReadError(f"cannot decode image {path}: {err}. The file is corrupt or "
                             "truncated: download or generate it again, or pass skip_bad=True "
                             "to skip it (skips are counted and reported).") from err


def _upright(im: Image.Image) -> tuple[Transpose | None, tuple[int, int]]:
    """The turn that makes an opened image upright and its upright (width, height), by the EXIF
    orientation of its header: PNG's own getexif decodes the file (an eXIf after the pixels)."""
    orientation = Image.Image.getexif(im).get(ExifTags.Base.Orientation, 1)
    return _UPRIGHT.get(orientation), (im.size[::-1] if orientation in (5, 6, 7, 8) else im.size)


def decode_pixels(im: Image.Image, path, mode: str = "RGB",
                  square: int | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """The one way an opened image becomes the course's pixels: ``(pixels, (W, H))``, upright
    (EXIF orientation applied), pixels in 8-bit ``mode`` (``"RGB"``, ``"L"``). With ``square``,
    resized to ``square x square`` (a JPEG via ``draft``, libjpeg decoding at 1/2 to 1/8 scale)
    from a ``box`` mapping exactly the original extent, then turned: exact for resize_keypoints.
    Alpha is dropped, colours kept as stored (as ``convert`` does). Integers within 16 bits (16-bit
    PNG and TIFF, IR and depth cameras: ``convert`` clips them nearly white) are scaled by that bit
    depth, 65535 to 255: a picture keeps its brightness, a camera's frames stay comparable and a
    depth image using a small part of the range reads dark, not wrong. Floats, and integers beyond
    16 bits, have no bit depth: their minimum to maximum becomes 0 to 255."""
    turn, size = _upright(im)  # before decoding: see _upright
    box = (0.0, 0.0, float(im.width), float(im.height))
    if square is not None and im.format == "JPEG":
        drafted = im.draft("RGB", (square, square))  # shrinks im.size
        box = box if drafted is None else tuple(float(v) for v in drafted[1])
    im.load()  # a full decode, so that a truncated file fails inside open_image
    if im.mode in {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"}:
        out = im.convert(mode)
    elif im.mode in ("I", "F") or im.mode.startswith("I;16"):
        values = np.asarray(im, dtype=np.float64)
        if not np.isfinite(values).all():
            raise ImageReadError(f"cannot read image {path}: it holds NaN or infinite values (mode "
                                 f"{im.mode!r}). Replace them, or pass skip_bad=True to skip it.")
        bit_depth = im.mode != "F" and values.min() >= 0 and values.max() <= 65535
        low, high = (0.0, 65535.0) if bit_depth else (values.min(), values.max())
        scaled = np.round((values - low) * (255 / ((high - low) or 1.0)))
        out = Image.fromarray(scaled.astype(np.uint8)).convert(mode)
    else:
        raise ImageReadError(f"cannot read image {path}: its pixel mode {im.mode!r} has no correct "
                             "8-bit RGB version here. Convert the file to an 8-bit RGB PNG or "
                             "JPEG, or pass skip_bad=True to skip it.")
    if square is not None:
        out = out.resize((square, square), Image.Resampling.BILINEAR, box=box)
    return np.array(out if turn is None else out.transpose(turn)), size


def read_image(path: str | Path, mode: str = "RGB") -> np.ndarray:
    """Decode ``path`` upright (its EXIF orientation applied) to a ``(H, W, 3)`` uint8 array
    (``(H, W)`` for ``mode="L"``); :func:`decode_pixels` says how each pixel mode is converted."""
    with open_image(path) as im:
        return decode_pixels(im, path, mode)[0]


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image as :func:`read_image` returns it, from its header only."""
    with open_image(path) as im:
        return _upright(im)[1]


@dataclass
class SkipReport:
    """What a tolerant reader left out, and why."""

    seen: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def n_skipped(self) -> int:
        return len(self.skipped)

    def __str__(self) -> str:
        if not self.skipped:
            return f"read {self.seen} images, skipped none"
        more = [f"  ... and {self.n_skipped - 20} more"] if self.n_skipped > 20 else []
        return "\n".join([f"read {self.seen} images, skipped {self.n_skipped} unreadable:"]
                         + [f"  {path}: {why}" for path, why in self.skipped[:20]] + more)


def check_images(paths: Iterable[str | Path],
                 skip_bad: bool = False) -> tuple[list[int], SkipReport]:
    """Decode every image once: the indices of the good ones and a :class:`SkipReport`. With
    ``skip_bad=False`` (the default) the first bad image raises :class:`ImageReadError`."""
    report, good = SkipReport(), []
    for i, path in enumerate(paths):
        report.seen += 1
        try:
            read_image(path)
            good.append(i)
        except ImageReadError as err:
            if not skip_bad:
                raise
            report.skipped.append((str(path), str(err).split(":", 2)[-1].strip()))
    return good, report
