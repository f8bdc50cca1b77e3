"""Checks for notebook 07 (3D hand pose, Zimmermann & Brox): the canonical frame, the way back
from it, the score-map encoder, the crop box from a hand mask, the PosePrior loss, and (transfer)
where the hand is in the camera."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import Wrong, exercise, unchanged


def _hands(n: int = 6, seed: int = 0) -> torch.Tensor:
    """``(n, 21, 3)`` root-relative points with the wrist at the origin, in general position."""
    g = torch.Generator().manual_seed(seed)
    xyz = torch.randn(n, 21, 3, generator=g)
    xyz[:, 0] = 0.0
    return xyz


def _fmt(t) -> str:
    """A vector with enough digits that two that differ by the checks' tolerance look different."""
    return "(" + ", ".join(f"{float(v):.5f}" for v in t) + ")"


def _tensor(out, shape, what) -> torch.Tensor:
    if not isinstance(out, torch.Tensor):
        raise Wrong(f"{what} must be a torch tensor, got {type(out).__name__}")
    if tuple(out.shape) != tuple(shape):
        raise Wrong(f"{what} must have shape {tuple(shape)}, got {tuple(out.shape)}")
    return out.detach().float()


def _call(fn, args: dict):
    """Call ``fn(**args)`` on copies and make sure it left every tensor argument as it was."""
    keep = {k: v.clone() for k, v in args.items() if isinstance(v, torch.Tensor)}
    out = fn(*args.values())
    for k, v in keep.items():
        unchanged(k, v, args[k])
    return out


def _on_another_device(fn, args: dict, what: str) -> None:
    """Run ``fn`` on 'meta' tensors, a stand-in for the GPU: a tensor created without
    ``device=`` lands on the CPU and the two cannot be mixed. Other failures are ignored (not
    every operation exists for meta tensors)."""
    meta = {k: (v.to("meta") if isinstance(v, torch.Tensor) else v) for k, v in args.items()}
    try:
        fn(*meta.values())
    except Exception as err:  # noqa: BLE001 - only device mix-ups are the learner's concern
        if "device" in str(err):
            raise Wrong(f"{what} fails when its inputs are on another device than the CPU (the "
                        f"check used PyTorch's 'meta' device as a stand-in for the GPU): {err}. "
                        "Create new tensors on the inputs' device: torch.ones(..., "
                        "device=x.device), torch.arange(..., device=x.device)") from None


# --- 07.1 the viewpoint rotation ------------------------------------------------------------


def _unit(v):
    return v / v.norm(dim=-1, keepdim=True)


def _rotation(xyz_rel):
    ey = _unit(xyz_rel[..., 9, :])
    p = xyz_rel[..., 17, :]
    ex = _unit(p - (p * ey).sum(-1, keepdim=True) * ey)
    return torch.stack([ex, ey, torch.linalg.cross(ex, ey, dim=-1)], dim=-2)


def _no_gram_schmidt(xyz_rel):
    """A typical mistake: x is the little-finger direction itself, not its part orthogonal to y."""
    ey, ex = _unit(xyz_rel[..., 9, :]), _unit(xyz_rel[..., 17, :])
    return torch.stack([ex, ey, torch.linalg.cross(ex, ey, dim=-1)], dim=-2)


def _left_handed(xyz_rel):
    """A typical mistake: z = y x x, a reflection (det -1) instead of a rotation."""
    R = _rotation(xyz_rel)
    return torch.cat([R[..., :2, :], -R[..., 2:, :]], dim=-2)


def _columns(xyz_rel):
    """A typical mistake: the axes as columns, so ``xyz_rel @ R.T`` does not rotate into the
    canonical frame."""
    return _rotation(xyz_rel).transpose(-1, -2)


