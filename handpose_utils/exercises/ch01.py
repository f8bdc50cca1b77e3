"""Checks for notebook 01 (data preparation): the projection, normalised coordinates, the flip."""

from __future__ import annotations

import numpy as np

from . import Wrong, exercise

# A camera with fx != fy and cx != cy, so swapped axes or a transposed K show up.
_K = np.array([[500.0, 0.0, 100.0], [0.0, 400.0, 80.0], [0.0, 0.0, 1.0]])
_XYZ = np.array([[0.0, 0.0, 0.5], [0.1, 0.0, 0.5], [0.0, -0.05, 0.25], [0.02, 0.03, 0.8]])


def _array(out, shape, what):
    try:
        out = np.asarray(out, dtype=float)
    except (TypeError, ValueError) as err:
        raise Wrong(f"{what} must return an array of numbers, got {type(out).__name__}") from err
    if out.shape != shape:
        raise Wrong(f"{what} must return shape {shape}, got {out.shape}")
    return out


# --- 01.1 projection ---------------------------------------------------------------------------


def _no_division(xyz, K):
    """A typical mistake: K times the point, without the perspective division by z."""
    return (np.asarray(xyz) @ np.asarray(K).T)[:, :2]


def _transposed_K(xyz, K):
    """A typical mistake: xyz @ K instead of xyz @ K.T (the principal point lands in w)."""
    uvw = np.asarray(xyz) @ np.asarray(K)
    return uvw[:, :2] / uvw[:, 2:3]


def _divide_without_centre(xyz, K):
    """A typical mistake: f * x / z without adding the principal point."""
    xyz, K = np.asarray(xyz), np.asarray(K)
    return np.stack([K[0, 0] * xyz[:, 0], K[1, 1] * xyz[:, 1]], -1) / xyz[:, 2:3]


@exercise("01.1", "pinhole projection",
          hint="uvw = xyz @ K.T has rows [u*z, v*z, z]; return uvw[:, :2] / uvw[:, 2:3].",
          wrong=[_no_division, _transposed_K, _divide_without_centre])
def _(project):
    uv = _array(project(_XYZ.copy(), _K.copy()), (len(_XYZ), 2), "my_project(xyz, K) of (4, 3) points")
    expected = np.array([[100.0, 80.0], [200.0, 80.0], [100.0, 0.0], [112.5, 95.0]])
    names = ["a point on the optical axis", "a point 0.1 m right at 0.5 m",
             "a point 0.05 m up at 0.25 m", "a point at (0.02, 0.03, 0.8) m"]
    for k in range(len(_XYZ)):
        if not np.allclose(uv[k], expected[k], atol=1e-6):
            raise Wrong(f"for {names[k]} with fx=500, fy=400, cx=100, cy=80 the pixel is "
                        f"{expected[k].tolist()}, got {uv[k].round(3).tolist()}")
    far = _array(project(3.0 * _XYZ, _K), (len(_XYZ), 2), "my_project")
    if not np.allclose(far, uv, atol=1e-6):
        raise Wrong("scaling every point by 3 (3x bigger, 3x farther) must not move the pixels: "
                    "did you divide by z?")
    return "On the optical axis you get the principal point, and 3 x xyz lands on the same pixels."


# --- 01.2 normalised coordinates ---------------------------------------------------------------


def _corner_convention(kp, w, h):
    return np.asarray(kp, float) / np.array([w, h])


def _corner_inverse(uv, w, h):
    return np.asarray(uv, float) * np.array([w, h])


def _align_corners(kp, w, h):
    return np.asarray(kp, float) / (np.array([w, h]) - 1)


def _align_corners_inverse(uv, w, h):
    return np.asarray(uv, float) * (np.array([w, h]) - 1)


def _swapped(kp, w, h):
    return (np.asarray(kp, float) + 0.5) / np.array([h, w])


def _swapped_inverse(uv, w, h):
    return np.asarray(uv, float) * np.array([h, w]) - 0.5


@exercise("01.2", "normalised coordinates",
          hint="u = (x + 0.5) / width and v = (y + 0.5) / height; the inverse is x = u * width - "
               "0.5. Pixel i covers [i - 0.5, i + 0.5].",
          wrong=[(_corner_convention, _corner_inverse), (_align_corners, _align_corners_inverse),
                 (_swapped, _swapped_inverse)])
