"""Checks for notebook 04 (MobileNetV2 landmarks): MediaPipe's normalisation, the true MPJPE,
a horizontal flip of a training sample, and two transfers: from landmarks back to metres with a
camera whose f_x and f_y differ, and the landmarks of a crop."""

from __future__ import annotations

import numpy as np
import torch

from . import Wrong, exercise, unchanged

AXES = "xyz"


def _pair(want: float, got: float) -> tuple[str, str]:
    """Two numbers printed with as many digits as it takes for them to look different."""
    for digits in range(4, 18):
        a, b = f"{want:.{digits}g}", f"{got:.{digits}g}"
        if a != b:
            return a, b
    return repr(want), repr(got)


def _worst(got: np.ndarray, want: np.ndarray, unit: str = "") -> str:
    """Where two (J, 3) arrays differ most: which joint and axis, both values, and by how much."""
    bad = ~np.isfinite(got)
    if bad.any():
        j, a = np.argwhere(bad)[0]
        return f"joint {j}, {AXES[a]} is {got[j, a]} (not a finite number)"
    diff = np.abs(got - want)
    j, a = np.unravel_index(int(diff.argmax()), diff.shape)
    w, g = _pair(float(want[j, a]), float(got[j, a]))
    return (f"joint {j}, {AXES[a]}: expected {w}{unit}, got {g}{unit} (off by "
            f"{diff[j, a]:.3g}{unit}; {int((diff > diff[j, a] * 1e-3).sum())} of {diff.size} "
            f"numbers differ)")


def _camera(rng, width, height):
    """A random pinhole camera whose f_x and f_y differ (non-square pixels or a resized image)
    and whose principal point is off the centre by a sub-pixel amount."""
    fx = rng.uniform(0.8, 1.2) * width
    fy = fx * rng.uniform(1.1, 1.3) * (1 if rng.random() < 0.5 else 1 / 1.4)
    cx = width / 2 - 0.5 + rng.uniform(-0.05, 0.05) * width
    cy = height / 2 - 0.5 + rng.uniform(-0.05, 0.05) * height
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def _hand(rng, distance=0.5):
    """Random camera-frame joints (21, 3) in metres around a wrist ``distance`` away."""
    joints = rng.normal(0, 0.04, (21, 3))
    joints[0] = 0.0
    joints[:, 2] = joints[:, 2] + distance
    joints[:, :2] += rng.uniform(-0.05, 0.05, 2)
    return joints


def _reference_normalise(joints, K, width, height):
    """An independent implementation: x = (u + 0.5) / W, y = (v + 0.5) / H,
    z = (Z - Z_wrist) fx / (Z_wrist W)."""
    joints, K = np.asarray(joints, float), np.asarray(K, float)
    u = K[0, 0] * joints[:, 0] / joints[:, 2] + K[0, 2]
    v = K[1, 1] * joints[:, 1] / joints[:, 2] + K[1, 2]
    z = (joints[:, 2] - joints[0, 2]) * K[0, 0] / (joints[0, 2] * width)
    return np.stack([(u + 0.5) / width, (v + 0.5) / height, z], axis=1)



# --- 04.1 MediaPipe's normalisation -----------------------------------------------------------


def _y_by_width(joints, K, width, height):
    """A typical mistake: y divided by the width too (the aspect ratio forgotten)."""
    out = _reference_normalise(joints, K, width, height)
    out[:, 1] *= height / width
    return out


def _z_in_metres(joints, K, width, height):
    """A typical mistake: z as the metric depth offset from the wrist (no fx / (Z_wrist W))."""
    out = _reference_normalise(joints, K, width, height)
    out[:, 2] = np.asarray(joints, float)[:, 2] - joints[0][2]
    return out


def _z_by_height(joints, K, width, height):
    """A typical mistake: z divided by the image height instead of the width (x's scale)."""
    out = _reference_normalise(joints, K, width, height)
    out[:, 2] *= width / height
    return out


def _z_by_fy(joints, K, width, height):
    """A typical mistake: z scaled with f_y instead of f_x (the same when f_x = f_y)."""
    out = _reference_normalise(joints, K, width, height)
    out[:, 2] *= K[1][1] / K[0][0]
    return out