def _cross_without_dim(xyz_rel):
    """A typical mistake: the cross product over the first axis of size 3, which is the batch
    axis when there are 3 hands."""
    ey = _unit(xyz_rel[..., 9, :])
    p = xyz_rel[..., 17, :]
    ex = _unit(p - (p * ey).sum(-1, keepdim=True) * ey)
    dim = next(i for i, s in enumerate(ex.shape) if s == 3)
    return torch.stack([ex, ey, torch.linalg.cross(ex, ey, dim=dim)], dim=-2)


def _batch_of_one(xyz_rel):
    """A typical mistake: only the first hand's rotation, repeated for every hand."""
    R = _rotation(xyz_rel)
    return R[:1].expand_as(R).clone()


def _single_hand(xyz_rel):
    """A typical mistake: written for one (21, 3) hand (xyz_rel[9], stack on dim 0), so a batch
    of hands fails or mixes hands."""
    ey = _unit(xyz_rel[9])
    p = xyz_rel[17]
    ex = _unit(p - (p * ey).sum(-1, keepdim=True) * ey)
    return torch.stack([ex, ey, torch.linalg.cross(ex, ey, dim=-1)], dim=0)


_AXES = ("x (row 0)", "y (row 1)", "z (row 2)")


@exercise("07.1", "the viewpoint rotation R",
          nudge="The formula for e_y, e_x, e_z is in section 5's text. Two things decide the "
                "result's layout: the axes are R's ROWS (stack on dim=-2), and every operation "
                "works on the last axis (dim=-1), whatever the leading batch shape is.",
          hint="y = unit(joint 9); x = unit(joint 17 minus its component along y) (Gram-Schmidt); "
               "z = torch.linalg.cross(x, y, dim=-1); R = torch.stack([x, y, z], dim=-2).",
          wrong=[_no_gram_schmidt, _left_handed, _columns, _cross_without_dim, _batch_of_one,
                 _single_hand])
def _(canonical_rotation):
    xyz = _hands(3)  # three hands: an axis of size 3 that is not the coordinate axis
    try:
        out = _call(canonical_rotation, {"xyz_rel": xyz})
    except (NotImplementedError, Wrong):
        raise
    except Exception as err:  # noqa: BLE001 - a batch is the first thing the check gives it
        raise Wrong(f"canonical_rotation was called with a (3, 21, 3) batch (3 hands, 21 joints, "
                    f"x y z) and raised {type(err).__name__}: {err}. It must work on any leading "
                    "batch shape: index joints and coordinates from the end (xyz_rel[..., 9, :], "
                    "dim=-1), not as xyz_rel[9]") from None
    R = _tensor(out, (3, 3, 3), "canonical_rotation of (3, 21, 3) joints")
    eye = torch.eye(3).expand(3, 3, 3)
    gram = R @ R.transpose(-1, -2)
    if not torch.allclose(gram, eye, atol=1e-4):
        i, j = divmod(int((gram - eye).abs().amax(0).argmax()), 3)
        raise Wrong(f"R @ R.T is not the identity: rows {i} and {j} of R give "
                    f"{_fmt(gram[:, i, j])} for the 3 hands, expected {float(i == j)}")
    det = torch.linalg.det(R)
    if not torch.allclose(det, torch.ones(3), atol=1e-4):
        raise Wrong(f"det R is {[round(d, 4) for d in det.tolist()]} for the 3 hands: -1 is a "
                    "mirror, not a rotation")
    want = _rotation(xyz)
    for hand in range(3):
        for row in range(3):
            if not torch.allclose(R[hand, row], want[hand, row], atol=1e-4):
                c = xyz[hand] @ R[hand].T
                raise Wrong(
                    f"hand {hand}: axis {_AXES[row]} of R is {_fmt(R[hand, row])}, expected "
                    f"{_fmt(want[hand, row])}. In the frame your R gives (xyz_rel @ R.T) the "
                    f"middle MCP (joint 9) lands at {_fmt(c[9])} (expected on +y) and the "
                    f"little-finger MCP (joint 17) at {_fmt(c[17])} (expected z = 0, x > 0)")
    leading = _hands(8, seed=5).view(2, 4, 21, 3)
    R = _tensor(_call(canonical_rotation, {"xyz_rel": leading}), (2, 4, 3, 3),
                "canonical_rotation of (2, 4, 21, 3) joints (two leading axes)")
    if not torch.allclose(R, _rotation(leading), atol=1e-4):
        raise Wrong("with two leading axes (2, 4, 21, 3) the rotations differ from the ones of "
                    "the same hands given as (8, 21, 3): index joints and axes from the end "
                    "(xyz_rel[..., 9, :], dim=-1)")
    _on_another_device(canonical_rotation, {"xyz_rel": xyz}, "canonical_rotation")
    return "Joint 9 lands on +y, joint 17 in the x-y plane with x > 0, for any batch shape."


