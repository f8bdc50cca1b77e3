"""Checks for notebook 03 (CNN keypoint regression): soft-argmax, PCK, a Fused-MBConv block and
what it costs in multiply-adds."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import Wrong, exercise, unchanged


def _fmt(values, digits=6):
    return "(" + ", ".join(f"{v:.{digits}f}" for v in values) + ")"


# --- 03.1 soft-argmax -------------------------------------------------------------------------


def _soft_argmax_reference(logits):
    """An independent soft-argmax: the expectation of the pixel-centre grid under the softmax."""
    b, j, h, w = logits.shape
    p = torch.softmax(logits.double().reshape(b, j, h * w), -1).reshape(b, j, h, w)
    rows, cols = torch.meshgrid(torch.arange(h, dtype=torch.float64),
                                torch.arange(w, dtype=torch.float64), indexing="ij")
    x = torch.einsum("bjhw,hw->bj", p, (cols + 0.5) / w)
    y = torch.einsum("bjhw,hw->bj", p, (rows + 0.5) / h)
    return torch.stack([x, y], -1)


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


def _grid_on_the_cpu(logits):
    """A typical mistake: the pixel-centre grid made on the CPU (fails on a GPU's maps)."""
    b, j, h, w = logits.shape
    p = torch.softmax(logits.flatten(2), -1).view(b, j, h, w)
    xs = (torch.arange(w, dtype=p.dtype) + 0.5) / w
    ys = (torch.arange(h, dtype=p.dtype) + 0.5) / h
    return torch.stack([(p.sum(2) * xs).sum(-1), (p.sum(3) * ys).sum(-1)], -1)


def _flat_pairs(logits):
    """A typical mistake: (B, 2J) numbers instead of (B, J, 2) points."""
    return _soft_argmax_reference(logits).to(logits.dtype).flatten(1)


def _in_place_softmax(logits):
    """A typical mistake: the logits made stable in place (the caller's tensor changes, and a
    leaf tensor that requires grad refuses it)."""
    logits -= logits.amax(dim=(2, 3), keepdim=True)
    return _soft_argmax_reference(logits).to(logits.dtype)


def _call(soft_argmax, logits):
    """The answer on ``logits``; an in-place edit of a tensor that requires grad becomes a
    :class:`Wrong` that says what to do instead of PyTorch's own message."""
    try:
        return soft_argmax(logits)
    except RuntimeError as err:
        if "in-place" not in str(err):
            raise
        raise Wrong("your soft_argmax modifies `logits` in place (PyTorch refuses it on a tensor "
                    f"that needs a gradient: {str(err).splitlines()[0].rstrip('.')}). It must not change "
                    "its argument: compute new tensors (logits - m, not logits -= m; "
                    "torch.softmax(...), not .exp_() or .sub_())") from None


def _shape(out, b, j):
    if not torch.is_tensor(out):
        raise Wrong(f"soft_argmax must return a tensor (the model trains through it), got "
                    f"{type(out).__name__}")
    if out.shape != (b, j, 2):
        raise Wrong(f"soft_argmax of (B, J, H, W) = ({b}, {j}, ...) logits must return "
                    f"(B, J, 2) = ({b}, {j}, 2) points, got shape {tuple(out.shape)}")
    return out


@exercise("03.1", "soft-argmax",
          nudge="Turn each map into probabilities first (a softmax over all H*W pixels of one "
                "map, not over one axis), then take the probability-weighted mean of the pixel "
                "centres' normalised coordinates, x from the columns and y from the rows.",
          hint="p = softmax(logits.flatten(2), -1).view(B, J, H, W); "
               "xs = (torch.arange(W, device=logits.device) + 0.5) / W and likewise ys; "
               "x = (p.sum(2) * xs).sum(-1), y = (p.sum(3) * ys).sum(-1); "
               "torch.stack([x, y], -1).",
          wrong=[_argmax_coords, _no_softmax, _no_half_pixel, _grid_on_the_cpu, _flat_pairs,
                 _in_place_softmax])
def _(soft_argmax):
    h, w = 6, 10  # not square: x and y must not be swapped
    logits = torch.full((1, 3, h, w), -30.0)
    logits[0, 0, 2, 7] = 10.0  # joint 0: (almost) all mass on row 2, column 7
    logits[0, 1] = 0.0  # joint 1: uniform -> the centre (0.5, 0.5)
    logits[0, 2, 4, 1] = logits[0, 2, 4, 2] = 10.0  # joint 2: two equal peaks -> midway
    out = _shape(_call(soft_argmax, logits.clone()), 1, 3).detach().double()
    expected = torch.tensor([[(7.5) / w, 2.5 / h], [0.5, 0.5], [2.0 / w, 4.5 / h]],
                            dtype=torch.float64)
    names = ["a single peak at row 2, column 7", "a uniform map", "two equal peaks side by side"]
    for k in range(3):
        if not torch.allclose(out[0, k], expected[k], atol=1e-4):
            raise Wrong(f"for {names[k]} of a {h}x{w} map (H x W) the answer is "
                        f"{_fmt(expected[k], 4)} (normalised x, y of the pixel centres), got "
                        f"{_fmt(out[0, k], 4)}")
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 5, 7, requires_grad=True)
    out = _shape(_call(soft_argmax, logits), 2, 4)
    if not out.requires_grad:
        raise Wrong("the output carries no gradient: a soft-argmax must be differentiable "
                    "(no argmax, no .detach(), no numpy)")
    out.sum().backward()
    if logits.grad is None or not logits.grad.abs().sum() > 0:
        raise Wrong("no gradient reaches the logits")
    cases = [("random (2, 4, 5, 7) logits", logits.detach()),
             ("random (2, 4, 5, 7) logits + 5 (a softmax ignores a constant shift)",
              logits.detach() + 5.0),
             ("random (3, 2, 9, 4) logits x 100 (large: exp() overflows without a stable "
              "softmax)", torch.randn(3, 2, 9, 4) * 100)]
    for name, x in cases:
        before = x.clone()
        got = _shape(_call(soft_argmax, x), *x.shape[:2]).detach().double()
        unchanged(f"logits ({name})", before, x, "your soft_argmax")
        want = _soft_argmax_reference(x)
        bad = (~torch.isclose(got, want, atol=1e-5, rtol=0)).any(-1).nonzero()
        if len(bad):
            b, j = bad[0].tolist()
            raise Wrong(f"for {name}, map (sample {b}, joint {j}): expected (x, y) = "
                        f"{_fmt(want[b, j])}, got {_fmt(got[b, j])}")
    try:
        meta = soft_argmax(torch.zeros(2, 3, 4, 5, device="meta"))
    except Exception as err:  # noqa: BLE001 - any failure here is a device problem
        raise Wrong("your function fails when the logits are on another device than the CPU "
                    "(the check uses PyTorch's 'meta' device, as a GPU would): "
                    f"{type(err).__name__}: {err}. Make every new tensor on logits.device, "
                    "e.g. torch.arange(W, device=logits.device)") from None
    if tuple(meta.shape) != (2, 3, 2) or meta.device.type != "meta":
        raise Wrong("on logits of another device the result must stay on that device, "
                    f"(B, J, 2); got shape {tuple(meta.shape)} on {meta.device}")
    return "exact on known peaks and random maps, differentiable, device-safe."


