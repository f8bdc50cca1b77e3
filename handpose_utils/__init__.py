"""handpose_utils: the shared package of the hand pose course.

One module per concept:

* ``env``         where we run: Colab, smoke mode, device, AMP dtype, seeding, data folder
* ``skeletons``   keypoint conventions: HAND21 (FreiHAND/MediaPipe), RHD42, COCO17
* ``camera``      pinhole projection uv = K xyz
* ``images``      image reading with errors that name the file
* ``records``     the JSON keypoint records, saved and validated
* ``splits``      random and grouped (leak-free) splits, and leak counting
* ``synthetic``   the embedded default data: a procedural hand renderer writing native layouts
* ``datasets``    readers and Colab downloads per source (FreiHAND, ...)
* ``prepare``     one-call dataset, records and split preparation for the notebooks
* ``plots``       skeleton drawing, sample grids and widget browsers
"""

from . import camera, env, images, plots, records, skeletons, splits
from .camera import project
from .datasets.freihand import (
    DatasetNotFoundError,
    download_freihand,
    freihand_image_path,
    load_freihand,
)
from .env import (
    amp_settings,
    data_dir,
    in_colab,
    is_smoke,
    pick_device,
    seed_everything,
    smoke_or,
)
from .images import ImageReadError, read_image
from .prepare import prepare_freihand, prepare_records, prepare_splits
from .records import RecordError, load_records, save_records
from .splits import count_pose_leak, grouped_split, random_split
from .synthetic.freihand import ensure_synthetic_freihand, make_freihand

# --- engine, metrics, models (issue 3): exports are added below this line ---
from .data import (  # isort: skip
    CachedKeypointDataset,
    DeviceAugment,
    ImageCache,
    KeypointDataset,
    PrepareBatch,
    build_image_cache,
    cached_loader,
    input_to_original,
    make_loaders,
    per_sample_transforms,
    pixels_to_normalized,
    to_original_pixels,
)
from .engine import (  # isort: skip
    CheckpointError,
    History,
    NonFiniteLossError,
    StopTraining,
    evaluate,
    fit,
    load_checkpoint,
    plot_history,
    predict,
    save_checkpoint,
)
from .metrics import (  # isort: skip
    KeypointMeter,
    bbox_size,
    epe,
    normalized_to_pixels,
    pck,
    pck_curve,
    per_joint_epe,
    per_sample_epe,
)
from .models import (  # isort: skip
    MobileLiteRegressor,
    MobileLiteSE,
    SimpleCNN,
    as_keypoints,
    build_model,
    count_parameters,
)

# --- notebook 04, OUHANDS + MediaPipe landmarks (issue 4): exports below this line ---
from . import landmarks, mediapipe_labels  # isort: skip
from .datasets.ouhands import (  # isort: skip
    LandmarkFileError,
    install_ouhands,
    list_ouhands_images,
    load_landmark_files,
    load_ouhands,
    read_landmark_file,
    write_landmark_file,
)
from .landmarks import (  # isort: skip
    LandmarkDataset,
    LandmarkLoss,
    LandmarkMeter,
    MobileNetV2Landmarks,
    build_landmark_model,
    load_landmark_labels,
)
from .synthetic.ouhands import ensure_synthetic_ouhands, make_ouhands  # isort: skip

# --- notebook 05, ResNet-50 3D regression (issue 5): exports below this line ---
from . import regression3d  # isort: skip
from .metrics import (  # isort: skip
    fraction_within,
    mpjpe,
    pa_mpjpe,
    pck3d_curve,
    procrustes_align,
    reprojection_error,
)
from .regression3d import (  # isort: skip
    Pose3DMeter,
    RootRelativeCodec,
    build_pose3d_model,
    compare_splits,
    load_pose3d_model,
    predict_image,
)

# --- notebook 06, COCO heatmaps (issue 6): exports below this line ---
from . import coco_eval, coco_plots, heatmaps, models_heatmap, onnx_export, topdown  # isort: skip
from .coco_eval import (  # isort: skip
    CocoKeypointMeter,
    evaluate_coco_keypoints,
    ground_truth_results,
    keypoints_to_coco_results,
    predict_coco_results,
    write_coco_results,
)
from .datasets.coco import download_coco, load_coco_keypoints, prepare_coco  # isort: skip
from .heatmaps import HeatmapCodec  # isort: skip
from .models_heatmap import KeypointMSELoss, SimpleBaseline, build_simple_baseline  # isort: skip
from .onnx_export import check_onnx, export_onnx  # isort: skip
from .synthetic.coco import ensure_synthetic_coco, make_coco  # isort: skip
from .topdown import TopDownAugment, TopDownDataset, prepare_topdown_batch  # isort: skip
from .wandb_logging import wandb_callback  # isort: skip

# --- notebook 07, RHD 3D hand pose (issue 7): exports below this line ---
from . import hand3d
from .datasets.rhd import download_rhd, load_rhd, prepare_rhd
from .synthetic.rhd import ensure_synthetic_rhd, make_rhd

__version__ = "0.1.0"
COURSE_REPO = "handpose-course/handpose-course"