def _(answer):
    if callable(answer):  # one function: try it (a stub says "not done"), then ask for both
        answer(np.zeros((1, 2)), 8, 5)
        raise Wrong("pass the two functions as a tuple: (to_normalised, to_pixels)")
    try:
        to_normalised, to_pixels = answer
    except (TypeError, ValueError) as err:
        raise Wrong("pass the two functions as a tuple: (to_normalised, to_pixels)") from err
    w, h = 8, 5  # not square: x must be divided by the width, y by the height
    kp = np.array([[-0.5, -0.5], [7.5, 4.5], [0.0, 0.0], [3.5, 2.0], [7.0, 4.0]])
    uv = _array(to_normalised(kp.copy(), w, h), kp.shape, "to_normalised")
    expected = np.array([[0.0, 0.0], [1.0, 1.0], [0.5 / 8, 0.5 / 5], [0.5, 0.5], [7.5 / 8, 4.5 / 5]])
    names = ["the image's top-left corner (-0.5, -0.5)", "its bottom-right corner (7.5, 4.5)",
             "the centre of pixel (0, 0)", "the image centre (3.5, 2.0)",
             "the centre of the last pixel (7, 4)"]
    for k in range(len(kp)):
        if not np.allclose(uv[k], expected[k], atol=1e-9):
            raise Wrong(f"in an {w}x{h} image, {names[k]} normalises to "
                        f"{expected[k].round(4).tolist()}, got {uv[k].round(4).tolist()}")
    back = _array(to_pixels(uv, w, h), kp.shape, "to_pixels")
    if not np.allclose(back, kp, atol=1e-9):
        raise Wrong(f"to_pixels(to_normalised(kp)) must give kp back: {kp.tolist()} became "
                    f"{back.round(4).tolist()}")
    # Resizing the image from W to 2W maps x' = (x + 0.5) * 2 - 0.5: the same normalised point.
    big = _array(to_normalised((kp + 0.5) * 2 - 0.5, 2 * w, 2 * h), kp.shape, "to_normalised")
    if not np.allclose(big, uv, atol=1e-9):
        raise Wrong("the same point in a copy resized 2x must normalise to the same (u, v)")
    return "Corners map to 0 and 1, and a resized copy gives the same (u, v)."


# --- 01.3 horizontal flip ----------------------------------------------------------------------


def _flip_edges(kp, w):
    """A typical mistake: x' = W - x, the convention where pixel centres sit at i + 0.5."""
    out = np.array(kp, float)
    out[:, 0] = w - out[:, 0]
    return out


def _flip_y(kp, w):
    out = np.array(kp, float)
    out[:, 1] = w - 1 - out[:, 1]
    return out


def _flip_and_reverse(kp, w):
    """A typical mistake: swapping joints as if a hand had left/right pairs."""
    out = np.array(kp, float)[::-1].copy()
    out[:, 0] = w - 1 - out[:, 0]
    return out


def _flip_in_place(kp, w):
    kp[:, 0] = w - 1 - kp[:, 0]
    return kp


@exercise("01.3", "horizontal flip of keypoints",
          hint="image[:, ::-1] moves column i to column W - 1 - i: x' = width - 1 - x, on a copy "
               "(np.array(kp, dtype=float)); y and the joint order stay.",
          wrong=[_flip_edges, _flip_y, _flip_and_reverse, _flip_in_place])
def _(flip_keypoints):
    w, h = 7, 4
    kp = np.array([[2.0, 1.0], [0.0, 3.0], [6.0, 0.0], [3.0, 2.0]])
    given = kp.copy()
    out = _array(flip_keypoints(given, w), kp.shape, "flip_keypoints of (4, 2) keypoints")
    if not np.array_equal(given, kp):
        raise Wrong("flip_keypoints changed its input array: return a new array instead "
                    "(the caller may still need the original keypoints)")
    for k, (x, y) in enumerate(kp.astype(int)):
        image = np.zeros((h, w))
        image[y, x] = 1.0  # joint k alone, then mirrored the way the image is
        yf, xf = np.argwhere(image[:, ::-1] == 1.0)[0]
        if not np.allclose(out[k], [xf, yf], atol=1e-9):
            raise Wrong(f"joint {k} at pixel {kp[k].tolist()} of a {w}-pixel-wide image is at "
                        f"{[float(xf), float(yf)]} after image[:, ::-1], got "
                        f"{out[k].round(3).tolist()} (row k of the result must stay joint k)")
    twice = _array(flip_keypoints(out.copy(), w), kp.shape, "flip_keypoints")
    if not np.allclose(twice, kp):
        raise Wrong("flipping twice must give the original keypoints")
    return "Every joint lands on its pixel of the mirrored image, and two flips cancel."
