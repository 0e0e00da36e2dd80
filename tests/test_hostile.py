"""Hostile requests to the target app get 4xx answers fast and never tie up a worker."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from routebench.launcher import Stack

pytestmark = pytest.mark.stack  # starts the real stack or Locust: left out by -m 'not stack'

HOSTILE = [
    ("/sleep/async-await", {"ms": "-5"}),
    ("/sleep/blocking-in-async", {"ms": "999999999999999999999999"}),
    ("/sleep/sync-def", {"ms": "1e9"}),
    ("/sleep/offloaded", {"ms": "nan"}),
    ("/db/asyncpg", {"ms": "10001"}),
    ("/fanout/gather", {"k": "100000", "ms": "1"}),
    ("/fanout/sequential", {"k": "-1"}),
    ("/cpu/async", {"work": "999999999999"}),
    ("/cpu/process-pool", {"work": "lots"}),
    ("/http/blocking-client-in-async", {"ms": "0x10"}),
    ("/sleep/blocking-in-async", {"ms": ["1", "2"] * 500}),
]


async def send_all(base: str) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        plain = [client.get(path, params=params) for path, params in HOSTILE * 5]
        huge = [client.get("/sleep/blocking-in-async?ms=5&pad=" + "A" * 60_000) for _ in range(5)]
        return list(await asyncio.gather(*plain, *huge))


def test_hostile_batch_gets_4xx_and_the_stack_still_serves(stack: Stack) -> None:
    start = time.perf_counter()
    responses = asyncio.run(send_all(stack.target_url))
    elapsed = time.perf_counter() - start
    assert len(responses) == len(HOSTILE) * 5 + 5
    codes = sorted({r.status_code for r in responses})
    assert all(400 <= c < 500 for c in codes), codes
    # 60 rejected requests: none of them waited. One accepted would sleep (ms up to 1e9, or the
    # padded ones' 5 ms each on the loop) or time out at the client's 10 s; the rejections take a
    # few ms each, so 5 s is ten times what a busy machine needs.
    assert elapsed < 5
    # The workers are free: a normal request, and health, answer promptly. A worker still tied up
    # by a hostile request would hold this one for that request's whole sleep; 1 s is 100 of its
    # own 10 ms wait.
    t0 = time.perf_counter()
    assert httpx.get(stack.target_url + "/sleep/async-await", params={"ms": 10}).status_code == 200
    assert time.perf_counter() - t0 < 1
    assert httpx.get(stack.target_url + "/health").json()["status"] == "ok"
