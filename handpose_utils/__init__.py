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
    "landmarks", "loggers", "mediapipe_labels", "metrics", "metrics3d", "models", "models_heatmap",
    "onnx_export", "plots", "prepare", "pretrained", "realism", "records", "regression3d",
    "safefiles",
    "schedules", "skeletons", "splits", "synthetic", "topdown", "topdown_batches",
)

# the names a notebook uses most, as ``hp.<name>``, by the module each lives in
_NAMES = {name: module for module, names in {
    "env": "data_dir in_colab pick_device runs_dir seed_everything smoke_or",
    "datasets.freihand": "load_freihand download_freihand",
    "datasets.ouhands": "load_ouhands install_ouhands",
    "datasets.coco": "load_coco_keypoints download_coco",
    "datasets.rhd": "load_rhd download_rhd",
    "synthetic.freihand": "make_freihand", "synthetic.ouhands": "make_ouhands",
    "synthetic.coco": "make_coco", "synthetic.rhd": "make_rhd",
    "prepare": "prepare_freihand prepare_splits", "prepare.coco": "prepare_coco",
    "prepare.rhd": "prepare_rhd",
    "records": "load_records save_records", "images": "read_image",
    "data": "build_image_cache make_loaders", "models": "build_model count_parameters",
    "engine": "TrainConfig fit evaluate predict", "checkpoints": "load_checkpoint",
    "plots.history": "plot_history", "metrics": "pck pck_curve epe",
    "metrics3d": "mpjpe pa_mpjpe", "exercises": "check use", "plots": "show_source",
    "mediapipe_labels": "detect_hands",
}.items() for name in names.split()}

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