def _no_half_pixel(joints, K, width, height):
    """A typical mistake: x = u / W (pixel corners) instead of (u + 0.5) / W."""
    out = _reference_normalise(joints, K, width, height)
    out[:, 0] -= 0.5 / width
    out[:, 1] -= 0.5 / height
    return out


def _joints_in_place(joints, K, width, height):
    """A typical mistake: the right numbers, but the wrist-relative depth written into the
    caller's joints."""
    out = _reference_normalise(joints, K, width, height)
    joints[:, 2] -= joints[0, 2].copy()
    return out


def _as_list(joints, K, width, height):
    """A typical mistake: the right numbers as a Python list (``.tolist()``), which the next
    cells cannot index as ``lm[8, 0]``."""
    return _reference_normalise(joints, K, width, height).tolist()


@exercise("04.1", "MediaPipe's landmark normalisation",
          nudge="Section 3 gives all three formulas. Which focal length is z's, whose image "
                "side divides x and z, and where are pixel centres (u = x W - 1/2)?",
          hint="u = f_x X / Z + c_x, v = f_y Y / Z + c_y; x = (u + 0.5) / W, y = (v + 0.5) / H; "
               "z = (Z - Z_wrist) * f_x / (Z_wrist * W) (x's scale: f_x and W, never f_y or H). "
               "Work on np.asarray(joints, float) and return a new (21, 3) array.",
          wrong=[_y_by_width, _z_in_metres, _z_by_height, _z_by_fy, _no_half_pixel,
                 _joints_in_place, _as_list])
def _(to_mediapipe):
    rng = np.random.default_rng(4)

    def run(j, k, w, h):
        j0, k0 = np.array(j, copy=True), np.array(k, copy=True)
        got = to_mediapipe(j, k, w, h)
        unchanged("joints", j0, j)
        unchanged("K", k0, k)
        if not isinstance(got, np.ndarray):
            raise Wrong(f"return a numpy array of shape (21, 3), got a {type(got).__name__}: the "
                        "cells below index it as lm[8, 0] and compute with it (np.stack([...], "
                        "axis=1) builds one; no .tolist())")
        if got.shape != (21, 3):
            raise Wrong(f"return a numpy array of shape (21, 3) (x, y, z per joint), got shape "
                        f"{got.shape}")
        return np.asarray(got, float)

    for w, h in ((640, 480), (360, 640), (517, 333)):  # wide, portrait, odd sizes
        K = _camera(rng, w, h)
        joints = _hand(rng, rng.uniform(0.3, 0.9))
        out = run(joints, K, w, h)
        if abs(out[0, 2]) > 1e-9:
            raise Wrong(f"the wrist's z must be 0 (z is relative to the wrist), got "
                        f"{out[0, 2]:.6g}")
        want = _reference_normalise(joints, K, w, h)
        uv = want[:, :2] * (w, h) - 0.5
        back = out[:, :2] * (w, h) - 0.5  # landmarks_to_pixels
        if not np.allclose(back, uv, atol=1e-6):
            raise Wrong(f"in a {w}x{h} image with f_x = {K[0, 0]:.1f} px, f_y = "
                        f"{K[1, 1]:.1f} px: x W - 1/2 and y H - 1/2 must give back the projected "
                        f"pixel (u, v); " + _worst(back, uv, " px"))
        s = 0.5  # the same scene in an image half the size: normalised landmarks do not change
        K_small = K.copy()
        K_small[:2, :2] *= s
        K_small[:2, 2] = (K[:2, 2] + 0.5) * s - 0.5
        small = run(joints, K_small, w * s, h * s)
        if not np.allclose(small, out, atol=1e-6):
            axis = AXES[int(np.abs(small - out).max(0).argmax())]
            raise Wrong(f"resizing the image to half its size (f_x, f_y, W and H halve) changed "
                        f"{axis}: normalised landmarks must not depend on the resolution")
        far = run(joints * 2.0, K, w, h)  # the same hand twice as far and twice as large
        if not np.allclose(far, out, atol=1e-6):
            raise Wrong("a hand twice as large and twice as far looks the same in the image, "
                        "but your z changed: divide the depth offset by the wrist's depth")
        if not np.allclose(out, want, atol=1e-7):
            raise Wrong(f"in a {w}x{h} image with f_x = {K[0, 0]:.1f} px and f_y = "
                        f"{K[1, 1]:.1f} px, z (the depth offset on x's scale) is off: "
                        + _worst(out, want))
    return ("x, y and z do not depend on the image size, and z does not change when the whole "
            "hand is scaled about the camera (a bigger hand farther away), with f_x != f_y and "
            "non-square images.")


