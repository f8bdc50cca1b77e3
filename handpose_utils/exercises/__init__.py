"""Checked exercises, CS231n style: the learner fills in a stub, then ``hp.check("03.2", answer)``
runs the exercise's check on it and prints what is right or wrong.

A check tests *behaviour*, never text: it calls the learner's function on inputs whose answer is
known by a property (a rotated copy aligns to zero error; a mirror image does not), or compares
it with an independent implementation (OKS with ``pycocotools``). ``check`` never raises, so
*Run all* still reaches the end of a notebook whose exercises are not done yet.

The checks of notebook ``NN`` live in ``chNN.py`` beside this file; each is a function that
receives the answer and raises :class:`Wrong` with a message that says what is wrong, or returns
a short note on what passed. Each also registers ``wrong`` answers: typical mistakes (a missing
softmax, a mirror allowed in Procrustes) that the check must refuse.

In a notebook an exercise is a stub cell (``raise NotImplementedError``) that ends with
``hp.check("NN.K", answer)``, or, when the rest of the notebook runs the learner's code, with
``name = hp.use("NN.K", answer, reference=<the course's version>)``: :func:`use` returns the
learner's answer when its check passes and the course's reference otherwise, and says which one
runs, so *Run all* always finishes. Such an exercise stands where the idea is introduced, before
the course's own version is shown. Its solution is a self-contained cell in the notebook's
*Solutions* section whose first line is ``#@title Solution NN.K { display-mode: "form" }``
(Colab shows it collapsed) and which defines the same name as the stub. The tests run every
solution cell on its own and check it passes, check that every registered wrong answer fails,
and run every notebook twice: with the stubs untouched and with the solutions in their place.

Hints come in two steps: the first wrong answer gets only what is wrong with it, the second a
``nudge`` (where to look), the third and later the ``hint`` (the recipe). The solution itself
stays in *Solutions*. A ``transfer`` exercise asks for something the notebook has not shown.
"""

from __future__ import annotations

import importlib
import traceback
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


class Wrong(AssertionError):
    """Raised by a check: the answer runs but does not do what the exercise asks."""


@dataclass(frozen=True)
class Exercise:
    id: str
    title: str
    hint: str
    run: Callable
    wrong: tuple = ()
    nudge: str = ""
    transfer: bool = False


def unchanged(name: str, before, after, fn: str = "your function") -> None:
    """Raise :class:`Wrong` when the answer modified an argument: ``before`` is a copy taken
    before the call, ``after`` the object it was given. Names the first element that changed, its
    value before and after, and how many changed (numpy arrays or tensors; NaN equals NaN)."""
    b = before.detach().cpu().numpy() if hasattr(before, "detach") else np.asarray(before)
    a = after.detach().cpu().numpy() if hasattr(after, "detach") else np.asarray(after)
    if a.shape != b.shape:
        raise Wrong(f"{fn} changed the shape of its argument `{name}` from {b.shape} to "
                    f"{a.shape}: work on a copy, the caller still needs it")
    diff = b != a
    if np.issubdtype(b.dtype, np.floating) and np.issubdtype(a.dtype, np.floating):
        diff &= ~(np.isnan(b) & np.isnan(a))
    if diff.any():
        k = tuple(int(i) for i in np.argwhere(diff)[0])
        raise Wrong(f"{fn} changed its argument `{name}` in place ({int(diff.sum())} element(s); "
                    f"element {k} was {b[k].item()!r} before the call and is {a[k].item()!r} "
                    f"after it): compute new values (x * s, not x *= s) or work on a copy, the "
                    "caller still needs it")


_REGISTRY: dict[str, Exercise] = {}


def exercise(id: str, title: str, hint: str, wrong=(), *, nudge: str = "",
             transfer: bool = False):
    """Register the decorated function as the check of exercise ``id`` ("03.2"). ``wrong``: answers
    with a typical mistake, which the check must refuse (the tests make sure it does). ``nudge``:
    the first hint, where to look; ``hint``: the second, the recipe. ``transfer``: the exercise
    asks for something its notebook has not shown."""

    def register(run: Callable) -> Callable:
        _REGISTRY[id] = Exercise(id, title, hint, run, tuple(wrong), nudge, transfer)
        return run

    return register


