"""When a driven test stops itself (locustfiles.plugin.stop): the precision stop's decision and the
seconds it may look at, on made-up intervals and clocks."""

from __future__ import annotations

from typing import Any

import pytest

from analysis.precision import MIN_PRECISE_BATCHES
from locustfiles.capture import Capture
from locustfiles.plugin import stop


def interval(half_width: float, batches: int = MIN_PRECISE_BATCHES) -> dict[str, Any]:
    return {"q": 99.0, "point_us": 50_000, "half_width_rel": half_width, "batches": batches}


NOT_YET = {"q": 99.0, "batches": 0, "reason": "only 3 s: fewer than 5 batches of whole seconds"}


@pytest.mark.parametrize(
    "intervals, now, why",
    [
        ({"a": interval(0.03), "b": interval(0.05)}, 50.0, stop.PRECISION_REACHED),  # at the target counts
        ({"a": interval(0.03), "b": interval(0.051)}, 50.0, ""),  # one style not yet precise
        ({"a": interval(0.01, batches=MIN_PRECISE_BATCHES - 1)}, 50.0, ""),  # too few batches to trust
        ({"a": interval(0.01), "b": NOT_YET}, 50.0, ""),  # a style with no interval yet
        ({}, 50.0, ""),  # nothing measured yet
        ({"a": interval(float("nan"))}, 50.0, ""),
        ({"a": interval(0.5)}, 60.0, stop.MAXIMUM_WINDOW),  # the deadline, precise or not
        ({"a": interval(0.01)}, 60.0, stop.MAXIMUM_WINDOW),
    ],
)
def test_the_precision_stop(intervals: dict[str, dict[str, Any]], now: float, why: str) -> None:
    assert stop.verdict(intervals, target=0.05, now=now, deadline=60.0) == why


def test_the_check_waits_for_every_workers_report() -> None:
    reported = {"w1": 130.2, "w2": 129.7}
    assert stop.complete_until(["w1", "w2"], reported, measure_from=100.0, now=131.0) == 129.7 - stop.REPORT_MARGIN_S
    # A worker that has not reported yet holds the check at the window's start.
    assert stop.complete_until(["w1", "w2", "w3"], reported, measure_from=100.0, now=131.0) == 100.0
    # No worker (a local runner): its seconds are complete a report lag ago.
    assert stop.complete_until([], {}, measure_from=100.0, now=131.0) == 131.0 - stop.REPORT_LAG_S


def test_only_the_windows_whole_seconds_up_to_the_check_count() -> None:
    capture = Capture()
    for second in range(98, 106):
        capture.record("a", 50_000, now=second + 0.5)
    by_style = stop.window_seconds(capture.per_second(), measure_from=100.0, until=104.5)
    assert [s for s, _ in by_style["a"]] == [100, 101, 102, 103]  # 104 is not over at 104.5


def test_an_interval_that_cannot_be_made_says_why_and_costs_nothing() -> None:
    class Broken:
        def get_total_count(self) -> int:
            raise RuntimeError("corrupt histogram")

    out = stop.p99_intervals([(("a", 100), Broken())], measure_from=100.0, until=200.0)
    assert out["a"]["batches"] == 0 and "corrupt histogram" in out["a"]["reason"]


def test_a_short_window_has_no_interval_yet() -> None:
    capture = Capture()
    for second in range(100, 103):
        for v in range(200):
            capture.record("a", 40_000 + v, now=second + 0.5)
    out = stop.p99_intervals(capture.per_second(), measure_from=100.0, until=103.0)
    assert out["a"]["batches"] == 0 and "fewer than" in out["a"]["reason"]
    assert stop.verdict(out, target=0.5, now=103.0, deadline=200.0) == ""