# --- 07.2 from the canonical frame back to the camera -----------------------------------------


def _mirror(coords, is_right):
    sign = torch.ones(coords.shape[:-2] + (1, 3), device=coords.device)
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


def _in_place(canonical, rotation, is_right):
    """A typical mistake: the mirror done in place, which changes the caller's tensor (in
    PosePrior, the canonical pose it returns and its loss is computed on)."""
    canonical[is_right.bool(), :, 2] *= -1
    return canonical @ rotation


def _cpu_sign(canonical, rotation, is_right):
    """A typical mistake: the sign tensor is created on the CPU (fails on a GPU)."""
    sign = torch.where(is_right.bool()[:, None, None], torch.tensor([1.0, 1.0, -1.0]),
                       torch.tensor([1.0, 1.0, 1.0]))
    return (canonical * sign) @ rotation


@exercise("07.2", "canonical pose + viewpoint -> camera frame",
          nudge="to_canonical does two things to w_rel, in this order: rotate (w_rel @ R.T), then "
                "mirror the right hands. The way back undoes them in the reverse order, each with "
                "its inverse (the inverse of a rotation is its transpose; the mirror is its own).",
          hint="Un-mirror first: multiply by a sign tensor (1, 1, -1 for right hands, all 1 for "
               "left ones) built on canonical's device, never in place; then rotate back: "
               "xyz_rel = mirrored @ R.",
          wrong=[_no_mirror, _transposed, _mirror_after, _in_place, _cpu_sign])
def _(from_canonical):
    from handpose_utils.hand3d.canonical import to_canonical

    xyz = _hands(8, seed=1) + torch.tensor([0.1, -0.2, 0.6])  # camera frame, not root-relative
    is_right = torch.tensor([True, False, False, True, True, False, True, False])
    enc = to_canonical(xyz, is_right)
    args = {"canonical": enc["canonical"], "rotation": enc["rotation"], "is_right": is_right}
    back = _tensor(_call(from_canonical, args), (8, 21, 3), "from_canonical's output")
    err = (back - enc["xyz"]).norm(dim=-1).amax(-1)  # per hand
    for side, name in ((False, "left"), (True, "right")):
        if err[is_right == side].max() > 1e-4:
            # what differs, in the hand's own frame (undo the rotation with the true R)
            own = back @ enc["rotation"].transpose(-1, -2)
            want = enc["xyz"] @ enc["rotation"].transpose(-1, -2)
            d = (own - want)[is_right == side].abs().amax((0, 1))
            raise Wrong(f"to_canonical then from_canonical does not give the {name} hands back "
                        f"(largest joint error {err[is_right == side].max():.4f} bone lengths). "
                        f"Seen in the hand's own frame (result @ R.T), the {name} hands' x, y, z "
                        f"differ by up to {d[0]:.4f}, {d[1]:.4f}, {d[2]:.4f}")
    grad = enc["canonical"].clone().requires_grad_()
    out = from_canonical(grad, enc["rotation"], is_right)
    if not (isinstance(out, torch.Tensor) and out.requires_grad):
        raise Wrong("the result is cut off from autograd (PosePrior calls from_canonical in its "
                    "forward pass): stay with torch operations, no .numpy(), .item() or "
                    "torch.tensor(...) of results")
    _on_another_device(from_canonical, args, "from_canonical")
    return "to_canonical -> from_canonical is the identity for left and right hands."


