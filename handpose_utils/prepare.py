"""One call per dataset that makes it if missing, then reads it, so every notebook runs on its own:
:func:`prepare_freihand` and :func:`prepare_splits` (notebooks 01-05, 08), :func:`prepare_coco`
(06) and :func:`prepare_rhd` (07). Readers and renderers load on first use."""

from __future__ import annotations

import json
from pathlib import Path

from .env import data_dir
from .records import load_records, save_records
from .safefiles import file_lock, write_json
from .splits import grouped_split


def _data(data_root) -> Path:
    return Path(data_root) if data_root is not None else data_dir()


def _folder(dataset: str, data_root, folders: dict) -> Path:
    """``<data>/<folder>`` of ``dataset``; ``folders`` maps each dataset name to its folder."""
    if dataset not in folders:
        raise ValueError(f"dataset must be one of {tuple(folders)}, got {dataset!r}")
    return _data(data_root) / folders[dataset]


def _real(root: Path, present: bool, download: bool, fetch, name: str, size: str) -> None:
    """Real data is used where it is, fetched only when ``download``; else say how to get it."""
    if present:
        return
    if not download:
        from .datasets.freihand import DatasetNotFoundError

        raise DatasetNotFoundError(
            f"real {name} not found at {root}. In Colab, set DOWNLOAD = True ({size}) or put it "
            "there yourself; or use DATASET = 'synthetic'.")
    fetch()


def prepare_freihand(dataset: str = "synthetic", data_root: str | Path | None = None,
                     n_poses: int = 1000, seed: int = 0, download: bool = False,
                     progress: bool = True) -> Path:
    """Make sure the dataset is on disk and return its root: ``"synthetic"`` is rendered if
    missing (or made with other settings), real ``"freihand"`` is used where it is
    (``<data>/FreiHAND_pub_v2``) and downloaded only when ``download=True``."""
    root = _folder(dataset, data_root, {"synthetic": "synthetic_freihand",
                                        "freihand": "FreiHAND_pub_v2"})
    if dataset == "synthetic":
        from .synthetic.freihand import ensure_synthetic_freihand

        return ensure_synthetic_freihand(root, n_poses, seed=seed, progress=progress)
    from .datasets.freihand import download_freihand

    _real(root, (root / "training_xyz.json").is_file(), download,
          lambda: download_freihand(root.parent), "FreiHAND (FreiHAND_pub_v2)", "3.7 GB + 724 MB")
    return root


def records_path(dataset: str, data_root: str | Path | None = None,
                 split: str = "training") -> Path:
    return _data(data_root) / "records" / f"{dataset}_{split}.json"


def splits_dir(dataset: str, data_root: str | Path | None = None) -> Path:
    return _data(data_root) / "splits" / dataset


def write_splits(parts, directory: str | Path, meta: dict) -> dict[str, Path]:
    """Write ``train.json``, ``val.json``, ``test.json`` and ``split_meta.json`` (written last).
    When ``meta`` names the dataset ``root`` but holds no ``data`` fingerprint, the fingerprint of
    the data there now is added, so :func:`prepare_splits` reuses these splits until the
    annotations change."""
    directory = Path(directory)
    meta_path = directory / "split_meta.json"
    meta_path.unlink(missing_ok=True)
    if "data" not in meta and meta.get("root"):
        from .datasets.freihand import data_fingerprint

        meta = dict(meta, data=data_fingerprint(meta["root"]))
    names = ("train", "val", "test")
    paths = {n: save_records(p, directory / f"{n}.json") for n, p in zip(names, parts)}
    meta = dict(meta, counts={n: len(p) for n, p in zip(names, parts)})
    write_json(meta_path, meta, indent=1)
    return paths


def prepare_splits(dataset: str = "synthetic", data_root: str | Path | None = None,
                   n_poses: int = 1000, seed: int = 0, fractions=(0.8, 0.1, 0.1),
                   split_seed: int = 0, rebuild: bool = False, download: bool = False,
                   log=print) -> tuple[list[dict], list[dict], list[dict]]:
    """The leak-free train/val/test records (grouped by ``pose_id``), made if missing. They are
    cached in ``<data>/splits/<dataset>/`` with the settings that made them and a fingerprint of
    the data (``data_fingerprint``: the annotation files' content, the generator's version); other
    settings, or data changed on disk since, rebuild them, and ``log`` says why."""
    from .datasets.freihand import data_fingerprint, fingerprint_changes, load_freihand

    directory = splits_dir(dataset, data_root)
    root = prepare_freihand(dataset, data_root, n_poses, seed, download)
    want = {"dataset": dataset, "root": str(root.resolve()), "n_poses": n_poses if dataset ==
            "synthetic" else None, "seed": seed, "fractions": list(fractions),
            "split_seed": split_seed, "key": "pose_id"}
    fingerprint = data_fingerprint(root)  # before reading: changes meanwhile rebuild next time
    meta_path = directory / "split_meta.json"
    with file_lock(meta_path):  # two notebooks asking at once: the second reuses the first's
        if not rebuild and meta_path.is_file():
            try:
                meta = json.loads(meta_path.read_text())
            except json.JSONDecodeError:
                meta = None
            if not isinstance(meta, dict):
                why = [f"{meta_path.name} is unreadable"]
            else:
                why = [f"{k} {meta.get(k)!r} -> {v!r}" for k, v in want.items()
                       if meta.get(k) != v] or fingerprint_changes(meta.get("data"), fingerprint)
            if not why:
                return tuple(load_records(directory / f"{n}.json")
                             for n in ("train", "val", "test"))
            if log:
                log(f"rebuilding the splits in {directory}: " + "; ".join(why))
        parts = grouped_split(load_freihand(root, "training"), fractions, key="pose_id",
                              seed=split_seed)
        write_splits(parts, directory, dict(want, data=fingerprint))
    return parts


def prepare_rhd(dataset: str = "synthetic", data_root: str | Path | None = None,
                n_train: int = 3000, n_eval: int | None = None, image_size: int = 320,
                seed: int = 0, download: bool = False, progress: bool = True) -> Path:
    """Make sure an RHD-layout dataset is on disk and return its root: ``"synthetic"``
    (``n_train`` training and ``n_eval`` evaluation images of ``image_size`` pixels) or ``"rhd"``
    (``RHD_published_v2``), as :func:`prepare_freihand` does."""
    root = _folder(dataset, data_root, {"synthetic": "synthetic_rhd", "rhd": "RHD_published_v2"})
    if dataset == "synthetic":
        from .synthetic.rhd import ensure_synthetic_rhd

        return ensure_synthetic_rhd(root, n_train, n_eval=n_eval, seed=seed,
                                    image_size=image_size, progress=progress)
    from .datasets.rhd import RHD_SIZE, download_rhd

    _real(root, (root / "training" / "anno_training.pickle").is_file(), download,
          lambda: download_rhd(root.parent), "RHD (RHD_published_v2)", f"{RHD_SIZE} zip")
    return root


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
    from .datasets.coco import coco_train_val, download_coco, has_coco_split

    root = _folder(dataset, data_root, {"synthetic": "synthetic_coco", "coco": "coco"})
    if dataset == "synthetic":
        from .synthetic.coco import ensure_synthetic_coco

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
