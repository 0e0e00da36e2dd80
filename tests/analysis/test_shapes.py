"""Nothing mixed: cells of different shapes (model, rate, W, T, P, worker class, wait, work, k) never
share a decision-table section, a chart series or a baseline; repeats are averaged with n kept; every
ratio and verdict names the family's own baseline. On hand-built tables and on a synthetic run shaped
like experiments/full.toml."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bokeh.models import ColumnDataSource, GlyphRenderer, Legend

from analysis import answers, charts
from analysis.load import load_run
from analysis.render import render
from analysis.repeats import LEFT_OUT_BIAS, aggregate
from analysis.report import Analysis, analyse, build_context, decision_table, headline
from analysis.rundir import RunDir
from analysis.summary import (
    SHAPE,
    add_baseline_ratios,
    neighbour_points,
    neighbour_table,
    shape_labels,
    solo_points,
    summarise,
)
from routebench.experiment import expand
from target_app import catalogue
from tests.analysis.synthetic import build_run, full_experiment
from tests.analysis.tables import row, table, together
from tests.conftest import FIXTURE_RUN


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> Analysis:
    return analyse(build_run(tmp_path_factory.mktemp("runs")))


def sections(t: pd.DataFrame, family: str) -> list[dict]:
    return next(f for f in decision_table(t) if f["family"] == family)["sections"]


def rows_of(section: dict) -> dict[str, dict]:
    return {r["style"]: r for r in section["rows"]}


# -- the key ------------------------------------------------------------------------------------------


def test_the_shape_key_holds_every_setting_but_users_and_repeat() -> None:
    assert set(SHAPE) == {
        "model",
        "arrival_rate",
        "server_workers",
        "threadpool_tokens",
        "db_pool_size",
        "worker_class",
        "wait_ms",
        "work",
        "fanout",
    }


def test_summary_carries_the_cell_settings_and_the_exact_mean() -> None:
    run = load_run(FIXTURE_RUN)
    t = summarise(run).set_index(["cell", "style"])
    for cell in run.cells:
        exact = json.loads(RunDir(FIXTURE_RUN).cell(cell["dir"]).exact.read_text())["requests"]
        for style in cell["styles"]:
            r = t.loc[(cell["id"], style)]
            assert r["threadpool_tokens"] == cell["threadpool_tokens"] and r["db_pool_size"] == cell["db_pool_size"]
            assert r["worker_class"] == cell["worker_class"]
            assert r["mean_ms"] == pytest.approx(exact[style]["mean_us"] / 1000)
            assert r["mean_ms"] != pytest.approx(r["p50_ms"], rel=1e-6)  # the mean, not the median


def test_a_run_without_the_newer_settings_reads_them_as_missing(run_copy: Path) -> None:
    meta_path = RunDir(run_copy).run_json
    meta = json.loads(meta_path.read_text())
    for cell in meta["cells"]:
        for key in ("threadpool_tokens", "db_pool_size", "worker_class"):
            cell.pop(key)
    meta_path.write_text(json.dumps(meta))
    t = add_baseline_ratios(summarise(load_run(run_copy)))
    assert t["threadpool_tokens"].isna().all() and t["worker_class"].isna().all()
    # Missing equals missing: the baseline is still found, the points still group the repeats.
    solo = t[~t["together"]]
    assert solo["rps_vs_baseline"].notna().all()
    repeats = solo_points(t).set_index(["style", "users"])["repeats"]
    assert repeats.to_dict() == solo.groupby(["style", "users"]).size().to_dict()
    assert repeats.max() > 1


@pytest.mark.parametrize(
    "other",
    [
        dict(threads=80),
        dict(pool=20),
        dict(worker_class="gunicorn-asgi"),
        dict(work=50_000),
        dict(model="open", arrival_rate=30.0),
        dict(wait_ms=100),
    ],
    ids=lambda d: next(iter(d)),
)
def test_a_baseline_of_another_shape_is_never_the_reference(other: dict) -> None:
    t = add_baseline_ratios(
        table(
            row("sleep/async-await", 50, rps=1000, p99=50),
            row("sleep/sync-def", 50, rps=800, p99=100),
            row("sleep/sync-def", 50, rps=300, p99=400, **other),
        )
    )
    same = t[(t["style"] == "sleep/sync-def") & (t["rps"] == 800)].iloc[0]
    assert same["rps_vs_baseline"] == pytest.approx(0.8) and same["p99_vs_baseline"] == pytest.approx(2.0)
    apart = t[(t["style"] == "sleep/sync-def") & (t["rps"] == 300)].iloc[0]
    assert np.isnan(apart["rps_vs_baseline"]) and np.isnan(apart["p99_vs_baseline"])


# -- the decision table -------------------------------------------------------------------------------


def test_the_decision_table_keeps_open_and_closed_apart() -> None:
    t = table(
        row("sleep/async-await", 100, rps=1900, p99=60),
        row("sleep/blocking-in-async", 100, rps=40, p99=6000),
        row("sleep/async-await", 100, rps=30, p99=70, model="open", arrival_rate=30.0),
        row("sleep/blocking-in-async", 100, rps=29, p99=900, model="open", arrival_rate=30.0),
    )
    found = sections(t, "sleep")
    assert len(found) == 2
    for section in found:
        models = {r["model"] for r in section["rows"]}
        assert len(models) == 1 and models.pop() in section["label"]
    closed, opened = (rows_of(s) for s in found)  # the shape the answers compare at comes first
    assert closed["sleep/async-await"]["rps"] == 1900 and closed["sleep/blocking-in-async"]["p99_ms"] == 6000
    assert opened["sleep/async-await"]["rps"] == 30 and opened["sleep/blocking-in-async"]["p99_ms"] == 900
    # Each ratio is to the baseline of its own section.
    assert closed["sleep/blocking-in-async"]["p99_vs_baseline"] == pytest.approx(6000 / 60)
    assert opened["sleep/blocking-in-async"]["p99_vs_baseline"] == pytest.approx(900 / 70)
    assert len({r["row_id"] for s in found for r in s["rows"]}) == 4  # ids stay unique in the page


def test_two_server_shapes_get_a_section_each_labelled_with_what_differs() -> None:
    t = table(
        row("sleep/async-await", 50, rps=1000, p99=55),
        row("sleep/sync-def", 50, rps=990, p99=56),
        row("sleep/async-await", 50, rps=1000, p99=54, workers=4),
        row("sleep/sync-def", 50, rps=995, p99=55, workers=4),
        row("sleep/sync-def", 100, rps=1600, p99=90),
    )
    found = sections(t, "sleep")
    assert [s["label"] for s in found] == ["W=2", "W=4"]
    assert rows_of(found[0])["sleep/sync-def"]["users"] == 100  # its highest users at W=2
    assert rows_of(found[1])["sleep/sync-def"]["users"] == 50  # and at W=4: never the W=2 cell


def test_the_decision_table_averages_repeats_and_keeps_n() -> None:
    t = table(
        row("sleep/async-await", 10, rps=100, p99=50, repeat=1),
        row("sleep/async-await", 10, rps=200, p99=70, repeat=2),
        row("sleep/async-await", 10, rps=160, p99=66, repeat=3),
        row("sleep/sync-def", 10, rps=90, p99=80, repeat=1),
    )
    found = rows_of(sections(t, "sleep")[0])
    base, sync = found["sleep/async-await"], found["sleep/sync-def"]
    assert base["rps"] == pytest.approx(460 / 3) and base["p99_ms"] == pytest.approx(62) and base["repeats"] == 3
    assert sync["repeats"] == 1
    assert sync["rps_vs_baseline"] == pytest.approx(90 / (460 / 3))  # against the baseline's mean


@pytest.mark.parametrize("family", [f for f in catalogue.FAMILIES if f != "sleep"])
def test_a_verdict_names_its_own_family_baseline(family: str) -> None:
    base = catalogue.baseline(family).id
    other = next(s.id for s in catalogue.family(family) if s.id != base)
    t = add_baseline_ratios(table(row(base, 20, rps=400, p99=60), row(other, 20, rps=100, p99=240)))
    verdict = rows_of(sections(t, family)[0])[other]["verdict"]
    assert base in verdict
    assert "async-await" not in verdict  # the sleep family's baseline has nothing to do with it


def test_the_sleep_verdict_names_async_await_as_its_baseline() -> None:
    t = add_baseline_ratios(
        table(row("sleep/async-await", 20, rps=400, p99=60), row("sleep/sync-def", 20, rps=100, p99=240))
    )
    assert "sleep/async-await" in rows_of(sections(t, "sleep")[0])["sleep/sync-def"]["verdict"]


def test_the_page_names_each_family_baseline_beside_its_ratios(full: Analysis) -> None:
    html = render("report.html.j2", build_context(full))
    decision = html[html.index('id="decision"') : html.index("</table>", html.index('id="decision"'))]
    for family in catalogue.FAMILIES:
        header = re.search(rf'<tr class="family" data-family="{family}">(.*?)</tr>', decision, re.S)
        assert header is not None and f"<code>{catalogue.baseline(family).id}</code>" in header.group(1)
    assert "vs async" not in html  # no ratio is named after one family's baseline


def _invalidated(full: Analysis, changes: dict[tuple[str, int, int], dict]) -> Analysis:
    """``full`` with some of its solo closed-model W=2 rows changed: (style, users, repeat) -> columns."""
    t = full.table.copy()
    for (style, users, repeat), columns in changes.items():
        at = (
            (t["style"] == style)
            & (t["users"] == users)
            & (t["repeat"] == repeat)
            & ~t["together"]
            & (t["model"] == "closed")
            & (t["server_workers"] == 2)
        )
        assert at.sum() == 1
        for column, value in columns.items():
            t.loc[at, column] = value
    return Analysis(full.run, t, aggregate(t), full.slo, full.cells)


def test_the_repeats_table_says_how_many_repeats_are_valid_and_names_the_others(full: Analysis) -> None:
    counts = {"valid": False, "invalid_because": "the counts disagree", "validity_failed": "counts"}
    a = _invalidated(
        full,
        {
            ("sleep/sync-def", 50, 2): counts,
            ("cpu/async", 10, 1): counts,
            ("cpu/async", 10, 2): {**counts, "invalid_because": "2.0% of requests failed"},
            ("cpu/async", 10, 3): counts,
            ("sleep/offloaded", 100, 3): {"p99_ms_at_least": True},
        },
    )
    html = render("report.html.j2", build_context(a))
    start = html.index('<table id="repeats">')
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", html[start : html.index("</table>", start)], re.S)[1:]
    assert len(rows) == (a.repeats["repeats"] > 1).sum()

    def shown(style: str, users: int) -> str:
        """The repeats table's row of this style and users, closed model on W=2."""
        [found] = [
            r
            for r in rows
            if [re.sub(r"<.*?>", "", c).strip() for c in r.split("</td>")[:3]]
            == [style, str(users), "closed model, W=2"]
        ]
        return found

    left_one = shown("sleep/sync-def", 50)
    assert f"2 of 3 repeats valid; left out: repeat 2 (the counts disagree); {LEFT_OUT_BIAS}" in left_one
    assert "n=2" in left_one and "n=3" not in left_one
    none = shown("cpu/async", 10)
    assert (
        "no valid repeat of 3; left out: repeat 1 (the counts disagree), repeat 2 (2.0% of requests failed), "
        "repeat 3 (the counts disagree)" in none
    )
    assert "n=1" not in none and "n=2" not in none and "n=3" not in none
    bound = shown("sleep/offloaded", 100)
    assert "≥" in bound and "3 of 3 repeats valid" in bound
    assert sum("3 of 3 repeats valid" in r for r in rows) == len(rows) - 2
    assert sum("≥" in r for r in rows) == 1


