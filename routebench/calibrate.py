"""The CPU each style costs the server, measured before the matrix and apart from it.

Theory needs D_cpu, the server-side CPU seconds one request of a style costs (the Gunicorn workers,
and the upstream service and PostgreSQL it calls). It is measured here in a short probe per style
at low load (two requests at a time, so no queue forms), before any cell, on the stack the first cells
then run on: no prediction is fitted to the cell it is judged against. The stack's idle CPU (samplers,
the database's background work) is measured first and taken off. A run's first phase
(:func:`for_run`), unless it cannot measure routebench's styles on a stack of its own.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import psutil

from routebench import speed, stopping
from routebench.context import RunContext
from routebench.experiment import Cell
from routebench.launcher import Stack, StackError
from target_app import catalogue

PROBE_S = 0.5  # per style and concurrency
# The cpu family's busy level, longer: the model reads from it the share of a core a worker keeps
# while its threads hand the GIL over (analysis.theory.core_share), a ratio of two probes whose
# noise at 0.8 s (0.72 to 0.93 in four runs) was as large as what it measures.
CORE_SHARE_PROBE_S = 2.0
MIN_REQUESTS = 200  # the kernel counts CPU time in 10 ms ticks: enough requests to dwarf that
# A request's CPU can grow with the requests around it (an HTTP client's pool holding many calls
# at once, a driver's queue): each style is probed two at a time with 1 ms waits (the wait costs
# no CPU, and at the cells' 50 ms a probe this short completes too few requests for the kernel's
# CPU clock), then twenty at a time with the cells' own wait, so as many calls are in flight as in
# a cell of twenty users. The cpu family's work and the fan-out width are the cells'.
CONCURRENCY_LEVELS = (2, 20)
PROBE_WAIT_MS = 1
IDLE_S = 1.0
METHOD = (
    f"server CPU seconds per request (Gunicorn workers, upstream and PostgreSQL processes, idle CPU "
    f"taken off), measured by a probe per style ({PROBE_S:g} s and at least {MIN_REQUESTS} requests at "
    f"{CONCURRENCY_LEVELS[0]} at a time with waits of {PROBE_WAIT_MS} ms, and at {CONCURRENCY_LEVELS[1]} at a "
    f"time with the cells' waits, {CORE_SHARE_PROBE_S:g} s for the cpu family) on the run's stack before the "
    "first cell"
)


@dataclass(frozen=True)
class Probe:
    style: str
    work: int
    fanout: int
    wait_ms: int  # the cells' wait, for the busy level

    def query(self, wait_ms: int) -> dict[str, int]:
        params = catalogue.BY_ID[self.style].params
        values = {"ms": wait_ms, "work": self.work, "k": self.fanout}
        return {p: v for p, v in values.items() if p in params}


def probes_for(cells: list[Cell]) -> list[Probe]:
    """One probe per style and the work sizes that change its CPU (work for cpu, k for fanout)."""
    seen: dict[Probe, None] = {}
    for cell in cells:
        for style in cell.styles:
            family = catalogue.family_of(style)
            seen[
                Probe(
                    style,
                    cell.work if family == "cpu" else 0,
                    cell.fanout if family == "fanout" else 0,
                    cell.wait_ms,
                )
            ] = None
    return list(seen)


def stack_cpu_s(stack: Stack) -> tuple[float, float]:
    """(CPU seconds of every stack process so far, of the target's workers alone)."""
    workers = set(stack.worker_pids())
    total = only_workers = 0.0
    for pid in stack.all_pids():
        try:
            t = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        used = t.user + t.system
        total += used
        if pid in workers:
            only_workers += used
    return total, only_workers


READ_EVERY_S = 0.25  # how often ``during`` is called while the clients run


def hammer(
    url: str, seconds: float, min_requests: int, concurrency: int, during: Callable[[], None] | None = None
) -> int:
    """Requests completed by ``concurrency`` keep-alive clients in at least ``seconds`` (and at
    least ``min_requests``, within 4x the time); ``during`` is called every READ_EVERY_S meanwhile. A
    client whose connection fails stops (the stack being stopped under it, by Ctrl-C say); an
    interrupt stops them all before it goes on up."""
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    done = [0] * concurrency
    stop = threading.Event()
    start = time.monotonic()

    def client(i: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
        try:
            while not stop.is_set():
                elapsed = time.monotonic() - start
                if elapsed >= seconds and (sum(done) >= min_requests or elapsed >= 4 * seconds):
                    return
                conn.request("GET", path)
                conn.getresponse().read()
                done[i] += 1
        except (OSError, http.client.HTTPException):
            return  # counted: only completed requests are
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                if during is not None:
                    during()
                t.join(READ_EVERY_S)
    finally:
        stop.set()
        for t in threads:
            t.join(5)
    return sum(done)


def calibrate(
    cells: list[Cell], stack: Stack, on_probe: Callable[[int, int, str], None] | None = None
) -> dict[str, Any]:
    """Run the probes on ``stack`` (shaped like the first cell, started for the run); the run.json
    ``calibration``."""
    probes = probes_for(cells)
    if not probes:
        return {"method": METHOD, "probes": []}
    out: list[dict[str, Any]] = []
    before, before_workers = stack_cpu_s(stack)
    time.sleep(IDLE_S)
    after, after_workers = stack_cpu_s(stack)
    idle_rate, idle_workers = (after - before) / IDLE_S, (after_workers - before_workers) / IDLE_S
    # The machine's speed while the busy probes load it, as each cell's is read under its load
    # (routebench.speed).
    references: list[float] = []

    def read_speed() -> None:
        references.append(speed.reading())

    for i, probe in enumerate(probes, 1):
        stopping.check()
        if on_probe:
            on_probe(i, len(probes), probe.style)
        levels = [
            {
                "concurrency": concurrency,
                "wait_ms": wait_ms,
                **probe_cpu(
                    stack,
                    f"{stack.target_url}{catalogue.BY_ID[probe.style].path}?{urlencode(probe.query(wait_ms))}",
                    concurrency,
                    (idle_rate, idle_workers),
                    seconds,
                    read_speed if concurrency == CONCURRENCY_LEVELS[-1] else None,
                ),
            }
            for concurrency, wait_ms, seconds in zip(
                CONCURRENCY_LEVELS,
                (PROBE_WAIT_MS, probe.wait_ms),
                (PROBE_S, CORE_SHARE_PROBE_S if catalogue.family_of(probe.style) == "cpu" else PROBE_S),
                strict=True,
            )
        ]
        out.append(
            {
                "style": probe.style,
                "work": probe.work,
                "fanout": probe.fanout,
                "wait_ms": PROBE_WAIT_MS,
                **{k: levels[0][k] for k in ("requests", "seconds", "cpu_s_per_request", "workers_cpu_s_per_request")},
                "levels": levels,
            }
        )
    # The canary's own cost (catalogue.CANARY), which every cell's workers also spent: the cells'
    # CPU per request of their styles is what is left.
    canary = probe_cpu(
        stack, stack.canary_url + catalogue.CANARY_PATH, CONCURRENCY_LEVELS[0], (idle_rate, idle_workers)
    )
    return {
        "method": METHOD,
        "idle_cpu_cores": round(idle_rate, 4),
        "idle_workers_cpu_cores": round(idle_workers, 4),
        "reference_ms": speed.typical(references),
        "probes": out,
        "canary": {k: canary[k] for k in ("requests", "workers_cpu_s_per_request")},
    }


def probe_cpu(
    stack: Stack,
    url: str,
    concurrency: int,
    idle: tuple[float, float],
    seconds: float = PROBE_S,
    during: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """One probe: ``url`` requested ``concurrency`` at a time for ``seconds`` and MIN_REQUESTS at least
    (after a moment's warming of connections, pools and caches); the stack's and its workers' CPU
    seconds per request, their idle CPU (cores: ``idle``) taken off."""
    hammer(url, 0.15, 4, concurrency)
    total0, workers0 = stack_cpu_s(stack)
    t0 = time.monotonic()
    n = hammer(url, seconds, MIN_REQUESTS, concurrency, during)
    seconds = time.monotonic() - t0
    total1, workers1 = stack_cpu_s(stack)
    return {
        "requests": n,
        "seconds": round(seconds, 3),
        "cpu_s_per_request": max(0.0, total1 - total0 - idle[0] * seconds) / n if n else None,
        "workers_cpu_s_per_request": max(0.0, workers1 - workers0 - idle[1] * seconds) / n if n else None,
    }


def for_run(ctx: RunContext) -> dict[str, Any]:
    """The run.json ``calibration``: each style's server CPU per request, measured apart from the
    cells on the stack the first cells then run on; or why it was not measured."""
    if ctx.target_url is not None:
        return {"method": METHOD, "probes": [], "reason": "the target runs elsewhere: not measured"}
    if ctx.base_settings.app:
        return {"method": METHOD, "probes": [], "reason": "your app: the CPU probes are routebench's styles"}
    if not ctx.experiment.calibrate:
        return {"method": METHOD, "probes": [], "reason": "off in the experiment (calibrate = false)"}
    cells = [c for c in ctx.cells if not (c.needs_db and ctx.db_problem)]
    if not cells:
        return {"method": METHOD, "probes": []}
    begun = time.monotonic()
    with ctx.console.status("calibrating") as status:
        try:
            stack = ctx.lab.target(ctx.settings(cells[0]), ctx.with_db)
        except StackError as exc:
            return {"method": METHOD, "probes": [], "reason": f"the stack did not start: {exc}"}
        result = calibrate(
            cells,
            stack,
            lambda i, n, style: status.update(f"calibrating server CPU per request: probe {i}/{n} {style}"),
        )
    result["wall_s"] = round(time.monotonic() - begun, 1)
    ctx.console.print(
        f"calibrated server CPU per request for {len(result['probes'])} styles in {result['wall_s']:.0f} s"
    )
    return result
