"""Your app in its own environment, end to end: apps whose virtual environments routebench's own
could not hold (another FastAPI, pydantic 1, no Gunicorn), built from PyPI once and kept, each served
by its own interpreter, probed under load and given verdicts; and what cannot serve, one line."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import assert_one_line_error, routebench_cli

pytestmark = pytest.mark.stack

APPS = Path(__file__).resolve().parent / "app_envs"
# Where the environments are kept between runs of the suite (their packages come from PyPI).
CACHE = Path(os.environ.get("ROUTEBENCH_TEST_ENVS", Path.home() / ".cache" / "routebench" / "test-envs"))


def python_312() -> str | None:
    """A Python 3.12 that runs on this machine (this machine kind's pyenv has one), or None. A pyenv
    shim on PATH may answer for a version it does not select: each candidate is asked."""
    candidates = [*sorted(Path.home().glob(".pyenv/versions/3.12*/bin/python3.12")), shutil.which("python3.12")]
    for exe in filter(None, candidates):
        check = [str(exe), "-c", "import sys; assert sys.version_info[:2] == (3, 12)"]
        if subprocess.run(check, capture_output=True).returncode == 0:
            return str(exe)
    return None


PY312 = python_312()
ENVS = {
    # Python 3.12 (its code uses PEP 695), a recent FastAPI and Uvicorn, no Gunicorn: Uvicorn's --workers.
    "tasks": ["fastapi>=0.115,<0.130", "uvicorn>=0.34,<0.40"],
    # What a pydantic 1 app pins: FastAPI 0.99, Uvicorn 0.29 (its own Gunicorn worker class), Gunicorn 21.
    "inventory": [
        "fastapi==0.99.1",
        "pydantic>=1.10,<2",
        "uvicorn==0.29.0",
        "gunicorn==21.2.0",
        "psycopg[binary,pool]>=3.1,<3.2",
    ],
}
PYTHONS = {"tasks": PY312}  # the interpreter each environment is made with (default: routebench's)
EXPERIMENT = """
name = "app-env-test"
duration_s = 1.5
warmup_s = 0.5
server_workers = [2]
threadpool_tokens = 8
locust_workers = 0
calibrate = false
[[groups]]
name = "alone"
styles = ["*"]
users = [1, 10]
"""


def build(name: str) -> Path:
    """The app's virtual environment (made once: a stamp marks one whose install finished)."""
    reqs = ENVS[name]
    key = hashlib.sha256(json.dumps([PYTHONS.get(name) or sys.version, reqs]).encode()).hexdigest()[:12]
    where = CACHE / f"{name}-{key}"
    stamp = where / ".built"
    if not stamp.exists():
        subprocess.run(["rm", "-rf", str(where)], check=True)
        subprocess.run([PYTHONS.get(name) or sys.executable, "-m", "venv", str(where)], check=True)
        pip = [str(where / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, *reqs], check=True, timeout=600)
        stamp.touch()
    return where


@pytest.fixture(scope="session")
def envs() -> dict[str, Path]:
    """Both environments, built side by side (pip waits on the registry as much as on a core)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(ENVS)) as pool:
        return dict(zip(ENVS, pool.map(build, ENVS), strict=True))


@pytest.fixture
def tasks_dir(envs: dict[str, Path], tmp_path: Path) -> Path:
    if PY312 is None:
        pytest.skip("no Python 3.12 on this machine for the tasks app (this machine kind's pyenv has one)")
    """The tasks app with its environment (Python 3.12) at APP_DIR/.venv, and the command its
    lifespan runs in that environment's bin/ only."""
    app_dir = tmp_path / "tasks"
    app_dir.mkdir()
    (app_dir / "tasks.py").write_text((APPS / "tasks" / "tasks.py").read_text())
    (app_dir / ".venv").symlink_to(envs["tasks"], target_is_directory=True)
    migrate = envs["tasks"] / "bin" / "tasks-migrate"
    migrate.write_text("#!/bin/sh\nexit 0\n")
    migrate.chmod(0o755)
    return app_dir


def line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def probe(tmp: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict, dict]:
    (tmp / "exp.toml").write_text(EXPERIMENT)
    done = routebench_cli(
        "run", "exp.toml", *args, "--results", "results", "--reports", "reports", timeout=600, cwd=tmp
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = (tmp / "results").iterdir()
    findings = json.loads((run_dir / "findings.json").read_text())
    # The report names the interpreter that served the app, as run.json does.
    page = (tmp / "reports" / run_dir.name / "index.html").read_text()
    env = json.loads((run_dir / "run.json").read_text())["app_environment"]
    assert f"in its own environment: <code>{env['python']}</code> ({env['source']}; Python" in page
    return done, json.loads((run_dir / "run.json").read_text()), findings


def verdicts(findings: dict) -> dict[str, str]:
    return {r["route"]: r["verdict"] for r in findings["routes"]}


def sites(findings: dict, route: str) -> list[str]:
    found = next(r for r in findings["routes"] if r["route"] == route)
    return [s["site"] for s in found["evidence"].get("blocking_sites", [])]


def test_a_recent_fastapi_without_gunicorn_behind_a_token_in_a_mounted_api(tasks_dir: Path, tmp_path: Path) -> None:
    """Found at APP_DIR/.venv; served by that environment's Uvicorn --workers (no Gunicorn there);
    its lifespan finds its command on its own PATH; the mounted API's routes are found under their
    prefix and loaded with the token; the blocking one is named at its line."""
    done, state, findings = probe(
        tmp_path, "--app", "tasks:app", "--app-dir", str(tasks_dir), "--header", "Authorization: Bearer secret"
    )
    env = state["app_environment"]
    assert env["source"] == "APP_DIR/.venv" and env["server"] == "uvicorn"
    assert env["python_version"].startswith("3.12.")  # not routebench's own 3.11
    assert env["python"] == str(tasks_dir / ".venv" / "bin" / "python")
    assert env["packages"]["gunicorn"] is None and env["packages"]["fastapi"].startswith("0.1")
    assert "served by Uvicorn" in done.stderr and "--workers" in done.stderr
    assert {c["worker_class"] for c in state["cells"]} == {"uvicorn"}
    assert verdicts(findings) == {"/api/v1/tasks": "fine", "/api/v1/tasks/export": "blocks-event-loop"}
    blocking = line_of(APPS / "tasks" / "tasks.py", "time.sleep(")
    assert sites(findings, "/api/v1/tasks/export")[0] == f"tasks.py:{blocking} export"
    # Its environment (APP_DIR/.venv, here a link to the cache) is a library, not the app's code.
    assert not [s for s in sites(findings, "/api/v1/tasks/export") if "site-packages" in s]
    assert all(c["status"] == "ok" for c in state["cells"])
    # The token is written nowhere in the run directory: its header is named for the command that
    # reproduces the run, its value handed to the Locust processes in their environment.
    run_dir = next((tmp_path / "results").iterdir())
    assert not [f for f in run_dir.rglob("*") if f.is_file() and b"Bearer secret" in f.read_bytes()]
    assert state["reproduce"]["command"].endswith(" ARGS=" + shlex.quote("--header 'Authorization: ...'"))


def test_a_pydantic_1_app_on_its_own_gunicorn_with_postgres_and_a_migration(
    envs: dict[str, Path], tmp_path: Path
) -> None:
    """--python names the interpreter; the app's own Gunicorn 21 serves it with Uvicorn 0.29's own
    worker class; --postgres gives it an empty database and --setup migrates and seeds it before its
    routes are read; the async def route that blocks on the database is named at its line."""
    python = envs["inventory"] / "bin" / "python"
    args = ["--app", "inventory:app", "--app-dir", str(APPS / "inventory"), "--python", str(python)]
    done, state, findings = probe(tmp_path, *args, "--postgres", "--setup", "python migrate.py")
    env = state["app_environment"]
    assert env["source"] == "--python" and env["server"] == "gunicorn"
    assert env["packages"]["pydantic"].startswith("1.") and env["packages"]["fastapi"] == "0.99.1"
    assert "DATABASE_URL=postgresql://" in done.stderr and "--setup: python migrate.py (in" in done.stderr
    assert verdicts(findings)["/items/count"] == "fine"
    assert verdicts(findings)["/items/audit"] == "blocks-event-loop"
    # The innermost line of the app's own code while the loop was held: the query, or the sleep.
    lines = {line_of(APPS / "inventory" / "inventory.py", t) for t in ("fetchone()", "time.sleep(")}
    named = {f"inventory.py:{n} {f}" for n in lines for f in ("count_items", "items_audit")}
    assert sites(findings, "/items/audit")[0] in named
    assert f"PYTHON_APP={python} " in state["reproduce"]["command"]
    assert state["reproduce"]["command"].endswith(" ARGS=" + shlex.quote("--postgres --setup 'python migrate.py'"))


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--python", "/nowhere/python"], "--python /nowhere/python: no such interpreter"),
        (["--setup", "echo migrating; exit 3"], "--setup 'echo migrating; exit 3' failed (exit 3): migrating"),
        ([], "every GET route needs auth (2 declare OpenAPI security): give --header 'Authorization: ...'"),
    ],
)
def test_what_cannot_serve_your_app_is_one_line_and_nothing_written(
    tasks_dir: Path, tmp_path: Path, extra: list[str], words: str
) -> None:
    done = routebench_cli(
        "run", "--app", "tasks:app", "--app-dir", str(tasks_dir), *extra, "--results", str(tmp_path / "r"), timeout=120
    )
    assert_one_line_error(done, words)
    assert not (tmp_path / "r").exists()
