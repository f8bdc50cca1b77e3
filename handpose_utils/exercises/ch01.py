"""Checks for notebook 01 (data preparation): the projection, normalised coordinates, the flip,
and the camera of a cropped and resized image.

The checks use cameras with f_x != f_y and c_x != c_y, images that are not square, random
sub-pixel points, and they make sure that no answer modifies the arrays it is given."""

from __future__ import annotations

import numpy as np

from . import Wrong, exercise, unchanged

# A camera with fx != fy and cx != cy, so swapped axes or a transposed K show up.
_K = np.array([[500.0, 0.0, 100.0], [0.0, 400.0, 80.0], [0.0, 0.0, 1.0]])
_XYZ = np.array([[0.0, 0.0, 0.5], [0.1, 0.0, 0.5], [0.0, -0.05, 0.25], [0.02, 0.03, 0.8]])


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _random_camera(rng) -> np.ndarray:
    """Focal lengths and principal point that are not integers, and f_x != f_y."""
    fx, cx, cy = rng.uniform(300, 700), rng.uniform(60, 160), rng.uniform(40, 120)
    return np.array([[fx, 0.0, cx], [0.0, fx * rng.uniform(0.7, 0.9), cy], [0.0, 0.0, 1.0]])


def _random_points(rng, n: int) -> np.ndarray:
    """``n`` points in front of the camera, each at its own depth."""
    return np.column_stack([rng.uniform(-0.12, 0.12, n), rng.uniform(-0.1, 0.1, n),
                            rng.uniform(0.3, 0.9, n)])


def _array(out, shape, what):
    """The answer as a float array; it must be a NumPy array (the notebook calls array methods on
    it, and a list has none of them)."""
    if not isinstance(out, np.ndarray):
        raise Wrong(f"{what} must return a NumPy array of shape {shape}, got "
                    f"{type(out).__name__}" + (": return the array itself (no .tolist(), no list of "
                                               "rows); the notebook uses array methods such as "
                                               ".round() on it" if isinstance(out, list) else ""))
    try:
        out = np.asarray(out, dtype=float)
    except (TypeError, ValueError) as err:
        raise Wrong(f"{what} must return an array of numbers, got {out.dtype}") from err
    if out.shape != shape:
        raise Wrong(f"{what} must return shape {shape}, got {out.shape}")
    return out


def _unchanged(given: dict, originals: dict, what: str) -> None:
    """Every array handed to the answer must be as it was: the caller may still need it."""
    for name, arr in given.items():
        unchanged(name, originals[name], arr, what)


def _first_difference(got, want, atol):
    """``(row, column, got, want)`` of the first element of ``got`` that differs, or None."""
    bad = np.argwhere(~np.isclose(got, want, atol=atol, rtol=0))
    if not len(bad):
        return None
    r, c = (int(i) for i in bad[0])
    return r, c, got[r, c], want[r, c]


def _xy(p) -> str:
    return f"({p[0]:.4f}, {p[1]:.4f})"


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


def _rounded_pixels(xyz, K):
    """A typical mistake: pixels rounded to whole numbers (keypoints are sub-pixel)."""
    uvw = np.asarray(xyz, float) @ np.asarray(K, float).T
    return np.round(uvw[:, :2] / uvw[:, 2:3])


def _project_list(xyz, K):
    """A typical mistake: the right pixels, returned as a Python list (.tolist())."""
    uvw = np.asarray(xyz, float) @ np.asarray(K, float).T
    return (uvw[:, :2] / uvw[:, 2:3]).tolist()


def _divides_in_place(xyz, K):
    """A typical mistake: dividing the caller's points by z in place."""
    xyz /= xyz[:, 2:3]
    return (xyz @ np.asarray(K).T)[:, :2]


@exercise("01.1", "pinhole projection",
          nudge="Look at the formula z·(u, v, 1) = K·(x, y, z): K times a point gives the pixel "
                "multiplied by z, so after the product divide by its third entry. Then the "
                "product itself: for (N, 3) rows, 'K times every point' is one matrix product; "
                "which side of xyz does K go on, and is it K or K transposed?",
          hint="uvw = xyz @ K.T has rows [u*z, v*z, z]; return uvw[:, :2] / uvw[:, 2:3] (a new "
               "array; do not divide xyz in place).",
          wrong=[_no_division, _transposed_K, _divide_without_centre, _rounded_pixels,
                 _divides_in_place, _project_list])
