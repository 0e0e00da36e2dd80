"""The pure stages on a committed real run: summary, theory, repeats, time series, SLOs, compare."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis import slo, theory
from analysis.compare import compare
from analysis.load import load_run, read_telemetry
from analysis.repeats import aggregate, bootstrap_ci
from analysis.report import analyse, decision_table
from analysis.summary import add_baseline_ratios, summarise
from analysis.timeseries import lag_summary, server_series
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
    assert (t["p50_ms"] <= t["p95_ms"]).all() and (t["p95_ms"] <= t["p99_ms"]).all()


def test_ratio_to_async_baseline(table: pd.DataFrame) -> None:
    solo = table[~table["together"]]
    base = solo[solo["style"] == "sleep/async-await"]
    assert np.allclose(base["rps_vs_async"], 1.0) and np.allclose(base["p99_vs_async"], 1.0)
    blocking = solo[solo["style"] == "sleep/blocking-in-async"]
    assert (blocking["p99_vs_async"] > 1.5).all() and (blocking["rps_vs_async"] < 0.8).all()
    assert table[table["together"]]["rps_vs_async"].isna().all()  # no baseline inside a neighbour cell


@pytest.mark.parametrize(
    "style, shape, rps, latency",
    [
        ("sleep/async-await", dict(users=10), 200, 0.05),
        ("sleep/blocking-in-async", dict(users=10), 40, 0.25),  # W/d, U*d/W
        ("sleep/sync-def", dict(users=100), 1600, 0.0625),  # min(U, W*T)/d
        ("db/sync-def", dict(users=100, pool=5), 200, 0.5),  # W*min(T, P)/d
        ("fanout/sequential", dict(users=10, fanout=4), 50, 0.2),  # U/(k*d), k*d
        ("cpu/async", dict(users=10, cpu_s=0.01), 200, 0.05),  # min(W, cores)/c
    ],
)
def test_predictions_follow_the_brief(style: str, shape: dict, rps: float, latency: float) -> None:
    base = dict(users=10, workers=2, threads=40, pool=10, wait_s=0.05, fanout=5, cpu_s=0.01, cores=2)
    x, lat = theory.predict(style, theory.Shape(**{**base, **shape}))
    assert x == pytest.approx(rps) and lat == pytest.approx(latency)


def test_blocking_in_async_matches_its_prediction(table: pd.DataFrame) -> None:
    rows = table[(table["style"] == "sleep/blocking-in-async") & ~table["together"]]
    # W/d = 40 req/s whatever the users: the measurement lands near it.
    assert ((rows["rps_vs_predicted"] > 0.6) & (rows["rps_vs_predicted"] < 1.2)).all()


def test_verdicts_are_written_from_the_numbers(table: pd.DataFrame) -> None:
    families = decision_table(table)
    rows = {r["style"]: r for f in families for r in f["rows"]}
    blocking = rows["sleep/blocking-in-async"]
    assert f"{blocking['rps']:,.0f} req/s" in blocking["verdict"]
    assert f"{blocking['p99_vs_async']:.1f}x async-await" in blocking["verdict"]
    assert rows["sleep/async-await"]["verdict"] != blocking["verdict"]


def test_bootstrap_interval() -> None:
    rng = np.random.default_rng(1)
    assert all(math.isnan(v) for v in bootstrap_ci(np.array([5.0]), rng))
    assert bootstrap_ci(np.array([3.0, 3.0, 3.0]), rng) == (3.0, 3.0)
    low, high = bootstrap_ci(np.array([1.0, 2.0, 3.0, 4.0]), rng)
    assert 1.0 <= low < 2.5 < high <= 4.0


def test_repeats_aggregate_with_intervals(table: pd.DataFrame) -> None:
    agg = aggregate(table)
    repeated = agg[agg["repeats"] == 2]
    assert not repeated.empty
    assert (repeated["rps_ci_low"] <= repeated["rps_mean"]).all()
    assert (repeated["rps_mean"] <= repeated["rps_ci_high"]).all()


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
    assert th.metric == "p99_ms" and th.limit == 1500 and th.holds(100) and not th.holds(2000)
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


def test_compare_flags_only_changes_beyond_noise(table: pd.DataFrame) -> None:
    agg = aggregate(table)
    same = compare(agg, agg)
    assert not same["significant"].any()
    worse = agg.copy()
    for col in ("rps_mean", "rps_ci_low", "rps_ci_high"):
        worse[col] = worse[col] / 2
    changed = compare(agg, worse)
    rps = changed[changed["metric"] == "rps"]
    assert rps["significant"].all() and (rps["direction"] == "worse").all()
    assert not changed[changed["metric"] == "p99_ms"]["significant"].any()


def test_add_baseline_ratios_is_pure(table: pd.DataFrame) -> None:
    before = table.copy()
    add_baseline_ratios(table)
    pd.testing.assert_frame_equal(before, table)
