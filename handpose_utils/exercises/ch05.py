"""Checks for notebook 05 (ResNet-50 3D regression): the root-relative codec, Procrustes
alignment without reflections (batched), rotating a 3D sample with its image, and (transfer)
locating the hand's root from its known size through a camera with f_x != f_y.

Every check also makes sure the answer leaves the arrays it is given unchanged, and says what
differs (which element, by how much) when it cannot know why."""

from __future__ import annotations

import numpy as np
import torch

from . import Wrong, exercise, unchanged


def _hands(rng, n=3):
    """``n`` camera-frame hands (metres): 21 joints spread a few cm around a point 0.4-0.7 m
    in front of the camera."""
    xyz = rng.normal(0, 0.03, (n, 21, 3))
    xyz += np.stack([rng.uniform(-0.1, 0.1, n), rng.uniform(-0.1, 0.1, n),
                     rng.uniform(0.4, 0.7, n)], 1)[:, None, :]
    return xyz


def _fmt(v, digits: int) -> str:
    return "[" + ", ".join(f"{x:.{digits}f}" for x in np.ravel(v)) + "]"


def _where_it_differs(got, want, what: str, unit: str, item: str = "hand") -> str:
    """Which element of ``(N, J, ...)`` arrays differs most, printed with enough digits that the
    expected and received values do not look the same."""
    got, want = np.asarray(got, float), np.asarray(want, float)
    err = np.abs(got - want).reshape(*got.shape[:2], -1).max(-1)
    n, j = np.unravel_index(int(np.argmax(err)), err.shape)
    d = float(err[n, j])
    digits = int(min(10, max(3, np.ceil(-np.log10(max(d, 1e-12))) + 2)))
    msg = (f"{what}, {item} {n}, joint {j}: expected {_fmt(want[n, j], digits)} {unit}, got "
           f"{_fmt(got[n, j], digits)} (off by up to {d:.3g} {unit})")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = got / want
    ratio = ratio[np.abs(want) > 1e-9]
    if ratio.size and np.allclose(ratio, ratio.flat[0], rtol=1e-6):
        msg += f"; every value is {ratio.flat[0]:.6g} times the expected one"
    return msg



# --- 05.1 root-relative codec -----------------------------------------------------------------


class _Course:
    """A correct codec, for the wrong answers below to inherit from."""

    def __init__(self, root=9, normalize=False, default_scale=None):
        self.root, self.normalize, self.default_scale = root, normalize, default_scale

    def _s(self, scale, like):
        s = self.default_scale if scale is None else scale
        return torch.as_tensor(s, dtype=like.dtype).reshape(-1, 1, 1)

    def encode(self, xyz, scale=None):
        rel = xyz - xyz[:, self.root : self.root + 1]
        return rel / self._s(scale, rel) if self.normalize else rel

    def decode(self, outputs, scale=None):
        return outputs * self._s(scale, outputs) if self.normalize else outputs


class _InPlace(_Course):
    """A typical mistake: the root subtracted from the caller's own tensor."""

    def encode(self, xyz, scale=None):
        xyz -= xyz[:, self.root : self.root + 1].clone()
        return xyz / self._s(scale, xyz) if self.normalize else xyz


class _WristRoot(_Course):
    """A typical mistake: joint 0 (the wrist) as the root instead of ``self.root``."""

    def encode(self, xyz, scale=None):
        rel = xyz - xyz[:, :1]
        return rel / self._s(scale, rel) if self.normalize else rel


class _AlwaysDivides(_Course):
    """A typical mistake: divides by the scale even when ``normalize`` is False."""

    def encode(self, xyz, scale=None):
        return (xyz - xyz[:, self.root : self.root + 1]) / self._s(scale, xyz)


class _DecodeDivides(_Course):
    """A typical mistake: decode divides by the scale again instead of multiplying."""

    def decode(self, outputs, scale=None):
        return outputs / self._s(scale, outputs) if self.normalize else outputs


