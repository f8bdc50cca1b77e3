"""3D hand pose from a single RGB image (Zimmermann & Brox 2017), in PyTorch: notebook 07.

::

    image --HandSegNet--> hand mask --crop--> hand crop --PoseNet--> 21 score maps
          --PosePrior(+ hand side)--> canonical 3D pose + viewpoint --> root-relative 3D pose

``canonical``, ``nets`` and ``losses`` are generated from notebook 07's ``#@save`` cells
(``python -m handpose_utils.export``); ``crops``, ``data``, ``train``, ``pipeline`` and
``evaluate`` are written by hand; the figures are :mod:`handpose_utils.plots.hand3d`.
"""

from . import canonical, crops, data, evaluate, losses, nets, pipeline, train
from .canonical import axis_angle_to_matrix, from_canonical, to_canonical
from .data import PoseNetBatch, PosePriorBatch, RHDSamples, SegmentationBatch, make_loader
from .evaluate import eval_2d, eval_3d, segmentation_iou
from .nets import HandSegNet, PoseNet, PosePrior
from .pipeline import Hand3DPipeline, run_pipeline
from .train import (
    STAGES,
    Hand3DConfig,
    build_stage,
    default_config,
    evaluate_stage,
    load_stage,
    run_dir,
    train_stage,
)

__all__ = [
    "canonical", "crops", "data", "evaluate", "losses", "nets", "pipeline", "train",
    "axis_angle_to_matrix", "from_canonical", "to_canonical", "PoseNetBatch", "PosePriorBatch",
    "RHDSamples", "SegmentationBatch", "make_loader", "eval_2d", "eval_3d", "segmentation_iou",
    "HandSegNet", "PoseNet", "PosePrior", "Hand3DPipeline", "run_pipeline", "STAGES",
    "Hand3DConfig", "build_stage", "default_config", "evaluate_stage", "load_stage", "run_dir",
    "train_stage",
]
