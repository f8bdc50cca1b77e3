"""Checks for notebook 05 (ResNet-50 3D regression): the root-relative codec, Procrustes
alignment without reflections, and rotating a 3D sample with its image."""

from __future__ import annotations

import numpy as np

from . import Wrong, exercise


def _hands(rng, n=3):
    """``n`` camera-frame hands (metres): 21 joints spread a few cm around a point 0.4-0.7 m
    in front of the camera."""
    xyz = rng.normal(0, 0.03, (n, 21, 3))
    xyz += np.stack([rng.uniform(-0.1, 0.1, n), rng.uniform(-0.1, 0.1, n),
                     rng.uniform(0.4, 0.7, n)], 1)[:, None, :]
    return xyz


# --- 05.1 root-relative codec -----------------------------------------------------------------


class _NoScale:
    """A typical mistake: relative to the root, but the division by the hand's scale forgotten."""

    def __init__(self, root=9):
        self.root = root

    def encode(self, xyz, scale):
        xyz = np.asarray(xyz, float)
        return xyz - xyz[:, self.root : self.root + 1]

    def decode(self, targets, scale, root_xyz):
        return np.asarray(targets, float) + np.asarray(root_xyz, float)[:, None, :]


class _WristRoot:
    """A typical mistake: joint 0 (the wrist) as the root instead of ``self.root``."""

    def __init__(self, root=9):
        self.root = root

    def encode(self, xyz, scale):
        xyz = np.asarray(xyz, float)
        return (xyz - xyz[:, :1]) / np.asarray(scale, float)[:, None, None]

    def decode(self, targets, scale, root_xyz):
        rel = np.asarray(targets, float) * np.asarray(scale, float)[:, None, None]
        return rel + np.asarray(root_xyz, float)[:, None, :]


class _DecodeWithoutRoot:
    """A typical mistake: decode scales back but forgets to put the root back."""

    def __init__(self, root=9):
        self.root = root

    def encode(self, xyz, scale):
        xyz = np.asarray(xyz, float)
        return (xyz - xyz[:, self.root : self.root + 1]) / np.asarray(scale, float)[:, None, None]

    def decode(self, targets, scale, root_xyz):
        return np.asarray(targets, float) * np.asarray(scale, float)[:, None, None]


@exercise("05.1", "root-relative codec",
          hint="encode: (xyz - xyz[:, root:root + 1]) / scale[:, None, None]; decode: "
               "targets * scale[:, None, None] + root_xyz[:, None, :].",
          wrong=[_NoScale, _WristRoot, _DecodeWithoutRoot])
def _(codec_class):
    rng = np.random.default_rng(5)
    xyz = _hands(rng)
    scale = np.array([0.02, 0.03, 0.045])  # joint 9-10 bone lengths, metres
    codec = codec_class(root=9)
    t = np.asarray(codec.encode(xyz.copy(), scale.copy()), float)
    if t.shape != xyz.shape:
        raise Wrong(f"encode must return (N, 21, 3) targets, got shape {t.shape}")
    if np.abs(t[:, 9]).max() > 1e-9:
        raise Wrong(f"joint 9 (the root) must encode to 0, got {t[0, 9].round(4)}: subtract "
                    "xyz[:, root] from every joint")
    want = (xyz - xyz[:, 9:10]) / scale[:, None, None]
    if not np.allclose(t, want, atol=1e-9):
        ratio = np.linalg.norm(t[1, 12]) / max(np.linalg.norm(want[1, 12]), 1e-12)
        raise Wrong(f"hand 1, joint 12: expected {want[1, 12].round(3)} (in units of that hand's "
                    f"scale, 0.03 m), got {t[1, 12].round(3)} ({ratio:.3g} times too long)")
    moved = xyz + np.array([0.05, -0.02, 0.3])  # the same hands elsewhere in the camera's view
    if not np.allclose(codec.encode(moved, scale), t, atol=1e-9):
        raise Wrong("moving the whole hand changed its targets: targets describe shape and "
                    "orientation only, not where the hand is")
    back = np.asarray(codec.decode(t, scale, xyz[:, 9]), float)
    if back.shape != xyz.shape or not np.allclose(back, xyz, atol=1e-9):
        err = np.abs(back - xyz).max() if back.shape == xyz.shape else float("nan")
        raise Wrong(f"decode(encode(xyz), scale, xyz[:, 9]) must give back xyz; largest "
                    f"difference {err:.4g} m: multiply by the scale, then add the root")
    other = codec_class(root=0)
    if np.abs(np.asarray(other.encode(xyz, scale), float)[:, 0]).max() > 1e-9:
        raise Wrong("with root=0 joint 0 must encode to 0: use self.root, not a fixed joint")
    return "the root encodes to 0, position does not matter, and decode inverts encode."


# --- 05.2 Procrustes alignment ----------------------------------------------------------------


