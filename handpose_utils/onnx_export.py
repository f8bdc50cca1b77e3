"""Export a model to ONNX and check ONNX Runtime against it (without the packages: a hint, None)."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

_INSTALL_HINT = "pip install onnx onnxscript onnxruntime"


def onnx_status() -> dict:
    """Which optional ONNX packages are importable: ``{"onnx", "onnxscript", "onnxruntime"}``."""
    return {name: importlib.util.find_spec(name) is not None
            for name in ("onnx", "onnxscript", "onnxruntime")}


def export_onnx(model: nn.Module, path, input_size=(256, 192), dynamic_batch: bool = True,
                dynamo: bool | None = None, log=print) -> Path | None:
    """Export ``model`` (on the CPU, in eval mode) for ``(B, 3, H, W)`` inputs named ``image``,
    ``input_size = (H, W)``, a variable batch when ``dynamic_batch``, to outputs named ``heatmaps``;
    the path, or None (with a message) without ``onnx``. ``dynamo``: PyTorch's ``torch.export``
    exporter (needs ``onnxscript``; the default when it is there) or the older TorchScript one."""
    status = onnx_status()
    if not status["onnx"]:
        if log:
            log(f"ONNX export skipped: the 'onnx' package is not installed ({_INSTALL_HINT}).")
        return None
    dynamo = status["onnxscript"] if dynamo is None else dynamo
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    device = next(model.parameters()).device
    model = model.cpu().eval()
    example = torch.zeros(2, 3, *input_size)  # batch 2: a dynamic batch must not become 1
    if dynamo:
        options = {"verbose": False, "dynamic_shapes": (
            {0: torch.export.Dim("batch")},) if dynamic_batch else None}
    else:
        options = {"opset_version": 17, "dynamic_axes": {
            "image": {0: "batch"}, "heatmaps": {0: "batch"}} if dynamic_batch else None}
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's progress chatter and deprecations
            torch.onnx.export(model, (example,), str(path), dynamo=dynamo, input_names=["image"],
                              output_names=["heatmaps"], **options)
    finally:
        model.to(device).train(was_training)
    if log:
        # The torch.export exporter stores large weights next to the graph, in <name>.data.
        data = path.with_name(path.name + ".data")
        size = path.stat().st_size + (data.stat().st_size if data.is_file() else 0)
        log(f"exported {type(model).__name__} to {path} ({size / 1e6:.1f} MB"
            + (f" with {data.name}" if data.is_file() else "")
            + f", {'torch.export' if dynamo else 'TorchScript'} exporter)")
    return path


@torch.no_grad()
def check_onnx(path, model: nn.Module, inputs: torch.Tensor | None = None, input_size=(256, 192),
               atol: float = 1e-3, log=print) -> dict | None:
    """``{"max_abs_diff", "max_abs_output", "match"}`` of the ONNX file in ONNX Runtime (CPU)
    against ``model`` on ``inputs`` (default: 2 random images); ``atol``: float32 on other kernels
    agrees to about 1e-5 relative. None, with a message, without onnxruntime or the file."""
    if path is None or not onnx_status()["onnxruntime"]:
        if log:
            log("ONNX Runtime check skipped: " + ("there is no exported file." if path is None else
                f"'onnxruntime' is not installed ({_INSTALL_HINT})."))
        return None
    import onnxruntime as ort
    if inputs is None:
        inputs = torch.randn(2, 3, *input_size, generator=torch.Generator().manual_seed(0))
    was_training = model.training
    device = next(model.parameters()).device
    model.eval()
    try:
        expected = model(inputs.to(device)).float().cpu().numpy()
    finally:
        model.train(was_training)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    got = session.run(None, {name: inputs.cpu().numpy().astype(np.float32)})[0]
    if got.shape != expected.shape:
        raise ValueError(f"{path}: ONNX Runtime returned shape {got.shape}, PyTorch "
                         f"{expected.shape}; export again for this input size")
    diff, scale = float(np.abs(got - expected).max()), float(np.abs(expected).max())
    out = {"max_abs_diff": diff, "max_abs_output": scale, "match": bool(diff <= atol)}
    if log:
        log(f"ONNX Runtime vs PyTorch on {tuple(inputs.shape)}: max |difference| = {diff:.2e} "
            f"({diff / max(scale, 1e-12):.1e} of the largest output, {scale:.3g}) -> "
            + ("match" if out["match"] else f"MISMATCH (above {atol})"))
    return out
