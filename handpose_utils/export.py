"""Keep the notebooks and the package in step. Writes the package modules that notebooks own,
from the notebooks' ``#@save <module>`` cells (d2l's convention), in notebook order, their leading
imports gathered at the top: edit the notebook, never the generated module. Also writes every
notebook's set-up cell and every Colab badge (notebooks and README) from the two facts they
depend on: the version (``handpose_utils.__version__``) and the GitHub repository
(``[project.urls]`` in pyproject.toml); ``--repo OWNER/NAME`` moves the course to a fork."""

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
REPOSITORY = re.compile(r'^Repository = "https://github\.com/([\w.-]+/[\w.-]+)"$', re.M)
BADGE = re.compile(r"https://colab\.research\.google\.com/github/[\w.-]+/[\w.-]+/blob/[\w.-]+/"
                   r"notebooks/")

SETUP_LINES = {name: re.compile(rf"^{name} = (\"[^\"]*\"|True|False)", re.M)
               for name in ("REPO", "VERSION", "PACKAGE_INDEX")}


def setup_cell(repo: str, version: str, root: Path = PACKAGE.parent,
               package_index: bool | None = None) -> str:
    """The first code cell of every notebook, for the course at ``repo`` and ``version``. It
    cannot import the package it installs, so each notebook carries its code: the first
    notebook's is the one written into the others, with ``REPO``, ``VERSION`` and (when given)
    ``PACKAGE_INDEX`` filled in."""
    first = sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))[0]
    text = "".join(json.loads(first.read_text(encoding="utf-8"))["cells"][1]["source"])
    values = {"REPO": f'"{repo}"', "VERSION": f'"{version}"', "PACKAGE_INDEX": package_index}
    for name, pattern in SETUP_LINES.items():
        if not pattern.search(text):
            raise ValueError(f"{first}: the set-up cell (the first code cell) needs a line "
                             f"starting {name} = ")
        if values[name] is not None:
            text = pattern.sub(f"{name} = {values[name]}", text, count=1)
    return text


def badge(repo: str, version: str) -> str:
    """The start of a notebook's Colab address: the notebooks of release ``v<version>``, the very
    ones that the set-up cell's package belongs to."""
    return f"https://colab.research.google.com/github/{repo}/blob/v{version}/notebooks/"


def course_repo(root: Path = PACKAGE.parent) -> str:
    """``OWNER/NAME`` of the course's GitHub repository, from pyproject.toml."""
    found = REPOSITORY.search((root / "pyproject.toml").read_text(encoding="utf-8"))
    if not found:
        raise ValueError(f"{root / 'pyproject.toml'}: no `Repository = \"https://github.com/"
                         "OWNER/NAME\"` line under [project.urls]; add one")
    return found.group(1)


def linked_files(root: Path, repo: str, version: str,
                 package_index: bool | None = None) -> dict[Path, str]:
    """Every file that names the repository or the version, as it should read."""
    out = {}
    for nb in sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        data = json.loads(nb.read_text(encoding="utf-8"))
        cells = data["cells"]
        cells[0]["source"] = BADGE.sub(badge(repo, version), "".join(cells[0]["source"]))
        cells[1]["source"] = setup_cell(repo, version, root, package_index)
        for cell in cells[:2]:
            cell["source"] = cell["source"].splitlines(keepends=True)
        out[nb] = json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    readme = root / "README.md"
    out[readme] = BADGE.sub(badge(repo, version), readme.read_text(encoding="utf-8"))
    return out




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
                        help="do not write; exit 1 when a file differs from what it should be")
    parser.add_argument("--repo", metavar="OWNER/NAME",
                        help="move the course to this GitHub repository (a fork, a new owner): "
                             "rewrites pyproject.toml, the README's and notebooks' badges and "
                             "the set-up cells; the set-up cells then install from GitHub only")
    parser.add_argument("--package-index", action="store_true",
                        help="with --repo: the new owner also publishes the package to PyPI, so "
                             "the set-up cells try it before GitHub")
    parser.add_argument("--root", type=Path, default=PACKAGE.parent, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    root = args.root
    if args.repo:
        if not re.fullmatch(r"[\w.-]+/[\w.-]+", args.repo):
            parser.error(f"--repo {args.repo!r}: give the GitHub repository as OWNER/NAME")
        pyproject = root / "pyproject.toml"
        text = REPOSITORY.sub(f'Repository = "https://github.com/{args.repo}"',
                              pyproject.read_text(encoding="utf-8"))
        atomic_write(pyproject, lambda f: f.write(text.encode("utf-8")))
    from . import __version__

    index = (args.package_index if args.repo else None)  # None: as notebook 01 says
    files = linked_files(root, course_repo(root), __version__, index)
    if root == PACKAGE.parent:
        files.update({module_path(m): text for m, text in exported_modules().items()})
    stale = []
    for path, text in files.items():
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        if args.check:
            stale.append(path)
        else:
            atomic_write(path, lambda f, text=text: f.write(text.encode("utf-8")))
            print(f"wrote {path.relative_to(root)}")
    if stale:
        print("These files differ from what the notebooks' #@save cells, the version and the "
              "repository make of them; run `python -m handpose_utils.export` (and never edit "
              "generated modules, set-up cells or badges by hand):\n  "
              + "\n  ".join(str(p.relative_to(root)) for p in stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
