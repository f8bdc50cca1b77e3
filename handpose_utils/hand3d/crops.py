"""Hand crops and score maps: the geometry between the three networks.

**Crop boxes** ``(cx, cy, s)`` per sample: centre in image pixels and scale (crop pixels per image
pixel). With pixel centres at integers (the course's convention)::

    crop:  u' = (u - cx) * s + (C - 1) / 2        image: u = (u' - (C - 1) / 2) / s + cx

:func:`to_crop` / :func:`from_crop` apply these to keypoints and :func:`crop_images` samples
``C x C`` crops with them, so a keypoint and its pixel always move together. Boxes come from the
**ground truth** when training PoseNet and PosePrior (:func:`boxes_from_keypoints`, centred on the
middle MCP like the paper, optionally jittered like an imperfect detector), and from
**HandSegNet's hand channel** at test time (:func:`boxes_from_segmentation`). The paper's code
clamps the two kinds differently (for C = 256 crops of 320 px RHD images): the ground-truth side
to 50-500 px, then the scale to [1, 10], together **50-256 px** (``data/BinaryDbReader.py``,
:data:`GT_SIDE_RANGE`); the segmentation box (the mask's side x 1.25) by the scale in [0.25, 5],
**51.2-1024 px** (``nets/ColorHandPose3DNetwork.py``, :data:`SEG_SIDE_RANGE`). The ranges are
stored as fractions of the image side, so the geometry holds at other sizes. The scale is a float
(the reference divided with ``//``, which makes it 0 for every box smaller than the crop).

**Score maps** (an MMPose-style codec): PoseNet predicts one ``S x S`` map per keypoint
(S = C / 8); :func:`encode_scoremaps` renders Gaussian targets at the cells' centres,
:func:`decode_scoremaps` takes each map's arg-max cell and refines it to sub-cell precision.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

CENTER_JOINT = 9  # middle MCP (RHD's kp 12): the paper's crop centre
REFERENCE_IMAGE_SIZE = 320  # RHD's image side, in which the paper's pixel numbers are given
# Box side as a fraction of the image side (see the module docstring).
GT_SIDE_RANGE = (50 / REFERENCE_IMAGE_SIZE, 256 / REFERENCE_IMAGE_SIZE)
SEG_SIDE_RANGE = (256 / 5 / REFERENCE_IMAGE_SIZE, 256 / 0.25 / REFERENCE_IMAGE_SIZE)


def paper_normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``(B, 3, H, W)`` -> float ``x / 255 - 0.5`` (not ImageNet's normalisation; the
    reference fed raw 0-255 values). Float input is returned unchanged (already normalised)."""
    return images.float().div_(255.0).sub_(0.5) if images.dtype == torch.uint8 else images


def to_crop(uv: torch.Tensor, boxes: torch.Tensor, crop_size: int) -> torch.Tensor:
    """Image pixels ``(B, J, 2)`` -> crop pixels."""
    return (uv - boxes[:, None, :2]) * boxes[:, None, 2:3] + (crop_size - 1) / 2


def from_crop(uv_crop: torch.Tensor, boxes: torch.Tensor, crop_size: int) -> torch.Tensor:
    """Crop pixels ``(B, J, 2)`` -> image pixels (inverse of :func:`to_crop`)."""
    return (uv_crop - (crop_size - 1) / 2) / boxes[:, None, 2:3] + boxes[:, None, :2]


def clamp_scale(side: torch.Tensor, crop_size: int, image_size: float,
                side_range=GT_SIDE_RANGE) -> torch.Tensor:
    """Box side (image pixels) -> crop scale ``C / side``, with the side clamped to
    ``side_range`` times the image size."""
    return crop_size / side.clamp(side_range[0] * image_size, side_range[1] * image_size)


