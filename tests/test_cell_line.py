"""The line a finished cell prints: its percentiles as measured (≥ for a lower bound, ± the p99's
interval), how blocked the loops were, and whatever makes its numbers doubtful."""

from __future__ import annotations

from analysis.rundir import CellOutcome, CellRecord
from routebench.cell import cell_line
from routebench.experiment import Cell, Experiment, expand


def shared_cell() -> Cell:
    exp = Experiment.model_validate(
        {"name": "n", "groups": [{"styles": ["sleep/async-await", "sleep/blocking-in-async"], "together": True}]}
    )
    return expand(exp)[0]


def exact(p50_us: int, p99_us: int, count: int, at_least: list[str] | None = None) -> dict[str, object]:
    return {"percentiles_us": {"50": p50_us, "99": p99_us}, "count": count, "at_least": at_least or []}


def test_a_shared_cells_line_names_each_style_with_its_bounds_and_interval() -> None:
    cell = shared_cell()
    record = CellRecord(cell.model_dump())
    record.settle(
        CellOutcome(
            "degraded",
            window_s=15.2,
            stopped_by="precision reached",
            p99_intervals={"sleep/async-await": {"batches": 15, "half_width_rel": 0.04}},
            degraded_because=["locust worker 1 lost in the window"],
            validity={"valid": False, "failed": ["generator"]},
            generator_saturated=True,
        )
    )
    record.wall_s = 19.4
    requests = {
        "sleep/async-await": exact(51_200, 55_000, 1200),
        "sleep/blocking-in-async": exact(90_000, 1_500_000, 300, at_least=["99"]),
    }
    stalls = {"blocked_share": 0.42, "sites": [{"site": "routes/sleep.py:31 time.sleep"}]}
    line = cell_line(cell, record, requests, stalls, "cell 1/1")
    assert line.startswith("cell 1/1: sleep/async-await p50 51.2 ms, p99 55.0 ms ±4%, 1,200 req; ")
    # A p99 that is a lower bound has no interval to show.
    assert "sleep/blocking-in-async p50 90.0 ms, p99 ≥1,500.0 ms, 300 req" in line
    assert "loop blocked 42% at routes/sleep.py:31 time.sleep" in line
    assert "generator saturated" in line and "degraded: locust worker 1 lost in the window" in line
    assert "not valid: generator" in line
    assert line.endswith("(15 s window, stopped by the precision check; 19.4 s)[/]")


def test_a_cell_with_no_requests_says_so() -> None:
    cell = shared_cell()
    record = CellRecord(cell.model_dump())
    record.settle(CellOutcome("ok", window_s=3.0, stopped_by="run time"))
    record.wall_s = 5.0
    assert cell_line(cell, record, {}, None, "cell 1/1") == "cell 1/1: no requests [dim](3 s window; 5.0 s)[/]"


def test_a_style_whose_every_request_failed_shows_its_failures_not_a_latency() -> None:
    """Every request answered 500 (an app without its database): no percentile to show, and the line
    says how many failed instead of stopping the run."""
    cell = shared_cell()
    record = CellRecord(cell.model_dump())
    record.settle(CellOutcome("ok", window_s=3.0, stopped_by="run time"))
    record.wall_s = 5.0
    failed = {"percentiles_us": {}, "count": 0, "failures": 2054, "at_least": []}
    line = cell_line(cell, record, {"sleep/async-await": failed}, None, "cell 1/1")
    assert line.startswith("cell 1/1: sleep/async-await no successful request, 2,054 failed")
