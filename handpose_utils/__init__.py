"""handpose_utils: the thin shared package of the hand pose course.

The notebooks are the course; this package holds what several of them share, one module per
concept. A lesson's own idea (its codec, model, loss, metric) is written in its notebook; where
tests or a later notebook import it, the notebook's ``#@save <module>`` cells generate that module
(``python -m handpose_utils.export``; such modules say so in their first line).

Where we run and what we read:

* ``env``         Colab, smoke mode, device, AMP dtype, seeding, data and runs folders
* ``skeletons``   keypoint conventions: HAND21 (FreiHAND/MediaPipe), RHD42, COCO17
* ``camera``      the pinhole projection uv = K xyz / z
* ``images``      image reading with errors that name the file
* ``records``     the JSON keypoint records, saved and validated
* ``splits``      random and grouped (leak-free) splits, and leak counting
* ``datasets``    readers and Colab downloads per source (FreiHAND, OUHANDS, COCO, RHD)
* ``synthetic``   the embedded default data: procedural hands and people in native layouts
* ``prepare``     one call that makes the data, records and splits a notebook needs
* ``downloads``   verified, resumable downloads

Training and evaluation:

* ``data``        feeding batches: the decode-once image cache, device augmentation, loaders
* ``engine``      ``TrainConfig`` and ``fit``: the training loop with AMP, checkpoints, resume
* ``metrics``     PCK, AUC, EPE, MPJPE, Procrustes, and an epoch meter
* ``models``      the coordinate regressors notebooks share, and torchvision backbones
* ``plots``       skeletons on images, grids, 3D skeletons, widget browsers, ``show_source``
* ``exercises``   ``check`` and ``use``: the checked exercises of every notebook

Per lesson, loaded on first use (``hp.heatmaps``, ``hp.hand3d``, ...): ``landmarks`` and
``mediapipe_labels`` (04), ``regression3d`` (05), ``heatmaps``, ``topdown``, ``models_heatmap``,
``coco_eval``, ``coco_plots``, ``backbones``, ``topdown_batches``, ``onnx_export``,
``wandb_logging`` (06), ``hand3d`` (07), and the
tools ``bench`` and ``export``.
"""

from . import camera, data, datasets, engine, env, exercises, images, metrics, models, plots
from . import prepare, records, skeletons, splits, synthetic
from .data import build_image_cache, make_loaders
from .datasets.coco import download_coco, load_coco_keypoints, prepare_coco
from .datasets.freihand import download_freihand, load_freihand
from .datasets.ouhands import install_ouhands, load_ouhands
from .datasets.rhd import download_rhd, load_rhd, prepare_rhd
from .engine import TrainConfig, evaluate, fit, load_checkpoint, predict
from .plots.history import plot_history
from .env import data_dir, in_colab, pick_device, runs_dir, seed_everything, smoke_or
from .exercises import check, use
from .images import read_image
from .metrics import epe, mpjpe, pa_mpjpe, pck, pck_curve
from .models import build_model, count_parameters
from .plots import show_source
from .prepare import prepare_freihand, prepare_splits
from .records import load_records, save_records
from .synthetic.coco import make_coco
from .synthetic.freihand import make_freihand
from .synthetic.ouhands import make_ouhands
from .synthetic.rhd import make_rhd

_LAZY_MODULES = (
    "backbones", "bench", "capstone", "coco_eval", "coco_plots", "export", "hand3d", "heatmaps",
    "landmarks", "mediapipe_labels", "models_heatmap", "onnx_export", "regression3d", "topdown",
    "topdown_batches", "wandb_logging",
)

__all__ = [
    # modules
    "camera", "data", "datasets", "engine", "env", "exercises", "images", "metrics", "models",
    "plots", "prepare", "records", "skeletons", "splits", "synthetic",
    # where we run
    "data_dir", "in_colab", "pick_device", "runs_dir", "seed_everything", "smoke_or",
    # data
    "load_freihand", "download_freihand", "make_freihand", "load_ouhands", "install_ouhands",
    "make_ouhands", "load_coco_keypoints", "download_coco", "make_coco", "prepare_coco",
    "load_rhd", "download_rhd", "make_rhd", "prepare_rhd", "prepare_freihand", "prepare_splits",
    "load_records", "save_records", "read_image",
    # training
    "build_image_cache", "make_loaders", "build_model", "count_parameters", "TrainConfig", "fit",
    "evaluate", "predict", "load_checkpoint", "plot_history",
    # metrics
    "pck", "pck_curve", "epe", "mpjpe", "pa_mpjpe",
    # lessons
    "check", "use", "show_source", "detect_hands",
]

__version__ = "0.1.0"


# names whose module loads on first use, like the lesson modules
_LAZY_NAMES = {"detect_hands": "mediapipe_labels"}


def __getattr__(name: str):
    """Load a lesson's module on first use: ``hp.heatmaps`` imports ``handpose_utils.heatmaps``;
    ``hp.detect_hands`` imports the teacher's module (MediaPipe itself loads when it runs)."""
    if name in _LAZY_MODULES or name in _LAZY_NAMES:
        import importlib

        module = importlib.import_module(f"{__name__}.{_LAZY_NAMES.get(name, name)}")
        return getattr(module, name) if name in _LAZY_NAMES else module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