# --- 07.3 the score-map encoder ---------------------------------------------------------------


def _centres(n, crop_size):
    return (torch.arange(n).float() + 0.5) * (crop_size / n) - 0.5


def _encode(uv_crop, visible, crop_size, map_size, sigma, centre=_centres, two=2.0):
    h, w = (map_size, map_size) if isinstance(map_size, int) else map_size
    cx, cy = centre(w, crop_size), centre(h, crop_size)
    d2 = ((cx[None, None, None, :] - uv_crop[..., 0, None, None]) ** 2
          + (cy[None, None, :, None] - uv_crop[..., 1, None, None]) ** 2)
    return torch.exp(-d2 / (two * sigma**2)) * visible.float()[..., None, None]


def _corner_cells(uv_crop, visible, crop_size, map_size, sigma):
    """A typical mistake: cell i at i * stride (its corner), not at its centre."""
    return _encode(uv_crop, visible, crop_size, map_size, sigma,
                   centre=lambda n, c: torch.arange(n).float() * (c / n))


def _all_visible(uv_crop, visible, crop_size, map_size, sigma):
    """A typical mistake: occluded keypoints get a Gaussian too."""
    return _encode(uv_crop, torch.ones_like(visible), crop_size, map_size, sigma)


def _no_half_sigma(uv_crop, visible, crop_size, map_size, sigma):
    """A typical mistake: exp(-d^2 / sigma^2), a Gaussian sqrt(2) times too narrow."""
    return _encode(uv_crop, visible, crop_size, map_size, sigma, two=1.0)


def _rows_are_x(uv_crop, visible, crop_size, map_size, sigma):
    """A typical mistake: the map's rows follow x and its columns y (a transposed map)."""
    h, w = (map_size, map_size) if isinstance(map_size, int) else map_size
    return _encode(uv_crop, visible, crop_size, (w, h), sigma).transpose(-1, -2)


def _one_stride(uv_crop, visible, crop_size, map_size, sigma):
    """A typical mistake: the stride of the x axis used for y too (right for square maps only)."""
    h, w = (map_size, map_size) if isinstance(map_size, int) else map_size
    cx = _centres(w, crop_size)
    cy = (torch.arange(h).float() + 0.5) * (crop_size / w) - 0.5
    d2 = ((cx[None, None, None, :] - uv_crop[..., 0, None, None]) ** 2
          + (cy[None, None, :, None] - uv_crop[..., 1, None, None]) ** 2)
    return torch.exp(-d2 / (2 * sigma**2)) * visible.float()[..., None, None]


def _in_cells(uv_crop, visible, crop_size, map_size, sigma):
    """The maps of a Gaussian whose sigma is in map cells: distances measured in cells (each
    axis its own cell size) and divided by 2 sigma^2 as if sigma were in cells."""
    h, w = (map_size, map_size) if isinstance(map_size, int) else map_size
    u = (uv_crop[..., 0] + 0.5) * (w / crop_size) - 0.5  # keypoints in cell coordinates
    v = (uv_crop[..., 1] + 0.5) * (h / crop_size) - 0.5
    d2 = ((torch.arange(w).float()[None, None, None, :] - u[..., None, None]) ** 2
          + (torch.arange(h).float()[None, None, :, None] - v[..., None, None]) ** 2)
    return torch.exp(-d2 / (2 * sigma**2)) * visible.float()[..., None, None]


def _sigma_in_cells(uv_crop, visible, crop_size, map_size, sigma):
    """A typical mistake: sigma taken in map cells (distances in cells), not in crop pixels."""
    return _in_cells(uv_crop, visible, crop_size, map_size, sigma)


