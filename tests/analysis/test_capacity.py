"""Capacity without load: the search against systems whose MST is known, a probe's rules, theory's
numbers, the knee, capacity.json, and the check and comparison of MSTs."""

from __future__ import annotations

import math
import random

import pytest

from analysis import capacity, slo, theory
from routebench.search import CONFIRM, Search
from target_app import catalogue

SLOS = [capacity.parse_slo("p99<250ms"), capacity.parse_slo("failure_rate<1%")]


def search_until_done(search: Search, passes) -> Search:  # type: ignore[no-untyped-def]
    while (step := search.next_probe()) is not None:
        rate, phase = step
        search.record(rate, phase, passes(rate, phase))
    return search


@pytest.mark.parametrize("true_mst", [3.0, 38.0, 40.0, 2169.0, 4900.0])
@pytest.mark.parametrize("start", [10.0, 39.7, 3000.0])
def test_search_confirms_an_mst_within_its_tolerance_of_the_true_one(true_mst: float, start: float) -> None:
    s = search_until_done(Search(start, 1.0, 5000.0, tolerance=0.05, max_probes=30), lambda r, _: r <= true_mst)
    found = s.mst()
    assert found["confirmed"], s.outcome
    # Never above the truth; below it by at most the tolerance (the next rate up failed).
    assert true_mst / 1.05 <= found["mst_rps"] <= true_mst, (found, s.probes)
    assert found["bracket"][1] is None or found["bracket"][1] / found["mst_rps"] <= 1.05
    assert s.probes[-1]["phase"] == CONFIRM and s.outcome.startswith("confirmed")


def test_a_refuted_confirmation_sends_the_search_below_it() -> None:
    """A rate that passed a short probe but fails the longer confirmation is a failing rate."""
    confirm_fails_above = 30.0

    def passes(rate: float, phase: str) -> bool:
        return rate <= (confirm_fails_above if phase == CONFIRM else 38.0)

    s = search_until_done(Search(10.0, 1.0, 5000.0, max_probes=30), passes)
    assert s.mst()["confirmed"] and s.mst()["mst_rps"] <= confirm_fails_above
    confirmations = [p for p in s.probes if p["phase"] == CONFIRM]
    assert len(confirmations) >= 2 and not confirmations[0]["passed"] and confirmations[-1]["passed"]


def test_search_bounds_and_budget_end_the_search_in_words() -> None:
    low = search_until_done(Search(10.0, 2.0, 5000.0), lambda r, _: r <= 1.0)
    assert low.mst()["mst_rps"] is None and "lower bound" in low.outcome
    high = search_until_done(Search(10.0, 1.0, 100.0), lambda r, _: True)
    assert high.mst() == {"mst_rps": 100.0, "confirmed": True, "bracket": [100.0, None], "lower_bound": True}
    spent = search_until_done(Search(10.0, 1.0, 5000.0, max_probes=3), lambda r, _: r <= 38.0)
    assert len(spent.probes) == 3 and "budget" in spent.outcome and spent.mst()["best_unconfirmed_rps"] == 20.0


def test_expected_probes_matches_what_a_search_from_a_good_start_takes() -> None:
    rng = random.Random(7)
    for _ in range(50):
        truth = rng.uniform(5, 3000)
        guess = truth * rng.uniform(0.9, 1.1)
        s = search_until_done(Search(guess, 1.0, 1e5, max_probes=40), lambda r, _, t=truth: r <= t)
        assert len(s.probes) <= Search.expected_probes(guess, truth, 2.0, 0.05) + 2, s.probes


def exact_for(
    style: str,
    *,
    p99_ms: float = 60.0,
    count: int = 400,
    failures: int = 0,
    p50s: list[float] | None = None,
    every_start_p99_ms: float | None = None,
):  # type: ignore[no-untyped-def]
    p50s = p50s or [55.0] * 4
    every = {"50": 55_000, "95": 58_000, "99": int((every_start_p99_ms or p99_ms) * 1000), "99.9": 70_000}
    return {
        "requests": {
            style: {
                "count": count,
                "failures": failures,
                "percentiles_us": {"50": 55_000, "95": 58_000, "99": int(p99_ms * 1000), "99.9": 70_000},
                "at_least": [],
                "every_start_percentiles_us": every,
                "every_start_at_least": [],
                "completed_mean_us": 56_000,
            }
        },
        "timeline": {style: [[1000 + i, 100, int(v * 1000), 58_000, int(p99_ms * 1000)] for i, v in enumerate(p50s)]},
    }