class _BatchMeanScale(_Course):
    """A typical mistake: every hand divided by the batch's mean scale."""

    def encode(self, xyz, scale=None):
        rel = xyz - xyz[:, self.root : self.root + 1]
        return rel / torch.as_tensor(scale).mean() if self.normalize else rel


class _NoDefaultScale(_Course):
    """A typical mistake: decode without a scale ignores ``default_scale``."""

    def decode(self, outputs, scale=None):
        if not self.normalize or scale is None:
            return outputs
        return outputs * self._s(scale, outputs)


def _call_codec(fn, name, *args):
    copies = [a.clone() if isinstance(a, torch.Tensor) else a for a in args]
    out = fn(*args)
    for a, c, what in zip(args, copies, ("first argument", "scale")):
        if isinstance(a, torch.Tensor):
            unchanged(f"{what} {tuple(a.shape)}", c, a, name)
    if not isinstance(out, torch.Tensor):
        raise Wrong(f"{name} must return a torch tensor (the notebook passes tensors, trains on "
                    f"what comes back and scores it), got {type(out).__name__}: use tensor "
                    "operations, not np.asarray")
    if out.dtype != args[0].dtype:
        raise Wrong(f"{name} returned {out.dtype} for {args[0].dtype} input: the loss compares "
                    "targets with the network's float32 outputs; keep the input's dtype")
    if tuple(out.shape) != tuple(args[0].shape):
        raise Wrong(f"{name} must return {tuple(args[0].shape)}, got {tuple(out.shape)}")
    return out.detach().numpy().astype(float)


@exercise("05.1", "root-relative codec",
          nudge="Section 2's formulas. Which axis holds the joints? Index the root so that it "
                "keeps that axis (then it broadcasts over the 21 joints), and give the scale a "
                "shape that divides each hand by its own size. Return a new tensor.",
          hint="encode: rel = xyz - xyz[:, self.root:self.root + 1]; if self.normalize: rel / "
               "scale.reshape(-1, 1, 1). decode: s = self.default_scale if scale is None else "
               "scale; outputs * torch.as_tensor(s).reshape(-1, 1, 1) if self.normalize else "
               "outputs.",
          wrong=[_InPlace, _WristRoot, _AlwaysDivides, _DecodeDivides, _BatchMeanScale,
                 _NoDefaultScale])