def _(project):
    xyz, K = _XYZ.copy(), _K.copy()
    uv = _array(project(xyz, K), (len(_XYZ), 2), "my_project(xyz, K) of (4, 3) points")
    _unchanged({"xyz": xyz, "K": K}, {"xyz": _XYZ, "K": _K}, "my_project")
    expected = np.array([[100.0, 80.0], [200.0, 80.0], [100.0, 0.0], [112.5, 95.0]])
    names = ["a point on the optical axis", "a point 0.1 m right at 0.5 m",
             "a point 0.05 m up at 0.25 m", "a point at (0.02, 0.03, 0.8) m"]
    if np.allclose(uv, expected * _XYZ[:, 2:3], atol=1e-6):
        raise Wrong("every pixel is the right one multiplied by the point's depth z (for "
                    f"{names[3]}: {_xy(expected[3] * _XYZ[3, 2])} instead of {_xy(expected[3])}): "
                    "K·xyz gives z·(u, v, 1), so divide the first two columns by the third")
    for k in range(len(_XYZ)):
        if not np.allclose(uv[k], expected[k], atol=1e-6):
            raise Wrong(f"for {names[k]} with fx=500, fy=400, cx=100, cy=80 the pixel is "
                        f"{_xy(expected[k])}, got {_xy(uv[k])}")
    far = _array(project(3.0 * _XYZ, _K.copy()), (len(_XYZ), 2), "my_project")
    if not np.allclose(far, uv, atol=1e-6):
        raise Wrong("scaling every point by 3 (3x bigger, 3x farther) must not move the pixels, "
                    f"but the last point moved from {_xy(uv[-1])} to {_xy(far[-1])}")
    rng = _rng(1)
    for _trial in range(3):  # random sub-pixel points, each at its own depth, on a random camera
        K, xyz = _random_camera(rng), _random_points(rng, 7)
        want = (K[:2, :2] @ (xyz[:, :2] / xyz[:, 2:3]).T).T + K[:2, 2]
        given_xyz, given_K = xyz.copy(), K.copy()
        got = _array(project(given_xyz, given_K), want.shape, "my_project of (7, 3) points")
        _unchanged({"xyz": given_xyz, "K": given_K}, {"xyz": xyz, "K": K}, "my_project")
        if (d := _first_difference(got, want, 1e-6)) is not None:
            r, c, g, w = d
            raise Wrong(f"for the point {xyz[r].round(4).tolist()} m and fx={K[0, 0]:.2f}, "
                        f"fy={K[1, 1]:.2f}, cx={K[0, 2]:.2f}, cy={K[1, 2]:.2f}, "
                        f"{'uv'[c]} should be {w:.4f}, got {g:.4f} (off by {g - w:+.4f} px)")
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


def _normalise(kp, w, h):
    return (np.asarray(kp, float) + 0.5) / np.array([w, h])


def _inverse_plus_half(uv, w, h):
    """A typical mistake: the inverse adds the half pixel instead of taking it off."""
    return np.asarray(uv, float) * np.array([w, h]) + 0.5


def _normalise_in_place(kp, w, h):
    kp += 0.5
    kp /= np.array([w, h])
    return kp


def _to_pixels(uv, w, h):
    return np.asarray(uv, float) * np.array([w, h]) - 0.5