# --- 03.2 PCK ---------------------------------------------------------------------------------


def _distances(pred, gt):
    return torch.linalg.vector_norm(torch.as_tensor(pred) - torch.as_tensor(gt), dim=-1)


def _column(norm, d):
    norm = torch.as_tensor(norm, dtype=d.dtype)
    return norm.reshape(-1, 1) if norm.dim() else norm


def _pck_strict(pred, gt, alpha, norm, visible):
    """A typical mistake: a strict < (a joint exactly on the threshold is not counted)."""
    d = _distances(pred, gt)
    ok = (d < alpha * _column(norm, d)) & torch.as_tensor(visible).bool()
    return float(ok.sum() / torch.as_tensor(visible).bool().sum())


def _pck_all_joints(pred, gt, alpha, norm, visible):
    """A typical mistake: the invisible joints are scored too."""
    d = _distances(pred, gt)
    return float((d <= alpha * _column(norm, d)).float().mean())


def _pck_per_sample_mean(pred, gt, alpha, norm, visible):
    """A typical mistake: visible joints counted, but divided by all joints."""
    d = _distances(pred, gt)
    ok = (d <= alpha * _column(norm, d)) & torch.as_tensor(visible).bool()
    return float(ok.float().mean())


def _pck_zeroes_invisible(pred, gt, alpha, norm, visible):
    """A typical mistake: the invisible joints' predictions overwritten in the caller's tensor."""
    visible = torch.as_tensor(visible).bool()
    pred[~visible] = gt[~visible]
    d = _distances(pred, gt)
    ok = (d <= alpha * _column(norm, d)) & visible
    return float(ok.sum() / visible.sum())