def _reference_procrustes(pred, gt, reflection=False):
    pred, gt = np.asarray(pred, float), np.asarray(gt, float)
    p0, g0 = pred - pred.mean(0), gt - gt.mean(0)
    u, sigma, vt = np.linalg.svd(p0.T @ g0)
    d = np.ones(3)
    if not reflection:
        d[2] = np.sign(np.linalg.det(u @ vt))
    rot = u @ np.diag(d) @ vt
    s = (sigma * d).sum() / (p0**2).sum()
    return s * p0 @ rot + gt.mean(0)


def _with_reflection(pred, gt):
    """A typical mistake: the SVD's orthogonal matrix used as it is (it may be a mirror)."""
    return _reference_procrustes(pred, gt, reflection=True)


def _no_scale(pred, gt):
    """A typical mistake: rotation and translation, but no scale."""
    pred, gt = np.asarray(pred, float), np.asarray(gt, float)
    p0, g0 = pred - pred.mean(0), gt - gt.mean(0)
    u, _, vt = np.linalg.svd(p0.T @ g0)
    d = np.array([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    return p0 @ (u @ np.diag(d) @ vt) + gt.mean(0)


def _not_centred(pred, gt):
    """A typical mistake: rotation and scale fitted about the origin, the means never removed."""
    pred, gt = np.asarray(pred, float), np.asarray(gt, float)
    u, sigma, vt = np.linalg.svd(pred.T @ gt)
    d = np.array([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    s = (sigma * d).sum() / (pred**2).sum()
    return s * pred @ (u @ np.diag(d) @ vt)


def _random_rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def _mpjpe(a, b):
    return float(np.linalg.norm(np.asarray(a, float) - np.asarray(b, float), axis=-1).mean())


@exercise("05.2", "Procrustes alignment (rotations only)",
          hint="centre both; U, S, Vt = svd(P0.T @ G0); d = [1, 1, sign(det(U @ Vt))]; "
               "R = U diag(d) Vt; s = (S * d).sum() / (P0**2).sum(); return s * P0 @ R + mean(G).",
          wrong=[_with_reflection, _no_scale, _not_centred])
def _(procrustes):
    rng = np.random.default_rng(6)
    gt = rng.normal(0, 40, (21, 3))  # millimetres, root-relative-ish
    rot = _random_rotation(rng)
    copy = 0.8 * gt @ rot + np.array([15.0, -7.0, 30.0])

    def run(pred):
        out = np.asarray(procrustes(pred.copy(), gt.copy()), float)
        if out.shape != (21, 3):
            raise Wrong(f"procrustes must return the aligned (21, 3) prediction, got {out.shape}")
        return out

    out = run(copy)
    err = _mpjpe(out, gt)
    if err > 1e-6:
        p0, g0 = out - out.mean(0), gt - gt.mean(0)
        ratio = np.linalg.norm(p0) / np.linalg.norm(g0)
        aligned_shape = _mpjpe(_reference_procrustes(out, gt), gt) < 1e-6
        if abs(out.mean(0) - gt.mean(0)).max() > 1e-6:
            raise Wrong(f"a rotated, scaled (0.8) and shifted copy must align to 0 error, got "
                        f"{err:.3f} mm; your result's centroid is not gt's: add mean(gt) back")
        if aligned_shape and abs(ratio - 1) > 1e-6:
            raise Wrong(f"a rotated, scaled (0.8) and shifted copy must align to 0 error, got "
                        f"{err:.3f} mm: the rotation is right but your result is {ratio:.3f} "
                        "times gt's size; s = trace(S D) / ||P0||^2 (not a ratio of norms)")
        raise Wrong(f"a rotated, scaled (0.8) and shifted copy must align to 0 error, got "
                    f"{err:.3f} mm, and your result is not a similar copy of gt: with rows as "
                    "points, aligned = s * P0 @ R with R = U D Vt from svd(P0.T @ G0) (R, not "
                    "R.T; P0 first in the product)")
    mirror = gt * np.array([-1.0, 1.0, 1.0])
    err = _mpjpe(run(mirror), gt)
    if err < 1.0:
        raise Wrong(f"a mirror image aligned to {err:.3f} mm: your R is a reflection "
                    "(det = -1); flip the sign of the last singular direction when det(U Vt) < 0")
    want = _mpjpe(_reference_procrustes(mirror, gt), gt)
    if abs(err - want) > 1e-6:
        raise Wrong(f"the mirror image should align to {want:.3f} mm with the best rotation and "
                    f"scale, got {err:.3f} mm. When the shapes do not fit exactly, the "
                    "least-squares scale is trace(S D) / ||P0||^2, not the ratio of their sizes")
    noisy = 1.1 * gt @ rot + rng.normal(0, 5, gt.shape) + 20.0
    err = _mpjpe(run(noisy), gt)
    best = _mpjpe(_reference_procrustes(noisy, gt), gt)
    if err > best + 1e-6:
        raise Wrong(f"on a noisy prediction your alignment leaves {err:.3f} mm; the best "
                    f"similarity leaves {best:.3f} mm. With noise the least-squares scale is "
                    "trace(S D) / ||P0||^2, smaller than the ratio of the two sizes")
    return (f"a similar copy aligns to 0, a mirror image does not ({want:.1f} mm), a noisy "
            f"prediction to {best:.2f} mm.")


# --- 05.3 rotating a 3D sample with its image -------------------------------------------------


def _rz(theta):
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _warp(theta, size):
    q = _rz(theta)[:2, :2]
    c0 = np.array([(size[0] - 1) / 2, (size[1] - 1) / 2])
    m = np.eye(3)
    m[:2, :2], m[:2, 2] = q, c0 - q @ c0
    return m


def _keep_camera(xyz, K, theta, size):
    """A typical mistake: the joints rotated, the camera kept (right only when the principal
    point is the image centre)."""
    return np.asarray(xyz, float) @ _rz(theta).T, np.asarray(K, float)


def _opposite_sense(xyz, K, theta, size):
    """A typical mistake: the joints rotated the other way round from the pixels."""
    rz = _rz(-theta)
    return np.asarray(xyz, float) @ rz.T, _warp(theta, size) @ np.asarray(K, float) @ rz.T


def _warp_only(xyz, K, theta, size):
    """A typical mistake: the camera warped (K' = M K), the joints not rotated. The projection
    lands, but a camera that is no longer upper triangular is not a pinhole one; the joints'
    3D frame must turn with the image."""
    return np.asarray(xyz, float), _warp(theta, size) @ np.asarray(K, float)


def _project(xyz, K):
    p = np.asarray(xyz, float) @ np.asarray(K, float).T
    return p[:, :2] / p[:, 2:3]


@exercise("05.3", "rotating a 3D sample with its image",
          hint="Rz = [[c, -s, 0], [s, c, 0], [0, 0, 1]]; xyz' = xyz @ Rz.T; M = the pixel warp "
               "[[Q, c0 - Q c0], [0, 0, 1]]; K' = M @ K @ Rz.T.",
          wrong=[_keep_camera, _opposite_sense, _warp_only])
def _(rotate_sample):
    rng = np.random.default_rng(7)
    xyz = _hands(rng, 1)[0]
    size = (224, 160)
    K = np.array([[480.0, 0.0, 90.0], [0.0, 480.0, 95.0], [0.0, 0.0, 1.0]])  # off-centre
    for theta in (np.radians(30.0), np.radians(-75.0)):
        out = rotate_sample(xyz.copy(), K.copy(), theta, size)
        if not (isinstance(out, tuple | list) and len(out) == 2):
            raise Wrong("rotate_sample must return a pair (xyz_rotated, K_rotated)")
        xyz2, K2 = (np.asarray(a, float) for a in out)
        if xyz2.shape != (21, 3) or K2.shape != (3, 3):
            raise Wrong(f"expected xyz' (21, 3) and K' (3, 3), got {xyz2.shape} and {K2.shape}")
        uv = _project(xyz, K)
        moved = uv @ _warp(theta, size)[:2, :2].T + _warp(theta, size)[:2, 2]
        got = _project(xyz2, K2)
        err = np.linalg.norm(got - moved, axis=1).max()
        if err > 1e-6 and np.allclose(xyz2, xyz @ _rz(-theta).T, atol=1e-9):
            raise Wrong(f"theta = {np.degrees(theta):.0f} deg: your keypoints turn by -theta, the "
                        "opposite way from the image: xyz' = xyz @ Rz.T (each row times Rz "
                        "transposed), not xyz @ Rz")
        if err > 1e-6:
            raise Wrong(f"theta = {np.degrees(theta):.0f} deg: projecting xyz' through K' misses "
                        f"the moved keypoints by up to {err:.2f} px (the principal point is not "
                        "the image centre here, so the camera changes too)")
        if not np.allclose(xyz2[:, 2], xyz[:, 2], atol=1e-9):
            raise Wrong("a rotation about the optical axis keeps every joint's depth z")
        if not np.allclose(np.linalg.norm(xyz2[:, :2] - xyz2[9, :2], axis=1),
                           np.linalg.norm(xyz[:, :2] - xyz[9, :2], axis=1), atol=1e-9):
            raise Wrong("the joints must turn rigidly (bone lengths kept)")
        if abs(K2[1, 0]) > 1e-9 or abs(K2[0, 0] - K[0, 0]) > 1e-9 or abs(K2[2, 2] - 1) > 1e-9:
            raise Wrong("K' must stay a pinhole camera with the same focal length (only the "
                        "principal point moves); rotate the joints with Rz, not just the camera")
        c, s = np.cos(theta), np.sin(theta)
        if not np.allclose(xyz2[:, 0], c * xyz[:, 0] - s * xyz[:, 1], atol=1e-9):
            raise Wrong("the joints turn the wrong way: in the image, x right and y down, the "
                        "pixel rotation Q = [[c, -s], [s, c]] is the same matrix on (x, y)")
    return "the rotated joints project through K' onto the rotated keypoints, depth kept."