def _(codec_class):
    rng = np.random.default_rng(5)
    xyz_np = _hands(rng, 4)
    scale_np = rng.uniform(0.018, 0.032, 4)  # joint 9-10 bone lengths, metres
    xyz = torch.tensor(xyz_np, dtype=torch.float32)
    scale = torch.tensor(scale_np, dtype=torch.float32)
    rel = (xyz - xyz[:, 9:10]).numpy().astype(float)
    tol = 1e-6

    plain = codec_class(root=9)
    t = _call_codec(plain.encode, "encode", xyz, scale)
    if np.abs(t[:, 9]).max() > tol:
        raise Wrong(f"joint 9 (the root) must encode to 0, got {_fmt(t[0, 9], 6)} m for hand 0")
    if not np.allclose(t, rel, atol=tol):
        raise Wrong(_where_it_differs(t, rel, "normalize=False (targets in metres)", "m"))
    moved = xyz + torch.tensor([0.05, -0.02, 0.3])  # the same hands elsewhere in the view
    t_moved = _call_codec(plain.encode, "encode", moved, scale)
    if not np.allclose(t_moved, t, atol=1e-5):
        raise Wrong(_where_it_differs(t_moved, t, "the same hands moved by (5, -2, 30) cm "
                                      "should give the same targets", "m"))
    back = _call_codec(plain.decode, "decode", torch.tensor(t, dtype=torch.float32), scale)
    if not np.allclose(back, t, atol=tol):
        raise Wrong(_where_it_differs(back, t, "normalize=False: decode should return the "
                                      "targets as they are (metres)", "m"))

    norm = codec_class(root=9, normalize=True, default_scale=0.025)
    tn = _call_codec(norm.encode, "encode", xyz, scale)
    want = rel / scale_np[:, None, None]
    if not np.allclose(tn, want, rtol=1e-5, atol=1e-5):
        raise Wrong(_where_it_differs(tn, want, "normalize=True (targets in units of each hand's "
                                      "own scale; the 4 hands' scales differ)", "scales"))
    tn_t = torch.tensor(tn, dtype=torch.float32)
    back = _call_codec(norm.decode, "decode", tn_t, scale)
    if not np.allclose(back, rel, atol=tol):
        raise Wrong(_where_it_differs(back, rel, "normalize=True: decode(encode(xyz, scale), "
                                      "scale) should give the root-relative metres", "m"))
    back = _call_codec(norm.decode, "decode", tn_t, None)
    if not np.allclose(back, tn * 0.025, atol=tol):
        raise Wrong(_where_it_differs(back, tn * 0.025, "decode(targets) without a scale should "
                                      "use default_scale = 0.025", "m"))

    one = codec_class(root=0, normalize=True)
    t0 = _call_codec(one.encode, "encode", xyz[:1], scale[:1])
    want0 = (xyz_np[:1] - xyz_np[:1, :1]) / scale_np[0]
    if not np.allclose(t0, want0, rtol=1e-5, atol=1e-5):
        raise Wrong(_where_it_differs(t0, want0, "root=0, one hand", "scales"))
    # The notebook's tensors live on the GPU when there is one: the "meta" device stands in for
    # it here (same rules, no data), and a float64 scale must not turn float32 outputs to float64.
    try:
        on_gpu = [norm.decode(tn_t.to("meta"), None), norm.decode(tn_t.to("meta"), scale.to("meta")),
                  norm.encode(xyz.to("meta"), scale.to("meta"))]
    except (RuntimeError, NotImplementedError) as err:
        raise Wrong(f"with tensors on another device than the CPU (the notebook's GPU) your codec "
                    f"fails: {str(err).splitlines()[0]} Make every new tensor on the input's "
                    "device and dtype (torch.as_tensor(s, dtype=x.dtype, device=x.device)).") from err
    if any(t.device.type != "meta" for t in on_gpu):
        raise Wrong("with tensors on another device your codec returns a tensor on "
                    f"{[t.device.type for t in on_gpu]}: keep the input's device")
    d64 = norm.decode(tn_t, scale.double())
    if d64.dtype != torch.float32:
        raise Wrong(f"decode of float32 outputs with a float64 scale returns {d64.dtype}: keep the "
                    "outputs' dtype (the loss and the model are float32)")
    return "the root encodes to 0, position does not matter, each hand's own scale divides it, "\
           "and decode inverts encode, on any device; your tensors are left as they were."


# --- 05.2 Procrustes alignment ----------------------------------------------------------------


def _reference_procrustes(pred, gt, reflection=False):
    pred, gt = np.asarray(pred, float), np.asarray(gt, float)
    p0, g0 = pred - pred.mean(-2, keepdims=True), gt - gt.mean(-2, keepdims=True)
    u, sigma, vt = np.linalg.svd(np.swapaxes(p0, -1, -2) @ g0)
    d = np.ones(sigma.shape)
    if not reflection:
        d[..., -1] = np.sign(np.linalg.det(u @ vt))
    rot = u @ (d[..., :, None] * vt)
    s = (sigma * d).sum(-1) / (p0**2).sum((-2, -1))
    return s[..., None, None] * p0 @ rot + gt.mean(-2, keepdims=True)


def _with_reflection(pred, gt):
    """A typical mistake: the SVD's orthogonal matrix used as it is (it may be a mirror)."""
    return _reference_procrustes(pred, gt, reflection=True)


def _no_scale(pred, gt):
    """A typical mistake: rotation and translation, but no scale."""
    p0, g0 = pred - pred.mean(-2, keepdims=True), gt - gt.mean(-2, keepdims=True)
    u, _, vt = np.linalg.svd(np.swapaxes(p0, -1, -2) @ g0)
    d = np.ones(u.shape[:-1])
    d[..., -1] = np.sign(np.linalg.det(u @ vt))
    return p0 @ (u @ (d[..., :, None] * vt)) + gt.mean(-2, keepdims=True)


