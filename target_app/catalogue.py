"""The catalogue of route styles: the one place that names them.

The id ``family/style`` is the route's path, its OpenAPI tag's family, the Locust request name, the
analysis group and the report row. Everything else reads it from here; nothing re-spells it.
This module imports only the standard library so Locust workers can read it cheaply.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Shape:
    """What a cell's prediction depends on, for one style (seconds, counts and cores)."""

    users: float  # U, users on this style (closed model); NaN when there are none
    workers: int  # W
    threads: int  # T
    pool: int  # P
    wait_s: float  # d
    fanout: int  # k
    cpu_s: float  # D_cpu: server CPU seconds per request of this style (c for the cpu family); NaN: not measured
    cores: float  # cores available to the server in the cell (the machine's minus the load generator's)
    model: str = "closed"  # "closed": U users with no think time; "open": arrival_rate requests/s
    arrival_rate: float = math.nan  # λ, requests/s for this style (open model)
    # The Gunicorn workers' share of cpu_s (the rest runs in the upstream, PostgreSQL or a process
    # pool); NaN when the calibration did not split it.
    workers_cpu_s: float = math.nan
    # The share of its core a worker keeps while its Python runs on threads that hand the GIL to
    # each other (RouteStyle.cpu_on_threads), measured by the calibration; 1 when the loop runs it.
    core_share: float = 1.0


def workers_cpu_of(s: Shape) -> float | None:
    """The workers' share of D_cpu when measured (at most D_cpu), else None."""
    if math.isfinite(s.workers_cpu_s) and s.workers_cpu_s >= 0 and cpu_of(s) > 0:
        return min(s.workers_cpu_s, cpu_of(s))
    return None


def cpu_of(s: Shape) -> float:
    """D_cpu when it was measured, else 0 (no CPU term: the model of runs without a calibration probe)."""
    return s.cpu_s if math.isfinite(s.cpu_s) and s.cpu_s > 0 else 0.0


Quantity = Callable[[Shape], float]


@dataclass(frozen=True)
class Prediction:
    """What theory (docs/model.md) expects of a style: in words, and as the structure the analysis
    solves for each cell (analysis/theory.py), side by side so the two cannot drift apart.

    W worker processes, T threadpool tokens per worker, d the wait per request, U concurrent users,
    c (D_cpu) CPU seconds per request, P database pool size per worker, k calls in a fan-out.

    A request holds one of ``limit`` places (a worker's event loop, a threadpool token, a pooled
    connection; infinity when nothing caps it) for ``hold`` seconds, and needs D_cpu seconds of CPU,
    of which ``cpu_cores`` cores can serve at once. ``hold`` 0 means the CPU is the whole service.
    """

    key: str
    throughput: str
    latency: str
    limit: Quantity = field(repr=False, compare=False)  # L: requests that can hold the station at once
    hold: Quantity = field(repr=False, compare=False)  # seconds one request holds it
    station: str | Callable[[Shape], str] = field(default="wait", repr=False, compare=False)  # its name in words
    cpu_cores: Quantity = field(default=lambda s: s.cores, repr=False, compare=False)  # cores the CPU work can use
    blocks_loop: bool = False  # the wait holds the worker's event loop: every neighbour waits too

    def station_name(self, s: Shape) -> str:
        """The held station in words ("event loop", "threadpool", "db pool"), "wait" when unlimited."""
        if math.isinf(self.limit(s)):
            return "wait"
        return self.station(s) if callable(self.station) else self.station


def _unlimited(s: Shape) -> float:
    return math.inf


def _one_per_loop(s: Shape) -> float:
    return float(s.workers)


def _gil_bound(s: Shape) -> float:
    """Pure-Python work holds each worker's GIL: at most one core per worker process."""
    return min(float(s.workers), s.cores)


def _loop_held(s: Shape) -> float:
    """A blocking call inside async def holds the loop for the wait and for the request's own CPU
    in the worker (the whole D_cpu when the calibration did not split it)."""
    own = workers_cpu_of(s)
    return s.wait_s + (cpu_of(s) if own is None else own)


def _cpu_only(s: Shape) -> float:
    return 0.0


