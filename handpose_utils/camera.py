"""The pinhole camera: projecting 3D points (camera frame, metres) to pixels.

    [u·z, v·z, z]^T = K · [x, y, z]^T,   K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]

so u = fx·x/z + cx and v = fy·y/z + cy. The camera looks along +z, x points right and y down.
"""

from __future__ import annotations

import numpy as np


def project(xyz, K) -> np.ndarray:
    """Project ``(..., N, 3)`` points through ``K`` (``(3, 3)`` or ``(..., 3, 3)``) to ``(..., N, 2)``
    pixels. Points must be in front of the camera (z > 0)."""
    xyz = np.asarray(xyz, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    if np.any(xyz[..., 2] <= 0):
        raise ValueError("cannot project points behind the camera (z <= 0)")
    uvw = xyz @ np.swapaxes(K, -1, -2)
    return uvw[..., :2] / uvw[..., 2:3]


def backproject(uv, z, K) -> np.ndarray:
    """Inverse of :func:`project` for known depths: pixels ``(..., N, 2)`` and ``z`` ``(..., N)``
    to camera-frame points ``(..., N, 3)``."""
    uv = np.asarray(uv, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    fx, fy, cx, cy = K[..., 0, 0], K[..., 1, 1], K[..., 0, 2], K[..., 1, 2]
    x = (uv[..., 0] - cx[..., None]) / fx[..., None] * z if K.ndim > 2 else (uv[..., 0] - cx) / fx * z
    y = (uv[..., 1] - cy[..., None]) / fy[..., None] * z if K.ndim > 2 else (uv[..., 1] - cy) / fy * z
    return np.stack([x, y, z], axis=-1)
