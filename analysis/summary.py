"""Per cell and style: throughput, exact and Locust-rounded percentiles, failures, saturation, and
each style's ratio to its family's async baseline at the same user count and server shape."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from analysis.load import Run, ok_cells, read_exact, read_stats_csv
from target_app import catalogue

COLUMNS = ["cell", "group", "together", "repeat", "family", "style", "users", "server_workers", "model",
           "wait_ms", "requests", "failures", "failure_rate", "rps", "p50_ms", "p95_ms", "p99_ms", "p999_ms",
           "locust_p50_ms", "locust_p95_ms", "locust_p99_ms", "late_starts", "generator_saturated"]


def cell_rows(run: Run, cell: dict[str, Any]) -> list[dict[str, Any]]:
    cell_dir = run.dir / cell["dir"]
    exact = read_exact(cell_dir / "exact.json")
    stats = read_stats_csv(cell_dir / "locust_stats.csv").set_index("Name")
    rows = []
    for style in cell["styles"]:
        e = exact.get(style)
        if style not in stats.index or e is None:
            continue
        s = stats.loc[style]
        pct = e["percentiles_us"]
        requests, failures = int(s["Request Count"]), int(s["Failure Count"])
        rows.append({
            "cell": cell["id"], "group": cell["group"], "together": len(cell["styles"]) > 1,
            "repeat": cell.get("repeat", 1), "family": style.split("/")[0], "style": style,
            "users": cell["users"], "server_workers": cell["server_workers"], "model": cell["model"],
            "wait_ms": cell.get("wait_ms"), "requests": requests, "failures": failures,
            "failure_rate": failures / requests if requests else 0.0, "rps": float(s["Requests/s"]),
            "p50_ms": pct["50"] / 1000, "p95_ms": pct["95"] / 1000, "p99_ms": pct["99"] / 1000,
            "p999_ms": pct["99.9"] / 1000,
            "locust_p50_ms": float(s["50%"]), "locust_p95_ms": float(s["95%"]), "locust_p99_ms": float(s["99%"]),
            "late_starts": int(e.get("late_starts", 0)),
            "generator_saturated": bool(cell.get("generator_saturated", False)),
        })
    return rows


def summarise(run: Run) -> pd.DataFrame:
    rows = [row for cell in ok_cells(run) for row in cell_rows(run, cell)]
    return pd.DataFrame(rows, columns=COLUMNS)


def add_baseline_ratios(table: pd.DataFrame) -> pd.DataFrame:
    """rps, p95 and p99 over the family baseline's, same users/W/wait/model/repeat, solo cells only."""
    out = table.copy()
    for col in ("rps_vs_async", "p95_vs_async", "p99_vs_async"):
        out[col] = np.nan
    key = ["family", "users", "server_workers", "wait_ms", "model", "repeat"]
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
