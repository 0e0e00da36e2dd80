"""The packages form layers, each importing only those below it: the app serves, the analysis
computes (and owns the run directory's format), the Locust side loads, the runner orchestrates.

    routebench.serverside  <  target_app  <  analysis  <  locustfiles  <  routebench

routebench's server side (the instruments inside the server's workers, run in your app's own
interpreter) is the bottom layer: it imports none of the others, nor anything but the standard
library (tests/test_serverside.py). A cycle between packages makes every one of them load the
others; a Locust process then pays for pandas, and the app under test for the runner. Read from the
source (``ast``), so a lazy import inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ["routebench.serverside", "target_app", "analysis", "locustfiles", "routebench"]


def layer_of(module: str) -> str:
    """The layer a dotted module name belongs to (its package, or routebench's server side)."""
    return "routebench.serverside" if module.startswith("routebench.serverside") else module.split(".")[0]


def imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(layer_of(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(layer_of(node.module))
    return found & set(LAYERS)


def files_of(layer: str) -> list[Path]:
    files = sorted((ROOT / layer.replace(".", "/")).rglob("*.py"))
    if layer == "routebench":
        files = [f for f in files if "serverside" not in f.relative_to(ROOT).parts]
    return files


def test_each_package_imports_only_the_layers_below_it() -> None:
    upward = []
    for rank, package in enumerate(LAYERS):
        above = set(LAYERS[rank + 1 :])
        for path in files_of(package):
            for name in sorted(imported_packages(path) & above):
                upward.append(f"{path.relative_to(ROOT)} imports {name}")
    assert upward == []


def test_the_rule_sees_an_upward_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from routebench.runner import Runner\n")
    assert imported_packages(module) == {"routebench"}


def test_the_server_side_is_a_layer_of_its_own() -> None:
    module = ROOT / "routebench" / "serverside" / "gunicorn_conf.py"
    assert imported_packages(module) == {"routebench.serverside"}
    assert "serverside" not in {p.parent.name for p in files_of("routebench")}
