"""Every notebook: committed without outputs, starts the course's way, and runs in smoke mode."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import nbformat
import pytest
from conftest import execute_notebook
from lessons import asked, with_solutions
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))


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
    # the badge and the set-up cell (nb.cells[1]): tests/test_setup_cell.py
    params = next(c.source for c in nb.cells if c.cell_type == "code" and "DATASET =" in c.source)
    assert 'DATASET = "synthetic"' in params and "DATA_ROOT" in params
    code = "\n".join(c.source for c in nb.cells[2:] if c.cell_type == "code")
    assert "os.environ" not in code, "notebooks ask handpose_utils.env, they don't read the environment"
    assert "/content/drive" not in code, "Google Drive: hp.env.use_drive(USE_DRIVE)"


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_notebook_runs_in_smoke_mode_with_the_stubs_and_with_the_solutions(path, tmp_path_factory):
    """*Run all* finishes twice: with every exercise stub untouched (the course's references run)
    and with every solution in place of its stub (the learner's code runs); both draw the same
    figures. Both runs share the data folder and each has its own runs folder, so the second
    trains instead of resuming the first."""
    # One data folder for all notebooks of this test session, outside the repo; the kernel
    # inherits env. Under xdist each worker's basetemp sits in the session's folder; without it,
    # basetemp is the session's folder.
    session = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        session = session.parent
    data = session / "notebook-data"
    stubs = nbformat.read(path, as_version=4)
    learner = with_solutions(stubs)
    runs = tmp_path_factory.mktemp(f"runs-{path.stem[:2]}")
    execute_notebook(stubs, path, data, runs=runs / "stubs")
    execute_notebook(learner, path, data, runs=runs / "solutions")

    figures = [figure_sizes(c) for c in stubs.cells]
    assert sum(map(len, figures)) >= 2, f"{path.name} produced {sum(map(len, figures))} figures"
    for i, (a, b) in enumerate(zip(figures, (figure_sizes(c) for c in learner.cells))):
        assert a == b, f"{path.name} cell {i}: figures {a} with the stubs, {b} with the solutions"
    for nb in (stubs, learner):  # a failed shell command (`!...`) raises nothing in the kernel
        for i, c in enumerate(nb.cells):
            if c.cell_type == "code" and any(line.startswith("!") for line in c.source.splitlines()):
                text = "".join(o.get("text", "") for o in c.outputs)
                for sign in ("command not found", "Traceback (most recent call last)",
                             "No module named"):
                    assert sign not in text, f"{path.name} cell {i}: a shell command failed:\n{text}"
    uses = {a.id for a in asked(path) if a.uses}
    for nb, who in ((stubs, "the course's"), (learner, "YOUR")):
        said = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                       for o in c.outputs)
        for ex_id in uses:
            assert f"-> {ex_id}: from here on the notebook runs {who}" in said, (path.name, ex_id)


def figure_sizes(cell) -> list[tuple[int, int]]:
    """The pixel size of every figure a code cell drew."""
    if cell.cell_type != "code":
        return []
    out = []
    for o in cell.outputs:
        if png := o.get("data", {}).get("image/png"):
            with Image.open(io.BytesIO(base64.b64decode(png))) as im:
                out.append(im.size)
    return out