def _compare_maps(got, want, uv, vis, crop_size, sigma, what):
    from handpose_utils.hand3d.crops import decode_scoremaps

    diff = (got - want).abs()
    if diff.max() <= 1e-4:
        return
    b, j, y, x = (int(i) for i in torch.nonzero(diff == diff.max())[0])
    msg = (f"{what}: the largest difference is at map[{b}, {j}, {y}, {x}] (row y = {y}, column "
           f"x = {x}) of keypoint (u, v) = ({uv[b, j, 0]:.2f}, {uv[b, j, 1]:.2f}): "
           f"{got[b, j, y, x]:.4f}, expected {want[b, j, y, x]:.4f}.")
    size = tuple(got.shape[-2:])
    if torch.allclose(got, _in_cells(uv, vis, crop_size, size, sigma), atol=1e-4):
        raise Wrong(msg + f" Your maps are Gaussians of sigma = {sigma:g} map CELLS around the "
                    f"keypoints, i.e. {sigma * crop_size / size[1]:.0f} crop pixels along x: "
                    "sigma is in crop pixels. Measure the distances from the keypoint to the "
                    "cells' centres in crop pixels, then divide by 2 sigma^2")
    if got.shape[-1] == got.shape[-2] and torch.allclose(got, want.transpose(-1, -2), atol=1e-4):
        raise Wrong(msg + " Your maps equal the expected ones transposed (row and column "
                    "swapped): a map's rows are y (v), its columns x (u)")
    mine, _ = decode_scoremaps(got.clamp_min(0), crop_size)
    off = (mine - uv)[vis]
    if off.abs().max() > 0.05:
        k = int(off.norm(dim=-1).argmax())
        msg += (f" Your peaks decode (with the course's decoder) up to ({off[k, 0]:+.2f}, "
                f"{off[k, 1]:+.2f}) crop px (along x, y) away from their keypoints")
        if torch.allclose(off, off[:1].expand_as(off), atol=0.05):
            msg += ", the same shift for every keypoint"
        raise Wrong(msg)
    raise Wrong(msg + " Every peak is where its keypoint is; the values around the peaks differ")


@exercise("07.3", "Gaussian score maps",
          nudge="Work along each axis separately: the centres of the W columns (x) and of the H "
                "rows (y) in crop pixels, each axis with its own cell size crop_size / W and "
                "crop_size / H; then combine the two squared distances by broadcasting so that "
                "the map's rows are y. Everything new goes on uv_crop's device.",
          hint="H, W = map_size (or S, S); cx = (torch.arange(W, device=dev) + 0.5) * crop_size / W "
               "- 0.5, cy likewise with H; dx2 = (cx - u[..., None])**2 (B, J, W), dy2 (B, J, H); "
               "maps = exp(-(dy2[..., :, None] + dx2[..., None, :]) / (2 sigma^2)) times "
               "visible[..., None, None].",
          wrong=[_corner_cells, _all_visible, _no_half_sigma, _rows_are_x, _one_stride,
                 _sigma_in_cells])