def test_no_valid_cell_gives_no_lowest_or_highest_p99(full: Analysis) -> None:
    t = full.table.assign(valid=False, invalid_because="the counts disagree")
    a = Analysis(full.run, t, aggregate(t), full.slo, full.cells)
    top = headline(a)
    assert top["best_p99"] is None and top["worst_p99"] is None  # never the invalid cells' p99
    assert (a.repeats["valid_repeats"] == 0).all() and a.repeats["p99_ms_mean"].isna().all()
    assert len(a.repeats) == len(full.repeats)
    assert "(no valid cell)" in render("index.html.j2", {"runs": [{**top, "href": "x/index.html"}]})


# -- the synthetic full run ---------------------------------------------------------------------------


def test_the_synthetic_run_is_shaped_like_the_full_profile(full: Analysis) -> None:
    planned = expand(full_experiment())
    assert len(full.run.cells) == len(planned) > len(expand(full_experiment([])))
    t = full.table
    solo = t[~t["together"] & (t["model"] == "closed") & (t["server_workers"] == 2)]
    assert set(solo["style"]) == set(catalogue.BY_ID)
    assert set(solo["users"]) == {10, 50, 100} and set(solo["repeat"]) == {1, 2, 3}
    assert set(t[t["together"]]["users"]) == {20, 100}
    assert (t["model"] == "open").any() and set(t["server_workers"]) == {2, 4}


