"""What backs the answers: users per style, the neighbour table, SLOs a lesson expects to fail, the
per-second timelines (exact when recorded) and the charts' layout."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from bokeh.models import FactorRange, Legend, LogScale

from analysis import charts, slo, theory, timeseries
from analysis.load import BadInput, load_run
from analysis.render import render
from analysis.report import analyse, build_context, cell_evidence, neighbour_view, slo_view
from analysis.summary import neighbour_table, style_users
from target_app import catalogue
from tests.analysis.tables import row, table, together
from tests.conftest import FIXTURE_RUN

NEIGHBOUR_CELL = "009-neighbour-u8-w2-r1"


@pytest.fixture(scope="module")
def fixture_table() -> pd.DataFrame:
    return analyse(FIXTURE_RUN).table


def rewrite_json(path: Path, change: object) -> None:
    body = json.loads(path.read_text())
    change(body)  # type: ignore[operator]
    path.write_text(json.dumps(body))


# -- users per style ----------------------------------------------------------------------------------


def test_style_users_reads_the_runner_else_splits_evenly() -> None:
    cell = {"users": 20, "styles": ["sleep/async-await", "sleep/blocking-in-async"]}
    assert style_users(cell, "sleep/async-await") == 10
    assert style_users({**cell, "users": 5}, "sleep/async-await") == 2.5
    assert (
        style_users(
            {**cell, "users_by_style": {"sleep/async-await": 3, "sleep/blocking-in-async": 2}}, "sleep/async-await"
        )
        == 3
    )
    assert math.isnan(style_users({**cell, "users": None}, "sleep/async-await"))


def test_summary_carries_style_users_without_changing_users(fixture_table: pd.DataFrame) -> None:
    cells = {c["id"]: c for c in load_run(FIXTURE_RUN).cells}
    for r in fixture_table.itertuples():
        assert r.users == cells[r.cell]["users"]
        assert r.style_users == cells[r.cell]["users"] / len(cells[r.cell]["styles"])
    assert (fixture_table["style_users"] < fixture_table["users"]).sum() == fixture_table["together"].sum()


def test_predictions_use_the_users_of_the_style(run_copy: Path) -> None:
    shares = {"sleep/async-await": 3, "sleep/blocking-in-async": 5}

    def give_shares(meta: dict) -> None:
        next(c for c in meta["cells"] if c["id"] == NEIGHBOUR_CELL)["users_by_style"] = shares

    rewrite_json(run_copy / "run.json", give_shares)
    t = analyse(run_copy).table
    cell = next(c for c in load_run(run_copy).cells if c["id"] == NEIGHBOUR_CELL)
    for style, users in shares.items():
        r = t[(t["cell"] == NEIGHBOUR_CELL) & (t["style"] == style)].iloc[0]
        assert r["style_users"] == users
        shape = theory.Shape(
            users=users,
            workers=cell["server_workers"],
            threads=cell["threadpool_tokens"],
            pool=cell["db_pool_size"],
            wait_s=cell["wait_ms"] / 1000,
            fanout=cell["fanout"],
            cpu_s=math.nan,
            cores=2,
        )
        assert r["predicted_rps"] == pytest.approx(theory.predict(style, shape).rps)
    nb = neighbour_table(t).set_index("style")
    assert nb.loc["sleep/async-await", "users_label"] == "3 of 8"
    assert nb.loc["sleep/blocking-in-async", "users_label"] == "5 of 8"


# -- the neighbour table ------------------------------------------------------------------------------


def test_neighbour_table_compares_a_style_alone_with_it_beside_the_others() -> None:
    t = table(
        row("sleep/async-await", 10, rps=190, p99=60, p50=50),
        row("sleep/async-await", 10, rps=180, p99=70, p50=54, repeat=2),
        row("sleep/async-await", 10, rps=10, p99=9, workers=4),  # another W: never the "alone"
        row("sleep/blocking-in-async", 10, rps=39, p99=300, p50=250),
        *together("nb", 20, ("sleep/async-await", 10, 45, 416), ("sleep/blocking-in-async", 10, 39, 300)),
    )
    nb = neighbour_table(t).set_index("style")
    victim = nb.loc["sleep/async-await"]
    assert victim["users_label"] == "10 of 20"
    assert victim["alone_users"] == 10 and victim["alone_users_match"] and victim["alone_repeats"] == 2
    assert victim["p99_ms_alone"] == pytest.approx(65) and victim["p99_ms_beside"] == 416
    assert victim["p99_ms_ratio"] == pytest.approx(416 / 65)
    assert victim["rps_ratio"] == pytest.approx(45 / 185)
    assert victim["blocking_neighbours"] == ["sleep/blocking-in-async"]
    assert nb.loc["sleep/blocking-in-async", "blocking_neighbours"] == []


def test_neighbour_alone_falls_back_to_the_nearest_users_and_says_so() -> None:
    t = table(
        row("sleep/async-await", 8, rps=150, p99=60),
        row("sleep/async-await", 16, rps=300, p99=62),
        *together("nb", 20, ("sleep/async-await", 10, 45, 416), ("sleep/blocking-in-async", 10, 39, 300)),
    )
    rows = {r["style"]: r for r in neighbour_view(t)}
    assert rows["sleep/async-await"]["alone_users"] == 8
    assert "nearest" in rows["sleep/async-await"]["alone_label"]
    assert rows["sleep/blocking-in-async"]["alone_label"] == "not measured alone"
    assert math.isnan(rows["sleep/blocking-in-async"]["p50_ms_ratio"])


def test_neighbour_table_on_the_committed_run(fixture_table: pd.DataFrame) -> None:
    cell = next(c for c in load_run(FIXTURE_RUN).cells if c["id"] == NEIGHBOUR_CELL)
    nb = neighbour_table(fixture_table)
    assert sorted(nb["style"]) == sorted(cell["styles"])
    share = cell["users"] / len(cell["styles"])
    assert set(nb["users_label"]) == {f"{share:g} of {cell['users']}"}
    victim = nb.set_index("style").loc["sleep/async-await"]
    assert victim["p50_ms_ratio"] > 2  # the lesson: the blocked loop delays the well-written route


# -- SLOs a lesson expects to fail --------------------------------------------------------------------


def test_slo_in_a_cell_beside_a_blocking_style_is_expected_to_fail(fixture_table: pd.DataFrame) -> None:
    checks = slo.evaluate(
        [
            slo.parse("sleep/async-await:p99<100ms"),
            slo.parse("sleep/async-await:p99<1000ms"),
            slo.parse("sleep/blocking-in-async:p99<60ms"),
        ],
        fixture_table,
    )
    in_nb = checks["cell"] == NEIGHBOUR_CELL
    victim = checks[in_nb & checks["slo"].str.startswith("sleep/async-await")]
    assert len(victim) == 2 and victim["expected_failure"].all()
    assert all("sleep/blocking-in-async" in n and "lesson" in n for n in victim["note"])
    # Failing in solo cells, or being the blocking style itself, is never excused.
    assert not checks[~in_nb]["expected_failure"].any()
    blocking = checks[checks["slo"].str.startswith("sleep/blocking-in-async")]
    assert not blocking["expected_failure"].any() and not blocking["passed"].any()
    # ``passed`` is what was measured, so a check still counts the failure.
    strict = victim[victim["slo"] == "sleep/async-await:p99<100ms"].iloc[0]
    assert strict["passed"] == (strict["value"] < 100)
    shown = [slo_view(r) for r in checks.to_dict("records")]
    labels = {(r["cell"], r["slo"]): r for r in shown}
    failed_nb = labels[(NEIGHBOUR_CELL, "sleep/async-await:p99<100ms")]
    assert not failed_nb["passed"] and failed_nb["result"] == "failed, as expected" and failed_nb["css"] != "bad"
    assert failed_nb["users_label"] == "4 of 8"
    assert {r["result"] for r in shown if r["slo"].startswith("sleep/blocking")} == {"FAILED"}


def test_answers_point_to_the_warnings_that_qualify_them(run_copy: Path) -> None:
    assert build_context(analyse(FIXTURE_RUN))["warnings"] == 0
    rewrite_json(run_copy / "run.json", lambda meta: meta.update(status="interrupted"))
    context = build_context(analyse(run_copy))
    assert context["warnings"] == 1
    html = render("report.html.j2", context)
    assert html.index('id="answers"') < html.index("1 warning just below") < html.index('id="incomplete"')


# -- timelines ----------------------------------------------------------------------------------------


def test_exact_timeline_is_read_as_is() -> None:
    series = timeseries.exact_series({"sleep/async-await": [[100, 180, 51000, 55000, 61000], [101, 0, 0, 0, 0]]})
    assert series["rps"].tolist() == [180, 0]
    assert series["p95_ms"].tolist() == [55.0, 0.0] and series["p99_ms"].iloc[0] == 61.0
    assert series["t"].tolist() == [100.5, 101.5]  # the middle of each whole second


def test_locust_history_loses_only_its_filling_rows() -> None:
    history = pd.DataFrame(
        {"Timestamp": [1, 2, 3, 4, 5], "Name": ["a"] * 5, "Requests/s": [0, 0, 20, 0, 21], "95%": [0, 55, 56, 0, 57]}
    )
    kept = timeseries.settled(timeseries.client_series(history, None))
    assert kept["t"].tolist() == [3, 4, 5]  # the stall at t=4 is the server's, so it stays


def test_a_real_cell_gets_its_exact_seconds() -> None:
    run = load_run(FIXTURE_RUN)
    cell = next(c for c in run.cells if c["id"] == NEIGHBOUR_CELL)
    exact = json.loads((FIXTURE_RUN / cell["dir"] / "exact.json").read_text())
    evidence = cell_evidence(run, cell)
    assert evidence["client_source"] == timeseries.EXACT
    client = evidence["client"]
    for style in cell["styles"]:
        mine = client[client["style"] == style]
        # Whole seconds of the window only: their responses are part of, at most all of, the total.
        assert 0 < mine["rps"].sum() <= exact["requests"][style]["count"]
        assert (mine["t"] >= exact["measure_from"]).all() and (mine["t"] <= exact["stopped_at"]).all()
    fig = charts.cell_timeline(
        cell["id"], client, evidence["server"], evidence["client_source"], evidence["measure_from"]
    )
    assert all("exact, per second" in f.title.text for f in fig.children[:2])


def test_a_cell_without_one_falls_back_to_settled_locust_rows(run_copy: Path) -> None:
    cell = next(c for c in load_run(run_copy).cells if c["id"] == NEIGHBOUR_CELL)
    rewrite_json(run_copy / cell["dir"] / "exact.json", lambda body: body.pop("timeline"))
    evidence = cell_evidence(load_run(run_copy), cell)
    assert evidence["client_source"] == timeseries.LOCUST
    first = evidence["client"].groupby("style").head(1)
    assert not first.empty and (first["rps"] > 0).all() and (first["p95_ms"] > 0).all()
    fig = charts.cell_timeline(
        cell["id"], evidence["client"], evidence["server"], evidence["client_source"], evidence["measure_from"]
    )
    assert all("Locust's rolling 10 s window" in f.title.text for f in fig.children[:2])


def test_a_malformed_timeline_is_one_clear_line(run_copy: Path) -> None:
    cell = load_run(run_copy).cells[0]
    exact = run_copy / cell["dir"] / "exact.json"
    rewrite_json(exact, lambda body: body.update(timeline={"sleep/async-await": [[1, 2]]}))
    with pytest.raises(BadInput, match="exact.json: 'timeline' is not"):
        analyse(run_copy)


def test_timeline_axes_start_at_zero_and_a_flat_zero_series_is_not_centred() -> None:
    run = load_run(FIXTURE_RUN)
    evidence = cell_evidence(run, run.cells[0])
    assert (evidence["server"]["threads_busy"] == 0).all()  # the async route never uses the threadpool
    fig = charts.cell_timeline(
        "c", evidence["client"], evidence["server"], evidence["client_source"], evidence["measure_from"]
    )
    for f in fig.children:
        assert f.y_range.start == 0 and f.y_range.end >= 1
        assert f.x_range.start >= 0  # the measured window only
        assert any(isinstance(x, Legend) for x in f.right) and not any(isinstance(x, Legend) for x in f.center)
    tokens = fig.children[-1]
    assert tokens.y_range.end == 1


def test_gauges_a_worker_did_not_report_stay_missing_and_still_draw() -> None:
    # Older telemetry has no ``inflight``; a worker without a threadpool reading writes None.
    telemetry = pd.DataFrame(
        {"t": [10.0, 10.5, 11.2], "pid": [1, 1, 1], "lag_ms": [1.0, 2.0, 3.0], "threads_busy": [None, None, None]}
    )
    series = timeseries.server_series(telemetry, None)
    assert series["lag_ms"].tolist() == [2.0, 3.0]
    assert series["threads_busy"].isna().all() and series["inflight"].isna().all()  # unknown, not zero
    client = timeseries.exact_series({"sleep/async-await": [[10, 180, 51000, 55000, 61000]]})
    fig = charts.cell_timeline("c", client, series, timeseries.EXACT, 10.0)
    assert len(fig.children) == 4


def test_the_threadpools_waiters_are_summed_up_only_where_recorded() -> None:
    samples = {"t": [10.0, 10.1, 10.2, 10.3], "pid": [1, 2, 1, 2], "lag_ms": [1.0] * 4, "threads_busy": [8] * 4}
    recorded = pd.DataFrame({**samples, "threads_total": [8] * 4, "threads_waiting": [0, 3, 5, 0]})
    lag = timeseries.lag_summary(recorded, None)
    assert (lag["threads_full_share"], lag["threads_waiting_share"], lag["threads_waiting_max"]) == (1.0, 0.5, 5.0)
    # Older telemetry records no waiters: unknown, not none.
    older = timeseries.lag_summary(pd.DataFrame({**samples, "threads_total": [8] * 4}), None)
    assert math.isnan(older["threads_waiting_share"]) and math.isnan(older["threads_waiting_max"])


# -- charts -------------------------------------------------------------------------------------------


def legend_labels(fig: object) -> list[str]:
    legends = [x for x in fig.right if isinstance(x, Legend)]  # type: ignore[attr-defined]
    assert legends and not [x for x in fig.center if isinstance(x, Legend)]  # type: ignore[attr-defined]
    return [item.label["value"] for item in legends[0].items]


def test_percentile_dots_are_grouped_by_family_in_catalogue_order_on_a_log_axis(fixture_table: pd.DataFrame) -> None:
    fig = charts.percentiles_by_style(fixture_table)
    assert isinstance(fig.x_scale, LogScale) and isinstance(fig.y_range, FactorRange)
    top_down = list(reversed(fig.y_range.factors))
    order = [s.id for s in catalogue.STYLES]
    styles = [label.split(" ")[0] for _, label in top_down]
    assert styles == sorted(set(fixture_table["style"]), key=order.index)
    assert [family for family, _ in top_down] == [s.split("/")[0] for s in styles]
    solo = fixture_table[~fixture_table["together"]]
    for _, label in top_down:
        style = label.split(" ")[0]
        assert f"(U={solo[solo['style'] == style]['users'].max():g})" in label
    assert legend_labels(fig) == ["p50", "p95", "p99"]


def test_p99_and_prediction_charts_name_every_mark_outside_the_data(fixture_table: pd.DataFrame) -> None:
    order = [s.id for s in catalogue.STYLES]
    styles = sorted(set(fixture_table["style"]), key=order.index)
    assert legend_labels(charts.latency_vs_users(fixture_table)) == styles
    throughput, latency = charts.measured_vs_predicted(fixture_table).children
    for panel in (throughput, latency):
        predicted = legend_labels(panel)
        assert predicted[0] == "measured = predicted" and predicted[1:] == styles


def test_neighbour_chart_reads_users_as_a_share(fixture_table: pd.DataFrame) -> None:
    fig = charts.neighbour_damage(fixture_table)
    assert isinstance(fig.x_scale, LogScale)
    groups = {group for group, _ in fig.y_range.factors}
    assert groups == {f"{s}: 4 of 8 users" for s in ("sleep/async-await", "sleep/blocking-in-async")}
    assert charts.neighbour_damage(fixture_table[~fixture_table["together"]]) is None


def test_log_ticks_label_the_range_they_cover() -> None:
    ticks = charts._log_ticks(8.4, 500)
    assert ticks[0] <= 20 and ticks[-1] >= 200 and all(8.4 <= t <= 500 for t in ticks)
    assert len(charts._log_ticks(0.5, 5e7)) <= 12
