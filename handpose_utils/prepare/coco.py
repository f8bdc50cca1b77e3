"""Notebook 06's data: person keypoints in COCO's layout, synthetic or real, split for a
top-down run."""

from __future__ import annotations

from pathlib import Path

from . import _folder, _real


def prepare_coco(dataset: str = "synthetic", data_root: str | Path | None = None, *,
                 n_train: int = 2000, n_val: int = 200, seed: int = 0, width: int = 320,
                 height: int = 256, download: bool = False, use_train2017: bool = False,
                 val_fraction: float = 0.2, max_train: int | None = None,
                 max_val: int | None = None, progress: bool = True, log=print) -> dict:
    """Make sure the person-keypoint data is on disk and return what a top-down run needs
    (:func:`~handpose_utils.datasets.coco.coco_train_val` says what, and how it splits):
    ``"synthetic"`` is rendered if missing (``n_train`` and ``n_val`` images of ``width`` x
    ``height``), real ``"coco"`` (either layout) downloaded when ``download`` (val2017 and
    annotations, 1 GB; with ``use_train2017`` also train2017, 18 GB)."""
    from ..datasets.coco import coco_train_val, download_coco, has_coco_split

    root = _folder(dataset, data_root, {"synthetic": "synthetic_coco", "coco": "coco"})
    if dataset == "synthetic":
        from ..synthetic.coco import ensure_synthetic_coco

        ensure_synthetic_coco(root, n_train, n_val, seed=seed, width=width, height=height,
                              progress=progress)
        use_train2017 = True
    else:
        splits = ("val", "train") if use_train2017 else ("val",)
        _real(root, has_coco_split(root, "val"), download,
              lambda: download_coco(root, splits=splits), "COCO 2017 (standard or FiftyOne layout)",
              "val2017 778 MB + annotations 241 MB; train2017 adds 18 GB")
        if use_train2017 and download and not has_coco_split(root, "train"):
            download_coco(root, splits=splits)
    return coco_train_val(root, use_train2017, val_fraction, seed, max_train, max_val, log)