def _(encode_scoremaps):
    g = torch.Generator().manual_seed(7)
    uv = torch.rand(2, 5, 2, generator=g) * 64 - 0.5  # sub-pixel, anywhere in a 64 px crop
    uv[0, 1] = torch.tensor([40.3, 5.7])
    vis = torch.tensor([[True, True, True, False, True], [True, True, True, True, True]])
    for map_size, shape, name in ((8, (2, 5, 8, 8), "8 x 8 maps"),
                                  ((6, 10), (2, 5, 6, 10), "(H, W) = (6, 10) maps")):
        args = {"uv_crop": uv, "visible": vis, "crop_size": 64, "map_size": map_size,
                "sigma": 5.0}
        out = _call(encode_scoremaps, args)
        if (isinstance(out, torch.Tensor) and tuple(out.shape) == shape[:2] + shape[:1:-1]
                and shape[2] != shape[3]):
            raise Wrong(f"{name}: your maps are {tuple(out.shape)}, i.e. {shape[3]} rows and "
                        f"{shape[2]} columns. A map has H = {shape[2]} rows (y, the second "
                        f"coordinate) and W = {shape[3]} columns (x): {shape}")
        maps = _tensor(out, shape, f"{name} of (2, 5) keypoints")
        if maps[0, 3].abs().max() > 0:
            raise Wrong(f"{name}: keypoint [0, 3] is occluded (visible False) but its map is not "
                        f"all zero (its largest value is {maps[0, 3].abs().max():.4f})")
        _compare_maps(maps, _encode(uv, vis, 64, map_size, 5.0), uv, vis, 64, 5.0, name)
    _on_another_device(encode_scoremaps, args, "encode_scoremaps")
    return ("Square and (H, W) maps match the Gaussians at the cells' centres; occluded "
            "keypoints stay empty.")


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
          nudge="Three numbers, three steps: the bounding box of the mask's pixels (first and "
                "last row and column that are True), its centre, then the side: the longer of "
                "width and height (counted inclusively), times margin, clamped, and only then "
                "turned into a scale. Keep the scale a float.",
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
    tall = torch.zeros(100, 120, dtype=torch.bool)
    tall[7:84, 91:96] = True
    cases.append((tall, 1.1, torch.tensor([93.0, 45.0, 64 / (77 * 1.1)]),
                  "a 5 x 77 mask (taller than wide)"))
    speck = torch.zeros(100, 120, dtype=torch.bool)
    speck[70:72, 10:13] = True
    cases.append((speck, 1.25, torch.tensor([11.0, 70.5, 64 / 20.0]),
                  "a 3 x 2 speck (side clamped up to min_side = 20)"))
    big = torch.ones(100, 120, dtype=torch.bool)
    cases.append((big, 1.25, torch.tensor([59.5, 49.5, 64 / 128.0]),
                  "a mask filling the image (side clamped down to max_side = 128)"))
    for m, margin, want, name in cases:
        args = {"mask": m, "crop_size": 64, "margin": margin, "min_side": 20.0,
                "max_side": 128.0}
        box = _tensor(_call(crop_box, args), (3,), "crop_box's (cx, cy, scale)")
        if not torch.allclose(box[:2], want[:2], atol=1e-3):
            raise Wrong(f"{name}: centre ({box[0]:.3f}, {box[1]:.3f}), expected "
                        f"({want[0]:.3f}, {want[1]:.3f}) (the middle of the mask's bounding box)")
        if abs(box[2] - want[2]) > 1e-4:
            raise Wrong(f"{name}: scale {box[2]:.6f} crop px per image px, expected "
                        f"{want[2]:.6f}, i.e. a box side of {64 / box[2]:.3f} image px instead "
                        f"of {64 / want[2]:.3f}" if box[2] else
                        f"{name}: scale 0, expected {want[2]:.6f}")
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


def _as_number(outputs, targets):
    """A typical mistake: the loss as a Python float, which cannot be back-propagated."""
    if "canonical" in outputs:
        return (F.mse_loss(outputs["canonical"], targets["canonical"])
                + F.mse_loss(outputs["rotation"], targets["rotation"])).item()
    return F.mse_loss(outputs["xyz"], targets["xyz"]).item()


def _summed(outputs, targets):
    """A typical mistake: summed squared errors, which grow with the batch size."""
    if "canonical" in outputs:
        return (F.mse_loss(outputs["canonical"], targets["canonical"], reduction="sum")
                + F.mse_loss(outputs["rotation"], targets["rotation"], reduction="sum"))
    return F.mse_loss(outputs["xyz"], targets["xyz"], reduction="sum")


@exercise("07.5", "the PosePrior loss",
          nudge="The two formulas are in the text above. Tell the variants apart by what the "
                "network returned (only the proposed one returns 'canonical'), and keep the loss "
                "a tensor: the engine calls .backward() on it.",
          hint="If outputs has 'canonical' (the proposed variant): F.mse_loss of canonical plus "
               "F.mse_loss of rotation against the targets. Otherwise (direct): F.mse_loss of xyz.",
          wrong=[_canonical_only, _always_xyz, _as_number, _summed])