def _not_centred(pred, gt):
    """A typical mistake: rotation and scale fitted about the origin, the means never removed."""
    u, sigma, vt = np.linalg.svd(np.swapaxes(pred, -1, -2) @ gt)
    d = np.ones(sigma.shape)
    d[..., -1] = np.sign(np.linalg.det(u @ vt))
    s = (sigma * d).sum(-1) / (pred**2).sum((-2, -1))
    return s[..., None, None] * pred @ (u @ (d[..., :, None] * vt))


def _norm_ratio_scale(pred, gt):
    """A typical mistake: the scale as the ratio of the two sizes (right only without noise)."""
    p0, g0 = pred - pred.mean(-2, keepdims=True), gt - gt.mean(-2, keepdims=True)
    aligned = _no_scale(pred, gt) - gt.mean(-2, keepdims=True)
    s = np.linalg.norm(g0, axis=(-2, -1)) / np.linalg.norm(p0, axis=(-2, -1))
    return s[..., None, None] * aligned + gt.mean(-2, keepdims=True)


def _transposed_rotation(pred, gt):
    """A typical mistake: R.T where R belongs (points as rows: P0 @ R, R = U D Vt)."""
    p0, g0 = pred - pred.mean(-2, keepdims=True), gt - gt.mean(-2, keepdims=True)
    u, sigma, vt = np.linalg.svd(np.swapaxes(p0, -1, -2) @ g0)
    d = np.ones(sigma.shape)
    d[..., -1] = np.sign(np.linalg.det(u @ vt))
    rot = np.swapaxes(u @ (d[..., :, None] * vt), -1, -2)
    s = (sigma * d).sum(-1) / (p0**2).sum((-2, -1))
    return s[..., None, None] * p0 @ rot + gt.mean(-2, keepdims=True)


def _centres_in_place(pred, gt):
    """A typical mistake: the caller's prediction centred in place."""
    pred -= pred.mean(-2, keepdims=True)
    return _reference_procrustes(pred, gt)


def _in_float32(pred, gt):
    """A typical mistake: the alignment computed (and returned) in float32."""
    return _reference_procrustes(np.float32(pred), np.float32(gt)).astype(np.float32)


def _float32_inside(pred, gt):
    """A typical mistake: float32 inside (a torch SVD, say), float64 again on the way out."""
    return _reference_procrustes(np.float32(pred), np.float32(gt)).astype(np.float64)


def _random_rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def _per_sample(a, b):
    return np.linalg.norm(np.asarray(a, float) - np.asarray(b, float), axis=-1).mean(-1)


@exercise("05.2", "Procrustes alignment (rotations only, batched)",
          nudge="Section 4's formulas, one sample at a time but for all N at once: the means are "
                "over the joints axis (-2, keepdims=True), a transpose swaps the last two axes "
                "(np.swapaxes(a, -1, -2)), and np.linalg.svd / np.linalg.det work on stacks of "
                "3x3 matrices.",
          hint="P0 = pred - pred.mean(-2, keepdims=True) (G0 likewise); U, S, Vt = "
               "np.linalg.svd(np.swapaxes(P0, -1, -2) @ G0); d = ones (N, 3), d[:, -1] = "
               "np.sign(np.linalg.det(U @ Vt)); R = U @ (d[:, :, None] * Vt); s = (S * d).sum(-1) "
               "/ (P0**2).sum((1, 2)); return s[:, None, None] * P0 @ R + gt.mean(-2, "
               "keepdims=True).",
          wrong=[_with_reflection, _no_scale, _not_centred, _norm_ratio_scale,
                 _transposed_rotation, _centres_in_place, _in_float32, _float32_inside])