def _pck_mean_of_samples(pred, gt, alpha, norm, visible):
    """A typical mistake: each sample's PCK, then the mean over samples (weights samples with
    few visible joints as much as full ones)."""
    d = _distances(pred, gt)
    visible = torch.as_tensor(visible).bool()
    ok = (d <= alpha * _column(norm, d)) & visible
    return float((ok.sum(1) / visible.sum(1).clamp(min=1)).mean())


@exercise("03.2", "PCK with a visibility mask",
          nudge="Three things decide the number: which joints are counted (only the visible "
                "ones, in the numerator and in the denominator), the threshold of each sample "
                "(alpha times that sample's normaliser) and the comparison at the threshold.",
          hint="d = ||pred - gt|| per joint, (N, J); correct = d <= alpha * norm (norm (N,) "
               "-> a column (N, 1)); average `correct` over the visible joints only, pooled "
               "over all samples (sum of correct visible / number of visible).",
          wrong=[_pck_strict, _pck_all_joints, _pck_per_sample_mean, _pck_zeroes_invisible,
                 _pck_mean_of_samples])
def _(pck):
    from ..metrics import pck as reference

    gen = torch.Generator().manual_seed(3)
    cases = []
    for n, j in [(40, 21), (21, 21)]:  # n == J: a norm that is not a column broadcasts wrongly
        gt = torch.rand(n, j, 2, generator=gen) * 200
        pred = gt + torch.randn(n, j, 2, generator=gen) * 8
        visible = torch.rand(n, j, generator=gen) > 0.3
        visible[1, :18] = False  # a sample with few visible joints: pooled, not per sample
        pred[~visible] += 100.0  # invisible joints far off: they must not count either way
        # a few joints exactly on the threshold (3-4-5 triangles: exact in floating point)
        gt[:5, 0] = torch.tensor([100.0, 50.0])
        pred[:5, 0] = torch.tensor([103.0, 54.0])
        visible[:5, 0] = True
        cases += [(pred, gt, visible, 0.05, 100.0, "norm a number"),
                  (pred, gt, visible, 0.1, torch.full((n,), 50.0),
                   "one normaliser per sample (5 px: the ties count)"),
                  (pred, gt, visible, 0.1, torch.rand(n, generator=gen) * 150 + 20,
                   "one normaliser per sample"),
                  (pred, gt, visible, 0.2, 224.0, "norm a number")]
        close = torch.where(visible[..., None], pred, gt)  # invisible joints exactly right
        cases += [(close, gt, visible, 0.05, 100.0, "invisible joints predicted exactly (they "
                   "must not count as correct either)")]
    for pred, gt, visible, alpha, norm, kind in cases:
        n = len(pred)
        args = [pred.clone(), gt.clone(), visible.clone(),
                norm.clone() if torch.is_tensor(norm) else norm]
        got = pck(args[0], args[1], alpha, args[3], args[2])
        for name, mine, theirs in zip(["pred", "gt", "visible", "norm"], args,
                                      [pred, gt, visible, norm]):
            if torch.is_tensor(mine):
                unchanged(name, theirs, mine, "your pck")
        want = reference(pred, gt, alpha, norm=norm, visible=visible)
        try:
            got = float(got)
        except (TypeError, ValueError) as err:
            raise Wrong(f"pck must return one number (a float), got {got!r}") from err
        if abs(got - want) > 1e-6:
            raise Wrong(f"N = {n} samples of 21 joints, alpha = {alpha}, {kind}: expected "
                        f"{want:.6f}, got {got:.6f}")
    return "agrees with hp.pck: ties, invisible joints, per-sample normalisers."


# --- 03.3 Fused-MBConv ------------------------------------------------------------------------