# --- 04.2 true MPJPE --------------------------------------------------------------------------


def _mean_abs(pred, gt):
    """A typical mistake: the mean absolute coordinate error."""
    return float((torch.as_tensor(pred) - torch.as_tensor(gt)).abs().mean())


def _rmse(pred, gt):
    """A typical mistake: the root of the mean squared distance (an RMSE, not a mean)."""
    d = torch.as_tensor(pred) - torch.as_tensor(gt)
    return float(d.pow(2).sum(-1).mean().sqrt())


def _per_hand_norm(pred, gt):
    """A typical mistake: one norm over all 63 numbers of a hand, divided by the 21 joints."""
    d = torch.as_tensor(pred) - torch.as_tensor(gt)
    return float(torch.linalg.vector_norm(d.flatten(1), dim=1).mean() / d.shape[1])


def _xy_only(pred, gt):
    """A typical mistake: the distance in x and y only (z forgotten)."""
    d = torch.as_tensor(pred) - torch.as_tensor(gt)
    return float(torch.linalg.vector_norm(d[..., :2], dim=-1).mean())


def _mpjpe_in_place(pred, gt):
    """A typical mistake: the right mean, computed by subtracting in place from ``pred``."""
    pred -= gt
    return float(torch.linalg.vector_norm(pred, dim=-1).mean())


@exercise("04.2", "true MPJPE",
          nudge="Section 7's formula: a distance per joint (which axis of the (N, 21, 3) tensor "
                "holds x, y, z?), then one mean over all N x 21 distances.",
          hint="torch.linalg.vector_norm(pred - gt, dim=-1) gives (N, 21) Euclidean distances; "
               "return float(their .mean()). No square root after the mean, no in-place ops.",
          wrong=[_mean_abs, _rmse, _per_hand_norm, _xy_only, _mpjpe_in_place])
def _(mpjpe):
    def run(pred, gt, case):
        p0, g0 = pred.clone(), gt.clone()
        got = mpjpe(pred, gt)
        unchanged("pred", p0, pred)
        unchanged("gt", g0, gt)
        try:
            return float(got)
        except (TypeError, ValueError) as err:
            raise Wrong(f"{case}: return one number (a float or a 0-d tensor), got "
                        f"{type(got).__name__} {getattr(got, 'shape', '')}") from err

    def expect(got, want, case):
        if not abs(got - want) <= 1e-5 * max(1.0, abs(want)):
            w, g = _pair(want, got)
            raise Wrong(f"{case}: the MPJPE should be {w}, got {g}")

    gt = torch.zeros(2, 21, 3)
    pred = gt.clone()
    pred[..., 0], pred[..., 1] = 0.03, 0.04
    expect(run(pred, gt, "every joint off by (0.03, 0.04, 0)"), 0.05,
           "every joint off by (0.03, 0.04, 0), 0.05 away")
    pred = gt.clone()
    pred[0, :10, 2] = 0.3
    expect(run(pred, gt, "ten joints 0.3 off in z"), 0.3 * 10 / 42,
           "10 of the 42 joints 0.3 off in z and the others exact (a mean of distances)")
    g = torch.Generator().manual_seed(2)
    gt = torch.rand(3, 21, 3, generator=g)
    pred = gt + 0.1 * torch.randn(3, 21, 3, generator=g) * torch.tensor([1.0, 0.5, 2.0])
    want = float(np.linalg.norm(pred.numpy() - gt.numpy(), axis=-1).mean())
    expect(run(pred, gt, "random errors"), want,
           "3 hands with random errors, largest in z")
    return "a mean of Euclidean distances over x, y and z, larger than the mean |coordinate| error."


# --- 04.3 horizontal flip ---------------------------------------------------------------------


def _flip_no_label(image, target):
    """A typical mistake: the image and x mirrored, the handedness label kept."""
    t = target.clone()
    t[0:63:3] = -t[0:63:3]
    return image.flip(-1), t


def _flip_one_minus(image, target):
    """A typical mistake: 1 - x' as if the targets were in [0, 1] (they span [-1, 1])."""
    t = target.clone()
    t[0:63:3] = 1 - t[0:63:3]
    t[63] = 1 - t[63]
    return image.flip(-1), t


