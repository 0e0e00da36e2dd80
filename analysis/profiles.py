"""Where the server's CPU went in a cell: py-spy's collapsed stacks (routebench.profiler), summed
over the cell's workers, and each sample put in a category by the frame it was running in (its
innermost frame, the one spending the CPU):

- ``server code``: the application's own modules (target_app's routes, work, resources);
- ``framework``: FastAPI, Starlette, AnyIO, Pydantic, Uvicorn, Gunicorn and their parsers;
- ``I/O libraries``: asyncio, selectors and sockets, asyncpg, psycopg, httpx and httpcore;
- ``routebench instruments``: the telemetry sampler and the stall detector;
- ``other``: everything else (the interpreter's standard library, json, logging...).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from analysis.rundir import PROFILE_GLOB

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>.*):(?P<line>\d+)\)$")
CATEGORIES = ("server code", "framework", "I/O libraries", "routebench instruments", "other")
FRAMEWORK = (
    "fastapi",
    "starlette",
    "anyio",
    "pydantic",
    "pydantic_core",
    "uvicorn",
    "uvicorn_worker",
    "gunicorn",
    "h11",
    "httptools",
    "uvloop",
    "sniffio",
    "click",
    "annotated_types",
    "typing_extensions",
)
IO = ("asyncpg", "psycopg", "psycopg_pool", "psycopg_binary", "httpx", "httpcore", "h2", "certifi", "idna")
IO_STDLIB = ("asyncio/", "selectors.py", "socket.py", "ssl.py", "concurrent/")
INSTRUMENTS = ("routebench/serverside/telemetry.py", "routebench/serverside/stalls.py")

Stacks = Counter[tuple[str, ...]]
# py-spy counts a thread parked in a timed wait (a threadpool thread, a sampler) as active: those
# samples spend no CPU and are left out.
WAITING = (("threading.py", "Condition.wait"), ("threading.py", "Event.wait"), ("selectors.py", "select"))


def waiting(frame: str) -> bool:
    m = FRAME.match(frame)
    return bool(m) and any(m["file"].endswith(f) and m["func"].endswith(fn) for f, fn in WAITING)  # type: ignore[index]


def busy(stacks: Stacks) -> Stacks:
    """The samples that were spending CPU: those whose innermost frame is not a wait."""
    return Counter({s: n for s, n in stacks.items() if s and not waiting(s[-1])})


def read(directory: Path) -> Stacks:
    """Every worker's collapsed stacks in ``directory`` (a cell's profile/, one file a worker:
    analysis.rundir.profile_file), summed."""
    stacks: Stacks = Counter()
    for path in sorted(directory.glob(PROFILE_GLOB)):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            frames, _, count = line.rpartition(" ")
            if frames and count.isdigit():
                stacks[tuple(frames.split(";"))] += int(count)
    return stacks


def category(frame: str, app_dirs: tuple[str, ...] = ("target_app/",)) -> str:
    m = FRAME.match(frame)
    path = m["file"] if m else frame
    if any(path.endswith(i) for i in INSTRUMENTS):
        return "routebench instruments"
    if "site-packages/" in path:
        package = path.split("site-packages/", 1)[1].split("/", 1)[0]
        if package in FRAMEWORK:
            return "framework"
        if package in IO:
            return "I/O libraries"
        return "other"
    if any(d in path for d in app_dirs):
        return "server code"
    if any(s in path for s in IO_STDLIB):
        return "I/O libraries"
    return "other"


def where_cpu_went(stacks: Stacks) -> dict[str, Any]:
    """Samples and their shares per category, by each sample's innermost frame (waits left out)."""
    by: Counter[str] = Counter()
    working = busy(stacks)
    for stack, n in working.items():
        by[category(stack[-1])] += n
    total = sum(by.values())
    return {
        "samples": total,
        "waiting": sum(stacks.values()) - total,
        "shares": {c: by[c] / total for c in CATEGORIES} if total else {},
    }


def summary_line(went: dict[str, Any], rate_hz: int, workers: int) -> str:
    """``CPU samples: 61% server code, 24% framework, ... (1,840 samples at 100 Hz, 2 workers)``."""
    if not went.get("samples"):
        return "no CPU samples (the workers were idle, or the profiler could not read them)"
    parts = [f"{share:.0%} {name}" for name, share in sorted(went["shares"].items(), key=lambda x: -x[1]) if share]
    return (
        f"where the server's CPU went: {', '.join(parts)} ({went['samples']:,} samples at {rate_hz} Hz "
        f"over {workers} worker{'s' if workers != 1 else ''}, by the frame running; "
        f"{went.get('waiting', 0):,} samples of threads parked in a wait left out)"
    )
