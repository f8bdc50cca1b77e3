"""ImageNet weights when they can be fetched. Offline (like this course's CI), loading says why
it failed and returns ``None``: the caller keeps its random initialisation and says so."""

from __future__ import annotations

import socket


def fetch_weights(load, what: str, timeout: float = 30.0, log=print, hint: str = ""):
    """``load()``, or ``None`` after ``log`` says why and that ``what`` starts from random weights
    (then ``hint``). A default socket timeout holds meanwhile: torch's weight download takes no
    timeout, and on a machine without internet a connection attempt could otherwise hang."""
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        return load()
    except Exception as err:  # noqa: BLE001 - any failure means the same fallback
        if log:
            log(f"ImageNet weights for {what} unavailable "
                f"({type(err).__name__}: {str(err)[:160]}).\n"
                f"Continuing with RANDOM initialisation: {what} trains from scratch and learns "
                f"much more slowly.{hint}")
        return None
    finally:
        socket.setdefaulttimeout(old)


def imagenet_state_dict(weights, what: str, timeout: float = 30.0, log=print) -> dict | None:
    """The hash-checked state dict of a torchvision ``weights`` member (cached in
    ``~/.cache/torch/hub``), or ``None`` (:func:`fetch_weights` says why)."""
    offline = (f" To use them offline, put {weights.url.rsplit('/', 1)[1]} in "
               "~/.cache/torch/hub/checkpoints/.")
    return fetch_weights(lambda: weights.get_state_dict(progress=False, check_hash=True), what,
                         timeout, log, offline)