CELL = {"arrival_rate": 100.0, "window_s": 4.0, "validity": {"valid": True, "broken": []}}


def test_a_probe_passes_only_when_every_rule_holds() -> None:
    ok = capacity.judge(CELL, exact_for("s"), "s", SLOS)
    assert ok["passed"] and ok["failed"] == [] and ok["achieved_rps"] == 100.0
    slow = capacity.judge(CELL, exact_for("s", p99_ms=300), "s", SLOS)
    assert slow["failed"] == ["slo"] and "p99<250ms" in slow["why"][0]
    erring = capacity.judge(CELL, exact_for("s", failures=10, count=390), "s", SLOS)
    assert erring["failed"] == ["slo"] and "failure_rate" in erring["why"][0]
    # Successes at 60 ms, but 3 of 400 starts timed out at 5 s: the p99 of every start breaks it.
    timeouts = capacity.judge(CELL, exact_for("s", failures=3, count=397, every_start_p99_ms=5000), "s", SLOS)
    assert timeouts["failed"] == ["slo"] and "p99<250ms" in timeouts["why"][0]
    behind = capacity.judge(CELL, exact_for("s", count=380), "s", SLOS)  # 95 of 100 req/s
    assert behind["failed"] == ["throughput"]
    queue = capacity.judge(CELL, exact_for("s", p50s=[55, 60, 70, 90, 110, 130]), "s", SLOS)
    assert queue["failed"] == ["trend"] and queue["trend"]["growing"]
    late = {**CELL, "validity": {"valid": False, "broken": [{"rule": "schedule", "text": "12% late"}]}}
    assert capacity.judge(late, exact_for("s"), "s", SLOS)["failed"] == ["schedule"]
    assert capacity.judge(CELL, {"requests": {}}, "s", SLOS)["failed"] == ["data"]


def test_trend_needs_growth_both_relative_and_absolute() -> None:
    rows = lambda p50s: [[i, 10, int(v * 1000), 0, 0] for i, v in enumerate(p50s)]  # noqa: E731
    assert not capacity.trend(rows([1.0, 1.0, 1.0, 2.0, 2.0, 2.0]))["growing"]  # doubled, but by 1 ms
    assert not capacity.trend(rows([100, 101, 103, 104, 106, 110]))["growing"]  # +10 ms is under 20%
    assert capacity.trend(rows([50, 52, 60, 70, 80, 90]))["growing"]
    assert not capacity.trend(rows([50, 90]))["growing"]  # two seconds: no trend can be read


def calibration(style: str, cpu_s: float, workers_cpu_s: float) -> dict:  # type: ignore[type-arg]
    return {"probes": [{"style": style, "cpu_s_per_request": cpu_s, "workers_cpu_s_per_request": workers_cpu_s}]}


SHAPE = {
    "server_workers": 2,
    "threadpool_tokens": 40,
    "db_pool_size": 10,
    "wait_ms": 50,
    "fanout": 5,
    "work": 200000,
    "worker_class": "uvicorn-worker",
}


def test_blocking_in_async_is_predicted_at_its_ceiling_w_over_d() -> None:
    """A fixed wait on evenly spaced arrivals queues nothing below saturation (D/D/m): the
    predicted MST is the ceiling, one loop per worker held d + its CPU per request."""
    style = "sleep/blocking-in-async"
    n = capacity.theory_numbers(style, SHAPE, calibration(style, 0.0004, 0.0003), 2.0, 0.0, 250.0)
    assert n["ceiling_rps"] == pytest.approx(2 / 0.0503, rel=0.01)
    assert n["predicted_mst_rps"] == pytest.approx(n["ceiling_rps"], rel=0.01)


def test_cpu_queueing_puts_the_predicted_mst_below_the_ceiling_and_the_generator_lowers_both() -> None:
    style = "sleep/async-await"
    alone = capacity.theory_numbers(style, SHAPE, calibration(style, 0.0008, 0.0008), 2.0, 0.0, 250.0)
    assert alone["ceiling_rps"] == pytest.approx(2 / 0.0008, rel=0.01)
    assert 0.8 * alone["ceiling_rps"] < alone["predicted_mst_rps"] < alone["ceiling_rps"]
    shared = capacity.theory_numbers(style, SHAPE, calibration(style, 0.0008, 0.0008), 2.0, 0.0002, 250.0)
    # The generator takes 0.2 ms of CPU per request too: one core-second per 1 ms of both.
    assert shared["ceiling_rps"] == pytest.approx(2 / 0.001, rel=0.01)
    assert shared["predicted_mst_rps"] < alone["predicted_mst_rps"]