@exercise("01.2", "normalised coordinates",
          nudge="Where does the image start and end in pixel coordinates if pixel i covers "
                "[i - 0.5, i + 0.5]? Normalising maps that span onto [0, 1]: shift, then divide "
                "x by one side of the image and y by the other. The inverse undoes both steps in "
                "reverse order.",
          hint="u = (x + 0.5) / width and v = (y + 0.5) / height; the inverse is x = u * width - "
               "0.5 (and y = v * height - 0.5). Return new arrays.",
          wrong=[(_corner_convention, _corner_inverse), (_align_corners, _align_corners_inverse),
                 (_swapped, _swapped_inverse), (_normalise, _inverse_plus_half),
                 (_normalise_in_place, _to_pixels)])
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
    given = kp.copy()
    uv = _array(to_normalised(given, w, h), kp.shape, "to_normalised")
    _unchanged({"kp": given}, {"kp": kp}, "to_normalised")
    expected = np.array([[0.0, 0.0], [1.0, 1.0], [0.5 / 8, 0.5 / 5], [0.5, 0.5], [7.5 / 8, 4.5 / 5]])
    names = ["the image's top-left corner (-0.5, -0.5)", "its bottom-right corner (7.5, 4.5)",
             "the centre of pixel (0, 0)", "the image centre (3.5, 2.0)",
             "the centre of the last pixel (7, 4)"]
    for k in range(len(kp)):
        if not np.allclose(uv[k], expected[k], atol=1e-9):
            raise Wrong(f"in an {w}x{h} image (width x height), {names[k]} normalises to "
                        f"{_xy(expected[k])}, got {_xy(uv[k])}")
    given_uv = uv.copy()
    back = _array(to_pixels(given_uv, w, h), kp.shape, "to_pixels")
    _unchanged({"uv": given_uv}, {"uv": uv}, "to_pixels")
    if (d := _first_difference(back, kp, 1e-9)) is not None:
        r, c, g, want = d
        raise Wrong(f"to_pixels(to_normalised(kp)) must give kp back: {names[r]} came back with "
                    f"{'xy'[c]} = {g:.4f} instead of {want:.4f} (off by {g - want:+.4f} px)")
    rng = _rng(2)
    w, h = 37, 23  # random sub-pixel points in an odd-sized image that is not square
    kp = np.column_stack([rng.uniform(-0.5, w - 0.5, 9), rng.uniform(-0.5, h - 0.5, 9)])
    want = (kp + 0.5) / np.array([w, h])
    given = kp.copy()
    got = _array(to_normalised(given, w, h), kp.shape, "to_normalised of (9, 2) keypoints")
    _unchanged({"kp": given}, {"kp": kp}, "to_normalised")
    if (d := _first_difference(got, want, 1e-9)) is not None:
        r, c, g, v = d
        raise Wrong(f"in a {w}x{h} image, the keypoint {_xy(kp[r])} has {'uv'[c]} = {v:.6f}, got "
                    f"{g:.6f}")
    given_uv = want.copy()
    back = _array(to_pixels(given_uv, w, h), kp.shape, "to_pixels of (9, 2) points")
    _unchanged({"uv": given_uv}, {"uv": want}, "to_pixels")
    if (d := _first_difference(back, kp, 1e-9)) is not None:
        r, c, g, v = d
        raise Wrong(f"in a {w}x{h} image, to_pixels of {_xy(want[r])} should give {'xy'[c]} = "
                    f"{v:.4f}, got {g:.4f} (off by {g - v:+.4f} px)")
    # Resizing the image from W to 2W maps x' = (x + 0.5) * 2 - 0.5: the same normalised point.
    big = _array(to_normalised((kp + 0.5) * 2 - 0.5, 2 * w, 2 * h), kp.shape, "to_normalised")
    if not np.allclose(big, want, atol=1e-9):
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


def _flip_rounded(kp, w):
    """A typical mistake: keypoints rounded to whole pixels on the way."""
    out = np.round(np.array(kp, float))
    out[:, 0] = w - 1 - out[:, 0]
    return out


def _flip_list(kp, w):
    """A typical mistake: the right keypoints, returned as a Python list."""
    return [[w - 1 - x, y] for x, y in np.asarray(kp, float).tolist()]


def _flip_truncated(kp, w):
    """A typical mistake: an integer copy (np.array(kp, dtype=int)) truncates sub-pixel keypoints."""
    out = np.array(kp, dtype=int)
    out[:, 0] = w - 1 - out[:, 0]
    return out


