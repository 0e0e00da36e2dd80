"""The pure stages on a committed real run: summary, theory, repeats, time series, SLOs, compare."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis import slo
from analysis.compare import compare
from analysis.load import load_run, read_telemetry
from analysis.repeats import aggregate, shape_keys, t_interval
from analysis.report import analyse, decision_table
from analysis.summary import add_baseline_ratios, summarise
from analysis.timeseries import lag_summary, server_series
from target_app import catalogue
from tests.conftest import FIXTURE_RUN


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return analyse(FIXTURE_RUN).table


def test_summary_has_a_row_per_cell_and_style() -> None:
    run = load_run(FIXTURE_RUN)
    expected = sum(len(c["styles"]) for c in run.cells)
    t = summarise(run)
    assert len(t) == expected
    assert (t["requests"] > 0).all()
    # Throughput is the exact count over the window the capture recorded, not Locust's rate.
    for row in t.itertuples():
        exact = run.data[row.cell].exact
        assert row.rps == pytest.approx((row.requests + row.failures) / (exact["stopped_at"] - exact["measure_from"]))


def test_ratio_to_the_family_baseline(table: pd.DataFrame) -> None:
    solo = table[~table["together"]]
    base = solo[solo["style"] == "sleep/async-await"]
    assert np.allclose(base["rps_vs_baseline"], 1.0) and np.allclose(base["p99_vs_baseline"], 1.0)
    blocking = solo[solo["style"] == "sleep/blocking-in-async"]
    assert (blocking["p99_vs_baseline"] > 1.5).all() and (blocking["rps_vs_baseline"] < 0.8).all()
    assert table[table["together"]]["rps_vs_baseline"].isna().all()  # no baseline inside a neighbour cell
    # Each row names its own family's baseline, the one its ratios are to.
    assert dict(zip(table["family"], table["baseline"], strict=True)) == {
        f: catalogue.baseline(f).id for f in set(table["family"])
    }


def test_blocking_in_async_matches_its_prediction(table: pd.DataFrame) -> None:
    rows = table[(table["style"] == "sleep/blocking-in-async") & ~table["together"]]
    # W/d = 40 req/s whatever the users: the measurement lands near it.
    assert ((rows["rps_vs_predicted"] > 0.6) & (rows["rps_vs_predicted"] < 1.2)).all()


def test_verdicts_are_written_from_the_numbers(table: pd.DataFrame) -> None:
    families = decision_table(table)
    rows = {r["style"]: r for f in families for section in f["sections"] for r in section["rows"]}
    blocking = rows["sleep/blocking-in-async"]
    assert f"{blocking['rps']:,.0f} req/s" in blocking["verdict"]
    assert "sleep/async-await" in blocking["verdict"]  # its family's baseline, named
    assert rows["sleep/async-await"]["verdict"] != blocking["verdict"]


def test_student_t_interval() -> None:
    assert all(math.isnan(v) for v in t_interval(np.array([5.0])))
    assert t_interval(np.array([3.0, 3.0, 3.0])) == (3.0, 3.0)
    low, high = t_interval(np.array([1.0, 2.0, 3.0, 4.0]))  # 2.5 ± 3.182 x 1.291 / 2
    assert low == pytest.approx(0.4457, abs=1e-3) and high == pytest.approx(4.5543, abs=1e-3)


def test_repeats_aggregate_with_intervals(table: pd.DataFrame) -> None:
    agg = aggregate(table)
    repeated = agg[agg["repeats"] == 2]
    assert not repeated.empty
    assert (repeated["rps_ci_low"] <= repeated["rps_mean"]).all()
    assert (repeated["rps_mean"] <= repeated["rps_ci_high"]).all()
    assert (repeated["rps_n"] == 2).all() and (repeated["rps_sd"] > 0).all()
    assert agg[agg["repeats"] == 1]["rps_ci_low"].isna().all()


def test_server_evidence_shows_the_blocked_loop() -> None:
    run = load_run(FIXTURE_RUN)
    lag = {}
    for cell in run.cells:
        if cell["styles"] in (["sleep/async-await"], ["sleep/blocking-in-async"]) and cell["users"] == 8:
            tel = read_telemetry(FIXTURE_RUN / cell["dir"] / "telemetry")
            lag[cell["styles"][0]] = lag_summary(tel, None)["lag_max_ms"]
            series = server_series(tel, None)
            assert {"t", "lag_ms", "threads_busy"} <= set(series.columns) and not series.empty
    assert lag["sleep/blocking-in-async"] > 40  # about d = 50 ms, or more
    assert lag["sleep/async-await"] < lag["sleep/blocking-in-async"] / 2


def test_slo_parsing_and_evaluation(table: pd.DataFrame) -> None:
    th = slo.parse("sleep/async-await:p99<1.5s")
    assert th.metric == "p99_all_ms" and th.limit == 1500 and th.holds(100) and not th.holds(2000)
    assert slo.parse("db/asyncpg:failure_rate<=1%").limit == pytest.approx(0.01)
    for bad in ("sleep/async-await:p99", "nope/x:p99<1ms", "sleep/async-await:p42<1ms"):
        with pytest.raises(slo.SloError):
            slo.parse(bad)
    result = slo.evaluate(
        [
            slo.parse("sleep/async-await:p99<1000ms"),
            slo.parse("sleep/blocking-in-async:p99<60ms"),
            slo.parse("db/asyncpg:p99<10ms"),
        ],
        table,
    )
    by = result.groupby("slo")["passed"].all()
    assert by["sleep/async-await:p99<1000ms"] and not by["sleep/blocking-in-async:p99<60ms"]
    assert not by["db/asyncpg:p99<10ms"]  # not measured: not met


def test_compare_below_three_repeats_tests_against_the_runs_pooled_noise(table: pd.DataFrame) -> None:
    agg = aggregate(table)  # the fixture has 2 repeats of some cells, 1 of the others: no Welch
    worse = agg.copy()
    for col in ("rps_mean", "rps_min", "rps_max", "rps_ci_low", "rps_ci_high"):
        worse[col] = worse[col] / 2
    changed = compare(agg, worse).merge(agg[[*shape_keys(agg), "repeats"]], on=shape_keys(agg))
    rps = changed[changed["metric"] == "rps"]
    assert not rps[rps["repeats"] >= 2].empty and not rps[rps["repeats"] == 1].empty
    # Half the req/s is far beyond the repeat-to-repeat noise the repeated shapes show (about 1%):
    # every shape, repeated or not, is tested against that pooled noise, and is worse.
    assert rps["significant"].all() and (rps["verdict"] == "worse").all()
    assert rps["basis"].str.contains("pooled relative sd").all() and rps["p_value"].notna().all()
    # The p99s did not move: tested, and the same.
    p99 = changed[changed["metric"] == "p99_ms"]
    assert (p99["verdict"] == "same").all() and not p99["significant"].any()


def test_add_baseline_ratios_is_pure(table: pd.DataFrame) -> None:
    before = table.copy()
    add_baseline_ratios(table)
    pd.testing.assert_frame_equal(before, table)


def test_a_latency_slo_fails_on_fast_errors_unless_a_failure_budget_is_named() -> None:
    row = {"cell": "c1", "style": "db/asyncpg", "users": 10, "style_users": 10, "together": False}
    fast_errors = pd.DataFrame([{**row, "p99_ms": 3.0, "p99_all_ms": 3.0, "rps": 900.0, "failure_rate": 0.4}])
    latency = slo.parse("db/asyncpg:p99<100ms")
    alone = slo.evaluate([latency], fast_errors)
    assert not alone["passed"].iloc[0] and "failure budget" in alone["note"].iloc[0]
    budget = slo.evaluate([latency, slo.parse("db/asyncpg:failure_rate<50%")], fast_errors)
    assert budget["passed"].all()  # the budget is named, and 40% is inside it
    healthy = slo.evaluate([latency], fast_errors.assign(failure_rate=0.002))
    assert healthy["passed"].all()


def test_a_latency_slo_judges_every_start_so_a_timeout_is_slow() -> None:
    """The successes' p99 is 40 ms, but 0.9% of the starts timed out at 5 s: the users' p99 (every
    start's) breaks p99<250ms, failure rate under 1% or not."""
    row = {"cell": "c1", "style": "db/asyncpg", "users": 10, "style_users": 10, "together": False}
    timeouts = pd.DataFrame([{**row, "p99_ms": 40.0, "p99_all_ms": 4_100.0, "rps": 900.0, "failure_rate": 0.009}])
    checked = slo.evaluate([slo.parse("db/asyncpg:p99<250ms"), slo.parse("db/asyncpg:failure_rate<1%")], timeouts)
    assert checked["passed"].tolist() == [False, True] and checked["value"].iloc[0] == 4_100.0
