"""The GitHub Actions workflows and the package as it is released.

The workflows are checked offline: zizmor (security: unpinned actions, template injection,
persisted credentials, broad permissions) and GitHub's workflow schema (a mistyped key), each
shown to catch a broken copy; their structure is read as YAML. The slow test builds the sdist
and the wheel outside the checkout, installs the wheel in a venv of its own and runs notebook
01 with that venv's kernel: what a learner gets from PyPI, not what the checkout happens to hold.
"""

from __future__ import annotations

import ast
import email.parser
import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import nbformat
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import handpose_utils

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = REPO / ".github" / "workflows"
TAG_CHECK = REPO / ".github" / "scripts" / "check_tag_version.py"
WORKFLOW_FILES = sorted(WORKFLOWS.glob("*.yml"))
RELEASE = (WORKFLOWS / "release.yml").read_text()

# Imported only inside the function that needs them, behind an install hint (find_spec or
# try/except ImportError), or only in Colab (google.colab): not package dependencies. nbclient and
# nbformat: only `realism --heads`, which runs notebook 08 from a checkout (Jupyter installed).
OPTIONAL_IMPORTS = {"google", "mediapipe", "nbclient", "nbformat", "onnxruntime", "tensorboard",
                    "timm", "wandb"}
# Imported directly but installed by a declared dependency, which requires it (checked below):
# IPython (display in plots) by ipywidgets.
VIA_DEPENDENCY = {"IPython": "ipywidgets"}


def _tool(name: str) -> str:
    """The console script ``name`` of this Python's environment (a dev extra), else skip."""
    path = shutil.which(name, path=sysconfig.get_path("scripts")) or shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed: `pip install -e '.[dev]'` installs it")
    return path


def _run(*command, **kwargs) -> subprocess.CompletedProcess:
    """Run ``command``; a failure shows the end of its output."""
    done = subprocess.run([str(c) for c in command], capture_output=True, text=True, **kwargs)
    output = (done.stdout + done.stderr)[-3000:]
    assert done.returncode == 0, f"{' '.join(map(str, command))} failed:\n{output}"
    return done


def _zizmor(folder: Path) -> tuple[set[str], str]:
    """zizmor's findings on the workflows in ``folder`` (their audit names), and its report."""
    done = subprocess.run([_tool("zizmor"), "--offline", "--format", "json", str(folder)],
                          capture_output=True, text=True)
    findings = json.loads(done.stdout or "[]")
    assert done.returncode == 0 or findings, f"zizmor failed:\n{done.stderr}"
    return {f["ident"] for f in findings}, done.stdout + done.stderr


def _schema_errors(path: Path) -> str:
    """check-jsonschema's complaint about ``path`` against GitHub's workflow schema, or ''."""
    done = subprocess.run([_tool("check-jsonschema"), "--builtin-schema",
                           "vendor.github-workflows", str(path)], capture_output=True, text=True)
    return "" if done.returncode == 0 else done.stdout + done.stderr


def _load(name: str) -> dict:
    workflow = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 (PyYAML) reads the key `on` as the boolean true
    workflow["on"] = workflow.pop(True)
    return workflow


def test_there_are_two_workflows():
    assert [p.name for p in WORKFLOW_FILES] == ["ci.yml", "release.yml"]


def test_zizmor_finds_nothing_in_the_workflows():
    findings, report = _zizmor(WORKFLOWS)
    assert not findings, report


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=[p.name for p in WORKFLOW_FILES])
def test_workflows_follow_github_schema(path):
    assert _schema_errors(path) == ""


