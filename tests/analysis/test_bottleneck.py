"""The bottleneck rules (analysis.bottleneck), one set for both readers: the report's "Why" and your
app's verdicts name a limit at the same evidence."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest

from analysis import answers, bottleneck, findings
from analysis.report import why_text
from tests.analysis.test_findings import LO, evidence, figures

B = bottleneck


def test_a_share_counts_from_its_threshold_on_and_an_unmeasured_one_never() -> None:
    assert B.exhausted(B.EXHAUSTED_SHARE) and not B.exhausted(B.EXHAUSTED_SHARE - 0.01)
    assert not B.exhausted(None) and not B.exhausted(math.nan)
    assert B.loop_blocked(B.BLOCKED_SHARE) and not B.loop_blocked(B.BLOCKED_SHARE - 0.01)
    assert not B.loop_blocked(math.nan)


def test_the_loop_is_blocked_by_the_apps_code_only_when_most_of_the_stall_is_there() -> None:
    assert B.blocked_in_own_code(0.9, 0.9)
    assert B.blocked_in_own_code(0.3, 0.15)  # half of the stalled time in the app's code
    assert not B.blocked_in_own_code(0.9, 0.25)  # mostly elsewhere: the GIL, the loop's own code
    assert not B.blocked_in_own_code(0.1, 0.1)  # too little of the window
    assert not B.blocked_in_own_code(0.9, None) and not B.blocked_in_own_code(math.nan, 0.5)


def test_the_cores_a_server_can_use_are_one_a_worker_and_what_the_generator_left() -> None:
    assert B.usable_cores(4, {"generator_cpu_cores": 0.5}, 2.0) == 1.5
    assert B.usable_cores(1, {"generator_cpu_cores": 0.5}, 2.0) == 1.0  # the GIL: one core a worker
    assert B.usable_cores(2, {}, math.inf) == 2.0  # the machine unknown: a core a worker
    assert B.cpu_saturated(B.CPU_SATURATED * 1.5, 1.5) and not B.cpu_saturated(B.CPU_SATURATED * 1.5 - 0.01, 1.5)


def style_row(**over: Any) -> pd.Series:
    base = {
        "p99_ms": 120.0,
        "p99_ms_at_least": False,
        "rps": 400.0,
        "users": 50,
        "server_workers": 2,
        "blocked_share": 0.0,
        "own_code_share": 0.0,
        "top_site": "",
        "top_site_share": math.nan,
        "threadpool_tokens": 8.0,
        "db_pool_size": 10.0,
        "cell_workers_cpu_ms": 0.3,
    }
    return pd.Series({**base, **over})


def why(row: pd.Series, **cell: Any) -> str:
    return why_text(row, {"threads_busy_max": 8.0, **cell}, 20, cores=2).split(". So ")[1]


# Just past each threshold and just short of it: both readers must agree on which side they are.
@pytest.mark.parametrize("above", [True, False])
def test_both_readers_call_a_threadpool_exhausted_at_the_same_share(above: bool) -> None:
    share = B.EXHAUSTED_SHARE + (0.01 if above else -0.01)
    said = why(style_row(), threads_full_share=share)
    assert said.startswith("it is threadpool-bound") is above
    half = figures(50, 800.0, 62.0)  # half of linear: something held it back
    queued = evidence(threads_full_share=share, threads_waiting_share=share, threads_total=8.0, threads_in_use=16.0)
    verdict = findings.decide(LO, half, queued, [])[0]
    assert (verdict == "threadpool-bound") is above


@pytest.mark.parametrize("above", [True, False])
def test_both_readers_call_the_cpu_run_out_at_the_same_share_of_the_usable_cores(above: bool) -> None:
    usable = 1.5  # 2 workers on 2 cores, half a core to the generator
    cores = B.CPU_SATURATED * usable + (0.01 if above else -0.01)
    said = why(style_row(cell_workers_cpu_ms=cores / 400 * 1000), generator_cpu_cores=0.5)
    assert said.startswith("it is CPU-bound") is above
    # A route with 3 ms of CPU a request against 10 ms of latency, 4x the cheapest other route's.
    ev = evidence(cpu_ms_per_request=3.0, cores_used=cores, cores_usable=usable)
    verdict = findings.decide(figures(1, 95.0, 10.5), figures(50, 2000.0, 25.0 * 8), ev, [], floor_cpu_ms=0.75)[0]
    assert (verdict == "cpu-bound") is above


def test_both_readers_blame_the_apps_code_for_a_blocked_loop_by_the_same_rule() -> None:
    site = {"top_site": "shop/pricing.py:12 _fetch", "top_site_share": 1.0}
    mostly_own = why(style_row(blocked_share=0.3, own_code_share=0.16, **site))
    assert mostly_own.startswith("it blocks the event loop")
    elsewhere = why(style_row(blocked_share=0.9, own_code_share=0.25, **site))
    assert elsewhere.startswith("its loops were stalled, but mostly not at a call of its own")
    stalled = evidence(blocked_share=0.3, own_code_share=0.16, cores_used=0.1)
    assert findings.decide(LO, figures(50, 66.0, 750.0), stalled, [])[0] == "blocks-event-loop"
    assert findings.decide(LO, figures(50, 66.0, 750.0), {**stalled, "own_code_share": 0.1}, [])[0] != (
        "blocks-event-loop"
    )


def test_the_reports_why_reads_the_generators_cores_from_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Why's usable cores take off what the load generator used, as the findings do: the cell
    it is given must carry run.json's ``generator_cpu_cores`` beside the server's evidence."""
    from analysis import report
    from tests.conftest import FIXTURE_RUN

    a = report.analyse(FIXTURE_RUN)
    for c in a.run.cells:
        c["generator_cpu_cores"] = 0.75
    given: list[dict[str, Any]] = []

    def spy(r: pd.Series, cell: dict[str, Any], threshold_ms: float, cores: int | None = None) -> str:
        given.append(cell)
        return "x"

    monkeypatch.setattr(report, "why_text", spy)
    report.why_view(a)
    assert given and all(c.get("generator_cpu_cores") == 0.75 for c in given)
    assert all("server_worker_deaths" in c for c in given)  # and the evidence is still there


@pytest.mark.parametrize("above", [True, False])
def test_the_why_and_the_answers_call_the_labs_upstream_the_limit_at_the_same_share(above: bool) -> None:
    """The lab's upstream is one process: past LAB_PROCESS_BUSY of a core the calls' pace was its own,
    and both the Why and the answers' rule say so (the answers then do not rank the style)."""
    busy = B.LAB_PROCESS_BUSY + (0.01 if above else -0.01)
    row = style_row(
        upstream_cpu_cores=busy, upstream_cpu_ms=busy / 400 * 1000, postgres_cpu_ms=math.nan, failure_rate=0.0
    )
    text = why_text(row, {"threads_busy_max": 8.0}, 20, cores=2)
    assert f"the lab's own CPU per request: the upstream {busy / 400 * 1000:.2f} ms" in text
    assert text.split(". So ")[1].startswith("the lab, not the style, set its pace") is above
    assert ("limited by the lab" in answers._unreliable(row)) is above
