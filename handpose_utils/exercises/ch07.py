"""Checks for notebook 07 (3D hand pose, Zimmermann & Brox): the canonical frame, the way back
from it, the score-map encoder, the crop box from a hand mask, the PosePrior loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import Wrong, exercise


def _hands(n: int = 6, seed: int = 0) -> torch.Tensor:
    """``(n, 21, 3)`` root-relative points with the wrist at the origin, in general position."""
    g = torch.Generator().manual_seed(seed)
    xyz = torch.randn(n, 21, 3, generator=g)
    xyz[:, 0] = 0.0
    return xyz


def _tensor(out, shape, what) -> torch.Tensor:
    out = torch.as_tensor(out)
    if tuple(out.shape) != tuple(shape):
        raise Wrong(f"{what} must have shape {tuple(shape)}, got {tuple(out.shape)}")
    return out.float()


# --- 07.1 the viewpoint rotation ------------------------------------------------------------


def _unit(v):
    return v / v.norm(dim=-1, keepdim=True)


def _no_gram_schmidt(xyz_rel):
    """A typical mistake: x is the little-finger direction itself, not its part orthogonal to y."""
    ey, ex = _unit(xyz_rel[..., 9, :]), _unit(xyz_rel[..., 17, :])
    return torch.stack([ex, ey, torch.linalg.cross(ex, ey, dim=-1)], dim=-2)


def _left_handed(xyz_rel):
    """A typical mistake: z = y x x, a reflection (det -1) instead of a rotation."""
    ey = _unit(xyz_rel[..., 9, :])
    p = xyz_rel[..., 17, :]
    ex = _unit(p - (p * ey).sum(-1, keepdim=True) * ey)
    return torch.stack([ex, ey, torch.linalg.cross(ey, ex, dim=-1)], dim=-2)


def _columns(xyz_rel):
    """A typical mistake: the axes as columns, so ``xyz_rel @ R.T`` does not rotate into the
    canonical frame."""
    ey = _unit(xyz_rel[..., 9, :])
    p = xyz_rel[..., 17, :]
    ex = _unit(p - (p * ey).sum(-1, keepdim=True) * ey)
    return torch.stack([ex, ey, torch.linalg.cross(ex, ey, dim=-1)], dim=-1)


@exercise("07.1", "the viewpoint rotation R",
          hint="y = unit(joint 9); x = unit(joint 17 minus its component along y) (Gram-Schmidt); "
               "z = x cross y; R = torch.stack([x, y, z], dim=-2) (the axes are R's rows).",
          wrong=[_no_gram_schmidt, _left_handed, _columns])
def _(canonical_rotation):
    xyz = _hands(8)
    R = _tensor(canonical_rotation(xyz), (8, 3, 3), "canonical_rotation of (8, 21, 3) joints")
    eye = torch.eye(3).expand(8, 3, 3)
    if not torch.allclose(R @ R.transpose(-1, -2), eye, atol=1e-4):
        raise Wrong("R @ R.T is not the identity: the three axes are not orthonormal (is x made "
                    "orthogonal to y before it is normalised?)")
    if not torch.allclose(torch.linalg.det(R), torch.ones(8), atol=1e-4):
        raise Wrong("det R is -1: that is a mirror, not a rotation (z must be x cross y)")
    c = xyz @ R.transpose(-1, -2)
    if not (c[:, 9, [0, 2]].abs().max() < 1e-4 and (c[:, 9, 1] > 0).all()):
        raise Wrong("in the canonical frame (xyz_rel @ R.T) the middle MCP (joint 9) is not on "
                    "the +y axis: are the canonical axes R's rows?")
    if not (c[:, 17, 2].abs().max() < 1e-4 and (c[:, 17, 0] > 0).all()):
        raise Wrong("the little-finger MCP (joint 17) is not in the x-y plane with x > 0")
    if not torch.allclose(c @ R, xyz, atol=1e-4):
        raise Wrong("canonical @ R does not give the joints back")
    return "Joint 9 lands on +y, joint 17 in the x-y plane, and canonical @ R gives the joints back."


# --- 07.2 from the canonical frame back to the camera -----------------------------------------


def _mirror(coords, is_right):
    sign = torch.ones(coords.shape[:-2] + (1, 3))
    sign[..., 2] = torch.where(torch.as_tensor(is_right).bool(), -1.0, 1.0)[..., None]
    return coords * sign


def _no_mirror(canonical, rotation, is_right):
    """A typical mistake: the right hand's mirror is not undone."""
    return canonical @ rotation


