"""A style's summary in the exact capture: the successes' percentiles beside those of every start,
where a failure counts at its latency and an unfinished request at its elapsed time."""

from __future__ import annotations

from locustfiles.capture import Capture


def test_every_start_counts_slow_failures_and_the_unfinished() -> None:
    """990 successes of 10 ms and 10 timeouts of 5 s: the successes' percentiles are all 10 ms, but
    1% of the users waited 5 s, which every start's percentiles show from the p99.1 on (its p99.9)."""
    capture = Capture()
    for _ in range(990):
        capture.record("s", 10_000)
    for _ in range(10):
        capture.record("s", 5_000_000, kind="failed")
    e = capture.summary()["s"]
    assert e["percentiles_us"]["99"] < 10_100 and e["failures"] == 10
    assert e["every_start_percentiles_us"]["99.9"] > 4_990_000
    assert e["every_start_percentiles_us"]["50"] < 10_100 and e["every_start_at_least"] == []
    # One more start, unfinished at 3 s when the test stopped: sorted, it comes right after the
    # 990 successes, so every start's p99 (the 991st of 1,001) is that request's 3 s so far, only a
    # lower bound; its p99.9 (the 1,000th) is a timeout's 5 s, decided.
    capture.record("s", 3_000_000, kind="censored")
    e = capture.summary()["s"]
    assert 2_990_000 < e["every_start_percentiles_us"]["99"] < 3_010_000
    assert e["every_start_at_least"] == ["99"]
