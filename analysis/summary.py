"""Per cell and style: throughput, exact and Locust-rounded percentiles, failures, saturation, and
each style's ratio to its family's async baseline at the same user count and server shape; solo
points (repeats averaged) and the neighbour table (a style alone against the same style beside others)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from analysis.load import Run, ok_cells, window_s
from target_app import catalogue

# users: the cell's; style_users: those on this style (fewer in a cell shared with other styles).
COLUMNS = [
    "cell",
    "group",
    "together",
    "repeat",
    "family",
    "style",
    "users",
    "style_users",
    "server_workers",
    "model",
    "wait_ms",
    "work",
    "fanout",
    "arrival_rate",
    "requests",
    "locust_requests",
    "locust_rps",
    "window_s",
    "failures",
    "failure_rate",
    "rps",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "p999_ms",
    "locust_p50_ms",
    "locust_p95_ms",
    "locust_p99_ms",
    "late_starts",
    "generator_saturated",
]


def style_users(cell: dict[str, Any], style: str) -> float:
    """Users driving ``style`` in ``cell``: the runner's own count when it wrote one, else an even
    split, which is what Locust does between user classes of equal weight (exact when it divides)."""
    by_style = cell.get("users_by_style")
    if isinstance(by_style, dict) and style in by_style:
        return float(by_style[style])
    users = cell.get("users")
    if not isinstance(users, (int, float)):
        return np.nan  # a web-UI session: users change while it runs
    return users / max(1, len(cell["styles"]))


def cell_rows(run: Run, cell: dict[str, Any]) -> list[dict[str, Any]]:
    data = run.data[cell["id"]]
    exact, window = data.exact["requests"], window_s(data.exact)
    stats = data.stats.set_index("Name")
    rows = []
    for style in cell["styles"]:
        e = exact.get(style)
        if style not in stats.index or e is None:
            continue
        s = stats.loc[style]
        pct = e["percentiles_us"]
        # Counts and rate from the exact capture over the window it covers: Locust's own can carry
        # warm-up reports that reached the master after its reset (kept beside, as locust_rps).
        locust_requests, failures = int(s["Request Count"]), int(s["Failure Count"])
        requests = int(e["count"]) if window else locust_requests
        rps = requests / window if window else float(s["Requests/s"])
        rows.append(
            {
                "cell": cell["id"],
                "group": cell["group"],
                "together": len(cell["styles"]) > 1,
                "repeat": cell.get("repeat", 1),
                "family": catalogue.family_of(style),
                "style": style,
                "users": cell["users"],
                "style_users": style_users(cell, style),
                "server_workers": cell["server_workers"],
                "model": cell["model"],
                "wait_ms": cell.get("wait_ms"),
                "work": cell.get("work"),
                "fanout": cell.get("fanout"),
                "arrival_rate": cell.get("arrival_rate"),
                "requests": requests,
                "failures": failures,
                "failure_rate": failures / locust_requests if locust_requests else 0.0,
                "rps": rps,
                "locust_requests": locust_requests,
                "locust_rps": float(s["Requests/s"]),
                "window_s": window,
                "p50_ms": pct["50"] / 1000,
                "p95_ms": pct["95"] / 1000,
                "p99_ms": pct["99"] / 1000,
                "p999_ms": pct["99.9"] / 1000,
                "locust_p50_ms": float(s["50%"]),
                "locust_p95_ms": float(s["95%"]),
                "locust_p99_ms": float(s["99%"]),
                "late_starts": int(e.get("late_starts", 0)),
                "generator_saturated": bool(cell.get("generator_saturated", False)),
            }
        )
    return rows


def summarise(run: Run) -> pd.DataFrame:
    rows = [row for cell in ok_cells(run) for row in cell_rows(run, cell)]
    return pd.DataFrame(rows, columns=COLUMNS)


def add_baseline_ratios(table: pd.DataFrame) -> pd.DataFrame:
    """rps, p95 and p99 over the family baseline's, same users/W/wait/model/repeat, solo cells only."""
    out = table.copy()
    for col in ("rps_vs_async", "p95_vs_async", "p99_vs_async"):
        out[col] = np.nan
    key = ["family", "users", *SHAPE, "repeat"]
    solo = out[~out["together"]]
    base_ids = {f: catalogue.baseline(f).id for f in catalogue.FAMILIES}
    baselines = solo[solo["style"] == solo["family"].map(base_ids)].set_index(key)
    for idx, row in solo.iterrows():
        k = tuple(row[c] for c in key)
        if k not in baselines.index:
            continue
        b = baselines.loc[k]
        b = b.iloc[0] if isinstance(b, pd.DataFrame) else b
        out.loc[idx, "rps_vs_async"] = row["rps"] / b["rps"] if b["rps"] else np.nan
        out.loc[idx, "p95_vs_async"] = row["p95_ms"] / b["p95_ms"] if b["p95_ms"] else np.nan
        out.loc[idx, "p99_vs_async"] = row["p99_ms"] / b["p99_ms"] if b["p99_ms"] else np.nan
    return out