def _loop_blocking(key: str) -> Prediction:
    """A blocking call inside async def, whatever it waits on: one request at a time per loop."""
    return Prediction(
        key,
        "about W/d",
        "about U*d/W: every request on that worker queues",
        _one_per_loop,
        _loop_held,
        "event loop",
        blocks_loop=True,
    )


PREDICTIONS: dict[str, Prediction] = {
    p.key: p
    for p in (
        Prediction("async", "about U/d until CPU caps it", "about d", _unlimited, lambda s: s.wait_s),
        _loop_blocking("blocking"),
        Prediction(
            "threadpool",
            "about min(U, W*T)/d",
            "d while U <= W*T, then grows",
            lambda s: float(s.workers * s.threads),
            lambda s: s.wait_s,
            "threadpool",
        ),
        Prediction(
            "cpu",
            "about min(W, cores)/c whatever the style",
            "grows with queueing",
            _one_per_loop,  # one thread per worker runs Python at a time (the GIL)
            _cpu_only,
            "CPU",
            cpu_cores=_gil_bound,
        ),
        Prediction(
            "process-pool",
            "bounded by cores, event loop stays free",
            "neighbours stay fast",
            _unlimited,
            _cpu_only,
            "CPU",
        ),
        Prediction(
            "fanout-sequential",
            "U/(k*d)",
            "about k*d",
            _unlimited,
            lambda s: s.fanout * s.wait_s,
        ),
        Prediction("fanout-gather", "U/d", "about d (the slowest call)", _unlimited, lambda s: s.wait_s),
        Prediction(
            "db-async-pool",
            "about W*P/d",
            "d while U <= W*P",
            lambda s: float(s.workers * s.pool),
            lambda s: s.wait_s,
            "db pool",
        ),
        _loop_blocking("db-blocking"),
        Prediction(
            "db-threadpool",
            "about W*min(T, P)/d",
            "grows past W*min(T,P) users",
            lambda s: float(s.workers * min(s.threads, s.pool)),
            lambda s: s.wait_s,
            lambda s: "db pool" if s.pool <= s.threads else "threadpool",
        ),
    )
}


def family_of(style_id: str) -> str:
    """The family part of an id, known to the catalogue or not (``sleep/async-await`` -> ``sleep``)."""
    return style_id.split("/", 1)[0]


def hdr_file(name: str) -> str:
    """The file an exact histogram of request name ``name`` is saved in."""
    return name.replace("/", "__") + ".hdr"


def slug(text: str) -> str:
    """A style id, group or cell name as a directory name: ``001-sleep_async-await-u10-w2-r1``."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", text).strip("_")


@dataclass(frozen=True)
class RouteStyle:
    id: str
    description: str
    prediction: str
    params: tuple[str, ...]
    baseline: bool = False  # the family's well-written async style, which the others are compared to
    # Its CPU work runs on threadpool threads that take turns at the worker's GIL (not on the loop).
    cpu_on_threads: bool = False

    @property
    def family(self) -> str:
        return family_of(self.id)

    @property
    def style(self) -> str:
        return self.id.split("/", 1)[1]

    @property
    def path(self) -> str:
        return "/" + self.id

    @property
    def class_name(self) -> str:
        """The Locust user class (what the web UI's picker lists): ``SleepAsyncAwait``."""
        return "".join(part.capitalize() for part in self.id.replace("/", "-").split("-"))

    @property
    def hdr_file(self) -> str:
        """The exact histogram's file in a cell's ``hdr/``: ``sleep__async-await.hdr``."""
        return hdr_file(self.id)

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "family": self.family,
            "style": self.style,
            "path": self.path,
            "description": self.description,
            "params": list(self.params),
            "baseline": self.baseline,
            "prediction": {k: getattr(PREDICTIONS[self.prediction], k) for k in ("key", "throughput", "latency")},
        }


