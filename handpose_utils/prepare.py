"""One-call data preparation, so every notebook can run on its own.

Notebook 01 makes the dataset and the records, notebook 02 the splits; later notebooks call
:func:`prepare_splits`, which does whatever of that is still missing and otherwise just loads.
"""

from __future__ import annotations

import json
from pathlib import Path

from .datasets.freihand import DatasetNotFoundError, download_freihand, load_freihand
from .env import data_dir
from .records import load_records, save_records
from .splits import grouped_split
from .synthetic.freihand import ensure_synthetic_freihand

DATASETS = ("synthetic", "freihand")


def _check(dataset: str) -> None:
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")


def freihand_root(dataset: str = "synthetic", data_root: str | Path | None = None) -> Path:
    """Where the dataset lives: ``<data>/synthetic_freihand`` or ``<data>/FreiHAND_pub_v2``."""
    _check(dataset)
    base = Path(data_root) if data_root is not None else data_dir()
    return base / ("synthetic_freihand" if dataset == "synthetic" else "FreiHAND_pub_v2")


def prepare_freihand(
    dataset: str = "synthetic",
    data_root: str | Path | None = None,
    n_poses: int = 1000,
    seed: int = 0,
    download: bool = False,
    progress: bool = True,
) -> Path:
    """Make sure the dataset is on disk and return its root.

    ``"synthetic"`` renders it if missing (or made with other settings). ``"freihand"`` uses
    real data already in ``data_root`` and downloads it only when ``download=True``.
    """
    root = freihand_root(dataset, data_root)
    if dataset == "synthetic":
        return ensure_synthetic_freihand(root, n_poses, seed=seed, progress=progress)
    if not (root / "training_xyz.json").is_file():
        if not download:
            raise DatasetNotFoundError(
                f"real FreiHAND not found at {root}. In Colab, set DOWNLOAD = True (3.7 GB + 724 MB) "
                "or put FreiHAND_pub_v2 there yourself; or use DATASET = 'synthetic'."
            )
        download_freihand(root.parent)
    return root


def records_path(dataset: str, data_root: str | Path | None = None, split: str = "training") -> Path:
    base = Path(data_root) if data_root is not None else data_dir()
    return base / "records" / f"{dataset}_{split}.json"


def prepare_records(
    dataset: str = "synthetic",
    data_root: str | Path | None = None,
    n_poses: int = 1000,
    seed: int = 0,
    split: str = "training",
    download: bool = False,
) -> list[dict]:
    """Read the dataset into records and save them to ``<data>/records/<dataset>_<split>.json``."""
    root = prepare_freihand(dataset, data_root, n_poses, seed, download)
    records = load_freihand(root, split)
    save_records(records, records_path(dataset, data_root, split))
    return records


def splits_dir(dataset: str, data_root: str | Path | None = None) -> Path:
    base = Path(data_root) if data_root is not None else data_dir()
    return base / "splits" / dataset


def write_splits(parts, directory: str | Path, meta: dict) -> dict[str, Path]:
    """Write ``train.json``, ``val.json``, ``test.json`` and ``split_meta.json`` (written last)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    meta_path = directory / "split_meta.json"
    meta_path.unlink(missing_ok=True)
    paths = {}
    for name, part in zip(("train", "val", "test"), parts):
        paths[name] = save_records(part, directory / f"{name}.json")
    meta = dict(meta, counts={n: len(p) for n, p in zip(("train", "val", "test"), parts)})
    meta_path.write_text(json.dumps(meta, indent=1))
    return paths


def prepare_splits(
    dataset: str = "synthetic",
    data_root: str | Path | None = None,
    n_poses: int = 1000,
    seed: int = 0,
    fractions=(0.8, 0.1, 0.1),
    split_seed: int = 0,
    rebuild: bool = False,
    download: bool = False,
) -> tuple[list[dict], list[dict], list[dict]]:
    """The leak-free train/val/test records (grouped by ``pose_id``), made if missing.

    Splits are cached in ``<data>/splits/<dataset>/`` together with the settings that made them;
    different settings rebuild them.
    """
    directory = splits_dir(dataset, data_root)
    root = prepare_freihand(dataset, data_root, n_poses, seed, download)
    want = {"dataset": dataset, "root": str(root.resolve()), "n_poses": n_poses if dataset ==
            "synthetic" else None, "seed": seed, "fractions": list(fractions),
            "split_seed": split_seed, "key": "pose_id"}
    meta_path = directory / "split_meta.json"
    if not rebuild and meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError:
            meta = {}
        if all(meta.get(k) == v for k, v in want.items()):
            return tuple(load_records(directory / f"{n}.json") for n in ("train", "val", "test"))
    records = load_freihand(root, "training")
    parts = grouped_split(records, fractions, key="pose_id", seed=split_seed)
    write_splits(parts, directory, want)
    return parts