def test_the_wait_p99_of_an_mm1_station_is_erlang_cs_quantile() -> None:
    """At cs² = 1 and ca² = 1 (scv 2) the approximation is exact for M/M/1: P(W > t) = ρ e^{-(μ-λ)t}."""
    st = theory.Station("CPU", 0.01, 1.0)  # μ = 100/s
    lam = 80.0
    expected = math.log(0.8 / 0.01) / (100 - lam)
    assert theory.wait_quantile(st, lam, 2.0, 0.99) == pytest.approx(expected, rel=1e-6)
    assert theory.wait_quantile(st, 100.0, 2.0, 0.99) == math.inf


def test_the_knee_is_where_throughput_over_latency_peaks() -> None:
    mu = 100.0  # M/M/1: power λ(μ-λ) peaks at μ/2
    probes = [{"offered_rps": r, "achieved_rps": r, "mean_ms": 1000 / (mu - r)} for r in (10, 30, 45, 50, 55, 70, 90)]
    assert capacity.knee(probes) == 50
    assert capacity.knee([{"offered_rps": 5, "achieved_rps": None, "mean_ms": 3.0}]) is None


def probe_cell(search: int, rate: float, passed: bool, phase: str = "bisect") -> dict:  # type: ignore[type-arg]
    return {
        "id": f"{search}-{rate}-{phase}",
        "search": search,
        "phase": phase,
        "arrival_rate": rate,
        "users": 10,
        "window_s": 4.0,
        "status": "ok",
        "generator_cpu_cores": rate * 1e-4,
        "probe": {
            "passed": passed,
            "failed": [] if passed else ["slo"],
            "why": [] if passed else ["SLO p99<250ms broken"],
            "achieved_rps": rate,
            "p50_ms": 55.0,
            "p95_ms": 60.0,
            "p99_ms": 70.0 if passed else 400.0,
            "mean_ms": 56.0 if passed else 300.0,
            "error_share": 0.0,
        },
    }


def state_with(msts: dict[str, list[float]]) -> dict:  # type: ignore[type-arg]
    searches, cells = [], []
    for style, values in msts.items():
        for repeat, mst in enumerate(values, 1):
            n = len(searches) + 1
            cells += [probe_cell(n, mst, True), probe_cell(n, mst * 1.04, False), probe_cell(n, mst, True, "confirm")]
            searches.append(
                {
                    "style": style,
                    "search": n,
                    "cell": {**SHAPE, "repeat": repeat},
                    "outcome": "confirmed within 5%",
                    "mst_rps": mst,
                    "confirmed": True,
                    "bracket": [mst, mst * 1.04],
                    "start_rps": 10.0,
                }
            )
    return {
        "run_id": "r",
        "capacity": {"slo": ["p99<250ms", "failure_rate<1%"], "searches": searches},
        "cells": cells,
        "calibration": {"probes": []},
    }


def test_capacity_json_gives_repeats_an_interval_ratios_and_a_verdict() -> None:
    doc = capacity.document(
        state_with({"sleep/async-await": [2100.0, 2200.0, 2150.0], "sleep/blocking-in-async": [38.0, 37.0, 39.0]}),
        2.0,
        complete=True,
    )
    assert doc["schema"] == "routebench.capacity/1" and doc["complete"]
    rows = {r["style"]: r for r in doc["styles"]}
    blocking = rows["sleep/blocking-in-async"]
    assert blocking["mst_rps"] == 38.0 and blocking["mst_interval"]["n"] == 3
    assert blocking["mst_interval"]["low"] < 38.0 < blocking["mst_interval"]["high"]
    assert blocking["vs_baseline"] == pytest.approx(38.0 / 2150.0) and blocking["baseline"] == "sleep/async-await"
    assert blocking["predicted_mst_rps"] == pytest.approx(40.0, rel=0.01)  # no CPU measured: W/d
    assert blocking["probes"] == 9
    (cmp,) = doc["comparisons"]
    assert cmp["verdict"] == "differ" and cmp["p"] < 0.05
    search = doc["searches"][0]
    assert search["probes"][1]["outcome"] == "fail" and search["probes"][1]["failed_rules"] == ["slo"]
    assert search["generator_s_per_request"] == pytest.approx(1e-4)


