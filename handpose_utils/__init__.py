"""handpose_utils: the thin shared package of the hand pose course.

The notebooks are the course; this package holds what several of them share, one module per
concept (the README's package table lists them). A lesson's own idea is written in its notebook;
where another notebook or a test needs it, the notebook's ``#@save <module>`` cells generate that
module (``python -m handpose_utils.export``; such modules say so in their first line).

Everything loads on first use: ``hp.fit`` imports the engine, ``hp.heatmaps`` notebook 06's
module. ``import handpose_utils`` is instant, and a lesson pays only for what it touches.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# every module a notebook reaches as ``hp.<module>``
_MODULES = (
    "backbones", "bench", "camera", "capstone", "checkpoints", "coco_eval", "data", "datasets",
    "downloads", "engine", "env", "exercises", "export", "hand3d", "heatmaps", "images",
    "landmarks", "mediapipe_labels", "metrics", "metrics3d", "models", "models_heatmap",
    "onnx_export", "plots", "prepare", "records", "regression3d", "safefiles", "schedules",
    "skeletons", "splits", "synthetic", "topdown", "topdown_batches", "wandb_logging",
)

# the names a notebook uses most, as ``hp.<name>``, and the module each lives in
_NAMES = {
    # where we run
    "data_dir": "env", "in_colab": "env", "pick_device": "env", "runs_dir": "env",
    "seed_everything": "env", "smoke_or": "env",
    # data
    "load_freihand": "datasets.freihand", "download_freihand": "datasets.freihand",
    "load_ouhands": "datasets.ouhands", "install_ouhands": "datasets.ouhands",
    "load_coco_keypoints": "datasets.coco", "download_coco": "datasets.coco",
    "load_rhd": "datasets.rhd", "download_rhd": "datasets.rhd",
    "make_freihand": "synthetic.freihand", "make_ouhands": "synthetic.ouhands",
    "make_coco": "synthetic.coco", "make_rhd": "synthetic.rhd",
    "prepare_freihand": "prepare", "prepare_splits": "prepare", "prepare_coco": "prepare",
    "prepare_rhd": "prepare",
    "load_records": "records", "save_records": "records", "read_image": "images",
    # training
    "build_image_cache": "data", "make_loaders": "data", "build_model": "models",
    "count_parameters": "models", "TrainConfig": "engine", "fit": "engine",
    "evaluate": "engine", "predict": "engine", "load_checkpoint": "checkpoints",
    "plot_history": "plots.history",
    # metrics
    "pck": "metrics", "pck_curve": "metrics", "epe": "metrics", "mpjpe": "metrics",
    "pa_mpjpe": "metrics3d",
    # lessons
    "check": "exercises", "use": "exercises", "show_source": "plots",
    "detect_hands": "mediapipe_labels",
}

__all__ = [*_MODULES, *_NAMES]


def __getattr__(name: str):
    """Load on first use: ``hp.engine`` imports ``handpose_utils.engine``; ``hp.fit`` imports
    the engine and returns its ``fit``."""
    if name in _MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _NAMES:
        value = getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)
        globals()[name] = value  # the next access is a plain attribute
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