def test_every_section_holds_one_shape_on_the_full_run(full: Analysis) -> None:
    families = decision_table(full.table)
    sleep = next(f for f in families if f["family"] == "sleep")["sections"]
    assert len(sleep) == 3  # closed W=2, open, closed W=4
    for section in sleep:
        shapes = {tuple(r[c] for c in SHAPE) for r in section["rows"]}
        assert len(shapes) == 1
        assert all(r["repeats"] == 3 for r in section["rows"])


def test_neighbour_points_average_the_repeats_of_each_group_and_users(full: Analysis) -> None:
    cells = neighbour_table(full.table)
    points = neighbour_points(full.table)
    assert len(cells) == 12 and len(points) == 4  # 2 user counts x 2 styles, 3 repeats each
    for p in points.itertuples():
        mine = cells[cells["cell"].isin(p.cells) & (cells["style"] == p.style)]
        assert p.repeats == len(mine) == 3
        assert p.p99_ms_beside == pytest.approx(mine["p99_ms_beside"].mean())
        assert p.p99_ms_ratio == pytest.approx(mine["p99_ms_beside"].mean() / p.p99_ms_alone)
    sleep = next(a for a in answers.answers(full.table) if a.family == "sleep")
    victims = [s for s in sleep.sentences if s.text.startswith("Beside")]
    # One sentence per averaged point of a style the blocking one hurt, never one per repeat.
    assert len(victims) == (points["style"] == "sleep/async-await").sum() == 2