def _flip_z_too(image, target):
    """A typical mistake: z negated as well (a mirror in x does not change depth)."""
    t = target.clone()
    t[0:63:3], t[2:63:3] = -t[0:63:3], -t[2:63:3]
    t[63] = 1 - t[63]
    return image.flip(-1), t


def _flip_in_place(image, target):
    """A typical mistake: the right flip, written into the caller's tensors."""
    target[0:63:3] *= -1
    target[63] = 1 - target[63]
    return image.flip(-1), target


def _flip_reversed_joints(image, target):
    """A typical mistake: the joints' order reversed as if left and right joints swapped."""
    lm = target[:63].view(21, 3).flip(0) * torch.tensor([-1.0, 1.0, 1.0])
    return image.flip(-1), torch.cat([lm.reshape(-1), 1 - target[63:]])


@exercise("04.3", "horizontal flip of a sample",
          nudge="Three things mirror together: the image (which axis of (3, H, W) is x?), x' in "
                "target units ([-1, 1], not [0, 1]) and the hand side. Start from target.clone().",
          hint="flip the image's last axis; x' -> -x' (x -> 1 - x in [0, 1]), y' and z' stay, "
               "p_right -> 1 - p_right (NaN stays NaN); the joint order stays.",
          wrong=[_flip_no_label, _flip_one_minus, _flip_z_too, _flip_in_place,
                 _flip_reversed_joints])
def _(hflip):
    h, w = 6, 8
    rng = np.random.default_rng(0)
    cols, rows = rng.integers(0, w, 21), rng.integers(0, h, 21)
    x = (cols + 0.5) / w * 2 - 1  # encoded x' of the pixel centre (cols + 0.5) / W
    y = (rows + 0.5) / h * 2 - 1
    z = rng.normal(0, 0.1, 21)
    target = torch.tensor(np.append(np.stack([x, y, z], 1).reshape(-1), 0.8), dtype=torch.float32)
    image = torch.zeros(3, h, w)
    image[0, rows[3], cols[3]] = 1.0  # a bright pixel under joint 3
    image_in, target_in = image.clone(), target.clone()
    img2, t2 = hflip(image_in, target_in)
    if not (torch.equal(image_in, image) and torch.equal(target_in, target)):
        raise Wrong("hflip changed its inputs: build a new image and a new target (e.g. "
                    "target.clone() first). A dataset hands out its cached samples, and an "
                    "in-place flip would corrupt them for the next epoch")
    img2, t2 = torch.as_tensor(img2), torch.as_tensor(t2, dtype=torch.float32)
    if img2.shape != image.shape or t2.shape != target.shape:
        raise Wrong(f"hflip must return an image {tuple(image.shape)} and a target "
                    f"{tuple(target.shape)}, got {tuple(img2.shape)} and {tuple(t2.shape)}")
    lm, lm2 = target[:63].view(21, 3), t2[:63].view(21, 3)
    want = lm * torch.tensor([-1.0, 1.0, 1.0])
    if torch.allclose(lm2.flip(0), want, atol=1e-6):
        raise Wrong("the joints came back in reverse order: a hand's 21 joints have no "
                    "left/right twins, so joint k stays joint k")
    r, c = divmod(int(img2[0].argmax()), w)
    col = ((float(t2[9]) + 1) / 2) * w - 0.5  # where the flipped target puts joint 3
    if (r, c) != (rows[3], w - 1 - cols[3]) or float(img2[0].max()) != 1.0:
        raise Wrong(f"the image must be mirrored left to right (its last axis): the bright "
                    f"pixel at row {rows[3]}, column {cols[3]} of a {h}x{w} image should move to "
                    f"row {rows[3]}, column {w - 1 - cols[3]}")
    if abs(col - c) > 1e-4:
        raise Wrong(f"after the flip joint 3's pixel is in column {c}, but your target puts "
                    f"it at column {col:.2f}: in target units the mirror is x' -> -x'")
    if not torch.allclose(lm2, want, atol=1e-6):
        raise Wrong("only x' of each joint changes sign: " + _worst(lm2.numpy(), want.numpy()))
    if abs(float(t2[63]) - 0.2) > 1e-6:
        raise Wrong(f"a mirrored right hand looks like a left hand: p_right 0.8 must become "
                    f"0.2, got {float(t2[63]):.6g}")
    target[63] = float("nan")
    _, t3 = hflip(image.clone(), target.clone())
    if not torch.isnan(torch.as_tensor(t3)[63]):
        raise Wrong("an unknown handedness (NaN) must stay unknown after a flip, got "
                    f"{float(torch.as_tensor(t3)[63]):.6g}")
    img4, t4 = hflip(*hflip(image.clone(), target.clone()))
    if not (torch.equal(torch.as_tensor(img4), image)
            and torch.allclose(torch.as_tensor(t4)[:63], target[:63], atol=1e-6)):
        raise Wrong("two flips must give back the original sample")
    return "image, x' and handedness mirror together; y', z' and the joint order stay."