def _(poseprior_loss):
    g = torch.Generator().manual_seed(3)
    t = {k: torch.randn(4, *s, generator=g) for k, s in
         (("canonical", (21, 3)), ("rotation", (3, 3)), ("xyz", (21, 3)))}
    o = {k: (v + 0.3 * torch.randn(v.shape, generator=g)).requires_grad_() for k, v in t.items()}
    o["rotation"] = (t["rotation"] + 0.8).requires_grad_()  # a viewpoint error of its own
    with torch.no_grad():
        want = ((o["canonical"] - t["canonical"]) ** 2).mean() + ((o["rotation"] - t["rotation"])
                                                                  ** 2).mean()
    got = _call(poseprior_loss, {"outputs": o, "targets": t})
    if not isinstance(got, torch.Tensor):
        raise Wrong(f"the loss must be a tensor (the engine calls loss.backward()), got "
                    f"{type(got).__name__}")
    if got.numel() != 1:
        raise Wrong(f"the loss must be one number, got shape {tuple(got.shape)}")
    if not got.requires_grad:
        raise Wrong("the loss does not depend on the outputs through autograd: nothing would "
                    "train")
    got = got.detach()
    if abs(float(got) - float(want)) > 1e-4 * float(want):
        raise Wrong(f"proposed variant: loss {float(got):.6f}, expected {float(want):.6f} (of "
                    f"which {((o['rotation'] - t['rotation']) ** 2).mean():.6f} is the rotation's "
                    "part)")
    direct = {"xyz": o["xyz"]}
    with torch.no_grad():
        want = ((o["xyz"] - t["xyz"]) ** 2).mean()
    got = torch.as_tensor(poseprior_loss(direct, t)).detach().float()
    if abs(float(got) - float(want)) > 1e-4 * float(want):
        raise Wrong(f"direct variant (outputs has only 'xyz'): loss {float(got):.6f}, expected "
                    f"{float(want):.6f}")
    exact = poseprior_loss({"canonical": t["canonical"], "rotation": t["rotation"],
                            "xyz": t["xyz"]}, t)
    exact = float(torch.as_tensor(exact).detach())
    if abs(exact) > 1e-8:
        raise Wrong(f"the loss of a perfect prediction must be 0, got {exact:.3g}")
    return "Both variants' losses match, back-propagate, and a perfect prediction costs nothing."


# --- 07.6 (transfer) where is the hand? -------------------------------------------------------


def _camera(seed: int = 11):
    """Hands (metres) at known roots in front of a camera with f_x != f_y and an off-centre
    principal point, and their exact pixels."""
    g = torch.Generator().manual_seed(seed)
    rel = torch.randn(5, 21, 3, generator=g) * 0.04
    rel[:, 0] = 0.0
    root = torch.stack([torch.rand(5, generator=g) * 0.3 - 0.15,
                        torch.rand(5, generator=g) * 0.2 - 0.1,
                        torch.rand(5, generator=g) * 0.6 + 0.4], dim=-1)
    K = torch.tensor([[320.0, 0.0, 171.3], [0.0, 290.0, 152.8], [0.0, 0.0, 1.0]])
    cam = rel + root[:, None]
    uv = (cam @ K.T)[..., :2] / cam[..., 2:]
    return rel, uv, K, root


def _least_squares_root(xyz_rel, uv, K):
    x = (uv[..., 0] - K[0, 2]) / K[0, 0]
    y = (uv[..., 1] - K[1, 2]) / K[1, 1]
    X, Y, Z = xyz_rel.unbind(-1)
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    A = torch.cat([torch.stack([one, zero, -x], -1), torch.stack([zero, one, -y], -1)], 1)
    b = torch.cat([x * Z - X, y * Z - Y], 1)[..., None]
    return torch.linalg.lstsq(A, b).solution[..., 0]


def _reprojection(root, xyz_rel, uv, K):
    cam = xyz_rel + root[:, None]
    return ((cam @ K.T)[..., :2] / cam[..., 2:] - uv).norm(dim=-1).mean(-1)  # px, per hand