def _series_sources(fig: object) -> list[pd.DataFrame]:
    """The data of every scatter renderer of a figure (one per series)."""
    out = []
    for r in fig.renderers:  # type: ignore[attr-defined]
        if isinstance(r, GlyphRenderer) and isinstance(r.data_source, ColumnDataSource):
            data = pd.DataFrame(r.data_source.data)
            if "users" in data and type(r.glyph).__name__ == "Scatter":
                out.append(data)
    return out


def test_no_chart_series_mixes_shapes_or_single_repeats(full: Analysis) -> None:
    t = full.table
    points = solo_points(t)
    distinct = points.assign(label=shape_labels(points)).drop_duplicates(["style", "label"])
    latency = charts.latency_vs_users(t)
    throughput, mean = charts.measured_vs_predicted(t).children
    for fig in (latency, throughput, mean):
        sources = _series_sources(fig)
        assert len(sources) == len(distinct)
        for data in sources:
            assert data["users"].is_unique  # two shapes in one series would meet at some users
            assert (data["repeats"] == 3).all()  # every point a mean of the three repeats
    legend = next(x for x in latency.right if isinstance(x, Legend))
    labels = [item.label["value"] for item in legend.items]
    assert len(labels) == len(set(labels)) == len(distinct)
    assert any("open model" in label for label in labels) and any("W=4" in label for label in labels)
    # The p99 drawn is the mean of the repeats, not one of them.
    solo = t[~t["together"] & (t["style"] == "sleep/sync-def") & (t["server_workers"] == 4) & (t["users"] == 100)]
    drawn = next(d for d in _series_sources(latency) if (d["series"] == "sleep/sync-def · closed model, W=4").all())
    assert drawn.loc[drawn["users"] == 100, "p99_ms"].item() == pytest.approx(solo["p99_ms"].mean())
    assert solo["p99_ms"].nunique() == 3  # the repeats differ, so a single one would not match


