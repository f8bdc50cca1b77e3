"""Shared fixtures: a small synthetic FreiHAND, and the real samples in ../shared/realdata."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")  # tests never open windows

REPO = Path(__file__).resolve().parent.parent
REALDATA = REPO.parent / "shared" / "realdata"


@pytest.fixture(scope="session")
def realdata() -> Path:
    """../shared/realdata, or skip: the real samples are not part of the project."""
    if not REALDATA.is_dir():
        pytest.skip("../shared/realdata is absent")
    return REALDATA


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """A synthetic FreiHAND with 6 training poses (x4 versions) and 2 evaluation poses."""
    from handpose_utils import make_freihand

    root = tmp_path_factory.mktemp("fh") / "synthetic_freihand"
    return make_freihand(root, n_poses=6, seed=3, n_eval_poses=2, progress=False)


def execute_notebook(nb, path: Path, data: Path, timeout: int = 120, runs: Path | None = None) -> None:
    """Run the nbformat notebook ``nb`` (read from ``path``) in smoke mode with ``data`` as its
    data folder; the kernel inherits the environment, restored afterwards. Now and then nbclient
    sits idle after a notebook's last cell (a widget browser) for exactly the cell timeout and
    then goes on, the kernel idle meanwhile (seen with py-spy): smoke cells take seconds, so a
    120 s timeout bounds that wait, and the kernel is shut down at once. ``runs``: the run folder
    (``HANDPOSE_RUNS``), else the data folder's."""
    from nbclient import NotebookClient

    env = {"HANDPOSE_SMOKE": "1", "HANDPOSE_DATA": str(data), "TQDM_DISABLE": "1",
           "MPLBACKEND": "module://matplotlib_inline.backend_inline",
           "HANDPOSE_RUNS": str(runs) if runs else ""}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3", shutdown_kernel="immediate",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
