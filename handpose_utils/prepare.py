"""One-call data preparation, so every notebook can run on its own.

Notebook 01 makes the dataset and the records, notebook 02 the splits; later notebooks call
:func:`prepare_splits`, which does whatever of that is still missing and otherwise just loads.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .datasets.freihand import (
    DatasetNotFoundError,
    download_freihand,
    find_freihand_root,
    load_freihand,
)
from .env import data_dir
from .records import load_records, save_records
from .splits import grouped_split
from .synthetic.freihand import ensure_synthetic_freihand, synthetic_meta

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


# The annotation files load_freihand reads for a split (visibility only exists for synthetic data).
_ANNOTATION_FILES = ("{split}_xyz.json", "{split}_K.json", "{split}_scale.json",
                     "{split}_visibility.json")


def data_fingerprint(root: str | Path, split: str = "training") -> dict:
    """What the records of ``split`` are made from: per annotation file its size and SHA-256,
    and the synthetic generator's version (None for real FreiHAND).

    The whole file is hashed, not just its size and modification time: a re-download or a
    re-render with other settings can keep both, and a plain ``touch`` changes the time without
    changing a label. Hashing is cheap next to loading the splits: a 99 MB ``training_xyz.json``
    (real FreiHAND's is about that size) plus its ``_K`` and ``_scale`` files hash in about
    0.1 s from the page cache, while loading the 104,192 training records of cached splits takes
    tens of seconds.
    """
    root = find_freihand_root(root)
    files = {}
    for pattern in _ANNOTATION_FILES:
        path = root / pattern.format(split=split)
        if not path.is_file():
            continue
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        files[path.name] = {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}
    meta = synthetic_meta(root)
    return {"split": split, "files": files,
            "generator_version": meta.get("generator_version") if meta else None}


def _fingerprint_changes(old, new: dict) -> list[str]:
    """Why data fingerprint ``old`` (from a split_meta.json) is not ``new``, in words."""
    if not isinstance(old, dict) or not isinstance(old.get("files"), dict):
        return ["they carry no fingerprint of the data (written by an older version of the "
                "course code)"]
    why = []
    if old.get("generator_version") != new["generator_version"]:
        why.append(f"synthetic generator version {old.get('generator_version')} -> "
                   f"{new['generator_version']}")
    for name in sorted(set(old["files"]) | set(new["files"])):
        before, now = old["files"].get(name), new["files"].get(name)
        if before == now:
            continue
        if before is None:
            why.append(f"{name} is new")
        elif now is None:
            why.append(f"{name} is gone")
        else:
            why.append(f"{name} changed ({before.get('bytes')} -> {now['bytes']} bytes, "
                       "different content)")
    return why


def write_splits(parts, directory: str | Path, meta: dict) -> dict[str, Path]:
    """Write ``train.json``, ``val.json``, ``test.json`` and ``split_meta.json`` (written last).

    When ``meta`` names the dataset ``root`` but holds no ``data`` fingerprint, the fingerprint
    of the data there now is added, so :func:`prepare_splits` reuses these splits until the
    annotations change.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    meta_path = directory / "split_meta.json"
    meta_path.unlink(missing_ok=True)
    if "data" not in meta and meta.get("root"):
        meta = dict(meta, data=data_fingerprint(meta["root"]))
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
    log=print,
) -> tuple[list[dict], list[dict], list[dict]]:
    """The leak-free train/val/test records (grouped by ``pose_id``), made if missing.

    Splits are cached in ``<data>/splits/<dataset>/`` together with the settings that made them
    and a fingerprint of the data they were read from (:func:`data_fingerprint`: the annotation
    files' content and the synthetic generator's version). Other settings, or data that changed
    on disk since (re-rendered, re-downloaded, edited), rebuild them; ``log`` says why.
    """
    directory = splits_dir(dataset, data_root)
    root = prepare_freihand(dataset, data_root, n_poses, seed, download)
    want = {"dataset": dataset, "root": str(root.resolve()), "n_poses": n_poses if dataset ==
            "synthetic" else None, "seed": seed, "fractions": list(fractions),
            "split_seed": split_seed, "key": "pose_id"}
    # Taken before the data is read: if the files change while we read them, the fingerprint is
    # the older one and the next call rebuilds, never the other way round.
    fingerprint = data_fingerprint(root)
    meta_path = directory / "split_meta.json"
    if not rebuild and meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError:
            meta = None
        if not isinstance(meta, dict):
            why = [f"{meta_path.name} is unreadable"]
        else:
            why = [f"{k} {meta.get(k)!r} -> {v!r}" for k, v in want.items() if meta.get(k) != v]
        if not why:
            why = _fingerprint_changes(meta.get("data"), fingerprint)
        if not why:
            return tuple(load_records(directory / f"{n}.json") for n in ("train", "val", "test"))
        if log:
            log(f"rebuilding the splits in {directory}: " + "; ".join(why))
    records = load_freihand(root, "training")
    parts = grouped_split(records, fractions, key="pose_id", seed=split_seed)
    write_splits(parts, directory, dict(want, data=fingerprint))
    return parts
