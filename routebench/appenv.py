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

import hashlib
import json
import os
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


def injected_path() -> Path:
    """A directory holding only a link to routebench's package: what the app's interpreter gets on
    its path (never the checkout itself, whose ``tests`` or ``analysis`` could shadow the app's own)."""
    key = hashlib.sha256(str(REPO).encode()).hexdigest()[:12]
    where = Path(tempfile.gettempdir()) / f"routebench-inject-{os.getuid()}-{key}"
    link = where / "routebench"
    if not link.is_symlink():
        where.mkdir(parents=True, exist_ok=True)
        tmp = where / f".routebench-{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(REPO / "routebench", target_is_directory=True)
        tmp.replace(link)  # atomic: two runs starting at once agree
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
    routebench gave it (--postgres). Raises subprocess.TimeoutExpired past ``timeout_s``."""
    env = environ(python, {k: v for k, v in os.environ.items() if not k.startswith("ROUTEBENCH_")})
    if database_url:
        env["DATABASE_URL"] = database_url
    return subprocess.run(
        command,
        shell=isinstance(command, str),
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        stdin=subprocess.DEVNULL,
    )


def choose(python: str | None, app_dir: Path, environ: Mapping[str, str] | None = None) -> tuple[Path, str]:
    """The interpreter to serve the app with, and why that one."""
    if environ is None:
        environ = os.environ
    if python:
        return Path(python).expanduser().absolute(), "--python"
    for name in VENV_DIRS:
        candidate = app_dir / name / "bin" / "python"
        if candidate.exists():
            return candidate.absolute(), f"APP_DIR/{name}"
    active = environ.get("VIRTUAL_ENV")
    if active and (Path(active) / "bin" / "python").exists() and Path(active).resolve() != Path(sys.prefix).resolve():
        return Path(active) / "bin" / "python", "VIRTUAL_ENV"
    return Path(sys.executable), "routebench's own"


def probe(python: Path, source: str) -> AppEnv:
    """Ask ``python`` what it is and has; an AppEnvError for one that cannot serve an app."""
    shown = f"{'--python ' if source == '--python' else ''}{python}"
    if not python.exists():
        raise AppEnvError(f"{shown}: no such interpreter")
    env = environ(python, {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")})
    try:
        done = subprocess.run(
            [str(python), "-m", "routebench.serverside.environment"],
            env=env,
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
        info = json.loads(done.stdout)
    except (OSError, subprocess.TimeoutExpired, ValueError) as exc:
        raise AppEnvError(f"{shown}: not a Python interpreter that runs ({type(exc).__name__})") from None
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


def resolve(python: str | None, app_dir: Path) -> AppEnv:
    """The interpreter that serves your app (:func:`choose`), checked (:func:`probe`)."""
    return probe(*choose(python, app_dir))