def _transposed(canonical, rotation, is_right):
    """A typical mistake: R.T, the inverse rotation."""
    return _mirror(canonical, is_right) @ rotation.transpose(-1, -2)


def _mirror_after(canonical, rotation, is_right):
    """A typical mistake: the mirror applied in the camera frame, after the rotation."""
    return _mirror(canonical @ rotation, is_right)


@exercise("07.2", "canonical pose + viewpoint -> camera frame",
          hint="Undo the steps of to_canonical in reverse order: first un-mirror the right hands "
               "(negate z where is_right), then rotate back with xyz_rel = canonical @ R.",
          wrong=[_no_mirror, _transposed, _mirror_after])
def _(from_canonical):
    from handpose_utils.hand3d.canonical import to_canonical

    xyz = _hands(8, seed=1) + torch.tensor([0.1, -0.2, 0.6])  # camera frame, not root-relative
    is_right = torch.tensor([True, False] * 4)
    enc = to_canonical(xyz, is_right)
    back = _tensor(from_canonical(enc["canonical"], enc["rotation"], is_right), (8, 21, 3),
                   "from_canonical's output")
    err = (back - enc["xyz"]).norm(dim=-1).amax(-1)  # per hand
    for side, name in ((False, "left"), (True, "right")):
        if err[is_right == side].max() > 1e-4:
            raise Wrong(f"to_canonical then from_canonical does not give the {name} hands back "
                        f"(largest joint error {err[is_right == side].max():.3f} bone lengths)")
    return "to_canonical -> from_canonical is the identity for left and right hands."


# --- 07.3 the score-map encoder ---------------------------------------------------------------


def _corner_cells(uv_crop, visible, crop_size, map_size, sigma):
    """A typical mistake: cell i at i * stride (its corner), not at its centre."""
    c = torch.arange(map_size).float() * (crop_size / map_size)
    d2 = ((c[None, None, None, :] - uv_crop[..., 0, None, None]) ** 2
          + (c[None, None, :, None] - uv_crop[..., 1, None, None]) ** 2)
    return torch.exp(-d2 / (2 * sigma**2)) * visible.float()[..., None, None]


def _all_visible(uv_crop, visible, crop_size, map_size, sigma):
    """A typical mistake: occluded keypoints get a Gaussian too."""
    c = (torch.arange(map_size).float() + 0.5) * (crop_size / map_size) - 0.5
    d2 = ((c[None, None, None, :] - uv_crop[..., 0, None, None]) ** 2
          + (c[None, None, :, None] - uv_crop[..., 1, None, None]) ** 2)
    return torch.exp(-d2 / (2 * sigma**2))


def _no_half_sigma(uv_crop, visible, crop_size, map_size, sigma):
    """A typical mistake: exp(-d^2 / sigma^2), a Gaussian sqrt(2) times too narrow."""
    c = (torch.arange(map_size).float() + 0.5) * (crop_size / map_size) - 0.5
    d2 = ((c[None, None, None, :] - uv_crop[..., 0, None, None]) ** 2
          + (c[None, None, :, None] - uv_crop[..., 1, None, None]) ** 2)
    return torch.exp(-d2 / sigma**2) * visible.float()[..., None, None]


@exercise("07.3", "Gaussian score maps",
          hint="Cell i covers crop pixels [i * stride, (i + 1) * stride) with stride = crop_size / "
               "map_size; its centre is (i + 0.5) * stride - 0.5 (pixel centres at integers). "
               "map[y, x] = exp(-((cx - u)^2 + (cy - v)^2) / (2 sigma^2)), times visible.",
          wrong=[_corner_cells, _all_visible, _no_half_sigma])