def boxes_from_keypoints(uv: torch.Tensor, visible: torch.Tensor, crop_size: int,
                         image_size: tuple[int, int], side_range=GT_SIDE_RANGE,
                         margin: float = 1.0, center_noise: float = 0.0, offset_noise: float = 0.0,
                         scale_noise: tuple[float, float] = (1.0, 1.0),
                         generator: torch.Generator | None = None) -> torch.Tensor:
    """Ground-truth crop boxes ``(B, 3)``, as the paper's data reader makes them: centred on the
    middle MCP, side twice the largest distance from it to a visible keypoint (clipped to the
    image) times ``margin``, clamped to ``side_range``. Training jitter, as fractions of the image
    size (paper at 320 px: 20 px, 10 px, x1.0-1.2): ``center_noise`` moves the centre **before**
    the side is measured (the hand stays inside), ``offset_noise`` shifts the box after,
    ``scale_noise`` zooms in. Samples without a visible keypoint get a centred box."""
    W, H = image_size
    ref = float(max(W, H))
    b, dev, dt = uv.shape[0], uv.device, uv.dtype
    vis = visible.bool()

    def noise(shape, sigma):  # truncated at 2 sigma, like the paper's tf.truncated_normal
        z = torch.randn(shape, generator=generator, dtype=dt).to(dev)
        return z.clamp(-2, 2) * sigma * ref

    center = uv[:, CENTER_JOINT].clone()
    if center_noise > 0:
        center = center + noise((b, 2), center_noise)
    big = torch.finfo(dt).max
    pts = uv.clamp(uv.new_tensor([0.0, 0.0]), uv.new_tensor([W - 1.0, H - 1.0]))
    lo = torch.where(vis[..., None], pts, big).amin(1)
    hi = torch.where(vis[..., None], pts, -big).amax(1)
    side = 2 * torch.maximum(hi - center, center - lo).amax(-1) * margin
    has_vis = vis.any(1)
    center = torch.where(has_vis[:, None], center, uv.new_tensor([(W - 1) / 2, (H - 1) / 2]))
    side = torch.where(has_vis, side, torch.full_like(side, side_range[1] * ref))
    scale = clamp_scale(side, crop_size, ref, side_range)
    if scale_noise != (1.0, 1.0):
        u = torch.rand((b,), generator=generator, dtype=dt).to(dev)
        scale = scale * (scale_noise[0] + u * (scale_noise[1] - scale_noise[0]))
    if offset_noise > 0:
        center = center + noise((b, 2), offset_noise)
    return torch.cat([center, scale[:, None]], dim=1)


def single_object(mask: torch.Tensor, score: torch.Tensor, max_iter: int | None = None
                  ) -> torch.Tensor:
    """Keep, in each ``(B, H, W)`` boolean mask, only the connected blob that contains the
    highest-scoring pixel: a second hand or a false positive elsewhere does not stretch the
    crop. Grows a seed by 3x3 dilations inside the mask (cheap on a GPU)."""
    b, h, w = mask.shape
    flat = torch.where(mask, score, torch.full_like(score, -1.0)).flatten(1)
    seed = torch.zeros_like(mask).flatten(1)
    seed.scatter_(1, flat.argmax(1, keepdim=True), True)
    blob = (seed.view(b, h, w) & mask).float()[:, None]
    m = mask.float()[:, None]
    for i in range(max_iter or (h + w)):
        grown = F.max_pool2d(blob, 3, stride=1, padding=1) * m
        if i % 8 == 7 and torch.equal(grown, blob):
            break
        blob = grown
    return blob[:, 0] > 0.5


def boxes_from_mask(mask: torch.Tensor, crop_size: int, side_range=SEG_SIDE_RANGE,
                    margin: float = 1.25) -> torch.Tensor:
    """Crop boxes ``(B, 3)`` from ``(B, H, W)`` boolean hand masks: centred on the mask's
    bounding box, side = its longer side times ``margin`` (the paper's 1.25: room for fingertips
    the mask missed), clamped to the paper's segmentation range (:data:`SEG_SIDE_RANGE`: scale
    0.25-5 at 256/320). An empty mask gives a centred box of the whole image (at most the
    largest allowed side)."""
    b, h, w = mask.shape
    ref = float(max(h, w))
    ys = torch.arange(h, device=mask.device, dtype=torch.float32)
    xs = torch.arange(w, device=mask.device, dtype=torch.float32)
    rows, cols = mask.any(2), mask.any(1)
    big = float(h + w)
    y0 = torch.where(rows, ys, big).amin(1)
    y1 = torch.where(rows, ys, -big).amax(1)
    x0 = torch.where(cols, xs, big).amin(1)
    x1 = torch.where(cols, xs, -big).amax(1)
    found = rows.any(1)
    cx = torch.where(found, (x0 + x1) / 2, torch.full_like(x0, (w - 1) / 2))
    cy = torch.where(found, (y0 + y1) / 2, torch.full_like(y0, (h - 1) / 2))
    side = torch.maximum(x1 - x0 + 1, y1 - y0 + 1) * margin
    side = torch.where(found, side, torch.full_like(side, min(side_range[1], 1.0) * ref))
    return torch.stack([cx, cy, clamp_scale(side, crop_size, ref, side_range)], dim=1)


