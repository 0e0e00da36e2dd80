"""The verdict rules of your app's routes (analysis.findings.decide), each shown holding and failing."""

from __future__ import annotations

from typing import Any

import pytest

from analysis import bottleneck, findings


def figures(users: float, rps: float, mean_ms: float, requests: int = 1000, failures: int = 0) -> dict[str, Any]:
    return {"users": users, "rps": rps, "mean_ms": mean_ms, "requests": requests, "failures": failures}


def evidence(**over: Any) -> dict[str, Any]:
    base = {
        "blocked_share": 0.0,
        "own_code_share": 0.0,
        "blocking_sites": [],
        "cpu_ms_per_request": 0.3,
        "cores_used": 0.3,
        "cores_usable": 1.8,
        "workers": 2,
        "threads_full_share": 0.0,
        "threads_busy_max": 3.0,
        "threads_total": 40.0,
        "workers_reporting": 2,
        "pool_waiting_share": None,
    }
    return {**base, **over}


# A route waiting 30 ms: 1 user gives about 33 req/s; linear at 50 users is 50 times that.
LO = figures(1, 33.0, 30.0)
SCALED = figures(50, 1600.0, 31.0)
FLAT = figures(50, 66.0, 750.0)


def verdict(
    lo: dict[str, Any], hi: dict[str, Any], ev: dict[str, Any], void: list[str] | None = None, floor: float | None = 0.3
) -> str:
    return findings.decide(lo, hi, ev, void or [], floor_cpu_ms=floor)[0]


def test_a_route_that_scales_is_fine() -> None:
    assert verdict(LO, SCALED, evidence()) == "fine"
    assert verdict(LO, figures(50, 1400.0, 35.0), evidence()) == "fine"  # 85% of linear
    assert verdict(LO, figures(50, 1200.0, 41.0), evidence()) == "unknown"  # 73%: not, and nothing seen explains it


def test_a_stalled_loop_that_is_not_computing_blocks_it() -> None:
    site = [{"site": "shop/pricing.py:12 _fetch_from_bank", "share": 1.0}]
    stalled = evidence(blocked_share=0.95, own_code_share=0.95, blocking_sites=site, cores_used=0.1)
    name, rule, why = findings.decide(LO, FLAT, stalled, [])
    assert (name, rule) == ("blocks-event-loop", 3)
    assert "shop/pricing.py:12 _fetch_from_bank" in why
    # The same stalls while the workers computed: the CPU holds the loop, not a blocking call.
    computing = {**stalled, "cpu_ms_per_request": 28.0, "cores_used": 1.8}
    assert verdict(figures(1, 33.0, 30.0), FLAT, computing) == "cpu-bound"
    # Stalls outside the app's code (the loop's own, a library under it) are not the route's line.
    assert verdict(LO, FLAT, {**stalled, "own_code_share": 0.0}) != "blocks-event-loop"
    assert verdict(LO, FLAT, {**stalled, "blocked_share": 0.1, "own_code_share": 0.1}) != "blocks-event-loop"


def test_cpu_bound_needs_its_time_to_be_cpu() -> None:
    assert verdict(LO, FLAT, evidence(cpu_ms_per_request=20.0, cores_used=1.7)) == "cpu-bound"
    # A third of its 30 ms is CPU: cpu-bound only if that CPU ran out and it is the route's own cost.
    assert verdict(LO, FLAT, evidence(cpu_ms_per_request=10.0, cores_used=0.7)) != "cpu-bound"
    assert verdict(LO, FLAT, evidence(cpu_ms_per_request=10.0, cores_used=1.7)) == "cpu-bound"
    assert verdict(LO, FLAT, evidence(cpu_ms_per_request=10.0, cores_used=1.7), floor=5.0) != "cpu-bound"
    assert verdict(LO, SCALED, evidence(cpu_ms_per_request=20.0)) == "fine"  # it scaled


# 8 tokens on each of 2 workers, every one taken, requests queued for them: 16 requests at a time
# at the route's 30 ms alone serve about 533 req/s.
TOKENS_TAKEN = {"threads_full_share": 0.9, "threads_total": 8.0, "threads_busy_max": 8.0, "threads_in_use": 16.0}
QUEUED = {**TOKENS_TAKEN, "threads_waiting_share": 0.9, "threads_waiting_max": 17.0}