def test_one_repeat_gives_no_interval_and_no_verdict() -> None:
    doc = capacity.document(state_with({"sleep/async-await": [2100.0], "sleep/sync-def": [700.0]}), 2.0, True)
    assert "low" not in doc["styles"][0]["mst_interval"]
    assert doc["comparisons"][0]["verdict"] == "not tested"


def test_each_style_is_compared_with_its_familys_baseline_as_the_rest_of_the_report_is() -> None:
    """The catalogue names each family's baseline; for the fan-out family it is not the first style."""
    doc = capacity.document(state_with({"fanout/sequential": [90.0], "fanout/gather": [400.0]}), 2.0, True)
    rows = {r["style"]: r for r in doc["styles"]}
    assert rows["fanout/sequential"]["baseline"] == "fanout/gather" == catalogue.baseline("fanout").id
    assert rows["fanout/sequential"]["vs_baseline"] == pytest.approx(90.0 / 400.0)
    assert [(c["a"], c["b"]) for c in doc["comparisons"]] == [("fanout/gather", "fanout/sequential")]


def test_check_judges_confirmed_msts_and_only_bounds_that_prove_something() -> None:
    doc = capacity.document(state_with({"sleep/async-await": [2100.0]}), 2.0, True)
    rows = capacity.evaluate(doc, [slo.parse("sleep/async-await:mst>=1000"), slo.parse("sleep/async-await:mst>=3000")])
    assert [(r["passed"], r["judged"]) for r in rows] == [(True, True), (False, True)]
    floors = [slo.parse("sleep/async-await:mst>=1000"), slo.parse("sleep/async-await:mst>=2000")]
    # Interrupted: a probe passed at 1500/s but nothing was confirmed: it proves nothing.
    state = state_with({"sleep/async-await": [2100.0]})
    state["capacity"]["searches"][0].update(mst_rps=None, confirmed=False, best_unconfirmed_rps=1500.0)
    low, high = capacity.evaluate(capacity.document(state, 2.0, False), floors)
    assert not low["judged"] and not high["judged"] and "not judged" in low["note"]
    # Confirmed at the search's upper bound (1500/s): a lower bound that proves the floor it meets.
    state = state_with({"sleep/async-await": [1500.0]})
    state["capacity"]["searches"][0].update(lower_bound=True, bracket=[1500.0, None])
    low, high = capacity.evaluate(capacity.document(state, 2.0, True), floors)
    assert (low["passed"], low["judged"]) == (True, True) and not high["judged"]
    # Failed at the search's lower bound (5/s): every floor from 5/s up is broken, certainly.
    state = state_with({"sleep/async-await": [2100.0]})
    state["capacity"]["searches"][0].update(mst_rps=None, confirmed=False, best_unconfirmed_rps=None, below_rps=5.0)
    low, _ = capacity.evaluate(capacity.document(state, 2.0, True), floors)
    assert (low["passed"], low["judged"]) == (False, True)
    missing = capacity.evaluate(doc, [slo.parse("sleep/sync-def:mst>=1")])
    assert missing[0]["note"] == "style not searched in this run" and not missing[0]["passed"]


def test_partly_confirmed_repeats_give_no_mst_and_repeats_on_one_grid_rate_an_interval() -> None:
    state = state_with({"sleep/async-await": [2100.0, 2100.0, 2100.0]})
    state["capacity"]["searches"][2].update(mst_rps=None, confirmed=False, best_unconfirmed_rps=2000.0)
    row = capacity.document(state, 2.0, False)["styles"][0]
    assert row["mst_rps"] is None and row["confirmed"] == 2 and row["lower_bound_rps"] == 2000.0
    same = capacity.document(state_with({"sleep/async-await": [2100.0] * 3}), 2.0, True)["styles"][0]
    # No spread at all, yet the MST is known only to the bracket [2100, 2184): the interval says so.
    assert same["mst_interval"]["low"] == 2100.0 and same["mst_interval"]["high"] == pytest.approx(2184.0)
    assert capacity.differ([2100.0] * 2, [2184.0] * 2)["verdict"] == "not tested"


