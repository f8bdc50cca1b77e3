"""What every synthetic-dataset writer shares: rendering jobs run in worker processes with a
progress bar, and :func:`ensure_dataset`, the one protocol for making a dataset only when it is
missing. A writer marks a finished dataset by writing ``synthetic_meta.json`` (its settings,
generator and version) last: a folder without that stamp is incomplete."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from pathlib import Path

from ..datasets.freihand import synthetic_meta
from ..env import progress_bar
from ..safefiles import file_lock, is_stale, temporary_path, write_json


def run_jobs(fn: Callable, jobs: Sequence, workers: int | None = None, progress: bool = True,
             desc: str = "rendering", unit: str = "image", chunksize: int = 8) -> list:
    """``[fn(job) for job in jobs]``, in order, over ``workers`` processes (default: two, Colab's
    core count, for real work; one for tiny runs, where starting workers costs more than it
    saves), with a tqdm bar. ``fn`` must be a module-level function (workers import it by name)."""
    if workers is None:
        workers = 1 if len(jobs) < 64 else min(2, os.cpu_count() or 1)
    with ProcessPoolExecutor(workers) if workers > 1 else nullcontext() as pool:
        results = pool.map(fn, jobs, chunksize=chunksize) if pool else map(fn, jobs)
        return list(progress_bar(results, progress, total=len(jobs), desc=desc, unit=unit))


def start_dataset(root: str | Path, *folders) -> tuple[Path, float]:
    """Create ``folders`` under ``root`` and remove its stamp (the dataset is unfinished until
    :func:`stamp_dataset`); returns ``root`` and the start time."""
    root = Path(root)
    for folder in folders:
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "synthetic_meta.json").unlink(missing_ok=True)
    return root, time.perf_counter()


def stamp_dataset(root: Path, start: float, generator: str, version: int, **meta) -> Path:
    """Write the stamp that marks ``root`` finished: generator, version, settings, seconds."""
    write_json(root / "synthetic_meta.json", {"generator": generator, "generator_version": version,
               **meta, "seconds": round(time.perf_counter() - start, 2)}, indent=1)
    return root


def _differences(root: Path, want: dict) -> list[str] | None:
    """How the dataset in ``root`` differs from ``want`` (``[]``: not at all; None: unfinished)."""
    meta = synthetic_meta(root)
    return None if meta is None else [f"{k} {meta.get(k)!r} -> {v!r}" for k, v in want.items()
                                      if meta.get(k) != v]


def _new_folder(root: Path) -> Path:
    tmp = temporary_path(root)  # the unique name the stale rule understands ...
    tmp.unlink()
    tmp.mkdir()  # ... given to a folder
    return tmp


def ensure_dataset(root: str | Path, make: Callable, version: int, progress: bool = True,
                   log: Callable | None = print, **settings) -> Path:
    """Return ``root`` holding a finished dataset whose stamp matches ``settings``, ``make``'s
    module (the generator) and ``version``, calling ``make(folder, progress=progress, **settings)``
    only when there is none. ``make`` writes into a new, uniquely named folder beside ``root``,
    renamed into place when finished: an interrupted run never leaves a half-written dataset. Under
    a :func:`~handpose_utils.safefiles.file_lock` on ``root``, a second process asking at once
    waits and reuses the first's dataset. One made with other settings goes once the new one is in
    place, killed builds' by ``is_stale``'s rule."""
    root = Path(root)
    want = dict(settings, generator=make.__module__, generator_version=version)
    if _differences(root, want) == []:
        return root
    with file_lock(root, timeout_s=24 * 3600):  # a waiter waits as long as the build takes
        why = _differences(root, want)
        if why == []:  # another process made it while we waited
            return root
        if why and log:
            log(f"{root} holds a dataset made otherwise ({'; '.join(why)}): making a new one")
        for old in root.parent.glob(f".{root.name}.*.tmp"):
            if old.is_dir() and is_stale(old):
                shutil.rmtree(old, ignore_errors=True)
        tmp, aside = _new_folder(root), None
        try:
            make(tmp, progress=progress, **settings)
            if _differences(tmp, want) != []:
                raise RuntimeError(f"{make} wrote no stamp matching {want} in {tmp}")
            if root.exists():
                aside = _new_folder(root)
                os.replace(root, aside)
            try:
                os.replace(tmp, root)
            except OSError:
                if aside is not None:
                    os.replace(aside, root)  # put the finished dataset back
                    aside = None
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # gone already after a successful swap
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
    return root
