"""Make a dataset if it is missing, then read it, so every notebook runs on its own: FreiHAND
and its splits here (01-05, 08), ``prepare.coco`` (06), ``prepare.rhd`` (07). The one place that
uses both readers and writers (each loaded on first use)."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from ..env import data_dir
from ..records import load_records, save_records
from ..safefiles import file_lock, write_json
from ..splits import grouped_split


def _data(data_root) -> Path:
    return Path(data_root) if data_root is not None else data_dir()


def _folder(dataset: str, data_root, folders: dict) -> Path:  # folders: dataset -> folder
    if dataset not in folders:
        raise ValueError(f"dataset must be one of {tuple(folders)}, got {dataset!r}")
    return _data(data_root) / folders[dataset]


def _real(root: Path, present: bool, download: bool, fetch, name: str, size: str) -> None:
    """Real data is used where it is, fetched only when ``download``; else say how to get it."""
    if present:
        return
    if not download:
        from ..datasets.freihand import DatasetNotFoundError

        raise DatasetNotFoundError(
            f"real {name} not found at {root}. In Colab, set DOWNLOAD = True ({size}) or put it "
            "there yourself; or use DATASET = 'synthetic'.")
    fetch()


def prepare_freihand(dataset: str = "synthetic", data_root: str | Path | None = None,
                     n_poses: int = 1000, seed: int = 0, download: bool = False,
                     progress: bool = True) -> Path:
    """Make sure the dataset is on disk and return its root: ``"synthetic"`` is rendered if
    missing (or made with other settings; ``"synthetic_plain"``: by the first, plain renderer),
    real ``"freihand"`` is used where it is (``<data>/FreiHAND_pub_v2``) and downloaded only when
    ``download=True``."""
    root = _folder(dataset, data_root, {"synthetic": "synthetic_freihand",
                                        "synthetic_plain": "synthetic_freihand_plain",
                                        "freihand": "FreiHAND_pub_v2"})
    if dataset.startswith("synthetic"):
        from ..synthetic.freihand import ensure_synthetic_freihand
        from ..synthetic.style import RenderStyle

        style = RenderStyle.plain() if dataset == "synthetic_plain" else RenderStyle()
        return ensure_synthetic_freihand(root, n_poses, seed=seed, progress=progress, style=style)
    from ..datasets.freihand import download_freihand

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
    The dataset ``root`` in ``meta`` is kept relative to ``directory``, and the fingerprint of the
    data there is added when ``meta`` holds none: :func:`prepare_splits` reuses these splits
    until the annotations change, also in a moved copy of the data folder."""
    directory = Path(directory)
    meta_path = directory / "split_meta.json"
    meta_path.unlink(missing_ok=True)
    if meta.get("root"):
        root = directory / meta["root"]  # an absolute root stays itself
        meta = dict(meta, root=_relative(root, directory))
        if "data" not in meta:
            from ..datasets.freihand import data_fingerprint

            meta["data"] = data_fingerprint(root)
    names = ("train", "val", "test")
    paths = {n: save_records(p, directory / f"{n}.json") for n, p in zip(names, parts)}
    meta = dict(meta, counts={n: len(p) for n, p in zip(names, parts)})
    write_json(meta_path, meta, indent=1)
    return paths


def _relative(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path.resolve(), start.resolve())).as_posix()


def _cached(directory: Path, want: dict, fingerprint: dict, log) -> tuple | None:
    """The splits in ``directory`` if made with ``want`` from this data, else None (``log`` why)."""
    from ..datasets.freihand import fingerprint_changes

    meta_path = directory / "split_meta.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError:
        meta = None
    why = ([f"{meta_path.name} is unreadable"] if not isinstance(meta, dict) else
           [f"{k} {meta.get(k)!r} -> {v!r}" for k, v in want.items() if meta.get(k) != v]
           or fingerprint_changes(meta.get("data"), fingerprint))
    if why:
        if log:
            log(f"rebuilding the splits in {directory}: " + "; ".join(why))
        return None
    return tuple(load_records(directory / f"{n}.json") for n in ("train", "val", "test"))


def prepare_splits(dataset: str = "synthetic", data_root: str | Path | None = None,
                   n_poses: int = 1000, seed: int = 0, fractions=(0.8, 0.1, 0.1),
                   split_seed: int = 0, rebuild: bool = False, download: bool = False,
                   log=print) -> tuple[list[dict], list[dict], list[dict]]:
    """The leak-free train/val/test records (grouped by ``pose_id``), made if missing. They are
    cached in ``<data>/splits/<dataset>/`` with the settings that made them and a fingerprint of
    the data (``data_fingerprint``: the annotation files' content, the generator's version); other
    settings, or data changed on disk since, rebuild them, and ``log`` says why."""
    from ..datasets.freihand import data_fingerprint, load_freihand

    directory = splits_dir(dataset, data_root)
    root = prepare_freihand(dataset, data_root, n_poses, seed, download)
    want = {"dataset": dataset, "root": _relative(root, directory), "n_poses": n_poses if
            dataset.startswith("synthetic") else None, "seed": seed, "fractions": list(fractions),
            "split_seed": split_seed, "key": "pose_id"}
    fingerprint = data_fingerprint(root)  # before reading: changes meanwhile rebuild next time
    # locked: of two notebooks asking at once, the second reuses the first's splits; a read-only
    # copy has no writer to wait for (nor room for a lock file)
    writable = os.access(next(p for p in (directory, *directory.parents) if p.exists()), os.W_OK)
    with file_lock(directory / "split_meta.json") if writable else contextlib.nullcontext():
        parts = None if rebuild else _cached(directory, want, fingerprint, log)
        if parts is None:
            parts = grouped_split(load_freihand(root, "training"), fractions, key="pose_id",
                                  seed=split_seed)
            if writable:
                write_splits(parts, directory, dict(want, data=fingerprint))
            elif log:
                log(f"{directory} cannot be written: the splits are made in memory, and again "
                    "next time")
    return parts