def test_a_full_threadpool_that_holds_it_back() -> None:
    at_the_tokens_pace = figures(50, 520.0, 95.0)  # 98% of 2 x 8 / 30 ms; 32% of linear
    name, rule, why = findings.decide(LO, at_the_tokens_pace, evidence(**QUEUED), [])
    assert (name, rule) == ("threadpool-bound", 5)
    assert "requests waited for one in 90% of them (up to 17 on a worker)" in why
    pace = "520 req/s is 98% of what the 16.0 tokens in use on average (of 8 a worker x 2 workers) serve at 1 user(s)'s"
    assert f"{pace} 30.0 ms a request" in why
    assert verdict(LO, at_the_tokens_pace, evidence(**{**QUEUED, "threads_full_share": 0.1})) == "unknown"
    # The users landed unevenly: one worker's 8 tokens all taken, the other's 4 of them. The 12 in
    # use serve 400 req/s at 30 ms, not the 533 of 16.
    uneven = evidence(**{**QUEUED, "threads_full_share": 0.5, "threads_waiting_share": 0.5, "threads_in_use": 12.0})
    name, _, why = findings.decide(LO, figures(50, 390.0, 128.0), uneven, [])
    assert name == "threadpool-bound" and "390 req/s is 98% of what the 12.0 tokens in use" in why


def test_tokens_taken_behind_a_lock_are_not_the_limit() -> None:
    """A lock in a def route: the threads waiting on it hold every token and requests queue for
    more, but each worker serves one request at a time, 1/T of what its tokens would."""
    locked = figures(50, 66.0, 750.0)  # 2 workers / 30 ms
    name, rule, why = findings.decide(LO, locked, evidence(**QUEUED), [])
    assert (name, rule) == ("unknown", 8)
    assert why.startswith("throughput grew 2.0x from 1 to 50 users (4% of linear); every threadpool token (8 a worker)")
    assert (
        "in use in 90% of the samples, but 66 req/s is 12% of what the 16.0 tokens in use on average (of 8 a worker "
        "x 2 workers) serve at 1 user(s)'s 30.0 ms a request: something behind the tokens (a lock, a small pool) "
        "serialises the route; raising the tokens would not help"
    ) in why
    # Just either side of the share of the tokens' pace that names them (533 req/s).
    share = bottleneck.TOKENS_PACE_SHARE
    assert verdict(LO, figures(50, share * 533.4, 95.0), evidence(**QUEUED)) == "threadpool-bound"
    assert verdict(LO, figures(50, share * 533.2, 95.0), evidence(**QUEUED)) == "unknown"
    # A small pool routebench sees behind the tokens: its waiters name it.
    assert verdict(LO, figures(50, 266.0, 180.0), evidence(**QUEUED, pool_waiting_share=0.9)) == "pool-bound"


def test_tokens_taken_with_no_one_waiting_for_them_are_not_the_limit() -> None:
    near_pace = figures(50, 520.0, 95.0)
    # Older telemetry records no waiters: the tokens are not named on waiters it never saw.
    name, rule, why = findings.decide(LO, near_pace, evidence(**TOKENS_TAKEN), [])
    assert (name, rule) == ("unknown", 8)
    assert "but the telemetry has no record of requests waiting for one (older telemetry)" in why
    # Recorded, and (nearly) none waited.
    name, _, why = findings.decide(LO, near_pace, evidence(**{**QUEUED, "threads_waiting_share": 0.02}), [])
    assert name == "unknown" and "but requests waited for one in only 2% of them" in why


def test_without_the_routes_pace_alone_the_tokens_are_not_named() -> None:
    """The mean latency at 1 user only a lower bound: what the tokens serve is not known, and the
    waiters alone do not tell the tokens from a lock behind them (its waiters hold tokens too)."""
    bound = {**LO, "at_least": ["mean"]}
    name, rule, why = findings.decide(bound, FLAT, evidence(**QUEUED), [])
    assert (name, rule) == ("unknown", 8)
    assert "but the mean latency at 1 user(s) is only a lower bound, so what the tokens serve" in why
    assert "cannot be told from a lock or a small pool behind them" in why
    assert verdict(bound, FLAT, evidence(**TOKENS_TAKEN)) == "unknown"
    name, _, why = findings.decide(LO, FLAT, evidence(**{**QUEUED, "threads_in_use": None}), [])
    assert name == "unknown" and "but the tokens in use on average were not recorded" in why