def _one_focal(xyz_rel, uv, K):
    """A typical mistake: f_x used for both axes."""
    K2 = K.clone()
    K2[1, 1] = K[0, 0]
    return _least_squares_root(xyz_rel, uv, K2)


def _no_principal_point(xyz_rel, uv, K):
    """A typical mistake: pixels taken as if the principal point were at (0, 0)."""
    K2 = K.clone()
    K2[:2, 2] = 0.0
    return _least_squares_root(xyz_rel, uv, K2)


def _wrist_only_depth(xyz_rel, uv, K):
    """A typical mistake: depth from the hand's size in the image (a pinhole on the mean
    spread), then the wrist back-projected: good but not exact."""
    spread2d = (uv - uv.mean(1, keepdim=True)).norm(dim=-1).mean(1)
    spread3d = (xyz_rel[..., :2] - xyz_rel[..., :2].mean(1, keepdim=True)).norm(dim=-1).mean(1)
    z = (K[0, 0] + K[1, 1]) / 2 * spread3d / spread2d
    x = (uv[:, 0, 0] - K[0, 2]) / K[0, 0] * z
    y = (uv[:, 0, 1] - K[1, 2]) / K[1, 1] * z
    return torch.stack([x, y, z], -1)


@exercise("07.6", "where is the hand? The root from 2D keypoints, the 3D pose and K (transfer)",
          nudge="Write the pinhole projection of joint j, u_j = f_x (X_j + t_x) / (Z_j + t_z) + "
                "c_x (and v_j with f_y, c_y), and multiply out the denominator: each joint gives "
                "two equations that are LINEAR in the unknown root t = (t_x, t_y, t_z). 21 joints, "
                "42 equations, 3 unknowns: a least-squares problem.",
          hint="x_j = (u_j - c_x) / f_x, y_j = (v_j - c_y) / f_y; equations t_x - x_j t_z = x_j Z_j "
               "- X_j and t_y - y_j t_z = y_j Z_j - Y_j. Stack them into A (N, 42, 3) and b "
               "(N, 42, 1) and solve with torch.linalg.lstsq(A, b).solution[..., 0].",
          wrong=[_one_focal, _no_principal_point, _wrist_only_depth], transfer=True)
def _(locate_root):
    rel, uv, K, root = _camera()
    args = {"xyz_rel": rel, "uv": uv, "K": K}
    got = _tensor(_call(locate_root, args), (5, 3), "the roots of 5 hands")
    err = (got - root).abs()
    if err.max() > 1e-4:
        h = int(err.amax(-1).argmax())
        raise Wrong(f"exact keypoints (no noise): hand {h}'s root is at {_fmt(root[h])} m, "
                    f"yours is {_fmt(got[h])}, off by {_fmt(got[h] - root[h])} m "
                    f"(x, y, z); its joints reproject {float(_reprojection(got, rel, uv, K)[h]):.3f}"
                    " px from their pixels on average")
    g = torch.Generator().manual_seed(12)
    noisy = uv + torch.randn(uv.shape, generator=g)  # one pixel of noise
    args = {"xyz_rel": rel, "uv": noisy, "K": K}
    got = _tensor(_call(locate_root, args), (5, 3), "the roots of 5 hands from noisy pixels")
    best = _reprojection(_least_squares_root(rel, noisy, K), rel, noisy, K)
    mine = _reprojection(got, rel, noisy, K)
    if (mine > 1.1 * best + 0.05).any():
        h = int((mine - best).argmax())
        raise Wrong(f"with 1 px of noise on the keypoints, hand {h}'s joints reproject "
                    f"{float(mine[h]):.3f} px from their pixels on average with your root; the "
                    f"least-squares root of all joints gets {float(best[h]):.3f} px")
    return ("The root comes back exactly from exact pixels and as well as least squares from "
            "noisy ones, with f_x != f_y and an off-centre principal point.")