def _(procrustes):
    rng = np.random.default_rng(6)
    n = 4
    gt = rng.normal(0, 40, (n, 21, 3))  # millimetres
    rots = np.stack([_random_rotation(rng) for _ in range(n)])
    scales = np.array([0.8, 1.15, 0.6, 1.4])
    shifts = rng.normal(0, 30, (n, 1, 3))

    def run(pred, ground):
        p, g = pred.copy(), ground.copy()
        out = procrustes(p, g)
        unchanged("pred", pred, p, "procrustes")
        unchanged("gt", ground, g, "procrustes")
        if str(getattr(out, "dtype", "")).replace("torch.", "") in ("float32", "float16"):
            raise Wrong(f"procrustes returned {out.dtype} for float64 input: compute in float64 "
                        "(an SVD of millimetre coordinates loses digits in float32)")
        out = np.asarray(out, float)
        if out.shape != pred.shape:
            raise Wrong(f"procrustes must return the aligned predictions with pred's shape "
                        f"{pred.shape}, got {out.shape}")
        return out

    copy = scales[:, None, None] * gt @ rots + shifts
    out = run(copy, gt)
    err = _per_sample(out, gt)
    if 1e-6 < err.max() < 1e-4 * np.abs(gt).max():
        raise Wrong(f"similar copies of gt align to within {err.max():.3g} mm instead of 0: right "
                    "to float32 precision only. Compute in float64 (no .astype(np.float32), no "
                    "float32 tensors): an SVD of millimetre coordinates loses digits in float32")
    if err.max() > 1e-6:
        k = int(np.argmax(err))
        facts = []
        centroid = np.linalg.norm(out[k].mean(0) - gt[k].mean(0))
        facts.append(f"its centroid is {centroid:.4g} mm from gt's")
        ratio = np.linalg.norm(out[k] - out[k].mean(0)) / np.linalg.norm(gt[k] - gt[k].mean(0))
        facts.append(f"it is {ratio:.6g} times gt's size")
        similar = _per_sample(_reference_procrustes(out[k], gt[k]), gt[k]) < 1e-6
        facts.append("it is a rotated, scaled copy of gt" if similar
                     else "it is not a rotated, scaled copy of gt (the shape changed)")
        raise Wrong(f"sample {k} of a batch of {n} is gt rotated, scaled by {scales[k]} and "
                    f"shifted: it must align to 0 mm, got {err[k]:.4g} mm. What your result "
                    f"shows: {'; '.join(facts)}")
    mirror = gt * np.array([-1.0, 1.0, 1.0])
    err = _per_sample(run(mirror, gt), gt)
    want = _per_sample(_reference_procrustes(mirror, gt), gt)
    if err.min() < 1.0:
        raise Wrong(f"mirror images of gt aligned to {err.min():.4g} mm (sample "
                    f"{int(np.argmin(err))}): no rotation can do that, so your R is a reflection "
                    "(det = -1) there")
    noisy = 1.1 * gt @ rots + rng.normal(0, 5, gt.shape) + 20.0
    got = _per_sample(run(noisy, gt), gt)
    best = _per_sample(_reference_procrustes(noisy, gt), gt)
    for name, e, b in (("mirror image", err, want), ("noisy prediction", got, best)):
        if np.abs(e - b).max() > 1e-6:
            k = int(np.argmax(np.abs(e - b)))
            raise Wrong(f"{name}, sample {k}: the best rotation and scale leave {b[k]:.6f} mm, "
                        f"your alignment leaves {e[k]:.6f} mm")
    small = rng.normal(0, 30, (1, 17, 3))  # one sample, 17 points
    rot = _random_rotation(rng)
    out = run(0.9 * small @ rot + 5.0, small)
    if _per_sample(out, small).max() > 1e-6:
        raise Wrong(f"a batch of one sample with 17 points (not 21) aligned to "
                    f"{_per_sample(out, small).max():.4g} mm instead of 0: do not assume N or J")
    return (f"similar copies align to 0, mirror images do not ({want.mean():.1f} mm on average), "
            f"noisy predictions to the best similarity ({best.mean():.2f} mm).")


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