@pytest.mark.parametrize(
    ("alone_ms", "rps", "tokens", "case"),
    [
        # a 10 ms def route holding a lock for 2 ms of it, T = 8 on 2 workers: the lock caps it at
        # 2 / 2 ms = 1000 req/s, 62% of the 1600 its 16 tokens serve
        (10.0, 1000.0, 16.0, "a lock held for a fifth of the request"),
        # T = 2 on 2 workers, the lock held for the whole 30 ms: 67 req/s, half of the 4 tokens' 133
        (30.0, 66.7, 4.0, "a whole-request lock at T = 2"),
    ],
)
def test_a_lock_behind_the_tokens_is_told_from_them(alone_ms: float, rps: float, tokens: float, case: str) -> None:
    lo = figures(1, 1000 / alone_ms * 0.98, alone_ms)
    ev = evidence(**{**QUEUED, "threads_total": tokens / 2, "threads_in_use": tokens})
    assert verdict(lo, figures(50, rps, 50 / rps * 1000), ev) == "unknown", case


def test_pool_bound_only_with_pool_waiters_seen() -> None:
    half = figures(50, 800.0, 62.0)
    assert verdict(LO, half, evidence(pool_waiting_share=0.6)) == "pool-bound"
    assert verdict(LO, half, evidence(pool_waiting_share=None)) == "unknown"


def test_the_machines_cpu_cap_is_not_the_routes_fault() -> None:
    capped = figures(50, 2000.0, 25.0)
    fast = figures(1, 95.0, 10.5)
    saturated = evidence(cpu_ms_per_request=0.45, cores_used=1.6)
    name, _, why = findings.decide(fast, capped, saturated, [], floor_cpu_ms=0.3)
    assert name == "fine" and "machine's cap" in why
    assert verdict(fast, capped, evidence(cpu_ms_per_request=0.45, cores_used=0.6)) == "unknown"  # not saturated
    # With no other route to compare its cost with, a saturated CPU explains nothing about the route.
    assert findings.decide(fast, capped, saturated, [], floor_cpu_ms=None)[:2] == ("unknown", 8)


def test_a_mostly_waiting_route_whose_own_cpu_caps_it_is_cpu_bound() -> None:
    """100 ms of awaiting and 20 ms of CPU a request: its latency is mostly waiting, but at 50 users
    its CPU is what runs out, and it costs far more than what every request pays."""
    lo, hi = figures(1, 8.3, 120.0), figures(50, 92.0, 540.0)
    ev = evidence(cpu_ms_per_request=20.0, cores_used=1.84, cores_usable=1.95)
    assert verdict(lo, hi, ev, floor=0.3) == "cpu-bound"
    assert verdict(lo, hi, {**ev, "blocked_share": 0.9, "own_code_share": 0.9}, floor=0.3) == "cpu-bound"


def test_more_workers_than_cores_is_still_computing_not_blocking() -> None:
    """W=4 on 2 cores: each worker is on the CPU half the time, its loop stalled all of it."""
    ev = evidence(
        blocked_share=1.0,
        own_code_share=1.0,
        cores_used=1.88,
        cores_usable=1.95,
        workers=4,
        workers_reporting=4,
        cpu_ms_per_request=28.0,
    )
    assert verdict(figures(1, 33.0, 30.0), FLAT, ev) == "cpu-bound"


def test_a_computing_loop_kept_off_the_cores_by_another_process_is_not_blocking() -> None:
    """A CPU hog beside the server: each of 2 workers computes 40% of the time and its loop waits
    for a core 55% of it; stalled all the time, but by computation that the cores could not run."""
    ev = evidence(blocked_share=1.0, own_code_share=1.0, cores_used=0.8, cores_usable=1.5, cpu_ms_per_request=28.0)
    assert verdict(figures(1, 25.0, 40.0), FLAT, ev) == "blocks-event-loop"  # no run-queue evidence
    queued = {**ev, "loop_cpu_wait_share": 0.55}
    assert verdict(figures(1, 25.0, 40.0), FLAT, queued) == "cpu-bound"
    # With the lowest count's mean only a bound, the CPU it used and waited for (0.8 + 2 x 0.55
    # cores of 1.5) says it ran out: 90x the cheapest route's CPU per request is the route's own.
    bound = {**figures(1, 25.0, 40.0), "at_least": ["mean"]}
    name, _, why = findings.decide(bound, FLAT, queued, [], floor_cpu_ms=0.3)
    assert name == "cpu-bound" and "waiting for a CPU 55%" in why
    assert verdict(bound, FLAT, {**ev, "loop_cpu_wait_share": 0.1}) == "unknown"
    # The generator's share is off the usable cores already: its run-queue wait is not counted
    # twice. Each worker on the CPU 25% and waiting 15%: idle 60% of the time, the loop blocked.
    light = evidence(blocked_share=0.9, own_code_share=0.9, cores_used=0.5, cores_usable=1.0, loop_cpu_wait_share=0.15)
    assert verdict(LO, FLAT, light) == "blocks-event-loop"
    # Waiting for a core a little while does not excuse a loop that sleeps most of its time.
    sleeping = {**ev, "cores_used": 0.1, "cpu_ms_per_request": 0.4, "loop_cpu_wait_share": 0.05}
    name, _, why = findings.decide(LO, FLAT, sleeping, [])
    assert name == "blocks-event-loop" and "waiting for a CPU 5%" in why