@exercise("01.3", "horizontal flip of keypoints",
          nudge="Follow one pixel: after image[:, ::-1], where is column 0, and where is the last "
                "column? A keypoint is a position, not a pixel index, so it keeps its fraction; "
                "and the caller's array must stay as it was.",
          hint="image[:, ::-1] moves column i to column W - 1 - i: x' = width - 1 - x, on a float "
               "copy (np.array(kp, dtype=float)); y and the joint order stay.",
          wrong=[_flip_edges, _flip_y, _flip_and_reverse, _flip_in_place, _flip_rounded,
                 _flip_truncated, _flip_list])
def _(flip_keypoints):
    w, h = 7, 4
    kp = np.array([[2.0, 1.0], [0.0, 3.0], [6.0, 0.0], [3.0, 2.0]])
    given = kp.copy()
    out = _array(flip_keypoints(given, w), kp.shape, "flip_keypoints of (4, 2) keypoints")
    _unchanged({"kp": given}, {"kp": kp}, "flip_keypoints")
    for k, (x, y) in enumerate(kp.astype(int)):
        image = np.zeros((h, w))
        image[y, x] = 1.0  # joint k alone, then mirrored the way the image is
        yf, xf = np.argwhere(image[:, ::-1] == 1.0)[0]
        if not np.allclose(out[k], [xf, yf], atol=1e-9):
            raise Wrong(f"joint {k} at the centre of pixel {_xy(kp[k])} of a {w}-pixel-wide image "
                        f"is at {_xy([xf, yf])} after image[:, ::-1], got {_xy(out[k])} (row k of "
                        "the result must stay joint k)")
    rng = _rng(3)
    w, h = 37, 23  # sub-pixel keypoints anywhere in a non-square image, edges included
    kp = np.column_stack([rng.uniform(-0.5, w - 0.5, 9), rng.uniform(-0.5, h - 0.5, 9)])
    kp[0], kp[1] = (-0.5, 3.25), (w - 0.5, h - 0.5)
    given = kp.copy()
    out = _array(flip_keypoints(given, w), kp.shape, "flip_keypoints of (9, 2) keypoints")
    _unchanged({"kp": given}, {"kp": kp}, "flip_keypoints")
    want = np.column_stack([w - 1 - kp[:, 0], kp[:, 1]])
    if (d := _first_difference(out, want, 1e-9)) is not None:
        r, c, g, v = d
        where = "the left edge" if r == 0 else "the bottom-right corner" if r == 1 else "a keypoint"
        raise Wrong(f"in a {w}x{h} image, {where} at {_xy(kp[r])} mirrors to {_xy(want[r])}, got "
                    f"{_xy(out[r])} ({'xy'[c]} off by {g - v:+.4f} px; keypoints are sub-pixel "
                    "positions, keep their fractions)")
    twice = _array(flip_keypoints(out.copy(), w), kp.shape, "flip_keypoints")
    if not np.allclose(twice, kp, atol=1e-9):
        raise Wrong("flipping twice must give the original keypoints")
    return "Every keypoint lands where the mirrored image puts it, fractions kept; two flips cancel."


# --- 01.4 the camera of a cropped and resized image (transfer) --------------------------------


def _crop_resize(K, box, size):
    """The reference: crop (shift by the box's corner), then the pixel-centre resize."""
    left, top, bw, bh = box
    sx, sy = size[0] / bw, size[1] / bh
    A = np.array([[sx, 0.0, sx * (0.5 - left) - 0.5], [0.0, sy, sy * (0.5 - top) - 0.5],
                  [0.0, 0.0, 1.0]])
    return A @ np.asarray(K, float)


def _scale_without_half_pixel(K, box, size):
    """A typical mistake: c' = (c - left) * s, the resize that puts pixel centres at corners."""
    left, top, bw, bh = box
    K = np.array(K, float)
    K[0] *= size[0] / bw
    K[1] *= size[1] / bh
    K[0, 2] -= left * size[0] / bw
    K[1, 2] -= top * size[1] / bh
    return K


