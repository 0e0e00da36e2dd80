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
    """What a cell's prediction depends on (seconds and counts)."""

    users: float  # U, users on this style
    workers: int  # W
    threads: int  # T
    pool: int  # P
    wait_s: float  # d
    fanout: int  # k
    cpu_s: float  # c, CPU seconds per request of the cpu family
    cores: int


def _queued(concurrency: float, s: Shape) -> float:
    """Throughput when at most ``concurrency`` requests can wait at once, each for d."""
    return min(s.users, concurrency) / s.wait_s


def _latency(x: float, s: Shape, floor: float) -> float:
    # Little's law for a closed loop: every user is always waiting, so latency = U / X.
    return max(floor, s.users / x) if x > 0 else math.inf


def _one_per_loop(s: Shape) -> tuple[float, float]:
    """A wait that holds the event loop: one request at a time per worker."""
    return _closed(_queued(s.workers, s), s, s.wait_s)


def _closed(x: float, s: Shape, floor: float) -> tuple[float, float]:
    """Throughput ``x`` and the latency Little's law gives it, never below ``floor``."""
    return x, _latency(x, s, floor)


Model = Callable[[Shape], tuple[float, float]]


@dataclass(frozen=True)
class Prediction:
    """What theory (docs/model.md) predicts for a style: in words, in its symbols, and as the formula
    the analysis evaluates for each cell, side by side so the two cannot drift apart.

    W worker processes, T threadpool tokens per worker, d the wait per request, U concurrent users,
    c CPU seconds per request, P database pool size per worker, k calls in a fan-out.
    """

    key: str
    throughput: str
    latency: str
    model: Model = field(repr=False, compare=False)  # (requests/s, latency in s) for a Shape
    blocks_loop: bool = False  # the wait holds the worker's event loop: every neighbour waits too


PREDICTIONS: dict[str, Prediction] = {
    p.key: p
    for p in (
        Prediction("async", "about U/d until CPU caps it", "about d", lambda s: (s.users / s.wait_s, s.wait_s)),
        Prediction(
            "blocking",
            "about W/d",
            "about U*d/W: every request on that worker queues",
            _one_per_loop,
            blocks_loop=True,
        ),
        Prediction(
            "threadpool",
            "about min(U, W*T)/d",
            "d while U <= W*T, then grows",
            lambda s: _closed(_queued(s.workers * s.threads, s), s, s.wait_s),
        ),
        Prediction(
            "cpu",
            "about min(W, cores)/c whatever the style",
            "grows with queueing",
            lambda s: _closed(min(s.workers, s.cores) / s.cpu_s, s, s.cpu_s),
        ),
        Prediction(
            "process-pool",
            "bounded by cores, event loop stays free",
            "neighbours stay fast",
            lambda s: _closed(min(s.workers, s.cores) / s.cpu_s, s, s.cpu_s),
        ),
        Prediction(
            "fanout-sequential",
            "U/(k*d)",
            "about k*d",
            lambda s: (s.users / (s.fanout * s.wait_s), s.fanout * s.wait_s),
        ),
        Prediction("fanout-gather", "U/d", "about d (the slowest call)", lambda s: (s.users / s.wait_s, s.wait_s)),
        Prediction(
            "db-async-pool",
            "about W*P/d",
            "d while U <= W*P",
            lambda s: _closed(_queued(s.workers * s.pool, s), s, s.wait_s),
        ),
        Prediction(
            "db-blocking",
            "about W/d",
            "about U*d/W: every request on that worker queues",
            _one_per_loop,
            blocks_loop=True,
        ),
        Prediction(
            "db-threadpool",
            "about W*min(T, P)/d",
            "grows past W*min(T,P) users",
            lambda s: _closed(_queued(s.workers * min(s.threads, s.pool), s), s, s.wait_s),
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
    RouteStyle("cpu/sync-def", "pure-Python CPU work in a plain def route (threadpool, GIL-bound)", "cpu", ("work",)),
    RouteStyle("cpu/process-pool", "CPU work sent to a per-worker process pool", "process-pool", ("work",)),
    RouteStyle("fanout/sequential", "k upstream calls awaited one after another", "fanout-sequential", ("ms", "k")),
    RouteStyle(
        "fanout/gather",
        "k upstream calls awaited together with asyncio.gather",
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
_RANK: dict[str, int] = {s.id: i for i, s in enumerate(STYLES)}
FAMILIES: tuple[str, ...] = tuple(dict.fromkeys(s.family for s in STYLES))


def rank(style_id: str) -> int:
    """A style's place in the catalogue (family by family), the order every table and chart uses;
    a name the catalogue does not know comes after all of them."""
    return _RANK.get(style_id, len(_RANK))


def baseline(family_name: str) -> RouteStyle:
    return next(s for s in STYLES if s.family == family_name and s.baseline)


def family(name: str) -> tuple[RouteStyle, ...]:
    return tuple(s for s in STYLES if s.family == name)


def select(patterns: list[str] | tuple[str, ...]) -> tuple[RouteStyle, ...]:
    """Styles matching ids or families (``sleep`` or ``sleep/*`` means the whole family)."""
    chosen: dict[str, RouteStyle] = {}
    for pattern in patterns:
        name = pattern.removesuffix("/*")
        if name in BY_ID:
            chosen[name] = BY_ID[name]
        elif name in FAMILIES:
            chosen.update((s.id, s) for s in family(name))
        else:
            raise KeyError(f"unknown route style {pattern!r}; known: {', '.join(BY_ID)}")
    return tuple(chosen.values())
