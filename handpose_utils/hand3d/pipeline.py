"""The whole method at test time: image -> hand mask -> crop -> score maps -> 3D pose.
``crops="ground_truth"`` isolates PoseNet and PosePrior from segmentation errors (the paper's
Table 1 compares both settings).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import env
from .crops import (
    SEG_SIDE_RANGE,
    boxes_from_keypoints,
    boxes_from_segmentation,
    crop_images,
    decode_scoremaps,
    from_crop,
    paper_normalize,
)
from .data import make_loader


class Hand3DPipeline(nn.Module):
    """HandSegNet -> crop -> PoseNet -> PosePrior.

    ``forward(images, hand_side, boxes=None)``: ``images`` (B, 3, H, W), uint8 or normalised;
    ``hand_side`` (B,) 0 left / 1 right (the annotated one, as in the paper). Without ``boxes``
    the crop comes from the segmentation. Returns ``boxes``, ``crops``, ``scoremaps`` (the last
    stage), ``uv_crop`` / ``uv`` (pixels of the crop / image), ``confidence``, ``xyz``
    (root-relative, in bone lengths), PosePrior's ``canonical`` / ``rotation`` and, with
    segmentation, ``hand_prob`` / ``hand_mask``. ``seg_size`` runs HandSegNet at another
    resolution (e.g. a small one on a CPU); ``side_range`` and ``margin`` shape the boxes from
    the segmentation (default: the paper's).
    """

    def __init__(self, segnet: nn.Module, posenet: nn.Module, prior: nn.Module,
                 crop_size: int = 256, seg_size: tuple[int, int] | None = None,
                 side_range=SEG_SIDE_RANGE, margin: float = 1.25):
        super().__init__()
        self.segnet, self.posenet, self.prior = segnet, posenet, prior
        self.crop_size = crop_size
        self.seg_size = tuple(seg_size) if seg_size is not None else None
        self.side_range, self.margin = side_range, margin

    def segment(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised images -> hand logits (B, 2, H, W) at the images' own size."""
        h, w = x.shape[-2:]
        if self.seg_size is not None and self.seg_size != (h, w):
            x = F.interpolate(x, size=self.seg_size, mode="bilinear", align_corners=False,
                              antialias=True)
        logits = self.segnet(x)
        if logits.shape[-2:] != (h, w):
            logits = F.interpolate(logits.float(), size=(h, w), mode="bilinear",
                                   align_corners=False)
        return logits

    def forward(self, images: torch.Tensor, hand_side: torch.Tensor,
                boxes: torch.Tensor | None = None) -> dict:
        x = paper_normalize(images)
        out: dict = {}
        if boxes is None:
            boxes, prob, mask = boxes_from_segmentation(self.segment(x), self.crop_size,
                                                        self.side_range, self.margin)
            out.update(hand_prob=prob, hand_mask=mask)
        crops = crop_images(x, boxes, self.crop_size)
        maps = self.posenet(crops)[:, -1]
        uv_crop, conf = decode_scoremaps(maps, self.crop_size)
        lifted = self.prior(maps, hand_side)
        out.update(boxes=boxes, crops=crops, scoremaps=maps, uv_crop=uv_crop,
                   uv=from_crop(uv_crop, boxes.float(), self.crop_size), confidence=conf, **lifted)
        return out


@torch.no_grad()
def run_pipeline(pipeline: Hand3DPipeline, dataset, batch_size: int = 16,
                 crops: str = "segmentation", device=None, progress: bool = True,
                 num_workers: int | None = None) -> dict:
    """Run ``pipeline`` over an :class:`~handpose_utils.hand3d.data.RHDSamples` dataset, with
    ``crops="segmentation"`` (the full method) or ``"ground_truth"`` (boxes from the annotated
    keypoints). Numpy arrays: ``uv_pred`` / ``uv_gt`` (image pixels), ``visible``,
    ``xyz_pred_mm`` / ``xyz_gt_mm`` (wrist-relative mm, the prediction times the ground-truth
    bone length: pass them to :func:`~handpose_utils.hand3d.evaluate.eval_3d`), ``boxes``,
    ``hand_side``, ``confidence``, ``index`` and, with segmentation, ``intersection`` / ``union``
    hand-pixel counts against the ground-truth mask (both hands)."""
    if crops not in ("segmentation", "ground_truth"):
        raise ValueError(f"crops must be 'segmentation' or 'ground_truth', got {crops!r}")
    device = torch.device(device) if device is not None else env.pick_device()
    pipeline = pipeline.to(device).eval()
    loader = make_loader(dataset, batch_size, num_workers=num_workers, device=device)
    acc: dict[str, list] = {}
    for batch in env.progress_bar(loader, progress, desc=f"pipeline ({crops} crops)", leave=False):
        batch = {k: v.to(device) for k, v in batch.items()}
        boxes = None
        if crops == "ground_truth":
            h, w = batch["image"].shape[-2:]
            boxes = boxes_from_keypoints(batch["keypoints"], batch["visible"],
                                         pipeline.crop_size, (w, h))
        out = pipeline(batch["image"], batch["hand_side"], boxes=boxes)
        xyz = batch["xyz"]
        scale_mm = torch.linalg.vector_norm(xyz[:, 10] - xyz[:, 9], dim=-1)[:, None, None] * 1000
        parts = {"uv_pred": out["uv"], "uv_gt": batch["keypoints"], "visible": batch["visible"],
                 "xyz_pred_mm": out["xyz"].float() * scale_mm,
                 "xyz_gt_mm": (xyz - xyz[:, :1]) * 1000, "boxes": out["boxes"],
                 "hand_side": batch["hand_side"], "confidence": out["confidence"],
                 "index": batch["index"]}
        if "hand_mask" in out and "mask" in batch:
            pred, gt = out["hand_prob"] > 0.5, batch["mask"] > 1
            parts.update(intersection=(pred & gt).flatten(1).sum(1),
                         union=(pred | gt).flatten(1).sum(1))
        for k, v in parts.items():
            acc.setdefault(k, []).append(v)
    result: dict = {"crops": crops}
    for k, v in acc.items():
        t = torch.cat(v).cpu()  # visible: bool; hand_side, index and the pixel counts: int64
        result[k] = (t.float() if t.is_floating_point() else t).numpy()
    return result
