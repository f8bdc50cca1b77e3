"""Generated from notebooks/01_data_prep.ipynb by `python -m handpose_utils.export`.

Edit the notebook's `#@save camera` cells, not this file: the tests check that the two agree."""

from __future__ import annotations

import numpy as np


# --- from notebooks/01_data_prep.ipynb ---
def project(xyz, K) -> np.ndarray:
    """Project ``(..., N, 3)`` points through ``K`` (``(3, 3)`` or ``(..., 3, 3)``) to ``(..., N, 2)``
    pixels. Points must be in front of the camera (z > 0)."""
    xyz = np.asarray(xyz, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    if np.any(xyz[..., 2] <= 0):  # behind the camera: the division below would flip the point
        raise ValueError("cannot project points behind the camera (z <= 0)")
    uvw = xyz @ np.swapaxes(K, -1, -2)  # each row is K @ [x, y, z] = [u*z, v*z, z]
    return uvw[..., :2] / uvw[..., 2:3]  # the perspective division


def backproject(uv, z, K) -> np.ndarray:
    """Inverse of :func:`project` for known depths: pixels ``(..., N, 2)`` and ``z`` ``(..., N)``
    to camera-frame points ``(..., N, 3)``."""
    uv = np.asarray(uv, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    fx, fy, cx, cy = K[..., 0, 0], K[..., 1, 1], K[..., 0, 2], K[..., 1, 2]
    if K.ndim > 2:  # one camera per image: (...,) -> (..., 1), to broadcast over its N points
        fx, fy, cx, cy = fx[..., None], fy[..., None], cx[..., None], cy[..., None]
    x = (uv[..., 0] - cx) / fx * z
    y = (uv[..., 1] - cy) / fy * z
    return np.stack([x, y, z], axis=-1)


# --- from notebooks/01_data_prep.ipynb ---
def to_normalised(kp, width, height) -> np.ndarray:
    """``(..., 2)`` pixels of a ``width x height`` image, which spans ``[-0.5, width - 0.5]`` (pixel
    centres at integers), to normalised ``(u, v)``: 0 at the left / top edge, 1 at the right / bottom."""
    return (np.asarray(kp, dtype=np.float64) + 0.5) / np.array([width, height], dtype=np.float64)


def to_pixels(uv, width, height) -> np.ndarray:
    """Inverse of :func:`to_normalised`: normalised ``(..., 2)`` to pixels of a ``width x height``
    image."""
    return np.asarray(uv, dtype=np.float64) * np.array([width, height], dtype=np.float64) - 0.5


normalised_coordinates = (to_normalised, to_pixels)  # the pair, as exercise 01.2 asks for it
