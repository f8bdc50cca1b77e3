"""ImageNet weights when they can be fetched. Offline (like this course's CI), loading says why
it failed and returns ``None``: the caller keeps its random initialisation and says so."""

from __future__ import annotations

import socket
from contextlib import contextmanager


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
    """The hash-checked state dict of a torchvision ``weights`` member (cached in
    ``~/.cache/torch/hub``), or ``None`` after ``log`` says why and that ``what`` starts from
    random weights."""
    try:
        with socket_timeout(timeout):
            return weights.get_state_dict(progress=False, check_hash=True)
    except Exception as err:  # noqa: BLE001 - any failure means the same fallback
        if log:
            log(f"ImageNet weights for {what} unavailable "
                f"({type(err).__name__}: {str(err)[:160]}).\n"
                f"Continuing with RANDOM initialisation: {what} trains from scratch and learns "
                f"much more slowly. To use them offline, put {weights.url.rsplit('/', 1)[1]} in "
                "~/.cache/torch/hub/checkpoints/.")
        return None
