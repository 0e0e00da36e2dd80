"""The repeats' aggregate counts and names its invalid repeats, never drops or uses them in silence,
and carries a lower bound into the mean; compare says which repeats either side left out, and does
not compare a shape with no valid repeat on a side. On hand-built summary tables."""

from __future__ import annotations

import html
import json
import math
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from analysis.compare import compare
from analysis.repeats import LEFT_OUT_BIAS, aggregate, validity_note
from analysis.report import publish_comparison
from tests.analysis.tables import row
from tests.conftest import FIXTURE_RUN

STYLE = "sleep/async-await"


def repeats(rps: list[float], invalid: dict[int, str] | None = None, users: float = 10, **more: Any) -> list[dict]:
    """One shape's repeats 1..n with these req/s; ``invalid``: repeat -> why it is not valid."""
    invalid = invalid or {}
    return [
        row(STYLE, users, x, 50.0, repeat=i, valid=i not in invalid, invalid_because=invalid.get(i, ""), **more)
        for i, x in enumerate(rps, start=1)
    ]


def test_an_invalid_repeat_is_left_out_of_the_mean_and_named() -> None:
    agg = aggregate(pd.DataFrame(repeats([100.0, 40.0, 110.0], {2: "the counts disagree"})))
    assert len(agg) == 1
    r = agg.iloc[0]
    assert r["rps_mean"] == pytest.approx(105.0)  # (100 + 110) / 2: not 83.3 with the invalid 40
    assert r["rps_n"] == 2 and r["rps_min"] == 100.0 and r["rps_max"] == 110.0
    assert (r["repeats"], r["valid_repeats"]) == (3, 2)
    assert r["invalid_repeats"] == "repeat 2 (the counts disagree)"
    note = validity_note(r["repeats"], r["valid_repeats"], r["invalid_repeats"])
    assert note == f"2 of 3 repeats valid; left out: repeat 2 (the counts disagree); {LEFT_OUT_BIAS}"
    assert "may read fast" in note


def test_every_valid_shape_says_so_and_names_nothing() -> None:
    r = aggregate(pd.DataFrame(repeats([100.0, 101.0, 102.0]))).iloc[0]
    assert (r["repeats"], r["valid_repeats"], r["invalid_repeats"]) == (3, 3, "")
    assert validity_note(3, 3, "") == "3 of 3 repeats valid"


def test_a_shape_with_no_valid_repeat_keeps_its_row_with_no_numbers_and_no_fallback() -> None:
    # No row of this table is valid: nothing falls back to the invalid values.
    table = pd.DataFrame(
        repeats([100.0, 90.0], {1: "the counts disagree", 2: "2.5% of requests failed"})
        + repeats([200.0], {1: "final report never arrived from w1"}, users=20)
    )
    agg = aggregate(table).set_index("users")
    assert list(agg.index) == [10, 20]  # both kept
    for metric in ("rps", "p95_ms", "p99_ms"):
        assert agg[f"{metric}_n"].eq(0).all()
        for stat in ("mean", "sd", "min", "max", "ci_low", "ci_high"):
            assert agg[f"{metric}_{stat}"].isna().all(), (metric, stat)
    assert agg.loc[10, "valid_repeats"] == 0 and agg.loc[10, "repeats"] == 2
    assert agg.loc[10, "invalid_repeats"] == "repeat 1 (the counts disagree), repeat 2 (2.5% of requests failed)"
    assert agg.loc[20, "invalid_repeats"] == "repeat 1 (final report never arrived from w1)"
    assert validity_note(1, 0, agg.loc[20, "invalid_repeats"]) == (
        "no valid repeat of 1; left out: repeat 1 (final report never arrived from w1)"
    )


def test_an_invalid_repeat_without_a_reason_is_still_named() -> None:
    rows = repeats([100.0, 90.0])
    rows[1] |= {"valid": False, "invalid_because": "", "validity_failed": "counts"}
    rows.append({**rows[0], "repeat": 3, "valid": None, "invalid_because": None, "validity_failed": None})
    r = aggregate(pd.DataFrame(rows)).iloc[0]
    assert (r["repeats"], r["valid_repeats"]) == (3, 1)  # a missing validity is not valid
    assert r["invalid_repeats"] == "repeat 2 (counts), repeat 3 (no reason recorded)"


def test_a_lower_bound_repeat_makes_the_mean_a_lower_bound() -> None:
    rows = repeats([100.0, 101.0, 102.0], p99_ms_at_least=False)
    rows[1]["p99_ms_at_least"] = True
    r = aggregate(pd.DataFrame(rows)).iloc[0]
    assert bool(r["p99_ms_at_least"]) and r["p99_ms_n"] == 3
    assert not r["p95_ms_at_least"] and not r["rps_at_least"]  # only the metric that was a bound
    # A bound in a repeat left out bounds nothing: its value is not in the mean.
    rows[1] |= {"valid": False, "invalid_because": "the counts disagree"}
    assert not aggregate(pd.DataFrame(rows)).iloc[0]["p99_ms_at_least"]


def test_compare_names_the_repeats_a_side_left_out() -> None:
    a = aggregate(pd.DataFrame(repeats([100.0, 101.0, 99.0])))
    b = aggregate(pd.DataFrame(repeats([100.0, 30.0, 101.0, 99.0], {2: "the counts disagree"})))
    out = compare(a, b)
    rps = out[out["metric"] == "rps"].iloc[0]
    assert (rps["n_a"], rps["n_b"]) == (3, 3) and rps["b"] == pytest.approx(100.0)
    assert rps["basis"].startswith("Welch's t-test, n = 3 vs 3")  # tested as before, on the valid ones
    assert rps["left_out"] == (f"B: 3 of 4 repeats valid; left out: repeat 2 (the counts disagree); {LEFT_OUT_BIAS}")
    assert (out["left_out"] == rps["left_out"]).all()  # every metric's row of the shape says it
    assert (compare(a, a)["left_out"] == "").all()