def boxes_from_segmentation(logits: torch.Tensor, crop_size: int, side_range=SEG_SIDE_RANGE,
                            margin: float = 1.25, threshold: float = 0.5
                            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """HandSegNet logits ``(B, 2, H, W)`` -> ``(boxes, hand_prob, hand_mask)``: the **hand**
    channel's probability, thresholded, its most confident blob (:func:`single_object`) boxed."""
    prob = logits.float().softmax(1)[:, 1]
    mask = single_object(prob > threshold, prob)
    return boxes_from_mask(mask, crop_size, side_range, margin), prob, mask


def crop_images(images: torch.Tensor, boxes: torch.Tensor, crop_size: int) -> torch.Tensor:
    """Sample ``(B, ch, C, C)`` crops (bilinear; zeros outside the image) from float images
    ``(B, ch, H, W)`` at ``boxes``: output pixel ``u'`` reads image position ``from_crop(u')``."""
    b, _, h, w = images.shape
    grid1d = torch.arange(crop_size, device=images.device, dtype=torch.float32)
    # (B, C, 2): the image x of each output column, the image y of each output row
    uv = from_crop(grid1d[None, :, None].expand(b, crop_size, 2), boxes.float(), crop_size)
    u, v = uv[..., 0], uv[..., 1]
    # grid_sample with align_corners=True: -1 and +1 are the centres of the first/last pixels.
    gx = (2 * u / max(w - 1, 1) - 1)[:, None, :].expand(b, crop_size, crop_size)
    gy = (2 * v / max(h - 1, 1) - 1)[:, :, None].expand(b, crop_size, crop_size)
    grid = torch.stack([gx, gy], dim=-1).to(images.dtype)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def cell_centers(map_size: int, crop_size: int, device=None) -> torch.Tensor:
    """Crop-pixel coordinates ``(S,)`` of the centres of a score map's cells (a cell covers
    ``crop_size / map_size`` crop pixels)."""
    stride = crop_size / map_size
    return (torch.arange(map_size, device=device, dtype=torch.float32) + 0.5) * stride - 0.5


def encode_scoremaps(uv_crop: torch.Tensor, visible: torch.Tensor, crop_size: int,
                     map_size, sigma: float) -> torch.Tensor:
    """Gaussian score maps ``(B, J, S, S)`` for keypoints ``(B, J, 2)`` in crop pixels
    (``map_size`` S, or ``(H, W)`` for maps of H rows and W columns: ``(B, J, H, W)``).
    ``sigma`` is in crop pixels; invisible keypoints get an all-zero map (nothing to learn)."""
    h, w = (map_size, map_size) if isinstance(map_size, int) else map_size
    cx = cell_centers(w, crop_size, uv_crop.device)
    cy = cell_centers(h, crop_size, uv_crop.device)
    dx2 = (cx[None, None, :] - uv_crop[..., 0:1].float()) ** 2  # (B, J, W) along x
    dy2 = (cy[None, None, :] - uv_crop[..., 1:2].float()) ** 2  # (B, J, H) along y
    maps = torch.exp(-(dy2[..., :, None] + dx2[..., None, :]) / (2 * sigma**2))
    return maps * visible.float()[..., None, None]


def decode_scoremaps(maps: torch.Tensor, crop_size: int, refine: bool = True
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Score maps ``(B, J, S, S)`` -> ``(uv_crop (B, J, 2), confidence (B, J))`` (the peak).

    The arg-max cell gives the keypoint to within a cell (8 crop pixels for PoseNet; the paper's
    bilinear upsampling peaks at a sample, so it cannot beat the grid either). ``refine`` fits a
    parabola through the log of the peak and its two neighbours along each axis (as in DARK,
    Zhang et al. 2020), kept within one cell: exact for a Gaussian with sigma about half a cell
    or more; for a much smaller sigma the neighbours fall under the log's floor (1e-6) and the
    refined position can miss by more than the cell's centre, which ``refine=False`` returns.
    """
    b, j, h, w = maps.shape
    m = maps.float()
    conf, idx = m.flatten(2).max(-1)
    iy, ix = idx // w, idx % w
    pos = torch.stack([ix, iy], dim=-1).float()
    if refine and h >= 3 and w >= 3:
        # log of a Gaussian is a parabola: three samples along an axis give its vertex exactly.
        # At a border the three samples are shifted inwards.
        logm = m.clamp_min(1e-6).log().flatten(2)
        cx, cy = ix.clamp(1, w - 2), iy.clamp(1, h - 2)

        def at(y, x):
            return logm.gather(2, (y * w + x)[..., None])[..., 0]

        for axis, (lo, mid, hi, c) in enumerate((
                (at(iy, cx - 1), at(iy, cx), at(iy, cx + 1), cx),
                (at(cy - 1, ix), at(cy, ix), at(cy + 1, ix), cy))):
            curv = hi - 2 * mid + lo
            vertex = c + (lo - hi) / (2 * curv.clamp(max=-1e-6))
            refined = torch.minimum(torch.maximum(vertex, pos[..., axis] - 1), pos[..., axis] + 1)
            pos[..., axis] = torch.where(curv < -1e-6, refined, pos[..., axis])
    stride = pos.new_tensor([crop_size / w, crop_size / h])
    return (pos + 0.5) * stride - 0.5, conf
