"""Reading images with errors that say which file is bad and what to do about it.

Nothing here ever substitutes a blank image for an unreadable one: a training run that quietly
learns from black squares is worse than one that stops. Callers that prefer to skip bad files
use :func:`read_images_skipping`, which counts and reports what it skipped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError


class ImageReadError(OSError):
    """An image file is missing, truncated or not an image. The message names the file."""


def read_image(path: str | Path, mode: str = "RGB") -> np.ndarray:
    """Decode ``path`` into a ``(H, W, 3)`` uint8 array (``(H, W)`` for ``mode="L"``).

    Raises :class:`ImageReadError` naming the file if it is missing or cannot be decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(
            f"image file not found: {path}. Check the dataset root, or re-create the dataset "
            "(make_freihand for the synthetic default, download_freihand for real data)."
        )
    try:
        with Image.open(path) as im:
            im.load()  # force a full decode so truncated files fail here, not later
            return np.asarray(im.convert(mode)).copy()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageReadError(
            f"cannot decode image {path}: {err}. The file is corrupt or truncated: download or "
            "generate it again, or pass skip_bad=True to skip it (skips are counted and reported)."
        ) from err


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image, read from its header only."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            return im.size
    except FileNotFoundError as err:
        raise ImageReadError(f"image file not found: {path}") from err
    except (UnidentifiedImageError, OSError) as err:
        raise ImageReadError(f"cannot read the header of image {path}: {err}") from err


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
        lines = [f"read {self.seen} images, skipped {self.n_skipped} unreadable:"]
        lines += [f"  {path}: {why}" for path, why in self.skipped[:20]]
        if self.n_skipped > 20:
            lines.append(f"  ... and {self.n_skipped - 20} more")
        return "\n".join(lines)


def check_images(paths: Iterable[str | Path], skip_bad: bool = False) -> tuple[list[int], SkipReport]:
    """Decode every image once. Returns the indices of the good ones and a :class:`SkipReport`.

    With ``skip_bad=False`` (the default) the first bad image raises :class:`ImageReadError`.
    """
    report = SkipReport()
    good = []
    for i, path in enumerate(paths):
        report.seen += 1
        try:
            read_image(path)
        except ImageReadError as err:
            if not skip_bad:
                raise
            report.skipped.append((str(path), str(err).split(":", 2)[-1].strip()))
            continue
        good.append(i)
    return good, report
