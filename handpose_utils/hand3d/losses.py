"""Generated from notebooks/07_rhd_3d_hand_pose.ipynb by `python -m handpose_utils.export`.

Edit the notebook's `#@save hand3d.losses` cells, not this file: the tests check that the two agree."""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: F811 (the same F as above; the module needs its own)


# --- from notebooks/07_rhd_3d_hand_pose.ipynb ---
def segmentation_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, target)


# --- from notebooks/07_rhd_3d_hand_pose.ipynb ---
def posenet_loss(maps: torch.Tensor, targets: dict) -> torch.Tensor:
    gt = targets["scoremaps"][:, None]  # (B, 1, J, S, S): the same target for every stage
    vis = targets["visible"][:, None]  # (B, 1, J): an occluded keypoint has no target to learn
    rmse = torch.sqrt(((maps - gt) ** 2).mean((-2, -1)) + 1e-8)  # (B, stages, J)
    per_stage = (rmse * vis).sum((0, 2)) / (vis.sum() + 1e-3)
    return per_stage.sum()


# --- from notebooks/07_rhd_3d_hand_pose.ipynb ---
def poseprior_loss(outputs: dict, targets: dict) -> torch.Tensor:
    if "canonical" in outputs:
        return (F.mse_loss(outputs["canonical"], targets["canonical"])
                + F.mse_loss(outputs["rotation"], targets["rotation"]))
    return F.mse_loss(outputs["xyz"], targets["xyz"])
