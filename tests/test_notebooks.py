"""Every notebook: committed without outputs, starts the course's way, and runs in smoke mode."""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import pytest
from conftest import execute_notebook

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
COURSE_REPO = "handpose-course/handpose-course"


def ids(paths):
    return [p.stem for p in paths]


def test_there_are_notebooks():
    assert [p.stem[:2] for p in NOTEBOOKS][:2] == ["01", "02"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.outputs, f"{path.name} cell {i} has outputs: strip them"
            assert cell.execution_count is None, f"{path.name} cell {i} has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_notebook_header_contract(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# ")
    badge = f"https://colab.research.google.com/github/{COURSE_REPO}/blob/main/notebooks/{path.name}"
    assert badge in first.source, "the Colab badge must open this very notebook"
    setup = nb.cells[1].source
    assert 'if "google.colab" in sys.modules:' in setup
    assert re.search(rf'%pip install -q "git\+https://github.com/{COURSE_REPO}@', setup)
    assert "torch" not in setup.split("%pip", 1)[1], "never reinstall torch in Colab"
    params = next(c.source for c in nb.cells if c.cell_type == "code" and "DATASET =" in c.source)
    assert 'DATASET = "synthetic"' in params and "DATA_ROOT" in params
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "os.environ" not in code, "notebooks ask handpose_utils.env, they don't read the environment"
    assert "/content/drive" not in code.replace('if "google.colab"', "")


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_notebook_runs_in_smoke_mode(path, tmp_path_factory):

    nb = nbformat.read(path, as_version=4)
    # One data folder for all notebooks of this test session, outside the repo; the kernel
    # inherits env. Under xdist each worker's basetemp sits in the session's folder; without it,
    # basetemp is the session's folder. Either way a new session starts with no runs to resume.
    session = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        session = session.parent
    data = session / "notebook-data"
    execute_notebook(nb, path, data)
    # The notebook showed at least one figure, and no cell only printed "done".
    images = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code"
                 for o in c.outputs)
    assert images >= 2, f"{path.name} produced {images} figures"
