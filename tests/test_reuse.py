"""Reusing the stack and the Locust cluster between cells keeps cells apart; precision-driven cells.

An async-await cell measured right after a blocking-in-async cell on the same, reused stack (which
leaves the loops a backlog of blocked requests when its load stops) must measure what one measured
on a fresh stack does, within the noise of repeats; the reused run starts one stack and one Locust
cluster, and each cell waited for the server to drain.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from analysis import precision
from analysis.rundir import CellDir
from routebench.experiment import Experiment
from routebench.runner import Runner
from routebench.serverside.telemetry import HELD, read_dir
from target_app.settings import Settings

pytestmark = pytest.mark.stack

REPEATS = 3
WAIT_MS = 50
LONGEST_S = 22  # the precision cell's longest window: room for its 15 whole seconds and a stop before


def run(tmp_path: Path, name: str, groups: list[dict[str, Any]], reuse: bool) -> list[dict[str, Any]]:
    exp = Experiment.model_validate(
        {
            "name": name,
            "calibrate": False,
            "reuse": reuse,
            "warmup_s": 1,
            "duration_s": 3,
            "wait_ms": WAIT_MS,
            "server_workers": [2],
            "locust_workers": 2,
            "groups": groups,
        }
    )
    runner = Runner(exp, Settings(workers=2, database_url=None), results_dir=tmp_path, console=Console(quiet=True))
    run_dir = runner.run()
    cells: list[dict[str, Any]] = json.loads((run_dir / "run.json").read_text())["cells"]
    for c in cells:
        exact = json.loads(CellDir(run_dir / c["dir"]).exact.read_text())
        c["exact"], c["stopped_at"] = exact["requests"], exact["stopped_at"]
        c["telemetry"] = read_dir(CellDir(run_dir / c["dir"]).telemetry)
    return cells


def noise(a: list[float], b: list[float]) -> float:
    """Three standard errors of the difference of two means (Welch), and at least 2% of them: two
    measurements of one thing differ by less, but for a chance of about 3 in 1000."""
    se = math.sqrt(statistics.variance(a) / len(a) + statistics.variance(b) / len(b))
    return max(3 * se, 0.02 * statistics.mean(a + b))


def test_a_cell_after_a_blocking_one_on_a_reused_stack_matches_a_fresh_stack(tmp_path: Path) -> None:
    # The blocking cells are there for the backlog they leave (at the stop, each of the 50 users has a
    # request queued on a blocked loop, whatever the window): 2 s windows will do.
    after_blocking = [
        {"name": f"pair{r}", "styles": [style], "users": [users], **({"duration_s": 2} if blocking else {})}
        for r in range(REPEATS)
        for style, users, blocking in (("sleep/blocking-in-async", 50, True), ("sleep/async-await", 10, False))
    ]
    reused = run(tmp_path, "reused", after_blocking, reuse=True)
    fresh = run(tmp_path, "fresh", [{"styles": ["sleep/async-await"], "users": [10], "repeats": REPEATS}], reuse=False)

    assert all(c["status"] == "ok" for c in reused + fresh), [(c["id"], c.get("reason")) for c in reused + fresh]
    # One stack and one cluster served the reused run; the fresh run started one of each per cell.
    assert {c["stack"]["started"] for c in reused} == {1} and {c["stack"]["clusters"] for c in reused} == {1}
    assert [c["stack"]["started"] for c in fresh] == [1, 2, 3]
    # The blocking cells left the loops a backlog (at the stop each of the 50 users had a request at
    # the server: 25 a loop, 50 ms each, 1.25 s to serve); the runner waited for it before the next
    # cell: its server evidence still held requests after the stop, and never once the next began.
    assert all(c["drain_s"] is not None for c in reused)
    for c, after in zip(reused, reused[1:], strict=False):
        if c["styles"] != ["sleep/blocking-in-async"]:
            continue
        held = [s["t"] for s in c["telemetry"] if s["t"] >= c["stopped_at"] and any(s.get(k) for k in HELD)]
        assert held, "no backlog at the blocking cell's stop"
        assert max(held) < after["started_at"], (max(held), after["started_at"])

    def metric(cells: list[dict[str, Any]], key: str) -> list[float]:
        out = []
        for c in cells:
            if c["styles"] != ["sleep/async-await"]:
                continue
            e = c["exact"]["sleep/async-await"]
            out.append(e["count"] / c["window_s"] if key == "rps" else e["percentiles_us"][key] / 1000)
        return out

    for key in ("50", "99", "rps"):
        a, b = metric(reused, key), metric(fresh, key)
        assert len(a) == len(b) == REPEATS
        if key == "99":
            # No worse than fresh: a fresh stack's p99 has its own outliers (runs of this test here:
            # fresh 68-87 ms against 54-58 ms reused, with p50 and req/s the same, on the landed
            # code too), so a reused stack may measure a lower one; what reuse must not do is carry
            # the blocking cell's damage into this one. That damage is a request queued behind a
            # blocked one: a wait (50 ms) on the p99 at the least; a tenth of it is the margin
            # (a run here: reused 53.6-54.0 ms against fresh 52.1-53.0 ms, 2% apart).
            assert statistics.mean(a) - statistics.mean(b) <= max(noise(a, b), 0.1 * WAIT_MS), (key, a, b)
            continue
        assert abs(statistics.mean(a) - statistics.mean(b)) <= noise(a, b), (key, a, b)


def test_precision_driven_cells_stop_when_their_p99_is_precise_or_at_their_longest(tmp_path: Path) -> None:
    """A style with plenty of responses stops once its p99's interval is within the target (after
    the 15 whole seconds the interval needs, before the longest window); one with too few for an
    interval runs to its longest window and says why it has none."""
    cells = run(
        tmp_path,
        "precision",
        [
            {
                "styles": ["sleep/async-await"],
                "users": [20],
                "precision": 0.05,
                "duration_s": 6,
                "max_duration_s": LONGEST_S,
            },
            {
                "styles": ["sleep/blocking-in-async"],
                "users": [10],
                "precision": 0.05,
                "duration_s": 2,
                "max_duration_s": 4,
            },
        ],
        reuse=True,
    )
    quick, slow = cells
    assert quick["status"] == slow["status"] == "ok", cells
    # How soon a p99 is known to +-5% is the machine's noise, not the code's: its slow responses
    # come in spells that slow many of the 20 users at once, and a window whose spells are too few
    # gets no interval at all (analysis.precision: fewer than 10 independent responses above the
    # p99), so it may never be precise within the longest window. Either way the stop agrees with
    # the check's own evidence (the rule alone: tests/locustfiles/test_stop.py).
    checked = quick["last_check"]["intervals"]["sleep/async-await"]
    precise = (
        checked.get("batches", 0) >= precision.MIN_PRECISE_BATCHES and checked.get("half_width_rel", math.inf) <= 0.05
    )
    if quick["stopped_by"] == "precision reached":
        # On an interval within the target, over at least 15 whole seconds, within the check's lag
        # of having them and before its longest window.
        assert precise, checked
        assert precision.MIN_PRECISE_BATCHES <= quick["window_s"] < LONGEST_S - 1, quick["window_s"]
    else:
        # Never precise enough: it ran to its longest window (as the slow one below), the last
        # check still too wide, or without an interval.
        assert quick["stopped_by"] == "maximum window" and not precise, (quick["stopped_by"], checked)
        assert LONGEST_S - 0.4 <= quick["window_s"] <= LONGEST_S + 0.6, quick["window_s"]
    # The final interval covers the whole window (a second or two more): it holds the p99 (it may
    # be wider than the check's, which the report then lists: not asserted, chance), or there is
    # none and it says why: too few separate spells of slow responses, or too few slow ones.
    interval = quick["p99_intervals"]["sleep/async-await"]
    if interval["batches"]:
        assert interval["batches"] >= precision.MIN_PRECISE_BATCHES, interval
        p99 = quick["exact"]["sleep/async-await"]["percentiles_us"]["99"]
        assert interval["low_us"] <= p99 <= interval["high_us"]
    else:
        said = ("the slow responses come together", "too few responses above the p99")
        assert any(words in interval["reason"] for words in said), interval
    # The longest window is 4 s: the master stops at that deadline (its check sleeps until then)
    # and not before; 0.6 s past it would be its loop waking that late plus Locust's stop.
    assert slow["stopped_by"] == "maximum window" and 3.6 <= slow["window_s"] <= 4.6, slow
    assert slow["p99_intervals"]["sleep/blocking-in-async"]["batches"] == 0
    assert "reason" in slow["p99_intervals"]["sleep/blocking-in-async"]