def test_percentile_and_neighbour_rows_are_unique_per_style_and_shape(full: Analysis) -> None:
    fig = charts.percentiles_by_style(full.table)
    factors = list(fig.y_range.factors)
    assert len(factors) == len(set(factors)) == 15 + 4 + 2  # every style at W=2; sleep at W=4; the open pair
    nb = charts.neighbour_damage(full.table)
    assert nb is not None
    factors = list(nb.y_range.factors)
    assert len(factors) == len(set(factors)) == 8  # 4 points, each alone and beside


def test_an_ambiguous_neighbour_label_is_told_apart() -> None:
    t = table(
        row("sleep/async-await", 10, rps=190, p99=60),
        row("sleep/async-await", 10, rps=380, p99=55, workers=4),
        *together("nb2", 20, ("sleep/async-await", 10, 45, 416), ("sleep/blocking-in-async", 10, 39, 300)),
        *[
            {**r, "server_workers": 4}
            for r in together("nb4", 20, ("sleep/async-await", 10, 90, 200), ("sleep/blocking-in-async", 10, 78, 150))
        ],
    )
    fig = charts.neighbour_damage(t)
    assert fig is not None
    groups = [g for g, _ in fig.y_range.factors]
    assert len(set(groups)) == 4 and any("W=4" in g for g in groups)


def test_a_style_measured_only_beside_others_shows_its_shared_cells_averaged() -> None:
    t = table(
        row("sleep/async-await", 10, rps=190, p99=60),
        *together("nb-r1", 20, ("sleep/async-await", 10, 45, 400), ("sleep/blocking-in-async", 10, 39, 300)),
        *[
            {**r, "repeat": 2}
            for r in together("nb-r2", 20, ("sleep/async-await", 10, 55, 420), ("sleep/blocking-in-async", 10, 41, 320))
        ],
    )
    found = rows_of(sections(t, "sleep")[0])
    alone, shared = found["sleep/async-await"], found["sleep/blocking-in-async"]
    assert alone["beside"] == [] and alone["rps"] == 190  # measured alone: its shared cells stay out
    assert shared["beside"] == ["sleep/async-await"] and shared["repeats"] == 2
    assert shared["rps"] == pytest.approx(40) and shared["p99_ms"] == pytest.approx(310)
    assert shared["users_label"] == "10 of 20"


def test_the_canary_of_a_cell_is_read_from_its_intended_starts_or_set_aside() -> None:
    """summary.canary: the p99 over every start (failed and unfinished too); a canary whose schedule
    lost starts (Locust moved its user between workers mid-test) is not a number."""
    from analysis.summary import CANARY_SLACK, canary

    seen = {
        "count": 196,
        "failures": 2,
        "censored": 2,
        "offered": 200,
        "late_starts": 1,
        "every_start_percentiles_us": {"50": 1500, "99": 48_000},
        "every_start_at_least": ["99"],
    }
    c = canary({"canary": seen})
    assert c["canary_p99_ms"] == 48.0 and c["canary_p50_ms"] == 1.5 and c["canary_p99_ms_at_least"]
    assert (c["canary_requests"], c["canary_failures"], c["canary_late_starts"]) == (200, 2, 1)
    moved = canary({"canary": {**seen, "offered": 200 + CANARY_SLACK + 1}})
    assert np.isnan(moved["canary_p99_ms"]) and np.isnan(moved["canary_requests"])
    assert np.isnan(canary({})["canary_p99_ms"])  # a run from before the canary