def _centre_from_size_swapped(xyz, K, theta, size):
    """A typical mistake: the image centre taken as ((H-1)/2, (W-1)/2)."""
    return np.asarray(xyz, float) @ _rz(theta).T, (
        _warp(theta, size[::-1]) @ np.asarray(K, float) @ _rz(theta).T)


def _rotates_in_place(xyz, K, theta, size):
    """A typical mistake: the caller's joints overwritten with the rotated ones."""
    xyz[:] = xyz @ _rz(theta).T
    return xyz, _warp(theta, size) @ K @ _rz(theta).T


def _project(xyz, K):
    p = np.asarray(xyz, float) @ np.asarray(K, float).T
    return p[:, :2] / p[:, 2:3]


@exercise("05.3", "rotating a 3D sample with its image",
          nudge="Section 5: the rotated image is what a camera sees when the hand turns by "
                "R_z(theta) about the optical axis; the camera matrix then picks up the pixel "
                "warp M on the left and undoes the turn on the right.",
          hint="Rz = [[c, -s, 0], [s, c, 0], [0, 0, 1]]; xyz' = xyz @ Rz.T; M = the pixel warp "
               "[[Q, c0 - Q c0], [0, 0, 1]] with c0 = ((W-1)/2, (H-1)/2); K' = M @ K @ Rz.T.",
          wrong=[_keep_camera, _opposite_sense, _warp_only, _centre_from_size_swapped,
                 _rotates_in_place])
def _(rotate_sample):
    rng = np.random.default_rng(7)
    xyz = _hands(rng, 1)[0]
    size = (224, 160)
    K = np.array([[480.0, 0.0, 90.0], [0.0, 480.0, 95.0], [0.0, 0.0, 1.0]])  # off-centre
    for theta in (np.radians(30.0), np.radians(-75.0)):
        xyz_in, K_in = xyz.copy(), K.copy()
        out = rotate_sample(xyz_in, K_in, theta, size)
        unchanged("xyz", xyz, xyz_in, "my_rotate_sample")
        unchanged("K", K, K_in, "my_rotate_sample")
        if not (isinstance(out, tuple | list) and len(out) == 2):
            raise Wrong("my_rotate_sample must return a pair (xyz_rotated, K_rotated)")
        xyz2, K2 = (np.asarray(a, float) for a in out)
        if xyz2.shape != (21, 3) or K2.shape != (3, 3):
            raise Wrong(f"expected xyz' (21, 3) and K' (3, 3), got {xyz2.shape} and {K2.shape}")
        uv = _project(xyz, K)
        moved = uv @ _warp(theta, size)[:2, :2].T + _warp(theta, size)[:2, 2]
        got = _project(xyz2, K2)
        gaps = np.linalg.norm(got - moved, axis=1)
        deg = f"theta = {np.degrees(theta):.0f} deg"
        if gaps.max() > 1e-6:
            j = int(np.argmax(gaps))
            turned = {a: np.allclose(xyz2, xyz @ _rz(a).T, atol=1e-9) for a in (theta, -theta)}
            facts = ["your xyz' is xyz turned by +theta about z" if turned[theta] else
                     "your xyz' is xyz turned by -theta about z" if turned[-theta] else
                     "your xyz' is xyz unchanged" if np.allclose(xyz2, xyz, atol=1e-9) else
                     "your xyz' is not xyz turned about z"]
            facts.append("your K' is K unchanged" if np.allclose(K2, K) else
                         f"your K' has principal point ({K2[0, 2]:.2f}, {K2[1, 2]:.2f}); the "
                         f"moved one is {_fmt(_warp(theta, size)[:2] @ [K[0, 2], K[1, 2], 1], 2)}")
            raise Wrong(f"{deg}: projecting xyz' through K' puts joint {j} at "
                        f"{_fmt(got[j], 3)} px, the moved keypoint is at {_fmt(moved[j], 3)} px "
                        f"({gaps[j]:.3g} px apart). What your answer shows: {'; '.join(facts)}")
        if not np.allclose(xyz2[:, 2], xyz[:, 2], atol=1e-9):
            j = int(np.argmax(np.abs(xyz2[:, 2] - xyz[:, 2])))
            raise Wrong(f"{deg}: joint {j}'s depth z changed from {xyz[j, 2]:.6f} to "
                        f"{xyz2[j, 2]:.6f} m; a rotation about the optical axis keeps every depth")
        if not np.allclose(np.linalg.norm(xyz2[:, :2] - xyz2[9, :2], axis=1),
                           np.linalg.norm(xyz[:, :2] - xyz[9, :2], axis=1), atol=1e-9):
            raise Wrong(f"{deg}: distances between your joints changed; they must turn rigidly")
        if abs(K2[1, 0]) > 1e-9 or abs(K2[0, 0] - K[0, 0]) > 1e-9 or abs(K2[2, 2] - 1) > 1e-9:
            raise Wrong(f"{deg}: your K' = {np.round(K2, 4).tolist()} is not a pinhole camera with "
                        f"the same focal length ({K[0, 0]:g}); only the principal point may move")
    return "the rotated joints project through K' onto the rotated keypoints, depth kept."


