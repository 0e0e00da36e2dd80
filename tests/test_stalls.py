"""The stall detector beside the event loop: a blocked loop is caught, timed and named at the line
that blocked it, with the route that was running; a loop that only awaits is never called stalled."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from target_app import stalls
from target_app.telemetry import Gauge, InFlight, Sampler

BLOCK_S = 0.2


async def blocking_route(scope: Any, receive: Any, send: Any) -> None:
    time.sleep(BLOCK_S)  # the line the detector must name


async def awaiting_route(scope: Any, receive: Any, send: Any) -> None:
    await asyncio.sleep(BLOCK_S)


def serve(route: Any) -> list[dict[str, Any]]:
    async def main() -> list[dict[str, Any]]:
        gauge = Gauge()
        sampler = Sampler(0.05, gauge, lambda: {}, None, stall_threshold_s=0.02)
        sampler.start()
        await asyncio.sleep(0.05)
        await InFlight(route, gauge)({"type": "http", "path": "/the-route"}, None, None)  # type: ignore[arg-type]
        await asyncio.sleep(0.15)  # the next sample carries the stall that ended
        await sampler.stop()
        return list(sampler.samples)

    return asyncio.run(main())


def test_a_blocked_loop_is_named_at_the_line_that_blocked_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # This module plays the application: its frames are the app's code.
    monkeypatch.setattr(stalls, "APP_DIRS", (*stalls.APP_DIRS, Path(__file__).resolve().parent))
    stalls.app_frame.cache_clear()
    samples = serve(blocking_route)
    stalls.app_frame.cache_clear()
    blocked = sum(s["blocked_ms"] for s in samples)
    # The stall runs from the last heartbeat before the block to the first after it: the block,
    # plus at most a heartbeat period (5 ms) and a scheduling slice either side.
    assert 0.75 * BLOCK_S * 1000 <= blocked <= 2 * BLOCK_S * 1000, blocked
    sites: dict[str, Any] = {}
    for s in samples:
        for site, info in s["sites"].items():
            sites.setdefault(site, []).append(info)
    (site,) = sites
    line = blocking_route.__code__.co_firstlineno + 1
    assert site == f"tests/test_stalls.py:{line} blocking_route"
    (info,) = sites[site]
    assert info["route"] == "/the-route" and info["n"] == 1
    assert info["stack"][0] == site and info["folded"] == 0


def test_a_stall_outside_the_applications_code_says_so() -> None:
    samples = serve(blocking_route)  # tests/ is not the app: no application frame on the stack
    (site,) = {site for s in samples for site in s["sites"]}
    assert (
        site
        == f"{stalls.OUTSIDE_APP} (tests/test_stalls.py:{blocking_route.__code__.co_firstlineno + 1} blocking_route)"
    )


def test_a_loop_that_only_awaits_never_stalls() -> None:
    samples = serve(awaiting_route)
    assert sum(s["stalls"] for s in samples) == 0 and sum(s["blocked_ms"] for s in samples) == 0
