"""Every notebook is a lesson in which the learner builds: exercises wired with ``hp.use`` stand
before the course's own version, at least one exercise transfers the idea to something new, the
learner predicts before cells print, and the lesson stays light."""

from __future__ import annotations

import pytest
from lessons import (
    MAX_LESSON_LINES,
    MAX_PARAMETERS,
    NOTEBOOKS,
    asked,
    definitions,
    lesson_lines,
    parameters,
    predict_cells,
    solution_body,
    solutions,
)

from handpose_utils import exercises


def ids(paths):
    return [p.stem[:2] for p in paths]


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_the_learner_builds_two_pieces_before_the_course_shows_them(nb):
    uses = [a for a in asked(nb) if a.uses]
    assert len({a.id for a in uses}) >= 2, f"{nb.name}: needs >= 2 exercises wired with hp.use"
    for a in uses:
        name = a.reference.rsplit(".", 1)[-1]
        shown = definitions(nb, name)
        assert shown, (f"{nb.name}, exercise {a.id}: the course's {name} is never shown (define "
                       f"it in a later cell or show it with hp.show_source)")
        assert min(shown) > a.cell, (f"{nb.name}, exercise {a.id}: the course's {name} is shown "
                                     f"in cell {min(shown)}, before the exercise (cell {a.cell})")
        assert a.uses != a.answer, f"{nb.name}, {a.id}: bind hp.use's result to a new name"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_every_exercise_has_a_solution_that_replaces_its_stub(nb):
    sols = solutions(nb)
    for a in asked(nb):
        assert a.id.startswith(nb.name[:2] + "."), (nb.name, a.id)
        assert a.id in sols, f"{nb.name}: no solution cell for {a.id}"
        code = sols[a.id][1]
        assert code.rstrip().endswith(f'hp.check("{a.id}", {a.answer})'), (
            f"{nb.name}: the solution of {a.id} must define {a.answer} (the stub's name) and end "
            f'with hp.check("{a.id}", {a.answer})')
        assert a.answer in solution_body(code, a.id)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_at_least_one_transfer_exercise(nb):
    transfer = [a.id for a in asked(nb) if (ex := exercises.get(a.id)) and ex.transfer]
    assert transfer, f"{nb.name}: no exercise registered with transfer=True"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_three_predictions_before_the_cells_that_print_them(nb):
    assert len(predict_cells(nb)) >= 3, f"{nb.name}: needs >= 3 '**Predict.**' cells"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_the_lesson_is_light(nb):
    assert lesson_lines(nb) <= MAX_LESSON_LINES, (
        f"{nb.name}: {lesson_lines(nb)} lines of lesson code, at most {MAX_LESSON_LINES}")
    settings = parameters(nb)
    assert settings and len(settings) <= MAX_PARAMETERS, (
        f"{nb.name}: the Parameters cell has {len(settings)} settings {settings}, at most "
        f"{MAX_PARAMETERS} (the rest go in a 'More settings' cell)")


def test_exercises_keep_their_ids_and_help_in_two_steps():
    every = exercises.exercise_ids()
    original = {f"0{n}.{k}" for n, ks in {1: 3, 2: 3, 3: 3, 4: 3, 5: 3, 6: 4, 7: 5, 8: 3}.items()
                for k in range(1, ks + 1)}
    assert original <= set(every), sorted(original - set(every))
    for ex_id in every:
        ex = exercises.get(ex_id)
        assert ex.nudge and ex.hint and ex.nudge != ex.hint, f"{ex_id}: a nudge, then a recipe"