BREAKAGES = {
    "unpinned action": ("release.yml", re.search(r"pypa/gh-action-pypi-publish@\S+", RELEASE)[0],
                        "pypa/gh-action-pypi-publish@release/v1", "unpinned-uses"),
    "head_ref in run": ("ci.yml", "run: bash .ci/run",
                        'run: echo "${{ github.head_ref }}" && bash .ci/run', "template-injection"),
    "ref_name in run": ("release.yml", 'gh release create "$TAG"',
                        'gh release create "${{ github.ref_name }}"', "template-injection"),
    "credentials kept": ("ci.yml", "        with:\n          persist-credentials: false\n", "",
                         "artipacked"),
    "default permissions": ("ci.yml", "permissions:\n  contents: read\n", "",
                            "excessive-permissions"),
    "typo in a job key": ("ci.yml", "    runs-on: ubuntu-latest", "    runs_on: ubuntu-latest",
                          "schema"),
    "typo in a trigger": ("ci.yml", "  pull_request:", "  pull_requests:", "schema"),
    "typo in a step key": ("release.yml", "      - uses: pypa/", "      - use: pypa/", "schema"),
}


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_each_lint_catches_a_broken_workflow(breakage, tmp_path):
    name, good, bad, expected = BREAKAGES[breakage]
    folder = tmp_path / ".github" / "workflows"
    shutil.copytree(WORKFLOWS, folder)
    text = (folder / name).read_text()
    assert text.count(good) == 1, f"{name} no longer contains {good!r}: update this breakage"
    (folder / name).write_text(text.replace(good, bad))
    if expected == "schema":
        assert name in _schema_errors(folder / name)
    else:
        findings, report = _zizmor(folder)
        assert expected in findings, report


def test_every_action_is_pinned_to_a_commit_with_its_version():
    for path in WORKFLOW_FILES:
        for line in re.findall(r"uses:.*", path.read_text()):
            assert re.fullmatch(r"uses: [\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+", line), \
                f"{path.name}: `{line}`: pin the action to a full commit SHA, `# vX.Y.Z` after it"


def test_ci_runs_the_readme_command_on_three_pythons():
    ci = _load("ci.yml")
    assert {"push", "pull_request", "workflow_dispatch"} <= set(ci["on"])
    assert ci["permissions"] == {"contents": "read"}
    (job,) = ci["jobs"].values()
    assert job["strategy"]["matrix"]["python-version"] == ["3.11", "3.12", "3.13"]
    runs = [step["run"] for step in job["steps"] if "run" in step]
    assert runs == ["bash .ci/run"], "the test command has one definition: .ci/run"
    assert all(step.get("with", {}).get("persist-credentials") is False
               for step in job["steps"] if step.get("uses", "").startswith("actions/checkout@"))


def test_release_publishes_tags_and_only_its_publish_job_gets_a_token():
    release = _load("release.yml")
    assert release["on"] == {"push": {"tags": ["v*"]}}
    assert release["permissions"] == {}
    jobs = release["jobs"]
    assert [name for name, job in jobs.items() if "id-token" in job.get("permissions", {})] \
        == ["publish"]
    assert jobs["publish"]["permissions"] == {"id-token": "write"}
    assert jobs["publish"]["environment"]["name"] == "pypi"
    assert jobs["build"]["needs"] == "test" and jobs["publish"]["needs"] == "build"
    assert jobs["release"]["needs"] == "publish"
    assert [step.get("run") for step in jobs["test"]["steps"] if "run" in step] == [
        "bash .ci/run"], "a release runs the tests first, exactly as CI does"
    assert any(step.get("uses", "").startswith("pypa/gh-action-pypi-publish@")
               for step in jobs["publish"]["steps"])
    build_runs = "\n".join(step.get("run", "") for step in jobs["build"]["steps"])
    assert "check_tag_version.py" in build_runs and "python -m build" in build_runs


def test_release_tag_must_match_the_package_version():
    version = handpose_utils.__version__
    good = subprocess.run([sys.executable, str(TAG_CHECK), f"v{version}"],
                          capture_output=True, text=True)
    assert good.returncode == 0, good.stderr
    bad = subprocess.run([sys.executable, str(TAG_CHECK), f"v{version}.post1"],
                         capture_output=True, text=True)
    assert bad.returncode == 1
    assert f"'v{version}.post1'" in bad.stderr and f"'{version}'" in bad.stderr
    assert "__init__.py" in bad.stderr and f"push v{version}" in bad.stderr


# The notebook's kernel is started by nbclient in the venv's python (the native kernelspec runs
# "python", which jupyter_client replaces by sys.executable); a last cell says where it imports
# the package from. conftest's execute_notebook sets smoke mode and the data and run folders.
RUN_NOTEBOOK = """
import sys
from pathlib import Path

import nbformat

tests, notebook, data, runs = sys.argv[1:]
sys.path.insert(0, tests)
from conftest import execute_notebook

nb = nbformat.read(notebook, as_version=4)
nb.cells.append(nbformat.v4.new_code_cell(
    "import sys, handpose_utils\\nprint(sys.executable)\\nprint(handpose_utils.__file__)"))
execute_notebook(nb, Path(notebook), Path(data), runs=Path(runs))
nbformat.write(nb, notebook)
"""


