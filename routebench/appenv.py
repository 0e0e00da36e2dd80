"""Which interpreter serves your app, and what it has: the one owner of your app's environment.

Your app runs with its own Python and its own packages; routebench's Locust, pandas and analysis stay
in routebench's environment. The interpreter is, in this order: ``--python PATH`` (``PYTHON_APP=``
in make), a virtual environment at ``APP_DIR/.venv`` or ``APP_DIR/venv``, the active
``VIRTUAL_ENV``, else routebench's own. Its server is its own Gunicorn with a Uvicorn worker class
when both are installed there, else Uvicorn's own ``--workers`` supervisor, else a one-line error.
routebench's server side (:mod:`routebench.serverside`, standard library only) is put on that
interpreter's path from a directory that holds nothing but the ``routebench`` package, and the
environment's ``bin/`` goes first on PATH for the app's processes (a startup that runs ``alembic``
finds it).
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
MIN_PYTHON = (3, 9)
PROBE_TIMEOUT_S = 60.0
VENV_DIRS = (".venv", "venv")


class AppEnvError(RuntimeError):
    """An interpreter that cannot serve your app: said in one line (exit 2)."""


@functools.cache
def injected_path() -> Path:
    """A directory holding only a link to routebench's package: what the app's interpreter gets on
    its path (never the checkout itself, whose ``tests`` or ``analysis`` could shadow the app's own).
    Made afresh for this process, private to its user (mkdtemp's 0700), removed at its exit."""
    where = Path(tempfile.mkdtemp(prefix="routebench-inject-"))
    (where / "routebench").symlink_to(REPO / "routebench", target_is_directory=True)
    atexit.register(shutil.rmtree, where, True)
    return where


@dataclass(frozen=True)
class AppEnv:
    python: Path  # as given or found (a virtual environment's bin/python, not what it links to)
    source: str  # why this one: "--python", "APP_DIR/.venv", "VIRTUAL_ENV", "routebench's own"
    version: str
    packages: dict[str, str | None] = field(default_factory=dict)

    @property
    def own(self) -> bool:
        return self.source == "routebench's own"

    @property
    def server(self) -> str:
        """``gunicorn`` (its own Gunicorn and a Uvicorn worker class) or ``uvicorn`` (its --workers)."""
        p = self.packages
        return "gunicorn" if p.get("gunicorn") and (p.get("uvicorn-worker") or _has_uvicorn_workers(p)) else "uvicorn"

    def said(self) -> str:
        """One line for the terminal: which interpreter, its Python and packages, and its server."""
        p = self.packages
        libs = ", ".join(f"{name} {p[key]}" for name, key in LIBS if p.get(key))
        server = (
            f"Gunicorn {p.get('gunicorn')} with Uvicorn {p.get('uvicorn')}'s worker"
            if self.server == "gunicorn"
            else f"Uvicorn {p.get('uvicorn')} --workers (no Gunicorn with a Uvicorn worker there)"
        )
        return f"your app runs in {self.python} ({self.source}): Python {self.version}; {libs}; served by {server}"

    def record(self) -> dict[str, Any]:
        """For run.json."""
        return {
            "python": str(self.python),
            "source": self.source,
            "python_version": self.version,
            "packages": dict(self.packages),
            "server": self.server,
        }


LIBS = (("FastAPI", "fastapi"), ("Starlette", "starlette"), ("pydantic", "pydantic"))


def environ(python: Path, base: dict[str, str]) -> dict[str, str]:
    """``base`` for a process of the app's interpreter ``python``: routebench's server side
    importable, and the environment's bin/ first on PATH (its VIRTUAL_ENV set, for a virtual one)."""
    env = dict(base)
    env["PYTHONPATH"] = os.pathsep.join([str(injected_path()), *filter(None, [base.get("PYTHONPATH")])])
    env["PATH"] = os.pathsep.join([str(python.parent), *filter(None, [base.get("PATH")])])
    env.pop("VIRTUAL_ENV", None)  # another environment's, active where routebench was started
    if (python.parent.parent / "pyvenv.cfg").is_file():
        env["VIRTUAL_ENV"] = str(python.parent.parent)
    return env


def _has_uvicorn_workers(packages: dict[str, str | None]) -> bool:
    """Uvicorn before 0.30 shipped Gunicorn's worker class itself (uvicorn.workers)."""
    version = packages.get("uvicorn") or ""
    try:
        major, minor = (int(x) for x in version.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) < (0, 30)


def run_in(
    python: Path, command: str | list[str], cwd: Path, timeout_s: float, database_url: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``command`` (a shell line, or argv) in the app's directory with its environment: routebench's
    settings left out, the server side importable, its bin/ first on PATH, and the DATABASE_URL
    routebench gave it (--postgres). Its output, stdout and stderr in the order written, is the
    result's ``stdout``. In a session of its own: past ``timeout_s`` the whole of it is killed
    (a shell's children too), then subprocess.TimeoutExpired is raised."""
    env = environ(python, {k: v for k, v in os.environ.items() if not k.startswith("ROUTEBENCH_")})
    if database_url:
        env["DATABASE_URL"] = database_url
    with subprocess.Popen(
        command,
        shell=isinstance(command, str),
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    ) as proc:
        try:
            out, _ = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
    return subprocess.CompletedProcess(command, proc.returncode, out, None)


def choose(python: str | None, app_dir: Path, environ: Mapping[str, str] | None = None) -> tuple[Path, str]:
    """The interpreter to serve the app with, and why that one."""
    if environ is None:
        environ = os.environ
    if python:
        found = shutil.which(python) if os.sep not in python else None  # a bare name: on PATH
        return Path(found or python).expanduser().absolute(), "--python"
    for name in VENV_DIRS:
        candidate = app_dir / name / "bin" / "python"
        if candidate.exists():
            return candidate.absolute(), f"APP_DIR/{name}"
        if (app_dir / name).exists() or (app_dir / name).is_symlink():
            raise AppEnvError(f"{app_dir / name}: a virtual environment without a working bin/python")
    active = environ.get("VIRTUAL_ENV")
    if active and (Path(active) / "bin" / "python").exists() and Path(active).resolve() != Path(sys.prefix).resolve():
        return Path(active) / "bin" / "python", "VIRTUAL_ENV"
    return Path(sys.executable), "routebench's own"


def probe(python: Path, source: str, app_dir: Path) -> AppEnv:
    """Ask ``python`` what it is and has; an AppEnvError for one that cannot serve an app."""
    shown = f"{'--python ' if source == '--python' else ''}{python}"
    if not python.exists():
        raise AppEnvError(f"{shown}: no such interpreter")
    output = ""
    try:
        # As the server will see it (the same environment), in the app's directory.
        output = run_in(
            python, [str(python), "-m", "routebench.serverside.environment"], app_dir, PROBE_TIMEOUT_S
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        pass
    info = _last_json(output)
    if info is None:
        said = [line.strip() for line in output.splitlines() if line.strip()][-1:] or ["no answer"]
        raise AppEnvError(f"{shown}: not a Python interpreter that runs ({said[0]})")
    version = tuple(info["version_info"])
    if version < MIN_PYTHON:
        raise AppEnvError(
            f"{shown} is Python {info['python']}; routebench serves apps on Python "
            f"{'.'.join(map(str, MIN_PYTHON))} or later"
        )
    packages = info["packages"]
    if not (packages.get("fastapi") or packages.get("starlette")):
        raise AppEnvError(
            f"{shown} ({source}) has neither FastAPI nor Starlette: install your app's requirements there"
        )
    if not packages.get("uvicorn"):
        raise AppEnvError(
            f"{shown} ({source}) has no Uvicorn to serve your app: install uvicorn there "
            "(and gunicorn with uvicorn-worker for Gunicorn's workers)"
        )
    return AppEnv(python, source, str(info["python"]), packages)


def _last_json(output: str) -> dict[str, Any] | None:
    """The last JSON object line of ``output`` (a .pth file of the environment may print before it)."""
    for line in reversed(output.splitlines()):
        if line.startswith("{"):
            try:
                found = json.loads(line)
            except ValueError:
                return None
            return found if isinstance(found, dict) else None
    return None


def resolve(python: str | None, app_dir: Path) -> AppEnv:
    """The interpreter that serves your app (:func:`choose`), checked (:func:`probe`)."""
    for shadow in (app_dir / "routebench.py", app_dir / "routebench"):
        if shadow.exists():
            raise AppEnvError(
                f"{shadow}: your app's own routebench module would hide routebench's server side "
                "(the app's directory comes first on its path): rename it"
            )
    chosen, source = choose(python, app_dir)
    if source == "--python" and chosen.exists() and _same_environment(chosen, Path(sys.executable)):
        raise AppEnvError(
            f"--python {python}: that is routebench's own interpreter (a relative path is taken from where "
            "routebench runs); leave --python out to use it, or give your app's"
        )
    return probe(chosen, source, app_dir)


def _same_environment(a: Path, b: Path) -> bool:
    """Two interpreter paths of one environment (a virtual environment's python links elsewhere)."""
    return a.absolute().parent.parent == b.absolute().parent.parent
