"""Every notebook's set-up cell and Colab badge: one version, one repository, three ways to install.

The set-up cell is executed here as Colab would run it, with pip replaced by a recorder: the
package already there (nothing happens), missing (the package index, then GitHub at the
version's tag), and nothing installable (a message that says what to do, and the cell stops).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

import handpose_utils
from handpose_utils import export

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
VERSION = handpose_utils.__version__


def cell(path: Path, i: int) -> str:
    return "".join(json.loads(path.read_text(encoding="utf-8"))["cells"][i]["source"])


class FakePip:
    """Stands in for ``subprocess.run``: records each pip command and answers with the return
    code given for its source; a success makes the package importable at ``installs``."""

    def __init__(self, monkeypatch, codes: dict[str, int], installs: str | None = None,
                 stderr: dict[str, str] | None = None):
        self.commands: list[list[str]] = []
        self.codes, self.installs, self.monkeypatch = codes, installs, monkeypatch
        self.stderr = stderr or {}
        monkeypatch.setattr(subprocess, "run", self)

    def __call__(self, command, **kwargs):
        self.commands.append(command)
        assert kwargs["env"]["GIT_TERMINAL_PROMPT"] == "0", "git must fail, not wait for a password"
        source = command[-1]
        code = next((c for key, c in self.codes.items() if key in source), 1)
        if code == 0 and self.installs:
            self.monkeypatch.setitem(sys.modules, "handpose_utils",
                                     types.SimpleNamespace(__version__=self.installs))
        stderr = "" if code == 0 else next(
            (text for key, text in self.stderr.items() if key in source),
            f"ERROR: No matching distribution found for {source}\n")
        return subprocess.CompletedProcess(command, code, "", stderr)


def run_cell(source: str):
    exec(compile(source, "<set-up cell>", "exec"), {"__name__": "__main__"})


def without_package(monkeypatch):
    """``import handpose_utils`` fails, as in a fresh Colab runtime."""
    monkeypatch.setitem(sys.modules, "handpose_utils", None)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem[:2] for p in NOTEBOOKS])
def test_every_notebook_starts_with_the_one_set_up_cell_and_badge(path):
    repo = export.course_repo()
    assert cell(path, 1) == export.setup_cell(repo, VERSION)
    assert f"{export.badge(repo, VERSION)}{path.name})" in cell(path, 0)
    assert "torch" not in cell(path, 1).split("def install_course", 1)[1].replace(
        "Colab's own torch", ""), "the set-up cell must never (re)install torch"


def test_readme_badges_open_the_notebooks_of_this_version():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    links = export.BADGE.findall(readme)
    assert len(links) == len(NOTEBOOKS)
    assert set(links) == {export.badge(export.course_repo(), VERSION)}


def test_the_version_lives_in_one_place():
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'dynamic = ["version"]' in pyproject
    assert [line for line in pyproject.splitlines() if line.startswith("version =")] == [
        'version = { attr = "handpose_utils.__version__" }']


def test_already_installed_does_nothing(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    pip = FakePip(monkeypatch, {})
    run_cell(cell(NOTEBOOKS[0], 1))
    assert pip.commands == []
    assert capsys.readouterr().out == f"handpose_utils {VERSION} is installed\n"


def test_missing_package_comes_from_the_index_else_github_at_the_version_tag(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    without_package(monkeypatch)
    pip = FakePip(monkeypatch, {"git+": 0}, installs=VERSION)
    run_cell(export.setup_cell("someone/fork", VERSION))
    pip_install = [sys.executable, "-m", "pip", "install", "-q"]
    assert pip.commands == [pip_install + [f"handpose-utils=={VERSION}"],
                            pip_install + [f"git+https://github.com/someone/fork@v{VERSION}"]]


def test_an_uploaded_wheel_of_the_version_is_tried_first(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    without_package(monkeypatch)
    (tmp_path / f"handpose_utils-{VERSION}-py3-none-any.whl").write_bytes(b"")
    (tmp_path / "handpose_utils-0.0.1-py3-none-any.whl").write_bytes(b"")  # another version
    pip = FakePip(monkeypatch, {".whl": 0}, installs=VERSION)
    run_cell(export.setup_cell("a/b", VERSION))
    assert [c[-1] for c in pip.commands] == [f"handpose_utils-{VERSION}-py3-none-any.whl"]


def test_nothing_installable_stops_with_what_to_do(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    without_package(monkeypatch)
    pip = FakePip(monkeypatch, {})
    with pytest.raises(RuntimeError) as err:
        run_cell(export.setup_cell("someone/fork", VERSION))
    message = str(err.value)
    assert len(pip.commands) == 2
    assert f"No matching distribution found for handpose-utils=={VERSION}" in message
    assert f"git+https://github.com/someone/fork@v{VERSION}" in message
    assert f"handpose_utils-{VERSION}-py3-none-any.whl" in message and "Files panel" in message
    assert "pip install -e ." in message and "drive.mount" in message and "Set REPO" in message


def test_github_failures_are_told_in_words(monkeypatch, tmp_path):
    """git's own lines, which pip buries under "note: This error originates from a subprocess",
    are found and said plainly: a tag that was not pushed, a repository that is not public."""
    monkeypatch.chdir(tmp_path)
    without_package(monkeypatch)
    pip_noise = ("  error: subprocess-exited-with-error\n  ... [1 lines of output]\n      {}\n"
                 "  note: This error originates from a subprocess, and is likely not a problem "
                 "with pip.\n")
    for git_says, meaning in [
            (f"error: pathspec 'v{VERSION}' did not match any file(s) known to git",
             f"someone/fork has no tag v{VERSION}"),
            ("fatal: could not read Username for 'https://github.com': terminal prompts disabled",
             "someone/fork is not a public GitHub repository")]:
        FakePip(monkeypatch, {}, stderr={"git+": pip_noise.format(git_says)})
        with pytest.raises(RuntimeError) as err:
            run_cell(export.setup_cell("someone/fork", VERSION))
        assert f"{git_says}: {meaning}" in str(err.value)


def test_a_fork_installs_from_its_own_repository_only(course_copy, monkeypatch, tmp_path):
    """The package index has the course's releases, not a fork's: after the fork command the
    set-up cell goes to the fork's GitHub tag; ``--package-index`` (a new owner who publishes)
    keeps the index first."""
    assert export.main(["--root", str(course_copy), "--repo", "me/fork"]) == 0
    cell_source = cell(course_copy / "notebooks" / NOTEBOOKS[4].name, 1)
    assert "\nPACKAGE_INDEX = False  #" in cell_source
    monkeypatch.chdir(tmp_path)
    without_package(monkeypatch)
    pip = FakePip(monkeypatch, {"git+": 0}, installs=VERSION)
    run_cell(cell_source)
    assert [c[-1] for c in pip.commands] == [f"git+https://github.com/me/fork@v{VERSION}"]
    assert export.main(["--root", str(course_copy), "--repo", "new/owner", "--package-index"]) == 0
    assert "\nPACKAGE_INDEX = True  #" in cell(course_copy / "notebooks" / NOTEBOOKS[4].name, 1)
    assert export.main(["--root", str(course_copy), "--check"]) == 0


def test_a_wheel_kept_on_drive_is_found(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    without_package(monkeypatch)
    drive = f"/content/drive/MyDrive/handpose-course/handpose_utils-{VERSION}-py3-none-any.whl"
    real_glob = __import__("glob").glob
    monkeypatch.setattr("glob.glob", lambda pattern: [drive] if pattern.startswith(
        "/content/drive/") else real_glob(pattern))
    pip = FakePip(monkeypatch, {".whl": 0}, installs=VERSION)
    run_cell(export.setup_cell("a/b", VERSION))
    assert [c[-1] for c in pip.commands] == [drive]


def test_another_version_already_imported_asks_for_a_restart(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "handpose_utils", types.SimpleNamespace(__version__="0.0.1"))
    pip = FakePip(monkeypatch, {"handpose-utils==": 0})
    with pytest.raises(RuntimeError, match="imported handpose_utils 0.0.1.*Restart"):
        run_cell(export.setup_cell("a/b", VERSION))
    assert [c[-1] for c in pip.commands] == [f"handpose-utils=={VERSION}"]


def test_a_pip_that_installs_but_cannot_be_imported_is_not_success(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    without_package(monkeypatch)
    FakePip(monkeypatch, {"handpose-utils==": 0, "git+": 0})  # "succeeds", imports nothing
    with pytest.raises(RuntimeError, match="Could not install"):
        run_cell(export.setup_cell("a/b", VERSION))


@pytest.fixture
def course_copy(tmp_path):
    """The files the fork command rewrites, in a folder of their own."""
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    for name in ("README.md", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def test_the_fork_command_moves_every_badge_and_set_up_cell(course_copy, capsys):
    old = export.course_repo()
    assert export.main(["--root", str(course_copy), "--check"]) == 0
    assert export.main(["--root", str(course_copy), "--repo", "new-owner/hands.course"]) == 0
    assert export.course_repo(course_copy) == "new-owner/hands.course"
    texts = [p.read_text(encoding="utf-8") for p in [course_copy / "README.md",
                                                     *(course_copy / "notebooks").glob("*.ipynb")]]
    assert not any(f"github/{old}/" in t or f'REPO = \\"{old}\\"' in t for t in texts)
    for nb in sorted((course_copy / "notebooks").glob("*.ipynb")):
        assert cell(nb, 1) == export.setup_cell("new-owner/hands.course", VERSION,
                                                package_index=False)
        assert export.badge("new-owner/hands.course", VERSION) + nb.name in cell(nb, 0)
        # the rest of the notebook is untouched, byte for byte
        before = json.loads((ROOT / "notebooks" / nb.name).read_text(encoding="utf-8"))["cells"]
        assert json.loads(nb.read_text(encoding="utf-8"))["cells"][2:] == before[2:]
    assert export.main(["--root", str(course_copy), "--check"]) == 0


def test_a_hand_edited_set_up_cell_fails_the_check(course_copy, capsys):
    nb = course_copy / "notebooks" / NOTEBOOKS[3].name
    nb.write_text(nb.read_text(encoding="utf-8").replace('@v{version}', "@main"),
                  encoding="utf-8")
    assert export.main(["--root", str(course_copy), "--check"]) == 1
    assert NOTEBOOKS[3].name in capsys.readouterr().out


def test_fork_command_refuses_a_repository_that_is_not_owner_slash_name(course_copy, capsys):
    with pytest.raises(SystemExit):
        export.main(["--root", str(course_copy), "--repo", "https://github.com/a/b"])
    assert "OWNER/NAME" in capsys.readouterr().err


TRAIN_OR_DOWNLOAD = [p for p in NOTEBOOKS if p.name[:2] in {"03", "04", "05", "06", "07", "08"}]


@pytest.mark.parametrize("path", TRAIN_OR_DOWNLOAD, ids=[p.stem[:2] for p in TRAIN_OR_DOWNLOAD])
def test_notebooks_that_train_or_download_can_keep_them_on_drive(path):
    """``USE_DRIVE`` is a setting, off by default, and Drive is mounted before anything
    downloads, prepares data or trains (fit finds the Drive copies' folder when it starts)."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    code = "\n".join("".join(c["source"]) for c in cells[2:] if c["cell_type"] == "code")
    assert re.search(r"\nUSE_DRIVE = False  # [^\n]*\nhp\.env\.use_drive\(USE_DRIVE\)\n", code)
    mounted = code.index("hp.env.use_drive(USE_DRIVE)")
    for first_use in ("prepare_", "download_", "fit(", "train_stage(", "label_ouhands("):
        if first_use in code:
            assert code.index(first_use) > mounted, f"{first_use} comes before use_drive"


ONNX_EXPORTERS = [p for p in NOTEBOOKS if p.name[:2] in {"06", "08"}]


@pytest.mark.parametrize("path", ONNX_EXPORTERS, ids=[p.stem[:2] for p in ONNX_EXPORTERS])
def test_colab_installs_the_tested_onnx_versions_before_exporting(path):
    """Colab has no ONNX packages: the export cell installs exactly the versions the dev extra
    pins, the ones CI runs the export and its check with."""
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    pins = {name: re.search(rf'"{name}==([\w.]+)"', pyproject) for name in
            ("onnx", "onnxscript", "onnxruntime")}
    assert all(pins.values()), "the dev extra pins onnx, onnxscript and onnxruntime"
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    export_cell = next("".join(c["source"]) for c in cells
                       if c["cell_type"] == "code" and "export_onnx(" in "".join(c["source"]))
    install = " ".join(f"{name}=={pin.group(1)}" for name, pin in pins.items())
    assert export_cell.startswith("if hp.in_colab():") and f"%pip install -q {install}\n" in export_cell
