"""The experiment matrix: every cell in order, its plan in time (the ETA, a range when windows are
precision-driven) and the progress line while it runs.

A db cell whose database does not answer is skipped with the reason; every other cell is measured
(routebench.cell). The ETA learns from the cells that ran what a cell costs beyond its windows.
"""

from __future__ import annotations

import statistics

from rich.progress import Progress, TaskID

from analysis.rundir import CellOutcome
from routebench import stopping
from routebench.cell import run_cell
from routebench.context import RunContext
from routebench.experiment import Cell
from routebench.progress import CELL_OVERHEAD_S, STACK_START_S, eta_text, progress_bar


def plan(ctx: RunContext, cells: list[Cell]) -> tuple[float, float]:
    """The least and the most time ``cells`` can take: each measures from its minimum to its
    maximum window (the same when its window is fixed), plus the overhead seen so far per cell."""
    done = [
        (c.wall_s, float(c.cell["warmup_s"]), c.outcome.window_s)
        for c in ctx.state.cells
        if c.wall_s is not None and c.outcome is not None and c.outcome.window_s is not None
    ]
    reuse = ctx.experiment.reuse
    if done:  # what cells took here beyond their windows (a fresh stack each, without reuse)
        overhead = statistics.median(wall - warmup - window for wall, warmup, window in done)
    else:
        overhead = CELL_OVERHEAD_S + (0.0 if reuse else STACK_START_S)
    # Reusing: a stack starts where the server settings change (and for the first cell).
    keys = [ctx.settings(c).model_dump_json() for c in cells]
    starts = sum(1 for i, k in enumerate(keys) if i == 0 and ctx.lab.stack is None or i and k != keys[i - 1])
    extra = starts * STACK_START_S if reuse else 0.0
    low = sum(c.warmup_s + c.duration_s + overhead for c in cells) + extra
    high = sum(c.warmup_s + c.longest_s + overhead for c in cells) + extra
    return low, high


def run_matrix(ctx: RunContext) -> None:
    cells = ctx.cells
    low, high = plan(ctx, cells)
    span = f"{low / 60:.1f} min" if high - low < 30 else f"{low / 60:.1f} to {high / 60:.1f} min"
    ctx.console.print(
        f"run [bold]{ctx.state.header.run_id}[/]: {len(cells)} cells, about {span} -> {ctx.run_dir}"
        + ("" if ctx.experiment.reuse else " (reuse = false: a fresh stack and Locust for every cell)")
    )
    db_problem = ctx.db_problem
    with progress_bar(ctx.console) as progress:
        task = progress.add_task("starting", total=len(cells), eta=eta_text(low, high))
        for cell in cells:
            stopping.check()
            if cell.needs_db and db_problem:
                skip_cell(ctx, cell, db_problem)
            else:
                measure_cell(ctx, cell, progress, task)
            progress.update(task, completed=cell.index, eta=eta_text(*plan(ctx, cells[cell.index :])))


def measure_cell(ctx: RunContext, cell: Cell, progress: Progress, task: TaskID) -> None:
    """One cell of the matrix, its ETA: this cell's rest (from its least to its longest window),
    then the plan of the cells after it."""
    rest = ctx.cells[cell.index :]
    label = f"cell {cell.index}/{len(ctx.cells)} {'+'.join(cell.styles)} U={cell.users} W={cell.server_workers}"

    def eta(elapsed: float) -> tuple[float, str]:
        low, high = plan(ctx, rest)
        here = cell.warmup_s + CELL_OVERHEAD_S
        return cell.index - 1 + min(0.99, elapsed / (here + cell.longest_s)), eta_text(
            low + max(0.0, here + cell.duration_s - elapsed), high + max(0.0, here + cell.longest_s - elapsed)
        )

    run_cell(ctx, cell, progress, task, label, eta)


def skip_cell(ctx: RunContext, cell: Cell, reason: str) -> None:
    ctx.record(cell).settle(CellOutcome("skipped", reason=reason))
    ctx.save()
    ctx.console.print(f"[yellow]cell {cell.index}/{len(ctx.cells)} {'+'.join(cell.styles)} skipped:[/] {reason}")