def _macs(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-adds of one image through every Conv2d and Linear of ``model`` (forward hooks)."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            total += output[0].numel() * (module.in_channels // module.groups) * kh * kw
        else:
            total += output[0].numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(x[:1])
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return total


def _out_size(n: int, stride: int) -> int:
    return (n - 1) // stride + 1  # a 3x3 conv with padding 1, or a 1x1 conv: ceil(n / stride)


def _fused_macs(cin, cout, h, w, stride, expansion):
    hidden = cin * expansion
    pixels = _out_size(h, stride) * _out_size(w, stride)
    return pixels * hidden * 9 * cin + pixels * cout * hidden


class _Fused(nn.Module):
    """The block as the exercise asks it, with switches for typical mistakes."""

    def __init__(self, cin, cout, stride, expansion=4, *, stride_on_projection=False,
                 act_first=False, act=nn.ReLU6, act_after_projection=False, residual=True):
        super().__init__()
        hidden = cin * expansion
        s3, s1 = (1, stride) if stride_on_projection else (stride, 1)
        conv = nn.Conv2d(cin, hidden, 3, s3, 1, bias=False)
        first = [conv, act(), nn.BatchNorm2d(hidden)] if act_first else \
            [conv, nn.BatchNorm2d(hidden), act()]
        last = [nn.Conv2d(hidden, cout, 1, s1, bias=False), nn.BatchNorm2d(cout)]
        if act_after_projection:
            last.append(nn.ReLU6())
        self.block = nn.Sequential(*first, *last)
        self.use_residual = residual and stride == 1 and cin == cout

    def forward(self, x):
        y = self.block(x)
        return x + y if self.use_residual else y


class _FusedActAfterProjection(_Fused):
    """A typical mistake: an activation after the projection (not a linear bottleneck)."""

    def __init__(self, cin, cout, stride, expansion=4):
        super().__init__(cin, cout, stride, expansion, act_after_projection=True)


class _FusedNoResidual(_Fused):
    """A typical mistake: the residual connection is never added."""

    def __init__(self, cin, cout, stride, expansion=4):
        super().__init__(cin, cout, stride, expansion, residual=False)


class _FusedStrideOnProjection(_Fused):
    """A typical mistake: the stride on the 1x1 projection. Same output shape, same parameters,
    and even the same output, but the 3x3 convolution runs at full resolution."""

    def __init__(self, cin, cout, stride, expansion=4):
        super().__init__(cin, cout, stride, expansion, stride_on_projection=True)


class _FusedActBeforeBatchNorm(_Fused):
    """A typical mistake: conv -> ReLU6 -> BatchNorm (the normalisation must come first)."""

    def __init__(self, cin, cout, stride, expansion=4):
        super().__init__(cin, cout, stride, expansion, act_first=True)


class _FusedPlainReLU(_Fused):
    """A typical mistake: ReLU instead of ReLU6 (MobileNet's bounded activation)."""

    def __init__(self, cin, cout, stride, expansion=4):
        super().__init__(cin, cout, stride, expansion, act=nn.ReLU)


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


def _parts(block, cin, cout, hidden, label):
    """The block's 3x3 conv, 1x1 conv and their two BatchNorms, found by their shapes."""
    convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
    c3 = [m for m in convs if m.kernel_size == (3, 3) and m.weight.shape == (hidden, cin, 3, 3)]
    c1 = [m for m in convs if m.kernel_size == (1, 1) and m.weight.shape == (cout, hidden, 1, 1)]
    bns = [m for m in block.modules() if isinstance(m, nn.BatchNorm2d)]
    bn_h = [m for m in bns if m.num_features == hidden]
    bn_o = [m for m in bns if m.num_features == cout]
    if not (len(c3) == len(c1) == len(bn_h) == len(bn_o) == 1 and len(convs) == 2):
        raise Wrong(f"{label}: expected exactly one 3x3 conv {cin} -> {hidden}, one 1x1 conv "
                    f"{hidden} -> {cout} and a BatchNorm2d after each; found {len(convs)} "
                    f"Conv2d ({', '.join(f'{m.in_channels}->{m.out_channels} {m.kernel_size}' for m in convs)}) "
                    f"and {len(bns)} BatchNorm2d")
    return c3[0], c1[0], bn_h[0], bn_o[0]


def _randomise(c3, c1, bn_h, bn_o, gen):
    """Weights and BatchNorm statistics that make both ends of ReLU6 matter."""
    with torch.no_grad():
        for conv in (c3, c1):
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * 0.3)
        for bn in (bn_h, bn_o):
            n = bn.num_features
            bn.weight.copy_(torch.rand(n, generator=gen) * 3 + 0.5)
            bn.bias.copy_(torch.randn(n, generator=gen) * 3)
            bn.running_mean.copy_(torch.randn(n, generator=gen))
            bn.running_var.copy_(torch.rand(n, generator=gen) + 0.5)


