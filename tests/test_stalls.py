"""The stall detector beside the event loop: a blocked loop is caught, timed and named at the line
that blocked it, with the route that was running; a loop that only awaits is never called stalled.

On a busy machine the OS can also keep the loop off a CPU for longer than the threshold while it
waits between requests: the detector then reports a stall with no route running, which is true.
The assertions are about the stalls of the route (the request's path the middleware noted), and
leave those alone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from routebench.serverside import stalls
from routebench.serverside.telemetry import Gauge, InFlight, Sampler

BLOCK_S = 0.2
SAMPLE_S = 0.05
THRESHOLD_S = 0.02
SETTLE_S = 10.0  # the most the test waits for the sampler to carry what it waits for

Samples = list[dict[str, Any]]


async def blocking_route(scope: Any, receive: Any, send: Any) -> None:
    time.sleep(BLOCK_S)  # the line the detector must name


async def awaiting_route(scope: Any, receive: Any, send: Any) -> None:
    await asyncio.sleep(BLOCK_S)


def serve(route: Any, settled: Callable[[Samples, float], bool]) -> Samples:
    """The route once, under a sampler with its stall detector; then wait until ``settled(samples,
    route_ended)`` says the samples carry what the test needs (or ``SETTLE_S`` passed)."""

    async def main() -> Samples:
        gauge = Gauge()
        sampler = Sampler(SAMPLE_S, gauge, lambda: {}, None, stall_threshold_s=THRESHOLD_S)
        sampler.start()
        await asyncio.sleep(SAMPLE_S)
        await InFlight(route, gauge)({"type": "http", "path": "/the-route"}, None, None)  # type: ignore[arg-type]
        ended, deadline = time.time(), time.monotonic() + SETTLE_S
        while not settled(list(sampler.samples), ended) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await sampler.stop()
        return list(sampler.samples)

    return asyncio.run(main())


def stall_reported(samples: Samples, ended: float) -> bool:
    """The route's stall is in: it ends at the loop's first turn after the block, the detector
    closes it at its next poll, and the next sample carries it."""
    return bool(of_the_route(samples))


def samples_after(n: int) -> Callable[[Samples, float], bool]:
    """``n`` samples taken after the route ended: a stall the await had caused would have been
    closed by then (the detector polls every 5 ms, ten times a sample)."""
    return lambda samples, ended: len([s for s in samples if s["t"] > ended]) >= n


def sites_of(samples: Samples) -> dict[str, list[dict[str, Any]]]:
    sites: dict[str, list[dict[str, Any]]] = {}
    for s in samples:
        for site, info in s["sites"].items():
            sites.setdefault(site, []).append(info)
    return sites


def of_the_route(samples: Samples) -> dict[str, list[dict[str, Any]]]:
    """The sites of the stalls the route was running in."""
    return {site: infos for site, infos in sites_of(samples).items() if any(i["route"] == "/the-route" for i in infos)}


def test_a_blocked_loop_is_named_at_the_line_that_blocked_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # This module plays the application: its frames are the app's code.
    monkeypatch.setattr(stalls, "APP_DIRS", (*stalls.APP_DIRS, Path(__file__).resolve().parent))
    stalls.app_frame.cache_clear()
    samples = serve(blocking_route, stall_reported)
    stalls.app_frame.cache_clear()
    sites = of_the_route(samples)
    (site,) = sites
    line = blocking_route.__code__.co_firstlineno + 1
    assert site == f"tests/test_stalls.py:{line} blocking_route"
    (info,) = sites[site]
    assert info["route"] == "/the-route" and info["n"] == 1
    assert info["stack"][0] == site and info["folded"] == 0
    # Timed: the stall runs from the last heartbeat before the block to the first after it, and
    # the site keeps it from its first capture (within the block: the detector polls every 5 ms,
    # the block leaves it 180 ms past the threshold) on, so it holds at least the whole block.
    # At most twice the block: the stall ends at the loop's first turn after it (the heartbeat is
    # then overdue); 200 ms more would mean the OS kept the loop off a CPU for 40 heartbeats.
    assert BLOCK_S * 1000 <= info["ms"] <= 2 * BLOCK_S * 1000, info["ms"]


def test_a_stall_outside_the_applications_code_says_so() -> None:
    samples = serve(blocking_route, stall_reported)  # tests/ is not the app: no application frame
    sites = sites_of(samples)
    line = blocking_route.__code__.co_firstlineno + 1
    assert f"{stalls.OUTSIDE_APP} (tests/test_stalls.py:{line} blocking_route)" in sites
    assert all(site.startswith(stalls.OUTSIDE_APP) for site in sites), sites


def test_a_loop_that_only_awaits_never_stalls() -> None:
    samples = serve(awaiting_route, samples_after(3))
    # The 200 ms await is never a stall: no stall has the route running (while it awaits, its frame
    # is off the loop), and what stalls there are (only when the OS keeps the loop off a CPU past
    # the 20 ms threshold: none on an idle machine) stay far below what counting the await would
    # give (at least its 200 ms).
    assert of_the_route(samples) == {}
    assert sum(s["blocked_ms"] for s in samples) < BLOCK_S * 1000 / 2
