"""Getting files from the internet, once: dataset archives, model bundles and ImageNet weights.

Every download writes ``<name>.part`` and renames it when complete, so an interrupted download
never looks finished. Offline (like this course's CI), weight loading says why it failed and
returns ``None``: the caller keeps its random initialisation and tells the student so.
"""

from __future__ import annotations

import os
import socket
import urllib.request
from contextlib import contextmanager
from pathlib import Path


def download_file(url: str, dest: str | Path, timeout: float = 60.0, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` (skipped when ``dest`` exists), with a progress bar."""
    dest = Path(dest)
    if dest.is_file() and dest.stat().st_size > 0:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as f:
            total = int(response.headers.get("Content-Length") or 0)
            bar = None
            if progress:
                from tqdm.auto import tqdm

                bar = tqdm(total=total or None, unit="B", unit_scale=True, desc=dest.name)
            while chunk := response.read(1 << 20):
                f.write(chunk)
                if bar:
                    bar.update(len(chunk))
            if bar:
                bar.close()
    except OSError as err:
        part.unlink(missing_ok=True)
        raise OSError(f"could not download {url} to {dest}: {err}. This needs internet access "
                      "(Colab has it); or download the file by hand and put it there.") from err
    os.replace(part, dest)
    return dest


@contextmanager
def socket_timeout(seconds: float):
    """A default socket timeout while active: torch's weight download takes no timeout, and on
    a machine without internet a connection attempt could otherwise hang."""
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def imagenet_state_dict(weights, what: str, timeout: float = 30.0, log=print) -> dict | None:
    """The state dict of a torchvision ``weights`` enum member (e.g.
    ``ResNet50_Weights.IMAGENET1K_V1``), downloaded once into ``~/.cache/torch/hub/checkpoints``
    and hash-checked. ``None`` when it cannot be had (no network, DNS, HTTP error, bad hash, a
    corrupt file), after ``log`` says why and that ``what`` starts from random weights."""
    try:
        with socket_timeout(timeout):
            return weights.get_state_dict(progress=False, check_hash=True)
    except Exception as err:  # noqa: BLE001 - any failure means the same fallback
        if log:
            log(f"ImageNet weights for {what} unavailable ({type(err).__name__}: {str(err)[:160]}).\n"
                f"Continuing with RANDOM initialisation: {what} trains from scratch and learns "
                f"much more slowly. To use them offline, put {weights.url.rsplit('/', 1)[1]} in "
                "~/.cache/torch/hub/checkpoints/.")
        return None
