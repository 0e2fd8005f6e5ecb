"""Packaging: `make demo` installs only what the demo needs; every imported package is declared."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions

import pytest
from tests.deploy._paths import PYPROJECT, ROOT

SRC = ROOT / "src" / "deploy_fetcher"


def _make_dry_run(target: str, tmp_path) -> list[str]:
    """The commands `make TARGET` would run for a fresh venv (make -n: nothing is run)."""
    result = subprocess.run(
        # --no-print-directory: under `make test` (CI) this make is a sub-make, which would
        # otherwise print "make[1]: Entering/Leaving directory" lines among the commands.
        ["make", "-n", "--no-print-directory", target, f"VENV={tmp_path / 'venv'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.splitlines()


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_demo_installs_the_package_without_the_dev_tools(tmp_path):
    """`make demo` on a fresh clone installs `-e .` and never the dev extra."""
    commands = _make_dry_run("demo", tmp_path)
    installs = [c for c in commands if "pip install" in c and "--upgrade pip" not in c]
    assert [f"{tmp_path / 'venv'}/bin/python -m pip install --quiet -e ."] == installs
    assert commands[-1].rstrip().endswith("/bin/fetcher demo")


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_test_installs_the_dev_extra(tmp_path):
    """`make test` installs the dev extra on top of the runtime install."""
    commands = _make_dry_run("test", tmp_path)
    assert any("pip install --quiet -e '.[dev]'" in c for c in commands)


def _imported_top_levels() -> set[str]:
    """Top-level names of every module imported anywhere in the package (inside functions too)."""
    names: set[str] = set()
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_imported_distribution_is_declared():
    """Each third-party package the code imports is declared, not a lucky transitive.

    Declared means a dependency, or in an extra the package offers its users (``postgres``); the
    ``dev`` extra does not count: nothing in the package may need the test tools.
    """
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    extras = project.get("optional-dependencies", {})
    requirements = [
        *project["dependencies"],
        *(r for name, group in extras.items() if name != "dev" for r in group),
    ]
    declared = {
        _normalise(re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0])
        for requirement in requirements
    }
    owners = packages_distributions()
    third_party = sorted(
        name
        for name in _imported_top_levels()
        if name not in sys.stdlib_module_names and name not in {"deploy_fetcher", "__future__"}
    )
    undeclared = {
        name: owners.get(name, ["?"])
        for name in third_party
        if not {_normalise(d) for d in owners.get(name, [])} & declared
    }
    assert {} == undeclared
