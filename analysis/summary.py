"""Per cell and style: throughput, exact and Locust-rounded percentiles, failures, saturation."""

from __future__ import annotations

from typing import Any

import pandas as pd

from analysis.load import BadInput, Run, ok_cells, read_json, read_stats_csv

COLUMNS = ["cell", "group", "style", "users", "server_workers", "model", "requests", "failures", "rps",
           "p50_ms", "p95_ms", "p99_ms", "p999_ms", "locust_p50_ms", "locust_p95_ms", "locust_p99_ms",
           "late_starts", "generator_saturated"]


def cell_rows(run: Run, cell: dict[str, Any]) -> list[dict[str, Any]]:
    cell_dir = run.dir / cell["dir"]
    exact = read_json(cell_dir / "exact.json").get("requests")
    if not isinstance(exact, dict):
        raise BadInput(f"{cell_dir / 'exact.json'}: has no 'requests' object")
    stats = read_stats_csv(cell_dir / "locust_stats.csv").set_index("Name")
    rows = []
    for style in cell["styles"]:
        e = exact.get(style)
        if style not in stats.index or e is None:
            continue
        s = stats.loc[style]
        pct = e["percentiles_us"]
        rows.append({
            "cell": cell["id"], "group": cell["group"], "style": style, "users": cell["users"],
            "server_workers": cell["server_workers"], "model": cell["model"],
            "requests": int(s["Request Count"]), "failures": int(s["Failure Count"]),
            "rps": float(s["Requests/s"]),
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
