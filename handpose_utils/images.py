"""Reading images with errors that name the bad file and what to do. Nothing here substitutes a
blank image for an unreadable one: a run that quietly learns from black squares is worse than one
that stops. Skipping bad files is asked for (``skip_bad=True``), counted and reported."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError


class ImageReadError(OSError):
    """An image file is missing, truncated or not an image. The message names the file."""


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
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageReadError(f"cannot decode image {path}: {err}. The file is corrupt or "
                             "truncated: download or generate it again, or pass skip_bad=True "
                             "to skip it (skips are counted and reported).") from err


def read_image(path: str | Path, mode: str = "RGB") -> np.ndarray:
    """Decode ``path`` to a ``(H, W, 3)`` uint8 array (``(H, W)`` for ``mode="L"``)."""
    with open_image(path) as im:
        im.load()  # force a full decode so truncated files fail here, not later
        return np.asarray(im.convert(mode)).copy()


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image, read from its header only."""
    with open_image(path) as im:
        return im.size


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
