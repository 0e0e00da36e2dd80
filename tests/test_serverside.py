"""routebench's server side runs in your app's interpreter: the standard library alone, Python 3.9
and later, and which interpreter serves your app, chosen and checked before anything is written."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from routebench import appenv
from routebench.appenv import AppEnvError

REPO = Path(__file__).resolve().parent.parent
SERVER_SIDE = REPO / "routebench" / "serverside"
NOT_STDLIB = ("fastapi", "starlette", "anyio", "pydantic", "uvicorn", "psutil", "target_app", "analysis", "locustfiles")


def test_the_server_side_imports_with_the_standard_library_alone() -> None:
    """Without site-packages (``python -S``) and with only the injected directory on the path, every
    module the app's interpreter runs imports, and none of them pulls in a package."""
    modules = "harness describe environment telemetry stalls lifeline settings".split()
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module('routebench.serverside.' + m)\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({NOT_STDLIB!r})))\n"
        "print(sys.modules['routebench'].__path__[0])\n"
    )
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(appenv.injected_path())}
    done = subprocess.run([sys.executable, "-S", "-c", code], env=env, capture_output=True, text=True, cwd="/")
    assert done.returncode == 0, done.stderr
    imported, where = done.stdout.splitlines()
    assert imported == "[]"
    assert Path(where).parent == appenv.injected_path()  # from the injected directory, not an install


def test_the_server_side_needs_no_python_newer_than_3_9(tmp_path: Path) -> None:
    """vermin reads every module for the language and library features it uses; the same check
    fails on code that needs 3.10 (pattern matching, zip's strict)."""
    vermin = [
        str(Path(sys.executable).with_name("vermin")),
        "-t=3.9-",
        "--violations",
        "--no-tips",
        "--no-parse-comments",
    ]
    done = subprocess.run([*vermin, str(SERVER_SIDE)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    newer = tmp_path / "newer.py"
    newer.write_text("def f(x):\n    match x:\n        case 1:\n            return zip([1], [2], strict=True)\n")
    assert subprocess.run([*vermin, str(newer)], capture_output=True).returncode != 0


def test_the_interpreter_is_chosen_in_the_documented_order(tmp_path: Path) -> None:
    app_dir = tmp_path / "app"
    (app_dir / "venv" / "bin").mkdir(parents=True)
    (app_dir / "venv" / "bin" / "python").touch()
    active = tmp_path / "active"
    (active / "bin").mkdir(parents=True)
    (active / "bin" / "python").touch()
    given = tmp_path / "py"
    assert appenv.choose(str(given), app_dir, {"VIRTUAL_ENV": str(active)}) == (given, "--python")
    assert appenv.choose(None, app_dir, {"VIRTUAL_ENV": str(active)}) == (
        app_dir / "venv" / "bin" / "python",
        "APP_DIR/venv",
    )
    (app_dir / ".venv" / "bin").mkdir(parents=True)
    (app_dir / ".venv" / "bin" / "python").touch()
    assert appenv.choose(None, app_dir, {})[1] == "APP_DIR/.venv"  # .venv before venv
    bare = tmp_path / "bare"
    bare.mkdir()
    assert appenv.choose(None, bare, {"VIRTUAL_ENV": str(active)}) == (active / "bin" / "python", "VIRTUAL_ENV")
    assert appenv.choose(None, bare, {}) == (Path(sys.executable), "routebench's own")


def test_routebench_s_own_interpreter_can_serve_with_gunicorn(tmp_path: Path) -> None:
    env = appenv.resolve(None, tmp_path)
    assert env.own and env.server == "gunicorn"
    assert env.packages["fastapi"] and env.packages["uvicorn"]
    assert env.version == ".".join(map(str, sys.version_info[:3]))
    assert "served by Gunicorn" in env.said()


def test_an_interpreter_that_cannot_serve_an_app_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(AppEnvError, match=r"^--python /nowhere/python: no such interpreter$"):
        appenv.resolve("/nowhere/python", tmp_path)
    # A real environment with nothing installed in it.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / ".venv")], check=True)
    with pytest.raises(AppEnvError) as err:
        appenv.resolve(None, tmp_path)
    assert "(APP_DIR/.venv) has neither FastAPI nor Starlette: install your app's requirements there" in str(err.value)
    assert "\n" not in str(err.value)
    # What is not a Python at all.
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho not python\n")
    fake.chmod(0o755)
    with pytest.raises(AppEnvError, match="not a Python interpreter that runs"):
        appenv.resolve(str(fake), tmp_path)


def test_the_app_s_processes_get_its_bin_first_and_the_server_side_on_their_path(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "env")], check=True)
    python = tmp_path / "env" / "bin" / "python"
    env = appenv.environ(python, {"PATH": "/usr/bin", "PYTHONPATH": "/mine"})
    assert env["PATH"].split(os.pathsep) == [str(python.parent), "/usr/bin"]
    assert env["PYTHONPATH"].split(os.pathsep) == [str(appenv.injected_path()), "/mine"]
    assert env["VIRTUAL_ENV"] == str(tmp_path / "env")


def test_the_injected_directory_is_this_process_s_own_and_holds_only_routebench() -> None:
    """Made afresh (0700, this user's), so no one else can put a routebench of their own on the
    app's path; it holds the one link, to this checkout's package."""
    where = appenv.injected_path()
    assert where.stat().st_uid == os.getuid() and where.stat().st_mode & 0o777 == 0o700
    assert [p.name for p in where.iterdir()] == ["routebench"]
    assert (where / "routebench").resolve() == SERVER_SIDE.parent


def test_what_would_pick_the_wrong_interpreter_is_one_line(tmp_path: Path) -> None:
    """An APP_DIR with a routebench of its own would hide the server side; a broken .venv would
    fall back to routebench's own without a word; --python naming routebench's own interpreter
    (a relative path taken from where routebench runs) would measure the app in the wrong one."""
    shadowed = tmp_path / "shadowed"
    shadowed.mkdir()
    (shadowed / "routebench.py").write_text("")
    with pytest.raises(AppEnvError, match="routebench.py: your app's own routebench module would hide"):
        appenv.resolve(None, shadowed)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / ".venv").symlink_to(tmp_path / "gone")
    with pytest.raises(AppEnvError, match=r"\.venv: a virtual environment without a working bin/python"):
        appenv.resolve(None, broken)
    with pytest.raises(AppEnvError, match="that is routebench's own interpreter"):
        appenv.resolve(sys.executable, tmp_path)


def test_a_command_past_its_time_is_stopped_with_its_children(tmp_path: Path) -> None:
    """A setup command's shell and what it started are one session: past the timeout all of it
    goes, none is left running."""
    marker = tmp_path / "child.pid"
    with pytest.raises(subprocess.TimeoutExpired):
        appenv.run_in(Path(sys.executable), f"sleep 60 & echo $! > {marker}; wait", tmp_path, 1.0)
    pid = int(marker.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.05)
    state = Path(f"/proc/{pid}/stat").read_text().split()[2] if Path(f"/proc/{pid}").exists() else "gone"
    assert state in ("gone", "Z")
    # Its output, stdout and stderr in the order written.
    done = appenv.run_in(Path(sys.executable), "echo one; echo two >&2; echo three", tmp_path, 10.0)
    assert done.stdout.split() == ["one", "two", "three"]
