"""The packages form layers, each importing only those below it: the app serves, the analysis
computes (and owns the run directory's format), the Locust side loads, the runner orchestrates.

    target_app  <  analysis  <  locustfiles  <  routebench

A cycle between packages makes every one of them load the others; a Locust process then pays for
pandas, and the app under test for the runner. Read from the source (``ast``), so a lazy import
inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ["target_app", "analysis", "locustfiles", "routebench"]


def imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & set(LAYERS)


def test_each_package_imports_only_the_layers_below_it() -> None:
    upward = []
    for rank, package in enumerate(LAYERS):
        above = set(LAYERS[rank + 1 :])
        for path in sorted((ROOT / package).rglob("*.py")):
            for name in sorted(imported_packages(path) & above):
                upward.append(f"{path.relative_to(ROOT)} imports {name}")
    assert upward == []


def test_the_rule_sees_an_upward_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from routebench.runner import Runner\n")
    assert imported_packages(module) == {"routebench"}