def _load(exercise_id: str) -> Exercise | None:
    notebook = exercise_id.split(".")[0]
    try:
        importlib.import_module(f"{__name__}.ch{notebook}")
    except ModuleNotFoundError:
        return None
    return _REGISTRY.get(exercise_id)


def get(exercise_id: str) -> Exercise | None:
    """The registered :class:`Exercise` ``exercise_id``, or None."""
    return _load(str(exercise_id))


def exercise_ids() -> list[str]:
    """Every registered exercise id, in order (loads all notebooks' checks)."""
    import pkgutil

    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("ch"):
            importlib.import_module(f"{__name__}.{info.name}")
    return sorted(_REGISTRY, key=lambda k: tuple(int(p) for p in k.split(".")))


_WRONG_SO_FAR: dict[str, int] = {}  # wrong answers per exercise in this session


def _hint(ex: Exercise) -> str:
    """Help in steps: the first wrong answer gets what is wrong and nothing more, the second a
    nudge (where to look), the third and later the recipe. The solution stays in *Solutions*."""
    _WRONG_SO_FAR[ex.id] = _WRONG_SO_FAR.get(ex.id, 0) + 1
    n = _WRONG_SO_FAR[ex.id]
    if n == 1 or (n == 2 and not ex.nudge):
        return "\n    Fix it and run the check again; a hint comes with the next wrong answer."
    if n == 2:
        return f"\n    Nudge: {ex.nudge}"
    return f"\n    Recipe: {ex.hint}"


def check(exercise_id: str, answer) -> bool:
    """Check the learner's ``answer`` to exercise ``exercise_id`` and print the verdict.

    Returns True when it passes, False otherwise; never raises, so a notebook keeps running. Help
    comes in steps (:func:`_hint`), never with an untouched stub: the first time the message
    alone says what is wrong.
    """
    ex = _load(str(exercise_id))
    if ex is None:
        print(f"There is no exercise {exercise_id!r}. Exercises: {', '.join(exercise_ids())}")
        return False
    try:
        note = ex.run(answer)
    except NotImplementedError:
        # no hint yet: the exercise text is enough to start, and a hint that came first would
        # be read before trying
        print(f"[ ] {ex.id} {ex.title}: not done yet. Replace the `raise NotImplementedError` "
              f"with your code, run the cell, then this check again.")
        return False
    except Wrong as err:
        print(f"[x] {ex.id} {ex.title}: not yet. {err}" + _hint(ex))
        return False
    except Exception as err:  # noqa: BLE001 - the learner's code may raise anything
        where = traceback.extract_tb(err.__traceback__)[-1]
        print(f"[x] {ex.id} {ex.title}: your code raised {type(err).__name__}: {err} "
              f"(line {where.lineno}: {where.line})." + _hint(ex))
        return False
    print(f"[ok] {ex.id} {ex.title}: passed." + (f" {note}" if note else ""))
    return True


def _name(obj) -> str:
    if isinstance(obj, (tuple, list)):  # a pair of functions, such as encode and decode
        return " and ".join(_name(o) for o in obj)
    return getattr(obj, "__name__", None) or type(obj).__name__


def use(exercise_id: str, answer, *, reference):
    """Check the learner's ``answer`` to exercise ``exercise_id`` and return what the rest of the
    notebook runs: ``answer`` when it passes, else the course's ``reference``. Prints the check's
    verdict and then one line saying which of the two runs from here on, and why; never raises,
    so *Run all* always finishes::

        decode = hp.use("03.1", my_soft_argmax, reference=hp.models.soft_argmax)
    """
    ok = check(exercise_id, answer)
    if ok:
        print(f"-> {exercise_id}: from here on the notebook runs YOUR {_name(answer)}.")
        return answer
    print(f"-> {exercise_id}: from here on the notebook runs the course's {_name(reference)} "
          f"(yours has not passed its check yet; once it does, run this cell and the ones after "
          f"it again).")
    return reference