# --- 04.4 transfer: back to metres with f_x != f_y --------------------------------------------


def _inverse(landmarks, K, width, height, z_wrist, f_depth=None):
    """An independent implementation of the way back (used to make wrong answers);
    ``f_depth`` replaces f_x in the depth."""
    lm, K = np.asarray(landmarks, float), np.asarray(K, float)
    Z = z_wrist * (1 + lm[:, 2] * width / (K[0, 0] if f_depth is None else f_depth))
    u, v = lm[:, 0] * width - 0.5, lm[:, 1] * height - 0.5
    return np.stack([(u - K[0, 2]) * Z / K[0, 0], (v - K[1, 2]) * Z / K[1, 1], Z], 1)


def _back_fx_for_y(landmarks, K, width, height, z_wrist):
    """A typical mistake: Y from v with f_x (the same as f_y on a square-pixel camera)."""
    out = _inverse(landmarks, K, width, height, z_wrist)
    out[:, 1] *= K[1][1] / K[0][0]
    return out


def _back_z_fy(landmarks, K, width, height, z_wrist):
    """A typical mistake: the depth offset scaled back with f_y."""
    return _inverse(landmarks, K, width, height, z_wrist, f_depth=K[1][1])


def _back_z_metres(landmarks, K, width, height, z_wrist):
    """A typical mistake: z taken as metres, Z = Z_wrist + z."""
    lm = np.asarray(landmarks, float)
    out = _inverse(lm, K, width, height, z_wrist)
    Z = z_wrist + lm[:, 2]
    return np.c_[out[:, :2] / out[:, 2:] * Z[:, None], Z]


def _back_no_half_pixel(landmarks, K, width, height, z_wrist):
    """A typical mistake: u = x W (the half-pixel shift forgotten)."""
    lm = np.array(landmarks, float)
    lm[:, 0] += 0.5 / width
    lm[:, 1] += 0.5 / height
    return _inverse(lm, K, width, height, z_wrist)


def _back_wrist_depth_everywhere(landmarks, K, width, height, z_wrist):
    """A typical mistake: every joint back-projected at the wrist's depth (z ignored)."""
    out = _inverse(landmarks, K, width, height, z_wrist)
    return np.c_[out[:, :2] / out[:, 2:] * z_wrist, np.full(len(out), float(z_wrist))]


@exercise("04.4", "landmarks back to metres (f_x != f_y)",
          transfer=True,
          nudge="Undo section 3's steps in reverse order: z gives each joint's depth Z (solve "
                "z = (Z - Z_wrist) f_x / (Z_wrist W) for Z), then x and y give the pixel, then "
                "the pixel and Z give X and Y.",
          hint="Z = Z_wrist (1 + z W / f_x); u = x W - 0.5, v = y H - 0.5; "
               "X = (u - c_x) Z / f_x, Y = (v - c_y) Z / f_y. Return a new (21, 3) array.",
          wrong=[_back_fx_for_y, _back_z_fy, _back_z_metres, _back_no_half_pixel,
                 _back_wrist_depth_everywhere])
