"""Generated from notebooks/07_rhd_3d_hand_pose.ipynb by `python -m handpose_utils.export`.

Edit the notebook's `#@save hand3d.canonical` cells, not this file: the tests check that the two agree."""

from __future__ import annotations

import torch

from handpose_utils.skeletons import ROOT_JOINT  # 0, the wrist: origin of root-relative xyz

# --- from notebooks/07_rhd_3d_hand_pose.ipynb ---
ALIGN_JOINT = 9  # middle MCP: on the canonical +y axis
PLANE_JOINT = 17  # little-finger MCP: in the canonical x-y plane, x > 0
SCALE_BONE = (9, 10)  # middle MCP -> PIP: the bone every 3D pose is normalised by
_EPS = 1e-8


def _as_tensor(x) -> torch.Tensor:
    t = torch.as_tensor(x)
    return t if t.is_floating_point() else t.float()


def bone_scale(xyz) -> torch.Tensor:
    """(...,) length of the scale bone (middle MCP -> PIP) of (..., 21, 3) joints."""
    xyz = _as_tensor(xyz)
    a, b = SCALE_BONE
    return torch.linalg.vector_norm(xyz[..., b, :] - xyz[..., a, :], dim=-1)


def normalize_pose(xyz) -> tuple[torch.Tensor, torch.Tensor]:
    """Root-relative joints divided by the bone scale: ((..., 21, 3), (...,) scale)."""
    xyz = _as_tensor(xyz)
    scale = bone_scale(xyz)
    rel = xyz - xyz[..., ROOT_JOINT : ROOT_JOINT + 1, :]
    return rel / scale.clamp_min(_EPS)[..., None, None], scale


# --- from notebooks/07_rhd_3d_hand_pose.ipynb ---
def canonical_rotation(xyz_rel) -> torch.Tensor:
    """Viewpoint R (..., 3, 3): rows are the canonical axes, so canonical = xyz_rel @ R.T."""
    xyz_rel = _as_tensor(xyz_rel)
    ey = xyz_rel[..., ALIGN_JOINT, :]
    ey = ey / torch.linalg.vector_norm(ey, dim=-1, keepdim=True).clamp_min(_EPS)
    p = xyz_rel[..., PLANE_JOINT, :]
    ex = p - (p * ey).sum(-1, keepdim=True) * ey  # Gram-Schmidt: the part of p orthogonal to y
    ex = ex / torch.linalg.vector_norm(ex, dim=-1, keepdim=True).clamp_min(_EPS)
    ez = torch.linalg.cross(ex, ey, dim=-1)  # right-handed: x cross y = z, so det R = +1
    return torch.stack([ex, ey, ez], dim=-2)


def mirror_right_hands(coords, is_right) -> torch.Tensor:
    """Negate z where is_right ((...,) bool): a mirrored right hand looks like a left hand."""
    coords = _as_tensor(coords)
    is_right = torch.as_tensor(is_right, device=coords.device).bool()
    sign = torch.ones(coords.shape[:-2] + (1, 3), dtype=coords.dtype, device=coords.device)
    sign[..., 2] = torch.where(is_right, -1.0, 1.0).to(coords.dtype)[..., None]
    return coords * sign


def to_canonical(xyz, is_right, viewpoint=None) -> dict[str, torch.Tensor]:
    """PosePrior's targets from joints (..., 21, 3): canonical, rotation, xyz, scale."""
    rel, scale = normalize_pose(xyz)
    R = (viewpoint or canonical_rotation)(rel)
    canonical = mirror_right_hands(rel @ R.transpose(-1, -2), is_right)
    return {"canonical": canonical, "rotation": R, "xyz": rel, "scale": scale}


def from_canonical(canonical, rotation, is_right) -> torch.Tensor:
    return mirror_right_hands(canonical, is_right) @ _as_tensor(rotation)


# --- from notebooks/07_rhd_3d_hand_pose.ipynb ---
def axis_angle_to_matrix(axis_angle) -> torch.Tensor:
    """(..., 3) axis * angle (radians) -> (..., 3, 3); the epsilon keeps angle 0 differentiable."""
    v = _as_tensor(axis_angle)
    theta = torch.sqrt((v * v).sum(-1, keepdim=True) + _EPS)
    k = v / theta
    kx, ky, kz = k.unbind(-1)
    zero = torch.zeros_like(kx)
    K = torch.stack([zero, -kz, ky, kz, zero, -kx, -ky, kx, zero], dim=-1).reshape(
        v.shape[:-1] + (3, 3))  # the cross-product matrix of the unit axis: K w = k x w
    eye = torch.eye(3, dtype=v.dtype, device=v.device).expand_as(K)
    s = torch.sin(theta)[..., None]
    c = torch.cos(theta)[..., None]
    return eye + s * K + (1 - c) * (K @ K)


def matrix_to_axis_angle(R) -> torch.Tensor:
    """Inverse of axis_angle_to_matrix for angles in [0, pi)."""
    R = _as_tensor(R)
    cos = ((R.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1.0, 1.0)
    theta = torch.acos(cos)
    w = torch.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0],
                     R[..., 1, 0] - R[..., 0, 1]], dim=-1)
    sin = torch.sin(theta)[..., None]
    return torch.where(sin.abs() > 1e-6, w / (2 * sin.clamp_min(1e-12)) * theta[..., None], w / 2)