def test_compare_does_not_compare_a_shape_with_no_valid_repeat_on_a_side() -> None:
    a = aggregate(pd.DataFrame(repeats([100.0, 101.0, 99.0]) + repeats([50.0, 51.0, 49.0], users=20)))
    b = aggregate(
        pd.DataFrame(
            repeats([100.0, 101.0, 99.0])
            + repeats([10.0, 11.0], {1: "the counts disagree", 2: "server worker lost"}, users=20)
        )
    )
    out = compare(a, b)
    lost = out[out["users"] == 20]
    assert len(lost) == len(out) / 2 == 5  # kept, a row per metric (req/s, mean, p50, p95, p99): not dropped
    assert (lost["verdict"] == "not compared").all() and not lost["significant"].any()
    assert lost["p_value"].isna().all() and lost["b"].isna().all()  # never the invalid 10 req/s
    assert (lost["basis"] == "not compared: no valid repeat in B (of 2)").all()
    assert (
        lost["left_out"]
        == "B: no valid repeat of 2; left out: repeat 1 (the counts disagree), repeat 2 (server worker lost)"
    ).all()
    kept = out[(out["users"] == 10) & (out["metric"] == "rps")].iloc[0]
    assert kept["verdict"] == "same" and kept["left_out"] == ""  # the other shape is compared as before


def test_compare_marks_a_mean_that_is_only_a_lower_bound() -> None:
    a = aggregate(pd.DataFrame(repeats([100.0, 101.0, 99.0], p99_ms_at_least=False)))
    bound = repeats([100.0, 101.0, 99.0], p99_ms_at_least=False)
    bound[0]["p99_ms_at_least"] = True
    out = compare(a, aggregate(pd.DataFrame(bound))).set_index("metric")
    assert bool(out.loc["p99_ms", "b_at_least"]) and not out.loc["p99_ms", "a_at_least"]
    assert "B is only a lower bound" in out.loc["p99_ms", "basis"]
    assert not out.loc["rps", "b_at_least"] and "lower bound" not in out.loc["rps", "basis"]
    assert math.isfinite(out.loc["p99_ms", "b"])


@pytest.mark.parametrize(
    ("a_p99", "a_bound", "b_p99", "b_bound", "verdict"),
    [
        (100.0, False, 60.0, True, "inconclusive"),  # B at least 60: could be above 100
        (60.0, True, 100.0, False, "inconclusive"),  # A at least 60: could be above 100
        (100.0, False, 160.0, True, "worse"),  # B at least 160, above 100 whatever it really is
        (160.0, True, 100.0, False, "better"),  # A at least 160: B's 100 is lower for sure
        (100.0, True, 160.0, True, "inconclusive"),  # two bounds: either could be the higher
    ],
)
def test_compare_decides_a_lower_bound_only_when_it_is_the_higher_side(
    a_p99: float, a_bound: bool, b_p99: float, b_bound: bool, verdict: str
) -> None:
    def side(p99: float, bound: bool) -> pd.DataFrame:
        rows = [
            row(STYLE, 10, 100.0 + i, p99 * (1 + 0.01 * i), repeat=i + 1, valid=True, p99_ms_at_least=bound)
            for i in range(3)
        ]
        return aggregate(pd.DataFrame(rows))

    out = compare(side(a_p99, a_bound), side(b_p99, b_bound)).set_index("metric").loc["p99_ms"]
    assert out["verdict"] == verdict, out["basis"]
    assert out["significant"] == (verdict in ("better", "worse"))
    if verdict == "inconclusive":
        assert "a lower bound at or below the other side could be either" in out["basis"]


def test_the_comparison_page_says_what_each_side_left_out(run_copy: Path, tmp_path: Path) -> None:
    # In the copy, the second repeat of one shape and the only repeat of another break the generator rule.
    meta = json.loads((run_copy / "run.json").read_text())
    broken = {"002-sleep_async-await-u4-w2-r2", "010-cpu_async-u4-w2-r1"}
    for cell in meta["cells"]:
        cell["generator_saturated"] = cell["id"] in broken
    (run_copy / "run.json").write_text(json.dumps(meta))
    page = publish_comparison(FIXTURE_RUN, run_copy, tmp_path / "reports").read_text()
    rows = [html.unescape(r) for r in re.findall(r"<tr>(.*?)</tr>", page, re.S) if "<code>" in r]
    why = "a load-generator process averaged above Locust's CPU warning"

    def of(style: str, users: int) -> list[str]:
        return [r for r in rows if f"<code>{style}</code>" in r and f"<td>{users}</td>" in r]

    metrics = len(of("sleep/blocking-in-async", 4))  # a row per metric of its one shape
    assert metrics >= 3 and len(of("cpu/async", 4)) == metrics  # kept, not dropped
    for r in of("cpu/async", 4):
        assert "not compared: no valid repeat in B (of 1)" in r
        assert f"B: no valid repeat of 1; left out: repeat 1 ({why})" in r
    assert len(of("sleep/async-await", 4)) == metrics
    for r in of("sleep/async-await", 4):
        assert f"B: 1 of 2 repeats valid; left out: repeat 2 ({why}); {LEFT_OUT_BIAS}" in r
    assert not any("left out" in r for r in of("sleep/blocking-in-async", 4) + of("sleep/async-await", 8))
    assert f"{metrics} not compared (no valid repeat on a side)" in page
