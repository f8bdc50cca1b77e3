"""Checks for notebook 04 (MobileNetV2 landmarks): MediaPipe's normalisation, the true MPJPE
against the mean absolute coordinate error, and a horizontal flip of a training sample."""

from __future__ import annotations

import numpy as np
import torch

from . import Wrong, exercise

# --- 04.1 MediaPipe's normalisation -----------------------------------------------------------


def _reference_normalise(joints, K, size):
    """An independent implementation: x = (u + 0.5) / W, y = (v + 0.5) / H,
    z = (Z - Z_wrist) fx / (Z_wrist W)."""
    joints, K = np.asarray(joints, float), np.asarray(K, float)
    w, h = size
    u = K[0, 0] * joints[:, 0] / joints[:, 2] + K[0, 2]
    v = K[1, 1] * joints[:, 1] / joints[:, 2] + K[1, 2]
    z = (joints[:, 2] - joints[0, 2]) * K[0, 0] / (joints[0, 2] * w)
    return np.stack([(u + 0.5) / w, (v + 0.5) / h, z], axis=1)


def _y_by_width(joints, K, size):
    """A typical mistake: y divided by the width too (the aspect ratio forgotten)."""
    out = _reference_normalise(joints, K, size)
    out[:, 1] *= size[1] / size[0]
    return out


def _z_in_metres(joints, K, size):
    """A typical mistake: z as the metric depth offset from the wrist (no fx / (Z_wrist W))."""
    out = _reference_normalise(joints, K, size)
    out[:, 2] = np.asarray(joints, float)[:, 2] - joints[0][2]
    return out


def _z_by_height(joints, K, size):
    """A typical mistake: z divided by the image height instead of the width (x's scale)."""
    out = _reference_normalise(joints, K, size)
    out[:, 2] *= size[0] / size[1]
    return out


def _hand(rng, distance=0.5):
    joints = rng.normal(0, 0.04, (21, 3))
    joints[0] = 0.0
    joints[:, 2] = joints[:, 2] + distance
    joints[:, :2] += rng.uniform(-0.05, 0.05, 2)
    return joints


@exercise("04.1", "MediaPipe's landmark normalisation",
          hint="project u = fx X / Z + cx, v = fy Y / Z + cy; x = (u + 0.5) / W, "
               "y = (v + 0.5) / H; z = (Z - Z_wrist) * fx / (Z_wrist * W), on x's scale.",
          wrong=[_y_by_width, _z_in_metres, _z_by_height])
def _(to_mediapipe):
    rng = np.random.default_rng(4)
    w, h = 640, 480  # not square: x and y have different denominators
    K = np.array([[600.0, 0.0, 321.0], [0.0, 600.0, 236.0], [0.0, 0.0, 1.0]])
    joints = _hand(rng)

    def run(j, k, size):
        out = np.asarray(to_mediapipe(j, k, size), float)
        if out.shape != (21, 3):
            raise Wrong(f"to_mediapipe must return (21, 3) landmarks, got shape {out.shape}")
        return out

    out = run(joints, K, (w, h))
    if abs(out[0, 2]) > 1e-9:
        raise Wrong(f"the wrist's z must be 0 (z is relative to the wrist), got {out[0, 2]:.4g}")
    u = K[0, 0] * joints[:, 0] / joints[:, 2] + K[0, 2]
    v = K[1, 1] * joints[:, 1] / joints[:, 2] + K[1, 2]
    back = np.stack([out[:, 0] * w - 0.5, out[:, 1] * h - 0.5], 1)  # landmarks_to_pixels
    if not np.allclose(back, np.stack([u, v], 1), atol=1e-6):
        raise Wrong("x * W - 0.5 and y * H - 0.5 must give back the projected pixel (u, v); "
                    f"joint 5: expected ({u[5]:.2f}, {v[5]:.2f}) px, got "
                    f"({back[5, 0]:.2f}, {back[5, 1]:.2f}) px")
    s = 0.5  # the same scene in an image half the size: normalised landmarks do not change
    K_small = K.copy()
    K_small[:2, :2] *= s
    K_small[:2, 2] = (K[:2, 2] + 0.5) * s - 0.5
    small = run(joints, K_small, (w * s, h * s))
    if not np.allclose(small, out, atol=1e-6):
        axis = "xyz"[int(np.abs(small - out).max(0).argmax())]
        raise Wrong(f"resizing the image to half its size changed {axis}: normalised landmarks "
                    "must not depend on the resolution")
    far = run(joints * 2.0, K, (w, h))  # the same hand twice as far and twice as large
    if not np.allclose(far, out, atol=1e-6):
        raise Wrong("a hand twice as large and twice as far looks the same in the image, but "
                    "your z changed: divide the depth offset by the wrist's depth")
    want = _reference_normalise(joints, K, (w, h))
    if not np.allclose(out[:, 2], want[:, 2], atol=1e-6):
        raise Wrong(f"z of joint 8 should be {want[8, 2]:+.5f} (the depth offset in units of the "
                    f"image width, like x), got {out[8, 2]:+.5f}")
    return "x, y and z do not depend on the image size, and z not on the hand's distance."


