"""Training each stage on its own with the shared engine, and per-stage checkpoints.

One :class:`Hand3DConfig` describes one run, like the reference's config dict. :func:`train_stage`
turns it into the engine's parts and calls :func:`handpose_utils.engine.fit`; one engine epoch is
``n_history`` iterations, after which the run validates, logs, plots and writes ``last.pth`` /
``best.pth`` under ``<runs>/07_rhd/<ID>/``. ``training=False`` loads the stage's best checkpoint
instead (the reference used the flag for dropout; here ``model.eval()`` does that).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .. import env
from ..engine import History, TrainConfig, evaluate, fit, load_checkpoint
from .crops import encode_scoremaps
from .data import PoseNetBatch, PosePriorBatch, RHDSamples, SegmentationBatch, make_loader
from .evaluate import PoseNetMeter, PosePriorMeter, SegmentationMeter
from .losses import posenet_loss, poseprior_loss, segmentation_loss
from .nets import HandSegNet, PoseNet, PosePrior

STAGES = ("handsegnet", "posenet", "poseprior")
# Keys of the reference's config dict that have no effect here (the engine logs, validates and
# saves once per n_history iterations; the output size follows from the stage).
REFERENCE_ONLY_KEYS = ("n_prt", "n_save", "n_output")
# What fixes a checkpoint's architecture: a run with another value needs another ID.
ARCHITECTURE_KEYS = ("stage", "width", "batch_norm", "stages", "variant", "crop_size",
                     "input_ch")


@dataclass
class Hand3DConfig:
    """Everything about training one stage (the reference's config dict, as a dataclass).

    ``ID`` names the run, ``stage`` the network: ``n_iter`` iterations of ``n_batch`` samples at
    ``LR``, validating every ``n_history``. HandSegNet's images are resized to ``input_h`` x
    ``input_w`` (with ``random_crop``: random windows of 80% of the side, the paper's 256 of 320);
    ``crop_size`` is PoseNet's input, its score maps (PosePrior's input) ``crop_size / 8``.
    Course additions: ``width`` (channels, 1.0 = paper), ``batch_norm``, ``stages`` (PoseNet),
    ``variant`` (PosePrior: ``"proposed"`` or ``"direct"``), ``dropout``, ``sigma`` (score-map
    Gaussian as a fraction of the crop: 0.07 x 256 = 18 px), ``weight_decay``, ``scheduler``,
    ``seed``.
    """

    ID: str = "handsegnet"
    stage: str = "handsegnet"
    n_iter: int = 3000
    n_batch: int = 8
    LR: float = 1e-3
    n_history: int = 250
    input_h: int = 320
    input_w: int = 320
    input_ch: int = 3
    crop_size: int = 256
    random_crop: bool = True
    training: bool = True
    width: float = 1.0
    batch_norm: bool = True
    stages: int = 3
    variant: str = "proposed"
    dropout: float = 0.2
    sigma: float = 0.07
    weight_decay: float = 1e-4
    scheduler: str | None = "cosine"
    seed: int = 0

    def __post_init__(self):
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {self.stage!r}")
        if self.input_ch != 3:
            raise ValueError(f"input_ch must be 3 (RGB images), got {self.input_ch}")
        if self.crop_size % 8:
            raise ValueError(f"crop_size must be a multiple of 8 (PoseNet's stride), got "
                             f"{self.crop_size}")
        for name in ("n_iter", "n_batch", "n_history"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")

    @property
    def epochs(self) -> int:
        """Engine epochs of ``n_history`` iterations that cover ``n_iter``."""
        return max(1, math.ceil(self.n_iter / self.n_history))

    @classmethod
    def from_dict(cls, d: dict) -> Hand3DConfig:
        """Build from a dict such as the reference's config. Its ``n_prt``, ``n_save`` and
        ``n_output`` are accepted and ignored; any other unknown key is an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        if unknown := [k for k in d if k not in names and k not in REFERENCE_ONLY_KEYS]:
            raise KeyError(f"unknown config key(s) {unknown}; known: {sorted(names)}")
        return cls(**{k: v for k, v in d.items() if k in names})


_STAGE_DEFAULTS = {
    "handsegnet": dict(ID="handsegnet", n_iter=3000, n_batch=8, LR=1e-3),
    "posenet": dict(ID="posenet", n_iter=4000, n_batch=8, LR=2e-3),
    "poseprior": dict(ID="poseprior", n_iter=8000, n_batch=32, LR=1e-3),
}


def default_config(stage: str, **overrides) -> Hand3DConfig:
    """The course's defaults for ``stage`` (sized for a Colab T4), with ``overrides``."""
    return Hand3DConfig(**{"stage": stage, **_STAGE_DEFAULTS.get(stage, {}), **overrides})


def build_stage(config: Hand3DConfig, decode=None) -> nn.Module:
    """The network of ``config.stage``, untrained. ``decode``: PosePrior's way back from the
    canonical frame (default ``from_canonical``)."""
    if config.stage == "handsegnet":
        return HandSegNet(width=config.width, batch_norm=config.batch_norm)
    if config.stage == "posenet":
        return PoseNet(width=config.width, batch_norm=config.batch_norm, stages=config.stages)
    return PosePrior(variant=config.variant, map_size=config.crop_size // 8,
                     dropout=config.dropout, decode=decode)


def stage_parts(config: Hand3DConfig, encode=None, viewpoint=None, loss_fn=None) -> dict:
    """The engine's parts for ``config.stage``: ``prepare_batch``, ``loss_fn``, ``metrics``,
    ``best_metric``, ``mode``, and what the dataset must load. ``encode`` (the score-map
    encoder), ``viewpoint`` (the canonical rotation R) and ``loss_fn`` replace the course's
    functions when given: the notebook passes the learner's."""
    encode = encode or encode_scoremaps
    if config.stage == "handsegnet":
        side = min(config.input_h, config.input_w)
        return dict(prepare_batch=SegmentationBatch((config.input_h, config.input_w),
                                                    config.random_crop, crop=round(0.8 * side)),
                    loss_fn=loss_fn or segmentation_loss, metrics=SegmentationMeter(),
                    best_metric="val_iou", mode="max", load_images=True, load_masks=True)
    if config.stage == "posenet":
        return dict(prepare_batch=PoseNetBatch(config.crop_size, config.sigma, encode=encode),
                    loss_fn=loss_fn or posenet_loss, metrics=PoseNetMeter(config.crop_size),
                    best_metric="val_epe_px", mode="min", load_images=True, load_masks=False)
    return dict(prepare_batch=PosePriorBatch(config.crop_size, config.sigma, encode=encode,
                                             viewpoint=viewpoint),
                loss_fn=loss_fn or poseprior_loss, metrics=PosePriorMeter(),
                best_metric="val_epe_mm", mode="min", load_images=False, load_masks=False)


# ---- Training and checkpoints --------------------------------------------------------------------
def run_dir(config: Hand3DConfig | str, runs: str | Path | None = None) -> Path:
    """``<runs>/07_rhd/<ID>``: where a stage's ``last.pth`` and ``best.pth`` live."""
    base = Path(runs) if runs is not None else env.runs_dir()
    ident = config.ID if isinstance(config, Hand3DConfig) else str(config)
    return base / "07_rhd" / ident


def _check_compatible(saved: dict, config: Hand3DConfig, path: Path) -> None:
    if diff := {k: (saved.get(k), getattr(config, k)) for k in ARCHITECTURE_KEYS
                if k in saved and saved.get(k) != getattr(config, k)}:
        raise ValueError(
            f"checkpoint {path} was trained with {', '.join(f'{k}={a!r}' for k, (a, _) in diff.items())}"
            f" but the config says {', '.join(f'{k}={b!r}' for k, (_, b) in diff.items())}. "
            "Use another ID for another architecture, or delete the old run.")


def train_stage(config: Hand3DConfig, train_records: list[dict], val_records: list[dict],
                runs: str | Path | None = None, device=None, num_workers: int | None = None,
                progress: bool = True, live_plot: bool = True, log=print, encode=None,
                viewpoint=None, decode=None, loss_fn=None) -> tuple[nn.Module, History]:
    """Train one stage with :func:`handpose_utils.engine.fit`; ``(model, history)``, the best
    checkpoint's weights loaded, in eval mode. Resumes from ``last.pth`` (a finished run is just
    loaded); ``config.training=False`` loads ``best.pth``. ``encode``, ``viewpoint``, ``decode`` and
    ``loss_fn`` replace the course's functions (the learner's, :func:`stage_parts`)."""
    ckpt_dir = run_dir(config, runs)
    model = build_stage(config, decode=decode)
    if not config.training:
        model, _, history = load_stage(ckpt_dir, device=device, expect=config, decode=decode)
        return model, history
    last = ckpt_dir / "last.pth"
    if last.is_file():
        _check_compatible(load_checkpoint(last).get("config", {}), config, last)
    parts = stage_parts(config, encode=encode, viewpoint=viewpoint, loss_fn=loss_fn)
    device = torch.device(device) if device is not None else env.pick_device()
    load = dict(load_images=parts["load_images"], load_masks=parts["load_masks"])
    train_loader = make_loader(RHDSamples(train_records, **load), config.n_batch,
                               iterations=config.n_history, num_workers=num_workers,
                               device=device)
    val_loader = make_loader(RHDSamples(val_records, **load), max(config.n_batch, 16),
                             num_workers=num_workers, device=device)
    train_config = TrainConfig(
        epochs=config.epochs, lr=config.LR, weight_decay=config.weight_decay,
        scheduler=config.scheduler, device=device, best_metric=parts["best_metric"],
        mode=parts["mode"], checkpoint_dir=ckpt_dir, resume=True, seed=config.seed,
        live_plot=live_plot, progress=progress, log=log, settings=dataclasses.asdict(config))
    history = fit(model, train_loader, val_loader, train_config, loss_fn=parts["loss_fn"],
                  prepare_batch=parts["prepare_batch"], metrics=parts["metrics"])
    load_checkpoint(ckpt_dir / "best.pth", model)
    return model.eval(), history


def load_stage(path: str | Path, device=None, expect: Hand3DConfig | None = None, decode=None
               ) -> tuple[nn.Module, Hand3DConfig, History]:
    """``(model in eval mode, config, history)`` from a checkpoint file or a run folder (its
    ``best.pth``), the network rebuilt from the saved config; ``expect`` checks the architecture."""
    path = Path(path)
    if path.is_dir() or not path.suffix:
        path = path / "best.pth"
    if not path.is_file():
        raise FileNotFoundError(
            f"no checkpoint at {path}: train the stage first (training=True), or point to the "
            "run folder that holds best.pth")
    saved = load_checkpoint(path).get("config", {})
    if "stage" not in saved:
        raise ValueError(f"{path} was not saved by hand3d.train_stage (no stage in its config)")
    config = Hand3DConfig.from_dict({k: v for k, v in saved.items()
                                     if k in {f.name for f in dataclasses.fields(Hand3DConfig)}})
    if expect is not None:
        _check_compatible(saved, expect, path)
    model = build_stage(config, decode=decode)
    history = load_checkpoint(path, model).get("history", [])
    last = path.with_name("last.pth")
    if last != path and last.is_file():  # best.pth holds the history up to its epoch only
        history = load_checkpoint(last).get("history", history)
    device = torch.device(device) if device is not None else env.pick_device()
    return model.to(device).eval(), config, History(history)


def evaluate_stage(model: nn.Module, config: Hand3DConfig, records: list[dict], device=None,
                   batch_size: int = 32, num_workers: int | None = None,
                   progress: bool = True, encode=None, viewpoint=None, loss_fn=None) -> dict:
    """One stage on its own, on ground-truth inputs: HandSegNet on whole images (IoU), PoseNet
    on ground-truth crops (2D, image pixels), PosePrior on score maps from the ground-truth
    keypoints (3D mm, palm root, all 21 joints). The meter's numbers, for PoseNet and PosePrior
    the whole protocol (curve included) under ``"protocol"``, for PosePrior also ``"arrays"``
    (``pred``, ``gt`` wrist-relative mm, ``visible``)."""
    parts = stage_parts(config, encode=encode, viewpoint=viewpoint, loss_fn=loss_fn)
    device = torch.device(device) if device is not None else env.pick_device()
    data = RHDSamples(records, load_images=parts["load_images"], load_masks=parts["load_masks"])
    loader = make_loader(data, batch_size, num_workers=num_workers, device=device)
    meter = parts["metrics"]
    out = evaluate(model.to(device), loader, loss_fn=parts["loss_fn"],
                   prepare_batch=parts["prepare_batch"], metrics=meter, device=device,
                   progress=progress, desc=f"evaluate {config.ID}")
    if config.stage != "handsegnet":
        out["protocol"] = meter.protocol()  # PosePrior: palm root, all 21 joints (the paper's)
    if config.stage == "poseprior":
        out["arrays"] = meter.arrays()  # per-image predictions, for paired comparisons
    return out