def test_comparing_two_runs_tests_repeats_and_needs_a_floor_without_them() -> None:
    a = capacity.document(state_with({"sleep/async-await": [2100.0, 2150.0, 2120.0]}), 2.0, True)
    b = capacity.document(state_with({"sleep/async-await": [1500.0, 1520.0, 1490.0]}), 2.0, True)
    (row,) = capacity.compare_docs(a, b)
    assert row["verdict"] == "worse" and row["ratio"] < 1
    one_a = capacity.document(state_with({"sleep/async-await": [2100.0]}), 2.0, True)
    one_b = capacity.document(state_with({"sleep/async-await": [2000.0]}), 2.0, True)
    assert capacity.compare_docs(one_a, one_b)[0]["verdict"] == "inconclusive"
    assert capacity.compare_docs(one_a, one_b, noise=0.10)[0]["verdict"] == "same"
    assert capacity.compare_docs(one_a, one_b, noise=0.02)[0]["verdict"] == "worse"

    # B's MST reached its search's highest rate: at least 1,500 req/s, maybe more than A's 2,100.
    capped = {**b, "styles": [{**b["styles"][0], "at_search_bound": True}]}
    (row,) = capacity.compare_docs(a, capped)
    assert row["verdict"] == "inconclusive" and "B's MST reached its search's highest rate" in row["why"]
    # As the higher of the two, a lower bound still says which is better: B's 2,100 or more.
    high = {**a, "styles": [{**a["styles"][0], "at_search_bound": True}]}
    assert capacity.compare_docs(b, high)[0]["verdict"] == "better"
    # ... but never "same": not different from a bound is no measure of it.
    near = capacity.document(state_with({"sleep/async-await": [2090.0, 2160.0, 2110.0]}), 2.0, True)
    (row,) = capacity.compare_docs(near, high)
    assert row["verdict"] == "inconclusive" and "only a lower bound" in row["why"]


def bounded(msts: dict[str, float], at_bound: str) -> dict:  # type: ignore[type-arg]
    """capacity.json of one repeat per style, ``at_bound``'s search ending at its highest rate."""
    state = state_with({style: [mst] for style, mst in msts.items()})
    search = next(s for s in state["capacity"]["searches"] if s["style"] == at_bound)
    search.update(lower_bound=True, bracket=[search["mst_rps"], None])
    return capacity.document(state, 2.0, True)


def capacity_table_html(doc: dict, monkeypatch: pytest.MonkeyPatch) -> str:  # type: ignore[type-arg]
    """The report's capacity table for ``doc``, on the committed run's context."""
    from analysis import report
    from analysis.render import render
    from tests.conftest import FIXTURE_RUN

    monkeypatch.setattr(report, "capacity_document", lambda run: doc)
    a = report.analyse(FIXTURE_RUN)
    html = render("report.html.j2", {**report.build_context(a), "capacity": report.capacity_view(a.run)})
    start = html.index('<table id="capacity-table">')
    return html[start : html.index("</table>", start)]


