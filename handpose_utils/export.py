"""Write the package modules that notebooks own, from the notebooks' ``#@save <module>`` cells
(d2l's convention), in notebook order, their leading imports gathered at the top. Edit the
notebook, never the generated module: ``python -m handpose_utils.export`` rewrites them."""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from .safefiles import atomic_write

PACKAGE = Path(__file__).resolve().parent
NOTEBOOKS = PACKAGE.parent / "notebooks"
MARK = re.compile(r"^#@save\s+([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*)\s*$")


def saved_cells(notebook: Path) -> list[tuple[str, str]]:
    """``(module, code)`` of every ``#@save <module>`` cell of ``notebook``, in order."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    out = []
    for i, cell in enumerate(cells):
        lines = "".join(cell["source"]).splitlines()
        if cell["cell_type"] != "code" or not lines or not (m := MARK.match(lines[0].strip())):
            continue
        code = "\n".join(lines[1:]).strip("\n")
        for bad in ("hp.", "\n%", "\n!"):
            if bad in "\n" + code:
                raise ValueError(f"{notebook.name}, cell {i}: an exported cell must not use "
                                 f"{bad.strip()!r} (the module must import on its own)")
        out.append((m.group(1), code))
    return out


def _is_import(line: str) -> bool:
    return line.startswith(("import ", "from ")) and not line.rstrip().endswith("(")


def render(module: str, parts: list[tuple[str, str]]) -> str:
    """The text of ``handpose_utils/<module>.py`` made of ``parts`` (``(notebook, code)``)."""
    sources = sorted({nb for nb, _ in parts})
    imports: list[str] = ["from __future__ import annotations"]
    bodies: list[str] = []
    for notebook, code in parts:
        lines = code.splitlines()
        k = 0
        while k < len(lines) and (_is_import(lines[k]) or not lines[k].strip()):
            if lines[k].strip() and lines[k] not in imports:
                imports.append(lines[k])
            k += 1
        bodies.append(f"# --- from notebooks/{notebook} ---\n" + "\n".join(lines[k:]).strip("\n"))
    header = (f'"""Generated from {", ".join("notebooks/" + s for s in sources)} by '
              "`python -m handpose_utils.export`.\n\nEdit the notebook's `#@save "
              f'{module}` cells, not this file: the tests check that the two agree."""\n')
    text = header + "\n" + "\n".join(imports) + "\n\n\n" + "\n\n\n".join(bodies) + "\n"
    return sort_imports(text, module)


def sort_imports(text: str, module: str) -> str:
    """The imports in isort's order: ``ruff check --select I --fix`` (pinned: machines agree)."""
    ruff = shutil.which("ruff")
    command = [ruff] if ruff else [sys.executable, "-m", "ruff"]
    try:
        done = subprocess.run(
            [*command, "check", "--select", "I", "--fix", "--quiet", "--exit-zero",
             "--stdin-filename", str(module_path(module)), "-"],
            input=text, capture_output=True, text=True, check=True, cwd=PACKAGE.parent)
    except (OSError, subprocess.CalledProcessError) as err:
        raise RuntimeError("the export sorts imports with ruff: pip install -e '.[dev]' "
                           f"({err})") from err
    return done.stdout


def module_path(module: str) -> Path:
    """``hand3d.nets`` -> ``handpose_utils/hand3d/nets.py``."""
    return PACKAGE.joinpath(*module.split(".")).with_suffix(".py")


def exported_modules(notebooks: Path = NOTEBOOKS) -> dict[str, str]:
    """Module name -> generated text, for every module that some notebook exports."""
    parts: dict[str, list[tuple[str, str]]] = {}
    for nb in sorted(notebooks.glob("[0-9][0-9]_*.ipynb")):
        for module, code in saved_cells(nb):
            parts.setdefault(module, []).append((nb.name, code))
    return {module: render(module, p) for module, p in parts.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 when a module differs from its notebooks")
    args = parser.parse_args(argv)
    stale = []
    for module, text in exported_modules().items():
        path = module_path(module)
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        if args.check:
            stale.append(path)
        else:
            atomic_write(path, lambda f, text=text: f.write(text.encode("utf-8")))
            print(f"wrote {path.relative_to(PACKAGE.parent)}")
    if stale:
        print("These modules differ from their notebooks' #@save cells; run "
              "`python -m handpose_utils.export` (and never edit them by hand):\n  "
              + "\n  ".join(str(p.relative_to(PACKAGE.parent)) for p in stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