SHAPE = ["server_workers", "wait_ms", "work", "fanout", "model", "arrival_rate"]
POINT = ["family", "style", "users", *SHAPE]
NEIGHBOUR_METRICS = ("p50_ms", "p95_ms", "p99_ms", "rps")
NEIGHBOUR_COLUMNS = [
    "cell",
    "family",
    "style",
    "neighbours",
    "blocking_neighbours",
    "style_users",
    "users",
    "users_label",
    "server_workers",
    "requests",
    "alone_users",
    "alone_users_match",
    "alone_repeats",
    "alone_requests",
    "alone_cells",
    *(f"{m}_{k}" for m in NEIGHBOUR_METRICS for k in ("alone", "beside", "ratio")),
]


def catalogue_order(styles: Iterable[str]) -> list[str]:
    """Styles as the catalogue lists them (by family, in the catalogue's order); unknown ones last."""
    return sorted(set(styles), key=lambda s: (catalogue.rank(s), s))


def blocks_the_loop(style: str) -> bool:
    """Whether theory says ``style`` stalls every request on its worker (a blocking call in async def)."""
    known = catalogue.BY_ID.get(style)
    return known is not None and catalogue.PREDICTIONS[known.prediction].blocks_loop


def users_label(users: Any, share: Any) -> str:
    """ "8", or "4 of 8" for a style that shared its cell's users with others."""
    if users is None or pd.isna(users):
        return "–"
    if share is None or pd.isna(share) or share == users:
        return f"{users:g}"
    return f"{share:g} of {users:g}"


def solo_points(table: pd.DataFrame) -> pd.DataFrame:
    """One row per style, users and server shape from solo cells: repeats averaged, requests summed."""
    solo = table[~table["together"]]
    grouped = solo.groupby(POINT, as_index=False, sort=False, dropna=False)
    return grouped.agg(
        rps=("rps", "mean"),
        p50_ms=("p50_ms", "mean"),
        p95_ms=("p95_ms", "mean"),
        p99_ms=("p99_ms", "mean"),
        failure_rate=("failure_rate", "mean"),
        requests=("requests", "sum"),
        repeats=("cell", "count"),
        cells=("cell", list),
        saturated=("generator_saturated", "any"),
        predicted_rps=("predicted_rps", "mean"),
    )


def neighbour_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per together cell and style: the style beside the others against the same style alone (solo
    cells of the same W, wait and model, at users equal to its share of the cell, else the nearest)."""
    points = solo_points(table)
    together = table[table["together"]]
    rows = [_neighbour_row(r, together[together["cell"] == r["cell"]], points) for _, r in together.iterrows()]
    return pd.DataFrame(rows, columns=NEIGHBOUR_COLUMNS)


def _neighbour_row(row: pd.Series, cell_rows: pd.DataFrame, points: pd.DataFrame) -> dict[str, Any]:
    neighbours = [s for s in cell_rows["style"] if s != row["style"]]
    match = _alone(row, points)
    out: dict[str, Any] = {
        "cell": row["cell"],
        "family": row["family"],
        "style": row["style"],
        "neighbours": neighbours,
        "blocking_neighbours": [s for s in neighbours if blocks_the_loop(s)],
        "style_users": row["style_users"],
        "users": row["users"],
        "users_label": users_label(row["users"], row["style_users"]),
        "server_workers": row["server_workers"],
        "requests": row["requests"],
        "alone_users": match["users"] if match is not None else np.nan,
        "alone_users_match": match is not None and match["users"] == row["style_users"],
        "alone_repeats": int(match["repeats"]) if match is not None else 0,
        "alone_requests": int(match["requests"]) if match is not None else 0,
        "alone_cells": list(match["cells"]) if match is not None else [],
    }
    for m in NEIGHBOUR_METRICS:
        a, b = (float(match[m]) if match is not None else np.nan), float(row[m])
        out.update({f"{m}_alone": a, f"{m}_beside": b, f"{m}_ratio": b / a if a else np.nan})
    return out


def _alone(row: pd.Series, points: pd.DataFrame) -> pd.Series | None:
    """The solo point of ``row``'s style and server shape whose users are nearest its share (the fewer on a tie)."""
    alone = points[(points["style"] == row["style"]) & _same_shape(points, row)]
    if alone.empty or pd.isna(row["style_users"]):
        return None
    alone = alone.assign(distance=(alone["users"] - row["style_users"]).abs())
    return alone.sort_values(["distance", "users"], kind="stable").iloc[0]


def _same_shape(frame: pd.DataFrame, row: pd.Series) -> pd.Series:
    """Rows of ``frame`` with ``row``'s W, wait and model; a missing wait matches a missing wait."""
    mask = pd.Series(True, index=frame.index)
    for col in SHAPE:
        value = row[col]
        mask &= frame[col].isna() if pd.isna(value) else frame[col] == value
    return mask