STYLES: tuple[RouteStyle, ...] = (
    RouteStyle("sleep/async-await", "await asyncio.sleep(d) in async def", "async", ("ms",), baseline=True),
    RouteStyle("sleep/blocking-in-async", "time.sleep(d) inside async def: blocks the event loop", "blocking", ("ms",)),
    RouteStyle("sleep/sync-def", "time.sleep(d) in a plain def route, run in the threadpool", "threadpool", ("ms",)),
    RouteStyle("sleep/offloaded", "await run_in_threadpool(time.sleep, d) from async def", "threadpool", ("ms",)),
    RouteStyle("cpu/async", "pure-Python CPU work inside async def", "cpu", ("work",), baseline=True),
    RouteStyle(
        "cpu/sync-def",
        "pure-Python CPU work in a plain def route (threadpool, GIL-bound)",
        "cpu",
        ("work",),
        cpu_on_threads=True,
    ),
    RouteStyle("cpu/process-pool", "CPU work sent to a per-worker process pool", "process-pool", ("work",)),
    RouteStyle(
        "fanout/sequential",
        "k upstream calls awaited one after another (a shared aiohttp session)",
        "fanout-sequential",
        ("ms", "k"),
    ),
    RouteStyle(
        "fanout/gather",
        "k upstream calls awaited together with asyncio.gather (a shared aiohttp session)",
        "fanout-gather",
        ("ms", "k"),
        baseline=True,
    ),
    RouteStyle(
        "http/async-client", "one upstream call through a shared httpx.AsyncClient", "async", ("ms",), baseline=True
    ),
    RouteStyle("http/blocking-client-in-async", "a blocking httpx.Client call inside async def", "blocking", ("ms",)),
    RouteStyle("http/sync-def", "a blocking httpx.Client call in a plain def route", "threadpool", ("ms",)),
    RouteStyle(
        "db/asyncpg",
        "SELECT pg_sleep(d) through an asyncpg pool of P per worker",
        "db-async-pool",
        ("ms",),
        baseline=True,
    ),
    RouteStyle(
        "db/blocking-in-async", "SELECT pg_sleep(d) through blocking psycopg inside async def", "db-blocking", ("ms",)
    ),
    RouteStyle(
        "db/sync-def", "SELECT pg_sleep(d) through blocking psycopg in a plain def route", "db-threadpool", ("ms",)
    ),
)

BY_ID: dict[str, RouteStyle] = {s.id: s for s in STYLES}
ALL = "*"  # in an experiment's groups: every style (with your app: every route)
_RANK: dict[str, int] = {s.id: i for i, s in enumerate(STYLES)}
FAMILIES: tuple[str, ...] = tuple(dict.fromkeys(s.family for s in STYLES))

# The canary: not a style, the rest of the app. A trivial ``async def`` route of the target, requested
# beside every cell at a low fixed rate with its latency counted from each request's intended start
# (whatever the cell's model), by its own Locust user: its p99 is what a user of any other route of
# the same workers meets while the cell's style is under load. Your own app's canary is
# routebench's health route, served inside your app's workers (routebench.serverside.harness).
CANARY = "canary"  # its Locust request name and its key in exact.json (no style id or path looks like it)
CANARY_PATH = "/canary"
CANARY_CLASS = "Canary"  # its Locust user class (locustfiles.plugin.users)
# Requests/s in all: 200 samples in a 20 s window; about 0.13% of a core of the workers' CPU (0.13 ms a
# request in the calibration of run 20261207-164503-default, AMD EPYC).
CANARY_RATE = 10.0


def rank(style_id: str) -> int:
    """A style's place in the catalogue (family by family), the order every table and chart uses;
    a name the catalogue does not know comes after all of them."""
    return _RANK.get(style_id, len(_RANK))


def baseline(family_name: str) -> RouteStyle:
    return next(s for s in STYLES if s.family == family_name and s.baseline)


def family(name: str) -> tuple[RouteStyle, ...]:
    return tuple(s for s in STYLES if s.family == name)


def select(patterns: list[str] | tuple[str, ...]) -> tuple[RouteStyle, ...]:
    """Styles matching ids or families (``sleep`` or ``sleep/*`` means the whole family; ``*``: all)."""
    chosen: dict[str, RouteStyle] = {}
    for pattern in patterns:
        name = pattern.removesuffix("/*")
        if pattern == ALL:
            chosen.update((s.id, s) for s in STYLES)
        elif name in BY_ID:
            chosen[name] = BY_ID[name]
        elif name in FAMILIES:
            chosen.update((s.id, s) for s in family(name))
        else:
            raise KeyError(f"unknown route style {pattern!r}; known: {', '.join(BY_ID)}")
    return tuple(chosen.values())
