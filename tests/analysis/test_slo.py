"""An SLO's value that is only a lower bound (requests unfinished when the window closed) is carried
as ``at_least`` and shown "≥" wherever it is printed: the report's SLO table and ``check``."""

from __future__ import annotations

import argparse
import dataclasses

import pandas as pd
import pytest

from analysis import report, slo
from analysis.render import render
from routebench import commands
from tests.analysis.tables import row, table
from tests.conftest import FIXTURE_RUN


@pytest.fixture(scope="module")
def checks() -> pd.DataFrame:
    """p99 of at least 150 ms (its own column says so), and a throughput that is exact."""
    measured = table(row("sleep/async-await", 10, 100.0, 150.0, cell="c1", p99_all_ms_at_least=True))
    return slo.evaluate(
        [slo.parse("sleep/async-await:p99<100ms"), slo.parse("sleep/async-await:rps>=50")],
        measured,
    )


def test_evaluate_carries_whether_the_value_is_only_a_lower_bound(checks: pd.DataFrame) -> None:
    p99, rps = checks.to_dict("records")
    # ≥ 150 ms breaks p99 < 100 ms certainly: judged, failed, and still only a lower bound.
    assert (p99["value"], p99["at_least"], p99["passed"], p99["judged"]) == (150.0, True, False, True)
    assert (rps["at_least"], rps["passed"]) == (False, True)


def test_a_bound_slo_value_is_shown_at_least_in_the_report(checks: pd.DataFrame) -> None:
    context = report.build_context(report.analyse(FIXTURE_RUN))
    context["slo"] = [report.slo_view(r) for r in checks.to_dict("records")]
    html = render("report.html.j2", context)
    start = html.index('<table id="slo">')
    shown = html[start : html.index("</table>", start)]
    assert "≥150.0" in shown and "≥100.0" not in shown and ">100.0<" in shown


def test_a_bound_slo_value_is_shown_at_least_by_check(
    checks: pd.DataFrame, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    a = dataclasses.replace(report.analyse(FIXTURE_RUN), slo=checks)
    monkeypatch.setattr(commands.report, "analyse", lambda run_dir, extra: a)
    args = argparse.Namespace(run=str(FIXTURE_RUN), slo=None, include_invalid=True, allow_incomplete=True)
    commands.cmd_check(args)
    err = capsys.readouterr().err
    assert "sleep/async-await:p99<100ms  c1 (U=10): ≥ 150.00" in err
    assert "sleep/async-await:rps>=50  c1 (U=10): 100.00" in err
