"""In-process behaviour (HTTPX ASGITransport, one process): the shape of a published reference
table (20 and 100 concurrent requests, d = 50 ms).

For a burst of N requests with wait d: blocking-in-async takes about N*d (one event loop, each
request holds it), async-await stays near d, the threadpool styles go in waves of T tokens.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from target_app import catalogue
from target_app.main import create_app
from target_app.settings import Settings

D = 0.05  # 50 ms, as in the reference table


@asynccontextmanager
async def client_for(**overrides: object) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(**{"database_url": None, "upstream_url": None, **overrides})
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


async def burst_times(n: int, threadpool: int = 40, skip: tuple[str, ...] = ()) -> dict[str, float]:
    times = {}
    async with client_for(threadpool_tokens=threadpool) as client:
        await client.get("/sleep/async-await", params={"ms": 0})  # warm-up
        for style in catalogue.family("sleep"):
            if style.id in skip:
                continue
            start = time.perf_counter()
            responses = await asyncio.gather(*(client.get(style.path, params={"ms": D * 1000}) for _ in range(n)))
            times[style.id] = time.perf_counter() - start
            assert all(r.status_code == 200 for r in responses)
    return times


def test_burst_of_20_blocking_in_async_takes_about_20_waits() -> None:
    t = asyncio.run(burst_times(20))
    print({k: round(v, 3) for k, v in t.items()})
    # Twenty sleeps on one loop cannot overlap: at least 20*d, whatever the machine.
    assert t["sleep/blocking-in-async"] >= 20 * D * 0.95
    # The others overlap their waits: near d, far below the blocking total.
    for style in ("sleep/async-await", "sleep/sync-def", "sleep/offloaded"):
        assert t[style] < 8 * D, (style, t[style])
        assert t["sleep/blocking-in-async"] > 3 * t[style]


@pytest.mark.parametrize("threadpool", [40, 10])
def test_burst_of_100_threadpool_styles_go_in_waves_of_t(threadpool: int) -> None:
    t = asyncio.run(burst_times(100, threadpool, skip=("sleep/blocking-in-async",)))
    print(threadpool, {k: round(v, 3) for k, v in t.items()})
    waves = math.ceil(100 / threadpool)
    for style in ("sleep/sync-def", "sleep/offloaded"):
        # T tokens: no more than T sleeps at once, so at least ceil(100/T) waits.
        assert t[style] >= waves * D * 0.95, (style, t[style])
    if waves >= 10:
        assert t["sleep/async-await"] < t["sleep/sync-def"] / 2


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

    for response, elapsed in asyncio.run(go()):
        assert response.status_code == 503, response.text
        assert response.json()["detail"]
        assert elapsed < 5


def test_styles_endpoint_lists_the_catalogue() -> None:
    async def go() -> list[dict[str, object]]:
        async with client_for() as client:
            return (await client.get("/styles")).json()

    body = asyncio.run(go())
    assert [s["id"] for s in body] == [s.id for s in catalogue.STYLES]
    assert {"id", "family", "style", "path", "prediction"} <= set(body[0])
