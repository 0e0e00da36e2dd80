"""The run's summary as a terminal table that reads at any width.

Style ids are never cut: below ``WIDE`` columns the table keeps one column per figure a reader
compares (users, req/s, p50, p95, p99) and drops the ones that are the same on every row (W) or
empty (failures), saying so under the table; wider terminals get the full table.
"""

from __future__ import annotations

import math

import pandas as pd
from rich import box
from rich.console import Console
from rich.table import Table

from target_app import catalogue

WIDE = 110


def _ms(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:,.0f}" if value >= 1000 else f"{value:,.1f}"


def _users(row: pd.Series) -> str:
    """Users on this style; beside other styles, of the cell's total ("10/20")."""
    mine = row.get("style_users", row["users"])
    mine = row["users"] if mine is None or (isinstance(mine, float) and math.isnan(mine)) else mine
    return f"{mine:g}/{row['users']:g}" if row["together"] else f"{row['users']:g}"


def summary_table(table: pd.DataFrame, title: str, width: int) -> tuple[Table, list[str]]:
    """The rich table for ``width`` columns, and the notes to print under it."""
    rows = table.assign(_order=table["style"].map(catalogue.rank)).sort_values(
        ["together", "_order", "users", "repeat"], kind="stable"
    )
    wide = width >= WIDE
    one_w = rows["server_workers"].nunique() == 1
    any_failures = bool(rows["failures"].sum())
    notes = ["p50/p95/p99: exact, in ms, of successful requests (HDR histograms of every Locust worker)"]
    columns: list[tuple[str, str]] = [("style", "style"), ("users", "users" if wide else "U")]
    if wide or not one_w:
        columns.append(("server_workers", "W"))
    if wide:
        columns.append(("requests", "requests"))
    if wide or any_failures:
        columns.append(("failures", "failures" if wide else "fail"))
    columns += [("rps", "req/s"), ("p50_ms", "p50"), ("p95_ms", "p95"), ("p99_ms", "p99")]
    if wide:
        columns.append(("locust_p99_ms", "Locust p99"))
    has_validity = "valid" in rows.columns
    if has_validity:
        columns.append(("valid", "valid"))
        for _, row in rows[~rows["valid"].astype(bool)].iterrows():
            notes.append(f"not valid: {row['style']} U={_users(row)}: {row['invalid_because']}")
    if any(rows.get(f"{m}_at_least", pd.Series(dtype=bool)).astype(bool).any() for m in ("p50_ms", "p95_ms", "p99_ms")):
        notes.append("≥: at least (requests of the window were still unfinished when the test stopped)")
    else:
        if one_w:
            notes.append(f"W = {int(rows['server_workers'].iloc[0])} server workers in every cell")
        if not any_failures:
            notes.append("no failures")
    if rows["together"].any():
        notes.append("a/b users: a on this style, of b in a cell shared with other styles")
    out = Table(title=title, box=box.HEAVY_HEAD if wide else box.SIMPLE_HEAD, pad_edge=wide, padding=(0, 1))
    for key, header in columns:
        out.add_column(header, justify="left" if key == "style" else "right", no_wrap=True)
    family = None
    for _, row in rows.iterrows():
        if family is not None and row["family"] != family:
            out.add_section()
        family = row["family"]
        cells = []
        for key, _ in columns:
            value = row[key]
            if key == "style":
                cells.append(str(value))
            elif key == "users":
                cells.append(_users(row))
            elif key == "rps":
                cells.append(f"{value:,.1f}")
            elif key.endswith("_ms"):
                cells.append(("≥" if bool(row.get(f"{key}_at_least", False)) else "") + _ms(value))
            elif key == "valid":
                cells.append("yes" if value else "no")
            else:
                cells.append(f"{value:,}" if isinstance(value, int) else str(value))
        out.add_row(*cells)
    return out, notes


def print_summary_table(table: pd.DataFrame, title: str, console: Console) -> None:
    out, notes = summary_table(table, title, console.width)
    console.print(out)
    for note in notes:
        console.print(f"[dim]{note}[/]")
