"""Checks for notebook 03 (CNN keypoint regression): soft-argmax, PCK, a Fused-MBConv block."""

from __future__ import annotations

import torch
from torch import nn

from . import Wrong, exercise

# --- 03.1 soft-argmax -------------------------------------------------------------------------


def _argmax_coords(logits):
    """A typical mistake: the hard argmax (quantised to the grid, no gradient)."""
    b, j, h, w = logits.shape
    idx = logits.flatten(2).argmax(-1)
    x = ((idx % w).float() + 0.5) / w
    y = ((idx // w).float() + 0.5) / h
    return torch.stack([x, y], -1)


def _no_softmax(logits):
    """A typical mistake: the logits used as weights without the softmax."""
    b, j, h, w = logits.shape
    xs = (torch.arange(w) + 0.5) / w
    ys = (torch.arange(h) + 0.5) / h
    return torch.stack([(logits.sum(2) * xs).sum(-1), (logits.sum(3) * ys).sum(-1)], -1)


def _no_half_pixel(logits):
    """A typical mistake: pixel corners j / W instead of pixel centres (j + 0.5) / W."""
    b, j, h, w = logits.shape
    p = torch.softmax(logits.flatten(2), -1).view(b, j, h, w)
    xs, ys = torch.arange(w) / w, torch.arange(h) / h
    return torch.stack([(p.sum(2) * xs).sum(-1), (p.sum(3) * ys).sum(-1)], -1)


def _as_points(out, b, j):
    out = torch.as_tensor(out)
    if out.shape == (b, 2 * j):
        out = out.reshape(b, j, 2)
    if out.shape != (b, j, 2):
        raise Wrong(f"soft_argmax of (B, J, H, W) = ({b}, {j}, ...) logits must return "
                    f"(B, J, 2) = ({b}, {j}, 2) points, got shape {tuple(out.shape)}")
    return out.float()


@exercise("03.1", "soft-argmax",
          hint="p = softmax over the H*W pixels of each map; x = sum p * (column + 0.5) / W, "
               "y = sum p * (row + 0.5) / H.",
          wrong=[_argmax_coords, _no_softmax, _no_half_pixel])
def _(soft_argmax):
    h, w = 6, 10  # not square: x and y must not be swapped
    logits = torch.full((1, 3, h, w), -30.0)
    logits[0, 0, 2, 7] = 10.0  # joint 0: (almost) all mass on row 2, column 7
    logits[0, 1] = 0.0  # joint 1: uniform -> the centre (0.5, 0.5)
    logits[0, 2, 4, 1] = logits[0, 2, 4, 2] = 10.0  # joint 2: two equal peaks -> midway
    out = _as_points(soft_argmax(logits), 1, 3)
    expected = torch.tensor([[(7.5) / w, 2.5 / h], [0.5, 0.5], [2.0 / w, 4.5 / h]])
    names = ["a single peak at row 2, column 7", "a uniform map", "two equal peaks side by side"]
    for k in range(3):
        if not torch.allclose(out[0, k], expected[k], atol=1e-3):
            raise Wrong(f"for {names[k]} of a {h}x{w} map the answer is "
                        f"{[round(v, 4) for v in expected[k].tolist()]} (normalised x, y of the "
                        f"pixel centres), got {[round(v, 4) for v in out[0, k].tolist()]}")
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 5, 7, requires_grad=True)
    out = _as_points(soft_argmax(logits), 2, 4)
    if not out.requires_grad:
        raise Wrong("the output carries no gradient: a soft-argmax must be differentiable "
                    "(no argmax, no .detach(), no numpy)")
    out.sum().backward()
    if logits.grad is None or not logits.grad.abs().sum() > 0:
        raise Wrong("no gradient reaches the logits")
    if not ((out > 0) & (out < 1)).all():
        raise Wrong("a probability-weighted mean of pixel centres must lie inside (0, 1)")
    shifted = _as_points(soft_argmax(logits.detach() + 5.0), 2, 4)
    if not torch.allclose(shifted, out.detach(), atol=1e-5):
        raise Wrong("adding a constant to every logit changed the result: the weights must be "
                    "a softmax, which ignores such a shift")
    return "exact on known peaks, differentiable, not quantised to the grid."


# --- 03.2 PCK ---------------------------------------------------------------------------------


def _pck_strict(pred, gt, alpha, norm, visible):
    """A typical mistake: a strict < (a joint exactly on the threshold is not counted)."""
    d = torch.linalg.vector_norm(torch.as_tensor(pred) - torch.as_tensor(gt), dim=-1)
    norm = torch.as_tensor(norm, dtype=d.dtype)
    norm = norm.reshape(-1, 1) if norm.dim() else norm
    ok = (d < alpha * norm) & torch.as_tensor(visible).bool()
    return float(ok.sum() / torch.as_tensor(visible).bool().sum())


def _pck_all_joints(pred, gt, alpha, norm, visible):
    """A typical mistake: the invisible joints are scored too."""
    d = torch.linalg.vector_norm(torch.as_tensor(pred) - torch.as_tensor(gt), dim=-1)
    norm = torch.as_tensor(norm, dtype=d.dtype)
    norm = norm.reshape(-1, 1) if norm.dim() else norm
    return float((d <= alpha * norm).float().mean())


def _pck_per_sample_mean(pred, gt, alpha, norm, visible):
    """A typical mistake: visible joints counted, but divided by all joints."""
    d = torch.linalg.vector_norm(torch.as_tensor(pred) - torch.as_tensor(gt), dim=-1)
    norm = torch.as_tensor(norm, dtype=d.dtype)
    norm = norm.reshape(-1, 1) if norm.dim() else norm
    ok = (d <= alpha * norm) & torch.as_tensor(visible).bool()
    return float(ok.float().mean())


@exercise("03.2", "PCK with a visibility mask",
          hint="d = ||pred - gt|| per joint, (N, J); correct = d <= alpha * norm (norm (N,) "
               "-> a column (N, 1)); average `correct` over the visible joints only.",
          wrong=[_pck_strict, _pck_all_joints, _pck_per_sample_mean])
def _(pck):
    from ..metrics import pck as reference

    gen = torch.Generator().manual_seed(3)
    n, j = 40, 21
    gt = torch.rand(n, j, 2, generator=gen) * 200
    pred = gt + torch.randn(n, j, 2, generator=gen) * 8
    visible = torch.rand(n, j, generator=gen) > 0.3
    pred[~visible] += 100.0  # invisible joints far off: they must not count either way
    # a few joints exactly on the threshold (3-4-5 triangles: exact in floating point)
    gt[:5, 0] = torch.tensor([100.0, 50.0])
    pred[:5, 0] = torch.tensor([103.0, 54.0])
    visible[:5, 0] = True
    cases = [(0.05, 100.0), (0.1, torch.full((n,), 50.0)),  # 5 px: the ties count
             (0.1, torch.rand(n, generator=gen) * 150 + 20), (0.2, 224.0)]
    for alpha, norm in cases:
        got = pck(pred, gt, alpha, norm, visible)
        want = reference(pred, gt, alpha, norm=norm, visible=visible)
        try:
            got = float(got)
        except (TypeError, ValueError) as err:
            raise Wrong(f"pck must return one number (a float), got {got!r}") from err
        if abs(got - want) > 1e-6:
            kind = "a scalar" if not torch.is_tensor(norm) else "one normaliser per sample"
            raise Wrong(f"alpha={alpha}, norm {kind}: expected {want:.4f}, got {got:.4f}. "
                        "Count only visible joints, divide by the number of visible joints, "
                        "and count a joint exactly on the threshold as correct (<=).")
    return "agrees with hp.pck, ties and invisible joints included."


# --- 03.3 Fused-MBConv ------------------------------------------------------------------------


class _FusedActAfterProjection(nn.Module):
    """A typical mistake: an activation after the projection (not a linear bottleneck)."""

    def __init__(self, cin, cout, stride, expansion=4):
        super().__init__()
        hidden = cin * expansion
        self.use_residual = stride == 1 and cin == cout
        self.block = nn.Sequential(
            nn.Conv2d(cin, hidden, 3, stride, 1, bias=False), nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True), nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=True))

    def forward(self, x):
        y = self.block(x)
        return x + y if self.use_residual else y