def _bn(x, bn):
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)


def _fused_forward(x, parts, stride, residual, *, act_first=False, relu6=True, proj_act=False):
    """What the block computes with these weights (eval mode), and some typical variants."""
    c3, c1, bn_h, bn_o = parts
    act = (lambda t: t.clamp(0, 6)) if relu6 else torch.relu
    h = F.conv2d(x, c3.weight, None, stride, 1)
    h = _bn(act(h), bn_h) if act_first else act(_bn(h, bn_h))
    y = _bn(F.conv2d(h, c1.weight), bn_o)
    if proj_act:
        y = y.clamp(0, 6)
    return x + y if residual else y


@exercise("03.3", "Fused-MBConv block",
          nudge="Compare your block with the MobileNetV2 block in the notebook: the fused one "
                "has two convolutions, not three. Check where the stride sits (it decides the "
                "resolution the expensive 3x3 convolution runs at), what follows each "
                "convolution and in which order, and when the input may be added.",
          hint="nn.Conv2d(cin, hidden, 3, stride, padding=1, bias=False), BatchNorm2d, ReLU6, "
               "nn.Conv2d(hidden, cout, 1, bias=False), BatchNorm2d (no activation); add the "
               "input only when stride == 1 and cin == cout.",
          wrong=[_FusedActAfterProjection, _FusedNoResidual, _InvertedResidualNotFused,
                 _FusedStrideOnProjection, _FusedActBeforeBatchNorm, _FusedPlainReLU])
def _(block_cls):
    gen = torch.Generator().manual_seed(0)
    # (cin, cout, stride, expansion, input H, W): odd and non-square sizes; cout != hidden
    configs = [(8, 8, 1, 4, 12, 12), (8, 16, 2, 4, 12, 12), (6, 10, 2, 3, 11, 9),
               (8, 8, 2, 2, 10, 13), (5, 5, 1, 2, 7, 10)]
    for cin, cout, stride, expansion, h, w in configs:
        hidden = cin * expansion
        label = f"FusedMBConv({cin}, {cout}, stride={stride}, expansion={expansion})"
        block = block_cls(cin, cout, stride, expansion=expansion)
        x = torch.randn(2, cin, h, w, generator=gen)
        before = x.clone()
        y = block.eval()(x)
        size = (_out_size(h, stride), _out_size(w, stride))
        if tuple(y.shape) != (2, cout, *size):
            raise Wrong(f"{label} on a (2, {cin}, {h}, {w}) input must give "
                        f"(2, {cout}, {size[0]}, {size[1]}), got {tuple(y.shape)}")
        unchanged("x", before, x, label)
        want = _fused_parameters(cin, cout, expansion)
        got = sum(p.numel() for p in block.parameters())
        if got != want:
            raise Wrong(f"{label} has {got:,} parameters, expected {want:,}: a full 3x3 conv "
                        f"cin -> hidden = {cin} -> {hidden} and a 1x1 conv hidden -> cout, both "
                        "without bias, each followed by BatchNorm")
        want_macs = _fused_macs(cin, cout, h, w, stride, expansion)
        got_macs = _macs(block, x)
        if got_macs != want_macs:
            raise Wrong(f"{label} on a {h}x{w} input costs {got_macs:,} multiply-adds per "
                        f"image, expected {want_macs:,} ({got_macs / want_macs:.2f}x): same "
                        "parameters, but some convolution runs at a different resolution than "
                        "it should. Which one carries the stride?")
        parts = _parts(block, cin, cout, hidden, label)
        _randomise(*parts, gen)
        residual = stride == 1 and cin == cout
        with torch.no_grad():
            got_y = block.eval()(x)
            want_y = _fused_forward(x, parts, stride, residual)
        if torch.allclose(got_y, want_y, atol=1e-4, rtol=1e-4):
            continue
        variants = [
            (dict(residual=not residual),
             "the input must be added exactly when stride == 1 and cin == cout" if residual
             else "no residual here (the shapes differ or stride > 1)"),
            (dict(residual=residual, act_first=True),
             "yours applies ReLU6 before the first BatchNorm: conv -> BatchNorm -> ReLU6"),
            (dict(residual=residual, relu6=False),
             "yours uses an unbounded ReLU: MobileNet's blocks use ReLU6 (clipped at 6)"),
            (dict(residual=residual, proj_act=True),
             "yours has an activation after the projection: it must stay linear (BatchNorm "
             "only)")]
        with torch.no_grad():
            for kwargs, why in variants:
                if torch.allclose(got_y, _fused_forward(x, parts, stride, **kwargs),
                                  atol=1e-4, rtol=1e-4):
                    raise Wrong(f"{label} (eval mode, random weights and BatchNorm "
                                f"statistics): {why}")
        k = int((got_y - want_y).abs().argmax())
        raise Wrong(f"{label} (eval mode, random weights and BatchNorm statistics): its output "
                    f"differs from conv 3x3 -> BatchNorm -> ReLU6 -> conv 1x1 -> BatchNorm"
                    f"{' (+ input)' if residual else ''} computed with its own weights, by up to "
                    f"{float((got_y - want_y).abs().max()):.4g} (element {k} of "
                    f"{got_y.numel()}: expected {float(want_y.flatten()[k]):.5f}, got "
                    f"{float(got_y.flatten()[k]):.5f})")
    return ("shapes, parameters, multiply-adds, order of the layers, residual rule and linear "
            "projection are right.")


