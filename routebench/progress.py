"""The run's progress line: what runs now, a bar, elapsed time and the ETA, live requests/s.

The matrix and the capacity run both draw it; the time a cell costs beyond its warm-up and window
is estimated here until cells have run and shown it.
"""

from __future__ import annotations

import csv
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

CELL_OVERHEAD_S = 2.0  # a cell's time beyond warm-up and window, for the ETA until cells have run
STACK_START_S = 5.0  # a fresh stack (more with PostgreSQL), for the ETA
PROGRESS_COLUMNS_WIDTH = 44  # bar (up to 40 shrinks to fit), "100%", "0:01:23", "ETA", "0:04:56", spaces


def clock(seconds: float) -> str:
    s = max(0, round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def eta_text(low: float, high: float) -> str:
    """What is left, as a range when precision-driven cells may stop anywhere between their
    minimum and maximum windows."""
    return clock(low) if high - low < 1 else f"{clock(low)}–{clock(high)}"


def progress_bar(console: Console) -> Progress:
    """The progress line: what runs now, a bar, elapsed time and the ETA."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        TextColumn("ETA {task.fields[eta]}"),
        console=console,
        transient=True,
    )


def fit(description: str, width: int) -> str:
    """The progress line's description, cut to leave the bar, percentage, elapsed time and ETA
    whole in a terminal ``width`` columns wide (they take about 40 columns)."""
    room = max(16, width - PROGRESS_COLUMNS_WIDTH)
    return description if len(description) <= room else description[: room - 1] + "…"


def current_rps(history_csv: Path) -> float | None:
    """Requests/s of the last row Locust wrote to its stats history (the Aggregated line)."""
    try:
        with history_csv.open(newline="") as f:
            rows = [r for r in csv.DictReader(f) if r.get("Name") == "Aggregated"]
        return float(rows[-1]["Requests/s"]) if rows else None
    except (OSError, ValueError, KeyError, csv.Error):
        return None