def _focal_only(K, box, size):
    """A typical mistake: scale the focal lengths, leave the principal point alone."""
    left, top, bw, bh = box
    K = np.array(K, float)
    K[0, 0] *= size[0] / bw
    K[1, 1] *= size[1] / bh
    K[0, 2] -= left
    K[1, 2] -= top
    return K


def _crop_after_resize(K, box, size):
    """A typical mistake: subtract the box corner after scaling (in resized pixels)."""
    left, top, bw, bh = box
    sx, sy = size[0] / bw, size[1] / bh
    K = np.array(K, float)
    K[0, 0] *= sx
    K[1, 1] *= sy
    K[0, 2] = (K[0, 2] + 0.5) * sx - 0.5 - left
    K[1, 2] = (K[1, 2] + 0.5) * sy - 0.5 - top
    return K


def _one_scale(K, box, size):
    """A typical mistake: one scale for both axes (the width's), fine only for square resizes."""
    left, top, bw, _ = box
    return _crop_resize(K, (left, top, bw, bw * size[1] / size[0]), size)


def _crop_resize_in_place(K, box, size):
    out = _crop_resize(K, box, size)
    K[...] = out
    return K


@exercise("01.4", "the camera of a cropped and resized image",
          nudge="Don't touch K yet: write where a pixel x of the original lands, first in the crop "
                "(it starts at column `left`), then after the resize (pixel centres at integers, "
                "as for normalised coordinates). That map is x'' = a·x + b; now put u = f_x·x/z + "
                "c_x into it and read off the new f_x and c_x. The same for y with its own scale.",
          hint="sx = W'/width, sy = H'/height; f_x' = sx·f_x, c_x' = (c_x - left + 0.5)·sx - 0.5, "
               "f_y' = sy·f_y, c_y' = (c_y - top + 0.5)·sy - 0.5, on a copy of K (as a matrix: "
               "K' = A @ K with A = [[sx, 0, sx·(0.5 - left) - 0.5], [0, sy, sy·(0.5 - top) - "
               "0.5], [0, 0, 1]]).",
          wrong=[_scale_without_half_pixel, _focal_only, _crop_after_resize, _one_scale,
                 _crop_resize_in_place],
          transfer=True)
def _(crop_resize_K):
    rng = _rng(4)
    cases = [(np.array([[480.0, 0.0, 112.0], [0.0, 480.0, 112.0], [0.0, 0.0, 1.0]]),
              (0, 0, 224, 224), (112, 112), "halving a 224x224 image (no crop)"),
             (np.array([[480.0, 0.0, 112.0], [0.0, 480.0, 112.0], [0.0, 0.0, 1.0]]),
              (40, 30, 100, 100), (100, 100), "a 100x100 crop at (40, 30), not resized"),
             (_random_camera(rng), (17, 9, 120, 90), (64, 96),
              "a 120x90 crop at (17, 9) resized to 64x96 (a different scale for x and y)")]
    for K, box, size, what in cases:
        given = K.copy()
        K2 = _array(crop_resize_K(given, box, size), (3, 3), f"my_crop_resize_K for {what}")
        _unchanged({"K": given}, {"K": K}, "my_crop_resize_K")
        # Where a point lands: project with the original K, then crop and resize its pixel.
        xyz = _random_points(rng, 6)
        uv = (K[:2, :2] @ (xyz[:, :2] / xyz[:, 2:3]).T).T + K[:2, 2]
        s = np.array(size) / np.array(box[2:])
        want = (uv - np.array(box[:2]) + 0.5) * s - 0.5
        with np.errstate(all="ignore"):
            uvw = xyz @ K2.T
            got = uvw[:, :2] / uvw[:, 2:3]
        if (d := _first_difference(got, want, 1e-6)) is not None:
            r, c, g, v = d
            raise Wrong(f"for {what}: a point on pixel {_xy(uv[r])} of the original must land on "
                        f"{_xy(want[r])} of the new image; projected with your K' it lands on "
                        f"{_xy(got[r])} ({'xy'[c]} off by {g - v:+.4f} px)")
    return ("Projecting with K' lands every point where the crop and the resize move its pixel, "
            "with a different scale for x and y.")