# --- 05.4 (transfer) the root from the hand's known size --------------------------------------


def _reference_locate_root(rel, uv, K):
    rel, uv, K = (np.asarray(a, float) for a in (rel, uv, K))
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    du, dv = uv[:, 0] - cx, uv[:, 1] - cy
    zeros, ones = np.zeros_like(du), np.ones_like(du)
    a = np.concatenate([np.stack([fx * ones, zeros, -du], 1), np.stack([zeros, fy * ones, -dv], 1)])
    b = np.concatenate([du * rel[:, 2] - fx * rel[:, 0], dv * rel[:, 2] - fy * rel[:, 1]])
    return np.linalg.lstsq(a, b, rcond=None)[0]


def _one_focal(rel, uv, K):
    """A typical mistake: f_x used for both axes."""
    K = np.asarray(K, float).copy()
    K[1, 1] = K[0, 0]
    return _reference_locate_root(rel, uv, K)


def _weak_perspective(rel, uv, K):
    """A typical mistake: every joint taken at the root's depth (relative depths ignored)."""
    rel = np.asarray(rel, float).copy()
    rel[:, 2] = 0.0
    return _reference_locate_root(rel, uv, K)


def _swapped_principal_point(rel, uv, K):
    """A typical mistake: c_x and c_y read from the wrong entries."""
    K = np.asarray(K, float).copy()
    K[0, 2], K[1, 2] = K[1, 2], K[0, 2]
    return _reference_locate_root(rel, uv, K)


def _centres_uv_in_place(rel, uv, K):
    """A typical mistake: the caller's keypoints shifted by the principal point in place."""
    uv -= np.asarray(K)[:2, 2]
    K0 = np.array(K, float)
    K0[:2, 2] = 0
    return _reference_locate_root(rel, uv, K0)


def _root_joint_depth_from_bone(rel, uv, K):
    """A typical mistake: depth from the apparent length of bone 9-10 alone (f L / l), then the
    root back-projected from its own pixel: right only when the bone lies parallel to the image."""
    rel, uv, K = (np.asarray(a, float) for a in (rel, uv, K))
    f = (K[0, 0] + K[1, 1]) / 2
    z = f * np.linalg.norm(rel[10] - rel[9]) / np.linalg.norm(uv[10] - uv[9])
    return np.array([(uv[9, 0] - K[0, 2]) * z / K[0, 0], (uv[9, 1] - K[1, 2]) * z / K[1, 1], z])


def _two_joints(rel, uv, K):
    """A typical mistake: two joints give four equations for three unknowns: exact without
    noise, but the noise of two keypoints moves the root far more than that of 21."""
    return _reference_locate_root(np.asarray(rel)[[0, 12]], np.asarray(uv)[[0, 12]], K)


def _three_joints(rel, uv, K):
    """A typical mistake: the wrist, the root and a fingertip only."""
    return _reference_locate_root(np.asarray(rel)[[0, 9, 12]], np.asarray(uv)[[0, 9, 12]], K)