# --- 03.4 multiply-adds: where the stride goes ------------------------------------------------


class _Depthwise(nn.Module):
    """A depthwise-separable pair on a non-square kernel: groups and kernel shapes matter."""

    def __init__(self):
        super().__init__()
        self.dw = nn.Conv2d(12, 12, (3, 1), stride=(2, 1), padding=(1, 0), groups=12, bias=True)
        self.pw = nn.Conv2d(12, 20, 1)
        self.bn = nn.BatchNorm2d(20)

    def forward(self, x):
        return self.bn(self.pw(self.dw(x)))


def _small_regressor():
    return nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 32), nn.ReLU(),
                         nn.Linear(32, 42))


def _macs_cases(gen):
    """(name, model, input) the check counts: the issue's pair first, then the general cases."""
    return [
        ("FusedMBConv(16, 16, stride=2) with the stride on the 3x3 conv, a (2, 16, 16, 12) input",
         _Fused(16, 16, 2), torch.randn(2, 16, 16, 12, generator=gen)),
        ("the same block with the stride on the 1x1 projection",
         _Fused(16, 16, 2, stride_on_projection=True), torch.randn(2, 16, 16, 12, generator=gen)),
        ("FusedMBConv(6, 10, stride=2, expansion=3) with the stride on the 1x1 projection, a "
         "(2, 6, 15, 11) input (sizes that do not halve evenly)",
         _Fused(6, 10, 2, 3, stride_on_projection=True), torch.randn(2, 6, 15, 11, generator=gen)),
        ("a depthwise (groups=12) 3x1 conv with stride (2, 1), then a 1x1 conv, on (3, 12, 9, 14)",
         _Depthwise(), torch.randn(3, 12, 9, 14, generator=gen)),
        ("two stride-2 convs, pooling and two Linear layers, on (4, 3, 33, 20)",
         _small_regressor(), torch.randn(4, 3, 33, 20, generator=gen)),
    ]