def _third_party_imports(wheel: zipfile.ZipFile) -> dict[str, str]:
    """Top-level modules imported anywhere in the wheel's code (functions included) that are
    neither the standard library nor the package itself, each with one file importing it."""
    found = {}
    for name in wheel.namelist():
        if not name.endswith(".py"):
            continue
        for node in ast.walk(ast.parse(wheel.read(name), filename=name)):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top not in sys.stdlib_module_names and top != "handpose_utils":
                    found.setdefault(top, name)
    return found


def _check_requires_dist(wheel: zipfile.ZipFile) -> None:
    """Every module the package imports comes with a dependency in the wheel's Requires-Dist."""
    metadata = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    message = email.parser.Parser().parsestr(wheel.read(metadata).decode())
    requires = {canonicalize_name(Requirement(line).name)
                for line in message.get_all("Requires-Dist", [])
                if "extra ==" not in line}
    installed = importlib.metadata.packages_distributions()
    for module, where in _third_party_imports(wheel).items():
        if module in OPTIONAL_IMPORTS:
            continue
        assert module in installed, f"{where} imports {module}, which no installed package provides"
        dist = canonicalize_name(installed[module][0])
        if module in VIA_DEPENDENCY:
            carrier = VIA_DEPENDENCY[module]
            carried = {canonicalize_name(Requirement(r).name)
                       for r in importlib.metadata.requires(carrier) or [] if "extra ==" not in r}
            assert carrier in requires and dist in carried, \
                f"{where} imports {module}: declare {dist} in pyproject's dependencies"
        else:
            assert dist in requires, \
                f"{where} imports {module}: declare {dist} in pyproject's dependencies"


@pytest.mark.notebook
def test_the_built_wheel_installs_and_runs_notebook_01_outside_the_repo(tmp_path):
    assert not tmp_path.is_relative_to(REPO)
    # The build reads pyproject.toml, its readme and the package: a copy of just those, so that
    # the checkout's own build leftovers (egg-info) take no part and nothing is written there.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "handpose_utils", source / "handpose_utils",
                    ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp_path / "dist"
    _run(sys.executable, "-m", "build", "--outdir", dist, source)
    version = handpose_utils.__version__
    wheel_path = dist / f"handpose_utils-{version}-py3-none-any.whl"
    sdist_path = dist / f"handpose_utils-{version}.tar.gz"
    assert sorted(dist.iterdir()) == [wheel_path, sdist_path]
    _run(sys.executable, "-m", "twine", "check", "--strict", wheel_path, sdist_path)

    package = {p.relative_to(REPO).as_posix() for p in (REPO / "handpose_utils").rglob("*.py")}
    with zipfile.ZipFile(wheel_path) as wheel:
        assert package <= set(wheel.namelist()), package - set(wheel.namelist())
        _check_requires_dist(wheel)
    with tarfile.open(sdist_path) as sdist:
        in_sdist = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    assert package <= in_sdist, package - in_sdist

    # The venv sees torch & co. in the system's site-packages (no 5 GB download), and the wheel
    # in its own, which comes first: the checkout's editable install is visible but not used.
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv)
    python = venv / "bin" / "python"
    _run(python, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", wheel_path)

    work = tmp_path / "work"
    work.mkdir()
    notebook = work / "01_data_prep.ipynb"
    shutil.copy2(REPO / "notebooks" / notebook.name, notebook)
    _run(python, "-c", RUN_NOTEBOOK, REPO / "tests", notebook, tmp_path / "data",
         tmp_path / "runs", cwd=work)
    last = nbformat.read(notebook, as_version=4).cells[-1]
    executable, imported = "".join(o.get("text", "") for o in last.outputs).split()
    assert Path(executable).parent == venv / "bin"
    assert Path(imported).is_relative_to(venv), f"the kernel imported {imported}, not the wheel"