@exercise("05.4", "the root from the hand's known size (f_x != f_y)",
          nudge="Write the projection of joint j placed at rel_j + r: u_j = f_x (x_j + X) / "
                "(z_j + Z) + c_x, and the same for v with f_y, c_y. Multiply out the "
                "denominator: each joint gives two equations that are linear in (X, Y, Z).",
          hint="For every joint: f_x X - (u_j - c_x) Z = (u_j - c_x) z_j - f_x x_j and "
               "f_y Y - (v_j - c_y) Z = (v_j - c_y) z_j - f_y y_j, with (x_j, y_j, z_j) = rel_j. "
               "Stack the 42 rows into A (42, 3) and b (42,); r = np.linalg.lstsq(A, b, "
               "rcond=None)[0].",
          wrong=[_one_focal, _weak_perspective, _swapped_principal_point, _centres_uv_in_place,
                 _root_joint_depth_from_bone, _two_joints, _three_joints],
          transfer=True)
def _(locate_root):
    rng = np.random.default_rng(8)
    K = np.array([[610.0, 0.0, 101.3], [0.0, 455.0, 131.7], [0.0, 0.0, 1.0]])  # f_x != f_y

    def run(rel, uv):
        r_in, uv_in, K_in = rel.copy(), uv.copy(), K.copy()
        out = locate_root(r_in, uv_in, K_in)
        for before, after, what in ((rel, r_in, "rel"), (uv, uv_in, "uv"), (K, K_in, "K")):
            unchanged(what, before, after, "locate_root")
        out = np.asarray(out, float).reshape(-1)
        if out.shape != (3,):
            raise Wrong(f"locate_root must return the root's position (3,), got {out.shape}")
        return out

    for k, xyz in enumerate(_hands(rng, 3)):
        rel, root = xyz - xyz[9], xyz[9]
        uv = _project(xyz, K)
        got = run(rel, uv)
        if not np.allclose(got, root, atol=1e-7):
            miss = np.linalg.norm(_project(rel + got, K) - uv, axis=1)
            raise Wrong(f"hand {k}: the root is at {_fmt(root * 1000, 3)} mm, you found "
                        f"{_fmt(got * 1000, 3)} mm (depth off by {(got[2] - root[2]) * 1000:.3f} "
                        f"mm); placed there, your hand misses its keypoints by up to "
                        f"{miss.max():.3g} px. The camera has f_x = {K[0, 0]:g} and f_y = "
                        f"{K[1, 1]:g} px")
        twice = run(2 * rel, uv)  # a hand twice as big must be twice as far
        if not np.allclose(twice, 2 * root, atol=1e-7):
            raise Wrong(f"hand {k} made twice as big (same pixels): its root should be twice as "
                        f"far, at {_fmt(2 * root * 1000, 3)} mm; you found "
                        f"{_fmt(twice * 1000, 3)} mm")
    miss = best_miss = 0.0
    for xyz in _hands(rng, 6):  # six hands, 1 px of noise on every keypoint
        rel = xyz - xyz[9]
        uv = _project(xyz, K) + rng.normal(0, 1.0, (21, 2))
        got, best = run(rel, uv), _reference_locate_root(rel, uv, K)
        miss += np.linalg.norm(_project(rel + got, K) - uv, axis=1).mean() / 6
        best_miss += np.linalg.norm(_project(rel + best, K) - uv, axis=1).mean() / 6
    if miss > 1.03 * best_miss:
        raise Wrong(f"with 1 px of noise on the keypoints of 6 hands, your roots leave the hands "
                    f"{miss:.3f} px from their keypoints on average; a least-squares fit over "
                    f"all 21 joints leaves {best_miss:.3f} px ({100 * (miss / best_miss - 1):.0f} "
                    "% more). A few joints are exact without noise, but every joint's equations "
                    "belong in the fit: it averages the noise out")
    return (f"exact roots without noise, twice as far for a hand twice as big, and "
            f"{miss:.3f} px from noisy keypoints (least squares: {best_miss:.3f} px).")