def _(encode_scoremaps):
    from handpose_utils.hand3d.crops import decode_scoremaps

    uv = torch.tensor([[[10.0, 20.0], [40.3, 5.7], [63.0, 63.0], [30.0, 30.0]],
                       [[31.5, 31.5], [0.0, 12.0], [50.0, 22.2], [5.0, 60.0]]])
    vis = torch.tensor([[True, True, True, False], [True, True, True, True]])
    maps = _tensor(encode_scoremaps(uv, vis, 64, 8, 6.0), (2, 4, 8, 8),
                   "the maps of (2, 4) keypoints on 8 x 8 cells")
    if maps[0, 3].abs().max() > 0:
        raise Wrong("an occluded keypoint (visible False) must get an all-zero map: there is "
                    "nothing to learn for it")
    back, _ = decode_scoremaps(maps, 64)
    err = (back - uv).norm(dim=-1)[vis]
    if err.max() > 0.05:
        raise Wrong(f"decoding your maps gives the keypoints back only to {err.max():.2f} crop "
                    "pixels: are the cells' centres at (i + 0.5) * stride - 0.5?")
    # A cell one stride (8 px) right of a keypoint at a cell centre: exp(-64 / (2 * 36)).
    centre = torch.tensor([[[27.5, 27.5]]])
    one = _tensor(encode_scoremaps(centre, torch.ones(1, 1, dtype=torch.bool), 64, 8, 6.0),
                  (1, 1, 8, 8), "the map of one keypoint")
    want = torch.exp(torch.tensor(-64.0 / 72.0))
    if abs(one[0, 0, 3, 3] - 1) > 1e-4 or abs(one[0, 0, 3, 4] - want) > 1e-4:
        raise Wrong(f"a keypoint at a cell's centre must score 1 there and exp(-8^2 / (2 * 6^2)) "
                    f"= {want:.3f} one cell to the right, got {one[0, 0, 3, 3]:.3f} and "
                    f"{one[0, 0, 3, 4]:.3f}")
    return "The maps decode back to within 0.05 crop pixels and occluded keypoints stay empty."


# --- 07.4 the crop box from a hand mask -------------------------------------------------------


