"""What every synthetic-dataset writer shares: rendering jobs run in worker processes with a
progress bar, and JSON files written atomically (the ``synthetic_meta.json`` stamp written last
marks a dataset complete, so a half-written annotation file must never look finished)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path


def write_json(path: Path, obj, indent: int | None = None) -> None:
    """Write ``obj`` as JSON to a temporary file, then rename it over ``path``."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=indent)
    os.replace(tmp, path)


def default_workers(n_jobs: int) -> int:
    """Two processes (Colab's core count) for real work; one for tiny runs, where starting
    workers costs more than it saves."""
    return 1 if n_jobs < 64 else min(2, os.cpu_count() or 1)


def run_jobs(fn: Callable, jobs: Sequence, workers: int | None = None, progress: bool = True,
             desc: str = "rendering", unit: str = "image", chunksize: int = 8) -> list:
    """``[fn(job) for job in jobs]``, in order, over ``workers`` processes, with a tqdm bar.

    ``fn`` must be a module-level function (worker processes import it by name)."""
    if workers is None:
        workers = default_workers(len(jobs))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), desc=desc, unit=unit)
    results = []
    try:
        if workers > 1:
            with ProcessPoolExecutor(workers) as pool:
                for res in pool.map(fn, jobs, chunksize=chunksize):
                    results.append(res)
                    if bar:
                        bar.update()
        else:
            for job in jobs:
                results.append(fn(job))
                if bar:
                    bar.update()
    finally:
        if bar:
            bar.close()
    return results