def _(from_mediapipe):
    rng = np.random.default_rng(11)
    for w, h in ((640, 480), (333, 517)):
        K = _camera(rng, w, h)
        z_wrist = rng.uniform(0.3, 0.9)
        joints = _hand(rng, z_wrist)
        lm = _reference_normalise(joints, K, w, h)
        lm0, K0 = lm.copy(), K.copy()
        out = np.asarray(from_mediapipe(lm, K, w, h, z_wrist), float)
        unchanged("landmarks", lm0, lm)
        unchanged("K", K0, K)
        if out.shape != (21, 3):
            raise Wrong(f"return (21, 3) camera-frame joints in metres, got shape {out.shape}")
        if not np.allclose(out, joints, atol=1e-9, rtol=1e-7):
            raise Wrong(f"normalising these joints with a {w}x{h} camera (f_x = {K[0, 0]:.1f} px, "
                        f"f_y = {K[1, 1]:.1f} px) and going back does not give them again: "
                        + _worst(out, joints, " m"))
    return "normalise, then your way back: the same joints in metres, with f_x != f_y."


# --- 04.5 transfer: the landmarks of a crop ---------------------------------------------------


def _crop_reference(landmarks, width, height, box):
    lm = np.asarray(landmarks, float)
    x0, y0, cw, ch = box
    return np.stack([(lm[:, 0] * width - x0) / cw, (lm[:, 1] * height - y0) / ch,
                     lm[:, 2] * width / cw], 1)


def _crop_z_kept(landmarks, width, height, box):
    """A typical mistake: z left as it was (it is on the scale of the image's width)."""
    out = _crop_reference(landmarks, width, height, box)
    out[:, 2] = np.asarray(landmarks, float)[:, 2]
    return out


def _crop_z_by_height(landmarks, width, height, box):
    """A typical mistake: z rescaled with the heights (H / h) instead of the widths."""
    out = _crop_reference(landmarks, width, height, box)
    out[:, 2] *= (height / box[3]) / (width / box[2])
    return out


def _crop_half_pixel_twice(landmarks, width, height, box):
    """A typical mistake: the half pixel subtracted but not added back, (x W - 0.5 - x0) / w."""
    out = _crop_reference(landmarks, width, height, box)
    out[:, 0] -= 0.5 / box[2]
    out[:, 1] -= 0.5 / box[3]
    return out


def _crop_swapped_sizes(landmarks, width, height, box):
    """A typical mistake: x divided by the crop's height and y by its width."""
    lm = np.asarray(landmarks, float)
    x0, y0, cw, ch = box
    return np.stack([(lm[:, 0] * width - x0) / ch, (lm[:, 1] * height - y0) / cw,
                     lm[:, 2] * width / cw], 1)


def _crop_in_place(landmarks, width, height, box):
    """A typical mistake: the right numbers, written into the caller's landmarks."""
    out = _crop_reference(landmarks, width, height, box)
    landmarks[:] = out
    return landmarks


@exercise("04.5", "the landmarks of a crop",
          transfer=True,
          nudge="A crop is the image of the same camera with its principal point moved by "
                "(x0, y0) and a smaller W and H. Which of x, y, z depend on W and H?",
          hint="pixel u = x W - 0.5 is u - x0 in the crop, so x_c = (x W - x0) / w and "
               "y_c = (y H - y0) / h; z is on the width's scale: z_c = z W / w.",
          wrong=[_crop_z_kept, _crop_z_by_height, _crop_half_pixel_twice, _crop_swapped_sizes,
                 _crop_in_place])
def _(crop_landmarks):
    rng = np.random.default_rng(5)
    for (w, h), box in (((640, 480), (150, 90, 220, 300)), ((517, 333), (31, 17, 403, 211))):
        K = _camera(rng, w, h)
        joints = _hand(rng, rng.uniform(0.4, 0.8))
        lm = _reference_normalise(joints, K, w, h)
        K_crop = K.copy()
        K_crop[:2, 2] -= box[:2]  # the crop's camera: the principal point moved
        want = _reference_normalise(joints, K_crop, box[2], box[3])
        lm0 = lm.copy()
        out = np.asarray(crop_landmarks(lm, w, h, box), float)
        unchanged("landmarks", lm0, lm)
        if out.shape != (21, 3):
            raise Wrong(f"return the (21, 3) landmarks of the crop, got shape {out.shape}")
        if not np.allclose(out, want, atol=1e-9):
            raise Wrong(f"the crop (x0, y0, w, h) = {box} of a {w}x{h} image is the image of a "
                        "camera whose principal point moved by (x0, y0); MediaPipe's "
                        "normalisation of the 3D joints in that crop gives other landmarks than "
                        "yours: " + _worst(out, want))
    return "x and y follow the crop's pixels, and z the crop's width."