def test_a_bound_mst_is_never_a_ratios_denominator_and_makes_a_ratio_over_an_exact_one_a_bound(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The baseline at its search's highest rate (≥ 500/s) and sync-def at 305/s: 305/500 = 0.61 is
    only the most the true ratio can be, so none is given; sync-def at its bound over an exact
    baseline is a ratio of at least 0.61."""
    from routebench.commands import print_capacity

    doc = bounded({"sleep/async-await": 500.0, "sleep/sync-def": 305.0}, at_bound="sleep/async-await")
    sync = next(r for r in doc["styles"] if r["style"] == "sleep/sync-def")
    assert sync["vs_baseline"] is None and not sync["vs_baseline_at_least"]
    assert "sleep/async-await's MST is only a lower bound" in sync["vs_baseline_note"]
    print_capacity("r", doc)
    assert "0.610" not in capsys.readouterr().out
    shown = capacity_table_html(doc, monkeypatch)
    assert "0.610" not in shown and "no ratio, sleep/async-await&#39;s MST is only a lower bound" in shown

    doc = bounded({"sleep/async-await": 500.0, "sleep/sync-def": 305.0}, at_bound="sleep/sync-def")
    sync = next(r for r in doc["styles"] if r["style"] == "sleep/sync-def")
    assert sync["vs_baseline"] == pytest.approx(0.61) and sync["vs_baseline_at_least"]
    assert sync["vs_baseline_note"] is None
    print_capacity("r", doc)
    assert "≥ 0.610" in capsys.readouterr().out
    assert "≥0.610" in capacity_table_html(doc, monkeypatch)


def test_comparing_two_runs_marks_bound_msts_and_gives_no_ratio_over_one() -> None:
    from analysis.render import render

    a = bounded({"sleep/async-await": 500.0}, at_bound="sleep/async-await")
    b = capacity.document(state_with({"sleep/async-await": [400.0]}), 2.0, True)
    (row,) = capacity.compare_docs(a, b)
    assert row["mst_a_at_least"] and not row["mst_b_at_least"]
    assert row["ratio"] is None and "A's MST is only a lower bound" in row["ratio_note"]
    html = render("compare_capacity.html.j2", {"a": a, "b": b, "rows": [row], "noise": None, "methods": {}})
    assert "≥500.0" in html and "≥400.0" not in html and "0.800" not in html
    # B at its bound over A's exact MST: B / A is at least the ratio.
    (row,) = capacity.compare_docs(b, a)
    assert row["ratio"] == pytest.approx(1.25) and row["ratio_at_least"] and row["mst_b_at_least"]
    html = render("compare_capacity.html.j2", {"a": b, "b": a, "rows": [row], "noise": None, "methods": {}})
    assert "≥500.0" in html and "≥1.250" in html


@pytest.mark.parametrize(
    ("text", "words"),
    [("p99>250ms", "METRIC<VALUE"), ("p99<25%", "ms or s"), ("failure_rate<3ms", "fraction"), ("rps<3", "METRIC")],
)
def test_capacity_slo_errors_are_one_line(text: str, words: str) -> None:
    with pytest.raises(capacity.CapacityError, match=words):
        capacity.parse_slo(text)


def test_a_check_and_a_capacity_search_read_a_limit_alike() -> None:
    """One grammar and one reading of units (analysis.slo) for both kinds of SLO."""
    for limit in ("p99<0.25s", "p95<=80ms", "p99.9<1s", "failure_rate<3.1%", "failure_rate<0.005"):
        assert slo.parse(f"sleep/async-await:{limit}").limit == capacity.parse_slo(limit)["limit"]
    # 31 failed of 1,000 is 3.1%, which is not under 3.1% (3.1 x 0.01 is 0.031000000000000003: it was).
    assert not slo.parse("sleep/async-await:failure_rate<3.1%").holds(31 / 1000)
    assert slo.parse("sleep/async-await:failure_rate<=3.1%").holds(31 / 1000)


def test_capacity_slo_limits() -> None:
    assert capacity.parse_slo("p99<0.25s")["limit"] == 250.0
    assert capacity.parse_slo("failure_rate<1%")["limit"] == 0.01
    assert capacity.latency_limit_ms([capacity.parse_slo("p95<100ms"), capacity.parse_slo("p99<300ms")]) == 300.0


def test_the_first_step_past_the_models_ceiling_stops_just_beyond_it() -> None:
    s = Search(36.0, 1.0, 5000.0, ceiling=40.0)
    s.record(36.0, "ramp", True)
    assert s.next_probe() == (44.0, "ramp")  # not 72: past the ceiling a whole step is sure to fail
    s.record(44.0, "ramp", True)  # the model was wrong: from here the ramp doubles again
    assert s.next_probe() == (88.0, "ramp")
    # A search whose model ceiling is far above needs no cap, and one below the ceiling none either.
    far = Search(10.0, 1.0, 5000.0, ceiling=1000.0)
    far.record(10.0, "ramp", True)
    assert far.next_probe() == (20.0, "ramp")


@pytest.mark.parametrize("ceiling", [37.9, 41.3, 2478.21, 1234.56, 99.99])
def test_the_ceiling_step_never_probes_one_rate_twice(ceiling: float) -> None:
    """The step past the ceiling is rounded like every rate: a pass there moves the search on."""
    s = search_until_done(
        Search(0.9 * ceiling, 1.0, 1e5, ceiling=ceiling, max_probes=30), lambda r, _: r <= 3 * ceiling
    )
    rates = [(p["rate"], p["phase"]) for p in s.probes]
    assert len(rates) == len(set(rates)) and s.mst()["confirmed"], s.probes


def test_a_failure_at_the_lower_bound_ends_the_search_even_on_its_last_probe() -> None:
    s = search_until_done(Search(4.0, 2.0, 5000.0, max_probes=2), lambda r, _: False)
    assert s.mst()["below_rps"] == 2.0 and "lower bound" in s.outcome