# --- 04.2 true MPJPE --------------------------------------------------------------------------


def _mean_abs(pred, gt):
    """A typical mistake: the mean absolute coordinate error (the reference's "MPJPE")."""
    return float((torch.as_tensor(pred) - torch.as_tensor(gt)).abs().mean())


def _rmse(pred, gt):
    """A typical mistake: the root of the mean squared distance (an RMSE, not a mean)."""
    d = torch.as_tensor(pred) - torch.as_tensor(gt)
    return float(d.pow(2).sum(-1).mean().sqrt())


def _per_hand_norm(pred, gt):
    """A typical mistake: one norm over all 63 numbers of a hand, divided by the 21 joints."""
    d = torch.as_tensor(pred) - torch.as_tensor(gt)
    return float(torch.linalg.vector_norm(d.flatten(1), dim=1).mean() / d.shape[1])


@exercise("04.2", "true MPJPE",
          hint="the Euclidean distance of each joint, ||pred - gt|| over x, y, z, then the mean "
               "over all joints of all samples.",
          wrong=[_mean_abs, _rmse, _per_hand_norm])
def _(mpjpe):
    gt = torch.zeros(2, 21, 3)
    pred = gt.clone()
    pred[..., 0], pred[..., 1] = 0.03, 0.04  # every joint off by (0.03, 0.04, 0): 0.05 away
    got = float(mpjpe(pred, gt))
    if abs(got - 0.05) > 1e-6:
        raise Wrong(f"every joint is 0.05 from its label (a (0.03, 0.04, 0) error), so the "
                    f"MPJPE is 0.05; got {got:.5f} (the mean |coordinate| error would be "
                    f"{0.07 / 3:.5f})")
    pred = gt.clone()
    pred[0, :10, 2] = 0.3  # ten joints 0.3 off, the rest exact: the mean is 0.3 * 10 / 42
    got = float(mpjpe(pred, gt))
    if abs(got - 0.3 * 10 / 42) > 1e-6:
        raise Wrong(f"10 of 42 joints 0.3 off and the others exact give an MPJPE of "
                    f"{0.3 * 10 / 42:.5f} (a mean of distances); got {got:.5f}")
    return "it is a mean of Euclidean distances, and larger than the mean |coordinate| error."


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


@exercise("04.3", "horizontal flip of a sample",
          hint="flip the image's last axis; x' -> -x' (x -> 1 - x in [0, 1]), y' and z' stay, "
               "p_right -> 1 - p_right (NaN stays NaN); the joint order stays.",
          wrong=[_flip_no_label, _flip_one_minus, _flip_z_too, _flip_in_place])
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
    r, c = divmod(int(img2[0].argmax()), w)
    col = ((float(t2[9]) + 1) / 2) * w - 0.5  # where the flipped target puts joint 3
    if (r, c) != (rows[3], w - 1 - cols[3]):
        raise Wrong("the image must be mirrored left to right (flip its last axis)")
    if abs(col - c) > 1e-4:
        raise Wrong(f"after the flip joint 3's pixel is in column {c}, but your target puts "
                    f"it at column {col:.2f}: in target units the mirror is x' -> -x'")
    lm, lm2 = target[:63].view(21, 3), t2[:63].view(21, 3)
    if not torch.allclose(lm2[:, 1:], lm[:, 1:], atol=1e-6):
        raise Wrong("y' and z' must not change: a mirror in x changes neither height nor depth")
    if abs(float(t2[63]) - 0.2) > 1e-6:
        raise Wrong(f"a mirrored right hand looks like a left hand: p_right 0.8 must become "
                    f"0.2, got {float(t2[63]):.3f}")
    target[63] = float("nan")
    _, t3 = hflip(image.clone(), target.clone())
    if not torch.isnan(torch.as_tensor(t3)[63]):
        raise Wrong("an unknown handedness (NaN) must stay unknown after a flip")
    img4, t4 = hflip(*hflip(image.clone(), target.clone()))
    if not (torch.equal(torch.as_tensor(img4), image)
            and torch.allclose(torch.as_tensor(t4)[:63], target[:63], atol=1e-6)):
        raise Wrong("two flips must give back the original sample")
    return "image, x' and handedness mirror together; y', z' and the joint order stay."
