"""The release guard: the pushed tag must be "v" + handpose_utils.__version__.

    python .github/scripts/check_tag_version.py TAG

The version is read from handpose_utils/__init__.py as text (the release job installs no torch,
so the package is not imported); setuptools reads the same line for the wheel's version.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

INIT = Path(__file__).resolve().parents[2] / "handpose_utils" / "__init__.py"


def package_version(init: Path = INIT) -> str:
    """The string assigned to ``__version__`` at the top level of ``init``."""
    tree = ast.parse(init.read_text(encoding="utf-8"), filename=str(init))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(target, ast.Name) and target.id == "__version__" for target in node.targets):
            return ast.literal_eval(node.value)
    raise SystemExit(f'{init}: no top-level line `__version__ = "X.Y.Z"`; the release needs one')


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise SystemExit(f"usage: python {argv[0]} TAG  (the pushed tag, e.g. v0.1.0)")
    tag, version = argv[1], package_version()
    if tag != f"v{version}":
        raise SystemExit(
            f"the tag {tag!r} does not match handpose_utils.__version__ = {version!r} in {INIT}: "
            f"delete the tag and push v{version}, or set __version__ to the release's version "
            "(then `python -m handpose_utils.export` writes it into the notebooks), commit, "
            "and tag that commit")
    print(f"the tag {tag} matches handpose_utils.__version__")


if __name__ == "__main__":
    main(sys.argv)
