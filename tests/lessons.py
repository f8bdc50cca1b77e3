"""How a notebook is built as a lesson, read from its cells: the exercises and where they stand,
the *Predict* cells, the Parameters cell, the lesson's own code, and the notebook with every
solution in place of its stub (the learner's path). The tests use it; run it for a report:

    python tests/lessons.py
"""

from __future__ import annotations

import copy
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))

SOLUTION = re.compile(r"^#@title Solution (\d\d\.\d+)\b")
CHECK_CALL = re.compile(r"hp\.check\(\s*\"(\d\d\.\d+)\"\s*,\s*([A-Za-z_]\w*)\s*\)")
USE_CALL = re.compile(r"^[ \t]*([A-Za-z_]\w*)\s*=\s*hp\.use\(\s*\"(\d\d\.\d+)\"\s*,\s*"
                      r"([A-Za-z_]\w*)\s*,\s*reference\s*=\s*([A-Za-z_][\w.]*)\s*\)", re.M)
ASSIGNED = re.compile(r"^([A-Z][A-Z0-9_]*(?:\s*,\s*[A-Z][A-Z0-9_]*)*)\s*(?::[^=]+)?=(?!=)", re.M)

MAX_LESSON_LINES = 650
MAX_PARAMETERS = 12


def cells(notebook: Path) -> list[dict]:
    return json.loads(notebook.read_text(encoding="utf-8"))["cells"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def is_solution(cell: dict) -> bool:
    return cell["cell_type"] == "code" and bool(SOLUTION.match(source(cell).strip()))


@dataclass(frozen=True)
class Asked:
    """An exercise as the notebook's flow asks it: in cell ``cell``, the stub ``answer`` goes to
    ``hp.check`` (``uses`` is None) or to ``hp.use`` with ``reference`` (and the result is bound
    to ``uses``)."""

    id: str
    cell: int
    answer: str
    uses: str | None = None
    reference: str | None = None


def asked(notebook: Path) -> list[Asked]:
    """Every exercise the flow (not *Solutions*) asks, in order."""
    out = []
    for i, cell in enumerate(cells(notebook)):
        if cell["cell_type"] != "code" or is_solution(cell):
            continue
        code = source(cell)
        for m in USE_CALL.finditer(code):
            out.append(Asked(m.group(2), i, m.group(3), m.group(1), m.group(4)))
        for m in CHECK_CALL.finditer(code):
            out.append(Asked(m.group(1), i, m.group(2)))
    return out


def solutions(notebook: Path) -> dict[str, tuple[int, str]]:
    """``{exercise id: (cell index, code)}`` of the *Solutions* cells."""
    out = {}
    for i, cell in enumerate(cells(notebook)):
        if is_solution(cell):
            out[SOLUTION.match(source(cell).strip()).group(1)] = (i, source(cell))
    return out


def definitions(notebook: Path, name: str) -> list[int]:
    """Cells (outside *Solutions*) that define ``name`` or show its source."""
    pattern = re.compile(rf"^(?:def|class)\s+{name}\b|^{name}\s*=|hp\.show_source\([^)]*\b{name}\b",
                         re.M)
    return [i for i, c in enumerate(cells(notebook))
            if c["cell_type"] == "code" and not is_solution(c) and pattern.search(source(c))]


def solution_body(code: str, exercise_id: str) -> str:
    """A solution cell without its closing ``hp.check`` (the code that defines the answer)."""
    return code[: code.rindex(f'hp.check("{exercise_id}"')].rstrip() + "\n"


def with_solutions(nb):
    """A copy of the nbformat notebook ``nb`` in which every exercise cell of the flow holds its
    solution in place of the stub: the cell's code before the ``hp.check`` / ``hp.use`` line is
    replaced by the solution's code, the rest of the cell is kept."""
    nb = copy.deepcopy(nb)
    sols = {}
    for cell in nb.cells:
        if cell.cell_type == "code" and (m := SOLUTION.match(cell.source.strip())):
            sols[m.group(1)] = solution_body(cell.source, m.group(1))
    for cell in nb.cells:
        if cell.cell_type != "code" or SOLUTION.match(cell.source.strip()):
            continue
        calls = sorted([(m.start(), m.group(2)) for m in USE_CALL.finditer(cell.source)]
                       + [(m.start(), m.group(1)) for m in CHECK_CALL.finditer(cell.source)])
        if not calls or "NotImplementedError" not in cell.source:
            continue
        start, ex_id = calls[0]
        line_start = cell.source.rfind("\n", 0, start) + 1
        cell.source = sols[ex_id] + "\n" + cell.source[line_start:]
    return nb


def predict_cells(notebook: Path) -> list[int]:
    """Markdown cells that ask for a prediction (``**Predict.**``) right before a code cell."""
    cs = cells(notebook)
    return [i for i, c in enumerate(cs[:-1]) if c["cell_type"] == "markdown"
            and source(c).lstrip().startswith("**Predict.**") and cs[i + 1]["cell_type"] == "code"]


def parameters(notebook: Path) -> list[str]:
    """The settings (upper-case names assigned) of the cell after the ``## Parameters`` heading."""
    cs = cells(notebook)
    for i, c in enumerate(cs[:-1]):
        if c["cell_type"] == "markdown" and source(c).lstrip().startswith("## Parameters"):
            names = []
            for m in ASSIGNED.finditer(source(cs[i + 1])):
                names += [n.strip() for n in m.group(1).split(",")]
            return list(dict.fromkeys(names))
    return []


def is_exercise(cell: dict) -> bool:
    code = source(cell)
    return "NotImplementedError" in code and bool(CHECK_CALL.search(code) or USE_CALL.search(code))


SETUP_CELL = "# Set-up: the course package"  # export writes it, the same in every notebook


def lesson_lines(notebook: Path) -> int:
    """Non-blank lines of code in the lesson: every code cell but exercises, solutions and the
    set-up cell (installing the package is plumbing, not the lesson)."""
    return sum(1 for c in cells(notebook)
               if c["cell_type"] == "code" and not is_solution(c) and not is_exercise(c)
               and not source(c).startswith(SETUP_CELL)
               for line in source(c).splitlines() if line.strip())


def report() -> str:
    from handpose_utils import exercises

    rows = [f"{'notebook':32} {'lesson':>6} {'params':>6} {'predict':>7}  use  transfer  asked"]
    for nb in NOTEBOOKS:
        ask = asked(nb)
        ids = sorted({a.id for a in ask})
        uses = sorted({a.id for a in ask if a.uses})
        transfer = [i for i in ids if (ex := exercises.get(i)) is not None and ex.transfer]
        rows.append(f"{nb.stem:32} {lesson_lines(nb):6d} {len(parameters(nb)):6d} "
                    f"{len(predict_cells(nb)):7d}  {len(uses):3d}  {len(transfer):8d}  "
                    f"{' '.join(ids)}")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    print(report())
