"""The benchmark behind the fan-out's client (routebench.bench.bench_fanout_clients), run small."""

from __future__ import annotations

import pytest

from routebench.bench import bench_fanout_clients

pytestmark = pytest.mark.stack  # starts the real upstream service


def test_httpx_costs_more_cpu_a_call_the_more_calls_are_in_flight_and_aiohttp_does_not() -> None:
    """httpx's async pool does work per call in proportion to the calls it holds (httpx issue #3215):
    a ratio of two counts of the same work, whatever the CPU's speed. Margins are wide: measured here
    5x growth from 10 to 50 in flight, and aiohttp at 50 a fortieth of httpx's."""
    per = bench_fanout_clients(calls=300)["cpu_ms_per_call"]
    assert per["httpx"]["50"] > 1.5 * per["httpx"]["10"], per
    assert per["aiohttp"]["50"] < per["httpx"]["50"] / 3, per