class _FusedNoResidual(_FusedActAfterProjection):
    """A typical mistake: the residual connection is never added."""

    def __init__(self, cin, cout, stride, expansion=4):
        super().__init__(cin, cout, stride, expansion)
        self.block = self.block[:-1]

    def forward(self, x):
        return self.block(x)


class _InvertedResidualNotFused(nn.Module):
    """A typical mistake: the MobileNetV2 block (1x1 expand + depthwise), not the fused one."""

    def __init__(self, cin, cout, stride, expansion=4):
        super().__init__()
        hidden = cin * expansion
        self.use_residual = stride == 1 and cin == cout
        self.block = nn.Sequential(
            nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.block(x)
        return x + y if self.use_residual else y


def _fused_parameters(cin, cout, expansion):
    hidden = cin * expansion
    return 9 * cin * hidden + 2 * hidden + hidden * cout + 2 * cout


@exercise("03.3", "Fused-MBConv block",
          hint="nn.Conv2d(cin, hidden, 3, stride, padding=1, bias=False), BatchNorm2d, ReLU6, "
               "nn.Conv2d(hidden, cout, 1, bias=False), BatchNorm2d (no activation); add the "
               "input only when stride == 1 and cin == cout.",
          wrong=[_FusedActAfterProjection, _FusedNoResidual, _InvertedResidualNotFused])
def _(block_cls):
    torch.manual_seed(0)
    x = torch.randn(2, 8, 12, 12)
    for cin, cout, stride, size in [(8, 8, 1, 12), (8, 16, 1, 12), (8, 16, 2, 6), (8, 8, 2, 6)]:
        block = block_cls(cin, cout, stride, expansion=4).eval()
        y = block(x)
        if tuple(y.shape) != (2, cout, size, size):
            raise Wrong(f"Block({cin}, {cout}, stride={stride}) on a (2, {cin}, 12, 12) input "
                        f"must give (2, {cout}, {size}, {size}), got {tuple(y.shape)}")
        want = _fused_parameters(cin, cout, 4)
        got = sum(p.numel() for p in block.parameters())
        if got != want:
            raise Wrong(f"Block({cin}, {cout}, stride={stride}, expansion=4) has {got:,} "
                        f"parameters, expected {want:,}: a full 3x3 conv cin -> hidden and a 1x1 "
                        "conv hidden -> cout, both without bias, each followed by BatchNorm")
        # with every weight zero the block's own path outputs 0: what is left is the residual
        with torch.no_grad():
            for p in block.parameters():
                p.zero_()
        y = block(x)
        residual = stride == 1 and cin == cout
        if residual and not torch.allclose(y, x):
            raise Wrong(f"Block({cin}, {cout}, stride=1) keeps the shape: it must add its input "
                        "(the residual connection)")
        if not residual and y.abs().max() > 1e-6:
            raise Wrong(f"Block({cin}, {cout}, stride={stride}) changes the shape: no residual")
    block = block_cls(8, 16, 2, expansion=4).eval()
    if not (block(x) < 0).any():
        raise Wrong("the output is never negative: the projection must be linear (BatchNorm, "
                    "no ReLU/ReLU6 after it)")
    return "shapes, parameter count, residual rule and linear projection are right."
