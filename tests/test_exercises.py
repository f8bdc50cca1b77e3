"""The checked exercises: every notebook has at least three; each solution cell of a notebook,
run on its own, passes its check; every registered wrong answer and an untouched stub fail; and
the generated modules agree with the notebooks' ``#@save`` cells."""

from __future__ import annotations

import json
import re
from pathlib import Path

import lessons
import pytest

import handpose_utils as hp
from handpose_utils import exercises, export

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SOLUTION = re.compile(r"^#@title Solution (\d\d\.\d+)\b")
CHECK_CALL = re.compile(r"hp\.check\(\s*\"(\d\d\.\d+)\"\s*,\s*([A-Za-z_]\w*)\s*\)")


def code_cells(notebook: Path) -> list[str]:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def solution_cells() -> list[tuple[str, str, str]]:
    """``(notebook, exercise id, code)`` of every solution cell."""
    out = []
    for nb in NOTEBOOKS:
        for code in code_cells(nb):
            if m := SOLUTION.match(code.strip()):
                out.append((nb.name, m.group(1), code))
    return out


def test_every_notebook_has_three_checked_exercises_with_solutions():
    ids = set(exercises.exercise_ids())
    solved = {ex_id for _, ex_id, _ in solution_cells()}
    for nb in NOTEBOOKS:
        prefix = nb.name[:2]
        asked = {a.id for a in lessons.asked(nb)}
        assert len(asked) >= 3, f"{nb.name} asks {sorted(asked)}: needs at least 3 exercises"
        assert all(a.startswith(prefix + ".") for a in asked), (nb.name, sorted(asked))
        assert asked <= ids, f"{nb.name}: no check registered for {sorted(asked - ids)}"
        assert asked <= solved, f"{nb.name}: no solution cell for {sorted(asked - solved)}"


@pytest.mark.parametrize("notebook,exercise_id,code", solution_cells(),
                         ids=[ex_id for _, ex_id, _ in solution_cells()])
def test_solution_passes_and_wrong_answers_fail(notebook, exercise_id, code, capsys):
    calls = [(m.group(1), m.group(2)) for m in CHECK_CALL.finditer(code)]
    assert calls and calls[-1][0] == exercise_id, (
        f"{notebook}: the solution cell of {exercise_id} must end with "
        f'hp.check("{exercise_id}", <answer>)')
    body = code[: code.rindex("hp.check(")]
    namespace = {"hp": hp, "__name__": "solution"}
    exec(compile(body, f"{notebook}:solution {exercise_id}", "exec"), namespace)  # noqa: S102
    answer = namespace[calls[-1][1]]
    assert hp.check(exercise_id, answer), capsys.readouterr().out

    ex = exercises.get(exercise_id)
    assert ex.wrong, f"exercise {exercise_id} registers no wrong answers"
    for wrong in ex.wrong:
        assert hp.check(exercise_id, wrong) is False, f"{exercise_id} accepted {wrong}"

    def stub(*args, **kwargs):
        raise NotImplementedError

    assert hp.check(exercise_id, stub) is False
    assert "not done yet" in capsys.readouterr().out


def test_check_never_raises_and_names_unknown_exercises(capsys):
    assert hp.check("99.9", None) is False
    assert "no exercise '99.9'" in capsys.readouterr().out


def test_generated_modules_agree_with_the_notebooks():
    assert export.main(["--check"]) == 0, "run `python -m handpose_utils.export`"


def test_help_comes_in_steps_a_nudge_then_the_recipe(capsys, monkeypatch):
    monkeypatch.setattr(exercises, "_WRONG_SO_FAR", {})
    ex = exercises.get("06.3")

    def stub(*args):
        raise NotImplementedError

    assert hp.check("06.3", stub) is False
    assert "Nudge" not in capsys.readouterr().out  # an untouched stub: no help yet
    assert hp.check("06.3", ex.wrong[0]) is False
    first = capsys.readouterr().out
    assert "[x]" in first and "Nudge" not in first and "Recipe" not in first
    assert hp.check("06.3", ex.wrong[1]) is False
    second = capsys.readouterr().out
    assert f"Nudge: {ex.nudge}" in second and "Recipe" not in second
    assert hp.check("06.3", ex.wrong[0]) is False
    assert f"Recipe: {ex.hint}" in capsys.readouterr().out


def test_use_runs_the_learners_answer_only_when_it_passes(capsys, monkeypatch):
    monkeypatch.setattr(exercises, "_WRONG_SO_FAR", {})
    ex = exercises.get("06.3")
    solution = dict(solution_cells_by_id())["06.3"]
    namespace = {"hp": hp, "__name__": "solution"}
    exec(compile(solution[: solution.rindex("hp.check(")], "solution 06.3", "exec"), namespace)
    answer = namespace[CHECK_CALL.findall(solution)[-1][1]]

    def reference(*args):
        return "reference"

    def stub(*args):
        raise NotImplementedError

    assert hp.use("06.3", answer, reference=reference) is answer
    assert "runs YOUR" in capsys.readouterr().out
    for learner in (stub, ex.wrong[0], None):
        assert hp.use("06.3", learner, reference=reference) is reference
        said = capsys.readouterr().out.strip().splitlines()
        assert said[-1].startswith("-> 06.3: from here on the notebook runs the course's reference")


def solution_cells_by_id():
    return [(ex_id, code) for _, ex_id, code in solution_cells()]
