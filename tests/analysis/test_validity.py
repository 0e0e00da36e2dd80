"""Each validity rule fails on the cell it describes and holds on a clean one."""

from __future__ import annotations

from typing import Any

from analysis import validity

STYLE = "sleep/async-await"


def cell(**over: Any) -> dict[str, Any]:
    return {"styles": [STYLE], "model": "closed", "users_by_style": {STYLE: 10}, **over}


def exact(entry: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    # 10 users, 6 s: 1,180 requests of 50.8 ms on average is U = X x R (1,180 / 6 x 0.0508 = 9.99).
    base = {"count": 1180, "failures": 0, "censored": 10, "completed_mean_us": 50_800, "censored_max_us": 40_000}
    body = {
        "measure_from": 1000.0,
        "stopped_at": 1006.0,
        "requests": {STYLE: {**base, **(entry or {})}},
        "locust_counts": {STYLE: {"requests": 1185}},
        "final_reports": {"expected": ["a", "b"], "received": ["a", "b"], "missing": []},
    }
    return {**body, **top}


def failed(c: dict[str, Any], e: dict[str, Any]) -> list[str]:
    return validity.check(c, e)["failed"]


def test_a_clean_cell_is_valid() -> None:
    v = validity.check(cell(), exact({"inflight_at_stop": 10}))
    assert v["valid"] and v["failed"] == [] and v["reasons"] == []


def test_counts_must_agree_with_locusts() -> None:
    # Locust may count what completed after the close (in flight then) but not 100 more.
    assert "counts" not in failed(cell(), exact({"inflight_at_stop": 10}))
    assert "counts" in failed(cell(), exact({"inflight_at_stop": 10}, locust_counts={STYLE: {"requests": 1290}}))
    assert "counts" in failed(cell(), exact(locust_counts={STYLE: {"requests": 1000}}))


def test_littles_law_catches_requests_that_never_came_back() -> None:
    # 100 users, 39.3 req/s at 1.18 s: 46 users accounted for (the default run's blocked cell).
    lost = exact({"count": 236, "completed_mean_us": 1_180_000}, locust_counts={STYLE: {"requests": 236}})
    v = validity.check(cell(users_by_style={STYLE: 100}), lost)
    assert "littles_law" in v["failed"] and "100 users" in " ".join(v["reasons"])
    # Users starved through the whole window (a request sent in the warm-up, still out at the stop):
    # the window's own requests cannot show them, the rule says where they went.
    starved = exact({"count": 236, "completed_mean_us": 1_180_000, "inflight_since_warmup": 39})
    reasons = " ".join(validity.check(cell(users_by_style={STYLE: 100}), starved)["reasons"])
    assert "39 of its users held a request sent in the warm-up through the whole window" in reasons


def test_littles_law_counts_the_users_think_time() -> None:
    """A locustfile whose 10 users think 2 s between 50.8 ms requests: about 4.9 req/s, 29 in 6 s.
    Each user waits for a response 2.5% of the time: X x R alone accounts for a quarter of a user."""
    thinking = {"count": 29, "censored": 0, "think_us": 29 * 2_000_000}
    e = exact(thinking, locust_counts={STYLE: {"requests": 29}})
    assert "littles_law" not in failed(cell(), e)
    v = validity.check(cell(), exact({**thinking, "think_us": 0}, locust_counts={STYLE: {"requests": 29}}))
    assert "littles_law" in v["failed"] and "10 users" in " ".join(v["reasons"])
    # Users who thought half as long as they said would not be 10: the rule still catches it.
    assert "littles_law" in failed(cell(), exact({**thinking, "think_us": 29 * 1_000_000}))


def test_a_window_shorter_than_the_latencies_names_one_that_would_do() -> None:
    v = validity.check(cell(), exact({"censored_max_us": 2_000_000, "at_least": ["99", "99.9"]}))
    assert "window" in v["failed"] and "about 20 s" in " ".join(v["reasons"]) and "p99" in " ".join(v["reasons"])


def test_open_model_schedule() -> None:
    open_cell = cell(model="open", arrival_rate=60)
    kept = {"offered": 360, "sent": 358, "unsent_at_stop": 2, "late_starts": 3}
    assert "schedule" not in failed(open_cell, exact(kept))
    assert "schedule" in failed(open_cell, exact({**kept, "offered": 180, "sent": 178}))  # half the rate
    assert "schedule" in failed(open_cell, exact({**kept, "sent": 300}))  # offered != sent + unsent
    assert "schedule" in failed(open_cell, exact({**kept, "late_starts": 60}))  # 17% late


def test_failures_generator_reports_and_workers() -> None:
    assert "failures" in failed(cell(), exact({"count": 1100, "failures": 80}))
    assert "generator" in failed(cell(generator_saturated=True), exact())
    missing = {"expected": ["a", "b"], "received": ["a"], "missing": ["b"]}
    assert "final_reports" in failed(cell(), exact(final_reports=missing))
    assert "workers" in failed(cell(lost_workers=[{"id": "b", "lost_at": 1003.0}]), exact())


def test_warm_up_rejections_are_information_not_a_fault() -> None:
    v = validity.check(cell(), exact({"warmup_rejected": 300}))
    assert v["valid"] and "300 warm-up samples rejected" in v["notes"][0]


def loss(kind: str, phase: str, **over: Any) -> dict[str, Any]:
    return {"process": kind, "kind": kind, "pid": 4711, "how": "killed by SIGKILL", "at_s": 5.2, "phase": phase, **over}


def test_a_loss_after_the_window_opened_breaks_its_rule_and_one_before_does_not() -> None:
    # A generator lost before the window was replaced (the load started again): nothing measured lost.
    assert validity.check(cell(losses=[loss("locust worker", "warm-up")]), exact())["valid"]
    v = validity.check(cell(losses=[loss("locust worker", "window", samples_delivered=812, client_id="b")]), exact())
    assert v["failed"] == ["workers"]
    assert (
        "locust worker (pid 4711) killed by SIGKILL at +5.2 s, in the measured window, 812 samples delivered"
        in (v["reasons"][0])
    )
    assert validity.check(cell(losses=[loss("server worker", "final report")]), exact())["failed"] == ["server"]
    # The master's heartbeat saw the same worker go: said once, by the runner's record.
    both = cell(losses=[loss("locust worker", "window", client_id="b")], lost_workers=[{"id": "b"}])
    assert validity.check(both, exact())["reasons"][0].count("locust worker") == 1


def test_a_missing_final_report_says_whether_its_process_died() -> None:
    missing = {"expected": ["a", "b"], "received": ["a"], "missing": ["b"], "dead": ["b"]}
    (reason,) = validity.check(cell(), exact(final_reports=missing))["reasons"]
    assert reason == "final report never arrived from b (its process died)"


def test_a_generator_that_did_not_keep_the_canarys_time_voids_the_cell() -> None:
    """The canary sends on a fixed schedule in every cell: its starts that began late are the
    generator's own wait for a core, which every latency it timed carries (a process pool's children
    once kept it waiting 0.4 s a second here: 103 of 199 late, by up to 702 ms)."""
    late = {"sent": 199, "late_starts": 103, "max_start_lag_us": 701_806}
    v = validity.check(cell(), exact(canary=late, late_ms=10.0))
    assert v["failed"] == ["generator"]
    assert "started 103 of 199 requests (52%) more than 10 ms late (worst 702 ms)" in v["reasons"][0]
    # At the schedule's own tolerance (5% of starts) it holds: 10 of 200 is a busy moment, not a cell.
    assert validity.check(cell(), exact(canary={**late, "sent": 200, "late_starts": 10}))["valid"]
