"""In-process behaviour (HTTPX ASGITransport, one process): the shape of a published reference
table (20 and 100 concurrent requests, d = 50 ms).

For a burst of N requests with wait d: blocking-in-async takes about N*d (one event loop, each
request holds it), async-await stays near d, the threadpool styles go in waves of T tokens.

The shape is asserted through its mechanism, not the burst's wall time (which a busy CPU stretches):
each route's wait is recorded as it runs (its start and end), and the tests count how many waits
overlapped. One loop that holds each wait overlaps none; a loop that awaits overlaps all N; a
threadpool of T tokens overlaps at most T. Only lower bounds on time are asserted, and they are
physical: a sleep never ends early, so N waits that cannot overlap take at least N*d.
"""

from __future__ import annotations

import asyncio
import math
import socket
import threading
import time
import types
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
import pytest

from target_app import catalogue
from target_app.main import create_app
from target_app.routes import sleep as sleep_routes
from target_app.settings import Settings

D = 0.05  # 50 ms, as in the reference table
# A sleep never ends early (both clocks are the monotonic one); this only absorbs float rounding.
CLOCK_SLACK_S = 0.001


@asynccontextmanager
async def client_for(**overrides: object) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(**{"database_url": None, "upstream_url": None, **overrides})
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@dataclass
class Waits:
    """Every wait the sleep routes ran, (start, end) on the monotonic clock, from the loop or a
    worker thread alike."""

    spans: list[tuple[float, float]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, start: float) -> None:
        with self.lock:
            self.spans.append((start, time.perf_counter()))

    def take(self) -> list[tuple[float, float]]:
        with self.lock:
            out, self.spans = self.spans, []
        return out


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The most waits in progress at one moment (an end before a start at the same instant)."""
    events = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans], key=lambda e: (e[0], e[1]))
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> Iterator[Waits]:
    """The sleep routes' own ``time.sleep`` and ``asyncio.sleep``, timed: the routes run unchanged,
    each wait is recorded where it runs."""
    record = Waits()
    real_sleep, real_async_sleep = time.sleep, asyncio.sleep

    def timed_sleep(seconds: float) -> None:
        start = time.perf_counter()
        real_sleep(seconds)
        record.add(start)

    async def timed_async_sleep(seconds: float) -> None:
        start = time.perf_counter()
        await real_async_sleep(seconds)
        record.add(start)

    monkeypatch.setattr(sleep_routes, "time", types.SimpleNamespace(sleep=timed_sleep))
    monkeypatch.setattr(sleep_routes, "asyncio", types.SimpleNamespace(sleep=timed_async_sleep))
    yield record


@dataclass
class Burst:
    wall_s: float
    waits: list[tuple[float, float]]

    @property
    def overlap(self) -> int:
        return most_at_once(self.waits)

    @property
    def span_s(self) -> float:
        """From the first wait's start to the last wait's end."""
        return max(b for _, b in self.waits) - min(a for a, _ in self.waits)


async def bursts(waits: Waits, n: int, threadpool: int = 40, skip: tuple[str, ...] = ()) -> dict[str, Burst]:
    out = {}
    async with client_for(threadpool_tokens=threadpool) as client:
        await client.get("/sleep/async-await", params={"ms": 0})  # warm-up
        waits.take()
        for style in catalogue.family("sleep"):
            if style.id in skip:
                continue
            start = time.perf_counter()
            responses = await asyncio.gather(*(client.get(style.path, params={"ms": D * 1000}) for _ in range(n)))
            out[style.id] = Burst(time.perf_counter() - start, waits.take())
            assert all(r.status_code == 200 for r in responses)
            assert len(out[style.id].waits) == n, style.id
    return out


def shape(b: dict[str, Burst]) -> dict[str, tuple[float, int]]:
    return {k: (round(v.wall_s, 3), v.overlap) for k, v in b.items()}


def test_burst_of_20_blocking_in_async_takes_about_20_waits(waits: Waits) -> None:
    n = 20
    b = asyncio.run(bursts(waits, n))
    print("wall s, most waits at once:", shape(b))
    blocking = b["sleep/blocking-in-async"]
    # One loop, each wait held on it: never two at once, so the twenty take at least 20*d end to
    # end, whatever the machine.
    assert blocking.overlap == 1
    assert blocking.span_s >= n * D - CLOCK_SLACK_S and blocking.wall_s >= n * D - CLOCK_SLACK_S
    # async-await: all twenty wait at once. Not a matter of speed: the burst's requests are ready on
    # the loop together and each runs to its await before the loop's timers are looked at again, so
    # no wait can end before the last one starts, however slowly the CPU gets them there.
    assert b["sleep/async-await"].overlap == n
    for style in ("sleep/sync-def", "sleep/offloaded"):
        # Threadpool styles: the loop stays free while a thread waits, so the waits overlap (more
        # than one at once needs only the second request handed to a thread within d of the first),
        # up to the 40 tokens.
        assert 2 <= b[style].overlap <= 40, (style, b[style].overlap)


@pytest.mark.parametrize("threadpool", [40, 10])
def test_burst_of_100_threadpool_styles_go_in_waves_of_t(waits: Waits, threadpool: int) -> None:
    n = 100
    b = asyncio.run(bursts(waits, n, threadpool, skip=("sleep/blocking-in-async",)))
    print(threadpool, "wall s, most waits at once:", shape(b))
    waves = math.ceil(n / threadpool)
    for style in ("sleep/sync-def", "sleep/offloaded"):
        # T tokens: never more than T waits at once (the limiter's bound, not a timing), hence at
        # least ceil(100/T) waits end to end.
        assert 2 <= b[style].overlap <= threadpool, (style, b[style].overlap)
        assert b[style].span_s >= waves * D - CLOCK_SLACK_S, (style, b[style].span_s)
    # async-await is bound by no token: all hundred wait at once, on one loop pass (see above).
    assert b["sleep/async-await"].overlap == n


def test_bad_parameters_get_422_naming_the_parameter_and_range() -> None:
    async def go() -> list[httpx.Response]:
        async with client_for() as client:
            return [
                await client.get("/sleep/async-await", params={"ms": -1}),
                await client.get("/sleep/sync-def", params={"ms": 10_001}),
                await client.get("/cpu/async", params={"work": "lots"}),
                await client.get("/fanout/gather", params={"k": 5000}),
            ]

    neg, huge, text, fan = asyncio.run(go())
    for r in (neg, huge, text, fan):
        assert r.status_code == 422
    assert "ms must be an integer from 0 to 10000" in neg.json()["detail"]
    assert "10001" in huge.json()["detail"]
    assert "work must be an integer from 0 to" in text.json()["detail"]
    assert "k must be an integer from 1 to 100" in fan.json()["detail"]


def test_missing_database_and_upstream_answer_503_promptly() -> None:
    async def go() -> list[tuple[httpx.Response, float]]:
        # A port nobody listens on: connection refused, at once.
        dead = "127.0.0.1:9"
        out = []
        async with client_for(
            database_url=f"postgresql://postgres@{dead}/postgres", upstream_url=f"http://{dead}"
        ) as client:
            for path in (
                "/db/asyncpg",
                "/db/sync-def",
                "/db/blocking-in-async",
                "/http/async-client",
                "/http/sync-def",
                "/fanout/gather",
            ):
                start = time.perf_counter()
                out.append((await client.get(path), time.perf_counter() - start))
            health = await client.get("/health")
            assert health.status_code == 503 and "unreachable" in health.json()["db"]
        return out

    # Refused at once, not waited on: a route that waited for its client's timeout (15 s by
    # default) would take at least that; a third of it leaves seconds for a busy machine.
    defaults = Settings()
    promptly_s = min(defaults.db_timeout_s, defaults.upstream_timeout_s) / 3
    for response, elapsed in asyncio.run(go()):
        assert response.status_code == 503, response.text
        assert response.json()["detail"]
        assert elapsed < promptly_s


def test_styles_endpoint_lists_the_catalogue() -> None:
    async def go() -> list[dict[str, object]]:
        async with client_for() as client:
            return (await client.get("/styles")).json()

    body = asyncio.run(go())
    assert [s["id"] for s in body] == [s.id for s in catalogue.STYLES]
    assert {"id", "family", "style", "path", "prediction"} <= set(body[0])


def test_an_upstream_that_never_answers_is_a_503_after_the_clients_timeout() -> None:
    """Both clients (httpx for the http family, aiohttp for the fan-out) give up at the upstream
    timeout and the route says so, rather than holding the request."""
    listener = socket.create_server(("127.0.0.1", 0))  # accepts (the kernel's backlog), never answers
    port = listener.getsockname()[1]
    timeout_s = 0.3

    async def go() -> list[tuple[httpx.Response, float]]:
        out = []
        async with client_for(upstream_url=f"http://127.0.0.1:{port}", upstream_timeout_s=timeout_s) as client:
            for path in ("/http/async-client", "/fanout/gather", "/fanout/sequential"):
                start = time.perf_counter()
                out.append((await client.get(path, params={"ms": 1}), time.perf_counter() - start))
        return out

    try:
        answers = asyncio.run(go())
    finally:
        listener.close()
    for response, elapsed in answers:
        assert response.status_code == 503, response.text
        assert "upstream failed" in response.json()["detail"]
        # It waited for the timeout (the listener never answers), and not for ever.
        assert timeout_s * 0.9 <= elapsed < timeout_s * 3 + 2