def _integer_scale(mask, crop_size, margin, min_side, max_side):
    """A typical mistake: crop_size // side, 0 for every box bigger than the crop."""
    ys, xs = torch.nonzero(mask, as_tuple=True)
    x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
    side = (torch.maximum(x1 - x0 + 1, y1 - y0 + 1) * margin).clamp(min_side, max_side)
    return torch.stack([(x0 + x1) / 2, (y0 + y1) / 2, crop_size // side]).float()


def _no_clamp(mask, crop_size, margin, min_side, max_side):
    """A typical mistake: the side is not clamped, so a speck of a mask zooms in 100 times."""
    ys, xs = torch.nonzero(mask, as_tuple=True)
    x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
    side = torch.maximum(x1 - x0 + 1, y1 - y0 + 1) * margin
    return torch.stack([(x0 + x1) / 2, (y0 + y1) / 2, crop_size / side]).float()


def _mask_mean(mask, crop_size, margin, min_side, max_side):
    """A typical mistake: centred on the mask's mean pixel, not on its bounding box."""
    ys, xs = torch.nonzero(mask, as_tuple=True)
    side = (torch.maximum(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1) * margin)
    side = side.clamp(min_side, max_side)
    return torch.stack([xs.float().mean(), ys.float().mean(), crop_size / side]).float()


@exercise("07.4", "the crop box from a hand mask",
          hint="Rows and columns of the mask's pixels: torch.nonzero(mask, as_tuple=True). Centre: "
               "the middle of the bounding box, ((x0 + x1) / 2, (y0 + y1) / 2). Side: the longer "
               "of (x1 - x0 + 1, y1 - y0 + 1) times margin, clamped to [min_side, max_side]. "
               "Scale: crop_size / side, a float.",
          wrong=[_integer_scale, _no_clamp, _mask_mean])
def _(crop_box):
    mask = torch.zeros(100, 120, dtype=torch.bool)
    mask[20:60, 30:40] = True  # an L-shaped hand: its mean pixel is not its box centre
    mask[50:60, 30:80] = True
    cases = [(mask, 1.25, torch.tensor([54.5, 39.5, 64 / 62.5]), "an L-shaped 50 x 40 mask")]
    speck = torch.zeros(100, 120, dtype=torch.bool)
    speck[70:72, 10:13] = True
    cases.append((speck, 1.25, torch.tensor([11.0, 70.5, 64 / 20.0]),
                  "a 3 x 2 speck (side clamped up to min_side = 20)"))
    big = torch.ones(100, 120, dtype=torch.bool)
    cases.append((big, 1.25, torch.tensor([59.5, 49.5, 64 / 128.0]),
                  "a mask filling the image (side clamped down to max_side = 128)"))
    for m, margin, want, name in cases:
        box = _tensor(crop_box(m, 64, margin, 20.0, 128.0), (3,), "crop_box's (cx, cy, scale)")
        if not torch.allclose(box[:2], want[:2], atol=1e-3):
            raise Wrong(f"{name}: centre {box[:2].tolist()}, expected {want[:2].tolist()} (the "
                        "middle of the mask's bounding box)")
        if abs(box[2] - want[2]) > 1e-4:
            raise Wrong(f"{name}: scale {box[2]:.4f} crop px per image px, expected "
                        f"{want[2]:.4f}")
    return "Centre, margin and both clamps are right, and the scale is a float."


# --- 07.5 the PosePrior loss ------------------------------------------------------------------


def _canonical_only(outputs, targets):
    """A typical mistake: the viewpoint is never supervised."""
    if "canonical" in outputs:
        return F.mse_loss(outputs["canonical"], targets["canonical"])
    return F.mse_loss(outputs["xyz"], targets["xyz"])


def _always_xyz(outputs, targets):
    """A typical mistake: the factored network supervised on the camera-frame pose only."""
    return F.mse_loss(outputs["xyz"], targets["xyz"])


@exercise("07.5", "the PosePrior loss",
          hint="If outputs has 'canonical' (the proposed variant): F.mse_loss of canonical plus "
               "F.mse_loss of rotation against the targets. Otherwise (direct): F.mse_loss of xyz.",
          wrong=[_canonical_only, _always_xyz])
def _(poseprior_loss):
    g = torch.Generator().manual_seed(3)
    t = {k: torch.randn(4, *s, generator=g) for k, s in
         (("canonical", (21, 3)), ("rotation", (3, 3)), ("xyz", (21, 3)))}
    o = {k: v + 0.3 * torch.randn(v.shape, generator=g) for k, v in t.items()}
    o["rotation"] = t["rotation"] + 0.8  # a viewpoint error of its own
    want = ((o["canonical"] - t["canonical"]) ** 2).mean() + ((o["rotation"] - t["rotation"])
                                                              ** 2).mean()
    got = torch.as_tensor(poseprior_loss(o, t)).float()
    if got.numel() != 1:
        raise Wrong(f"the loss must be one number, got shape {tuple(got.shape)}")
    if abs(got - want) > 1e-4 * want:
        raise Wrong(f"proposed variant: loss {got:.4f}, expected {want:.4f} (the mean squared "
                    "error of the canonical joints plus that of the rotation matrix)")
    direct = {"xyz": o["xyz"]}
    want = ((o["xyz"] - t["xyz"]) ** 2).mean()
    got = torch.as_tensor(poseprior_loss(direct, t)).float()
    if abs(got - want) > 1e-4 * want:
        raise Wrong(f"direct variant (outputs has only 'xyz'): loss {got:.4f}, expected "
                    f"{want:.4f}")
    exact = poseprior_loss({"canonical": t["canonical"], "rotation": t["rotation"],
                            "xyz": t["xyz"]}, t)
    if abs(float(exact)) > 1e-8:
        raise Wrong("the loss of a perfect prediction must be 0")
    return "Both variants' losses match, and a perfect prediction costs nothing."