def _macs_ignore_stride(model, x):
    """A typical mistake: every layer counted at its input's resolution (the stride ignored)."""
    total = 0

    def hook(m, inputs, output):
        nonlocal total
        if isinstance(m, nn.Conv2d):
            total += (m.out_channels * inputs[0][0, 0].numel() * m.in_channels // m.groups
                      * m.kernel_size[0] * m.kernel_size[1])
        else:
            total += m.in_features * m.out_features

    hs = [m.register_forward_hook(hook) for m in model.modules()
          if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    with torch.no_grad():
        model.eval()(x[:1])
    model.train(was_training)
    for h in hs:
        h.remove()
    return total


def _macs_no_groups(model, x):
    """A typical mistake: a depthwise conv counted as a full one (groups ignored)."""
    total = 0

    def hook(m, inputs, output):
        nonlocal total
        if isinstance(m, nn.Conv2d):
            total += output[0].numel() * m.in_channels * m.kernel_size[0] * m.kernel_size[1]
        else:
            total += output[0].numel() * m.in_features

    hs = [m.register_forward_hook(hook) for m in model.modules()
          if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    with torch.no_grad():
        model.eval()(x[:1])
    model.train(was_training)
    for h in hs:
        h.remove()
    return total


def _macs_whole_batch(model, x):
    """A typical mistake: the multiply-adds of the whole batch, not of one image."""
    return _macs(model, x[:1]) * len(x)


def _macs_hooks_left(model, x):
    """A typical mistake: the hooks are never removed (a second count adds to the first)."""
    counts = []

    def hook(m, inputs, output):
        kh, kw = m.kernel_size if isinstance(m, nn.Conv2d) else (1, 1)
        fan_in = m.in_channels // m.groups if isinstance(m, nn.Conv2d) else m.in_features
        counts.append(output[0].numel() * fan_in * kh * kw)

    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.register_forward_hook(hook)
    with torch.no_grad():
        model.eval()(x[:1])
    return sum(counts)


def _macs_train_mode(model, x):
    """A typical mistake: the model run as it is, in training mode (BatchNorm updates its
    running statistics: counting changed the model)."""
    total = 0

    def hook(m, inputs, output):
        nonlocal total
        fan_in = (m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
                  if isinstance(m, nn.Conv2d) else m.in_features)
        total += output[0].numel() * fan_in

    hs = [m.register_forward_hook(hook) for m in model.modules()
          if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model(x)
    for h in hs:
        h.remove()
    return total


@exercise("03.4", "multiply-adds: where the stride goes",
          nudge="Count what each convolution really computes: one multiply-add per weight it "
                "applies at each output position, so the size of its output decides the cost, "
                "and a grouped (depthwise) conv sees only in_channels / groups inputs per "
                "output. A forward hook sees each layer's output; remove the hooks afterwards "
                "and leave the model as you found it.",
          hint="handles = [m.register_forward_hook(hook) for m in model.modules() if "
               "isinstance(m, (nn.Conv2d, nn.Linear))]; in the hook add out[0].numel() * "
               "(m.in_channels // m.groups) * kh * kw for a Conv2d and out[0].numel() * "
               "m.in_features for a Linear; run model.eval() on x[:1] under torch.no_grad(), "
               "then model.train(was_training) and h.remove() for every handle.",
          wrong=[_macs_ignore_stride, _macs_no_groups, _macs_whole_batch, _macs_hooks_left,
                 _macs_train_mode], transfer=True)
def _(count_macs):
    gen = torch.Generator().manual_seed(4)
    counted = []
    for name, model, x in _macs_cases(gen):
        model.train()
        state = {k: v.clone() for k, v in model.state_dict().items()}
        before = x.clone()
        got = count_macs(model, x)
        try:
            got = int(round(float(got)))
        except (TypeError, ValueError) as err:
            raise Wrong(f"count_macs must return one number, got {got!r}") from err
        want = _macs(model, x)
        if got != want:
            raise Wrong(f"{name}: expected {want:,} multiply-adds per image, got {got:,} "
                        f"({got / want:.3g}x)")
        counted.append(want)
        changed = [k for k, v in model.state_dict().items() if not torch.equal(v, state[k])]
        if changed:
            raise Wrong(f"{name}: counting changed the model's {changed[0]}: a forward pass in "
                        "training mode updates BatchNorm's running statistics; count in eval "
                        "mode, without gradients, and put the mode back")
        unchanged("x", before, x, f"{name}: counting")
        again = int(round(float(count_macs(model, x))))
        if again != want:
            raise Wrong(f"{name}: a second count of the same model gives {again:,}, the first "
                        f"{got:,}: remove your hooks when you are done (handle.remove())")
        left = sum(len(m._forward_hooks) for m in model.modules())
        if left:
            raise Wrong(f"{name}: your count left {left} forward hook(s) on the model; they "
                        "would run at every later forward pass: keep the handles that "
                        "register_forward_hook returns and call handle.remove() on each")
        if not model.training:
            raise Wrong(f"{name}: the model was in training mode and your count left it in "
                        "eval mode: put back the mode it came in (model.train(was_training))")
    return (f"exact on strides, groups, non-square kernels and Linear layers. The stride on the "
            f"1x1 projection costs {counted[1] / counted[0]:.2f}x the multiply-adds of the same "
            "block with the stride on the 3x3 conv: same parameters, same output.")