def test_no_server_evidence_claims_nothing() -> None:
    bare = evidence(blocked_share=None, cores_used=None, cpu_ms_per_request=None)
    name, rule, why = findings.decide(LO, FLAT, bare, [])
    assert (name, rule) == ("unknown", 8) and "no server evidence" in why
    assert findings.decide(LO, SCALED, bare, [])[0] == "fine"  # it scaled: nothing to explain


def test_the_cheapest_routes_cost_must_say_something() -> None:
    """A floor of 0 ms says nothing of what a request costs: no verdict leans on it."""
    capped, fast = figures(50, 2000.0, 25.0), figures(1, 95.0, 10.5)
    saturated = evidence(cpu_ms_per_request=0.45, cores_used=1.6)
    assert findings.decide(fast, capped, saturated, [], floor_cpu_ms=0.0)[:2] == ("unknown", 8)


def test_a_blocked_loop_beside_a_saturated_cpu_is_not_called_blocking() -> None:
    """Stalls while the CPU ran out may be the CPU's: blocks-event-loop needs the CPU to have room."""
    ev = evidence(
        blocked_share=0.6,
        own_code_share=0.6,
        cores_used=1.7,
        cores_usable=1.8,
        workers=8,
        workers_reporting=8,
        cpu_ms_per_request=0.4,
    )
    assert verdict(LO, FLAT, ev) != "blocks-event-loop"
    assert verdict(LO, FLAT, {**ev, "cores_used": 0.4}) == "blocks-event-loop"


def test_errors_and_void_cells_come_first() -> None:
    failing = figures(50, 1600.0, 31.0, requests=900, failures=100)
    assert verdict(LO, failing, evidence()) == "errors"
    assert verdict(LO, figures(50, 1600.0, 31.0, requests=1000, failures=5), evidence()) == "fine"  # 0.25%
    name, rule, why = findings.decide(LO, failing, evidence(), ["cell x broke the validity rule(s) generator"])
    assert (name, rule) == ("unknown", 1) and "generator" in why


@pytest.mark.parametrize("rule", findings.RULES)
def test_every_rule_is_said_in_words(rule: str) -> None:
    assert rule.split(":")[0] in findings.VERDICTS


def test_a_cpu_bound_route_says_whether_it_computes_on_the_loop_and_what_the_others_met() -> None:
    """Both are cpu-bound (their time is computation); one holds the loop while it computes, so every
    other route of the worker waits behind it, the other computes in threads: the canary's median
    beside each says what that costs the rest of the app."""
    computing = dict(cpu_ms_per_request=20.0, cores_used=1.7)
    site = [{"site": "app/report.py:40 build", "share": 1.0, "stack": ["app/report.py:40 build"]}]
    on_loop = evidence(blocked_share=0.95, own_code_share=0.9, blocking_sites=site, **computing)
    lo, hi = {**LO, "others_p50_ms": 1.2}, {**FLAT, "others_p50_ms": 180.0}
    verdict_, rule, why = findings.decide(lo, hi, on_loop, [], floor_cpu_ms=0.3)
    assert (verdict_, rule) == ("cpu-bound", 4)
    assert "it computes on the event loop (stalled 95% of the time at app/report.py:40 build)" in why
    assert "a request to another route meanwhile took 180.0 ms at the median (1.2 ms at 1 user(s))" in why
    off_loop = evidence(blocked_share=0.05, own_code_share=0.0, **computing)
    verdict_, _, why = findings.decide(lo, {**FLAT, "others_p50_ms": 15.0}, off_loop, [], floor_cpu_ms=0.3)
    assert verdict_ == "cpu-bound" and "it computes off the event loop (stalled 5% of the time)" in why
    assert "took 15.0 ms at the median" in why
    # Without the canary (a run from before it), the verdict still says where it computes.
    _, _, why = findings.decide(LO, FLAT, off_loop, [], floor_cpu_ms=0.3)
    assert why.endswith("it computes off the event loop (stalled 5% of the time)")
