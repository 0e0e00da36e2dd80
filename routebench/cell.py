"""One cell of a run, as the run sees it: marked running, measured (routebench.measure), its
record settled and written (run.json and the cell's cell.json), and its line printed.

The progress line follows the cell's live requests/s; the caller says what the cell's time means
for the ETA (a matrix and a capacity search count what is left differently).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from rich.progress import Progress, TaskID

from analysis.rundir import MEASURED, CellDir, CellOutcome, CellRecord
from routebench.context import RunContext
from routebench.experiment import Cell
from routebench.launcher import AppError, StackError
from routebench.measure import measure
from routebench.progress import fit


def run_cell(
    ctx: RunContext,
    cell: Cell,
    progress: Progress,
    task: TaskID,
    label: str,
    eta: Callable[[float], tuple[float, str]],
) -> CellRecord:
    """Measure one cell; its record (run.json's entry, also written as cell.json). ``eta`` maps
    the seconds spent in the cell to the progress bar's (completed, ETA text)."""
    cell_dir = ctx.run_dir / cell.id
    cell_dir.mkdir()
    files = CellDir(cell_dir)
    record = ctx.record(cell)
    record.status, record.started_at, record.dir = "running", time.time(), cell.id
    ctx.save()
    progress.update(task, description=fit(label, ctx.console.width))
    begun = time.monotonic()

    def on_rps(rps: float | None) -> None:
        completed, left = eta(time.monotonic() - begun)
        described = f"{label} {rps:,.0f} req/s" if rps is not None else label
        progress.update(task, description=fit(described, ctx.console.width), completed=completed, eta=left)

    try:
        outcome = measure(ctx, cell, cell_dir, on_rps)
    except AppError as exc:  # your app cannot be served: the run stops, this cell says why
        record.settle(CellOutcome("failed", reason=str(exc)))
        record.ended_at = time.time()
        ctx.save()
        raise
    except StackError as exc:
        outcome = CellOutcome("failed", reason=str(exc))
    except KeyboardInterrupt:
        record.status, record.ended_at = "interrupted", time.time()
        files.write_record(record)
        raise
    ctx.lab.after_cell(outcome.status == "ok")
    record.settle(outcome)
    record.ended_at, record.wall_s = time.time(), round(time.monotonic() - begun, 1)
    files.write_record(record)
    ctx.save()
    if record.status in MEASURED:
        exact = json.loads(files.exact.read_text())["requests"]
        stalls = json.loads(files.stalls.read_text()) if files.stalls.is_file() else None
        ctx.console.print(cell_line(cell, record, exact, stalls, label), soft_wrap=False)
    else:
        ctx.console.print(f"[red]{label}: {record.status}[/] {record.reason or ''}")
    return record


def cell_line(cell: Cell, record: CellRecord, exact: dict[str, Any], stalls: dict[str, Any] | None, label: str) -> str:
    """A measured cell's line: each style's p50 and p99 (≥ when a lower bound; ± the p99's
    interval), requests, how blocked the loops were, and what makes the numbers doubtful."""
    outcome = record.outcome or CellOutcome(record.status)
    parts = []
    for style in cell.styles:
        e = exact.get(style)
        # A one-style cell's label names the style already: only a shared cell repeats it.
        name = f"{style} " if len(cell.styles) > 1 else ""
        if e and not e.get("count"):  # every request failed: no latency to show
            parts.append(f"{name}no successful request, {e.get('failures', 0):,} failed")
        elif e:
            bound = set(e.get("at_least") or [])
            iv = (outcome.p99_intervals or {}).get(style) or {}
            within = f" ±{iv['half_width_rel']:.0%}" if iv.get("batches") and "99" not in bound else ""
            parts.append(
                f"{name}p50 {'≥' if '50' in bound else ''}{e['percentiles_us']['50'] / 1000:,.1f} ms, "
                f"p99 {'≥' if '99' in bound else ''}{e['percentiles_us']['99'] / 1000:,.1f} ms{within}, "
                f"{e['count']:,} req"
            )
    if stalls is not None:
        top = f" at {stalls['sites'][0]['site']}" if stalls["sites"] and stalls["blocked_share"] >= 0.01 else ""
        parts.append(f"loop blocked {stalls['blocked_share']:.0%}{top}")
    warn = " [yellow]generator saturated[/]" if outcome.generator_saturated else ""
    for why in outcome.degraded_because or []:
        warn += f" [yellow]degraded: {why}[/]"
    v = outcome.validity or {}
    if v and not v.get("valid", True):
        warn += f" [yellow]not valid: {', '.join(v.get('failed', []))}[/]"
    # Wrapped by words, not cut mid-number, in a narrow terminal.
    ended = {"precision reached": ", stopped by the precision check", "maximum window": ", longest window"}.get(
        outcome.stopped_by or "", ""
    )
    return (
        f"{label}: {'; '.join(parts) or 'no requests'}{warn} "
        f"[dim]({outcome.window_s or 0:.0f} s window{ended}; {record.wall_s} s)[/]"
    )
