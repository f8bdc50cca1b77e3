"""Shared fixtures: a small synthetic FreiHAND, and the real samples in ../shared/realdata."""

from __future__ import annotations

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
