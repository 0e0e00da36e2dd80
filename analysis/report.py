"""From a run directory to its published report: gather everything, then render one template.

``analyse`` is the pipeline (load, validate, normalise, compare); ``publish`` writes
``reports/<run-id>/index.html`` and ``report.json`` (headline numbers), then refreshes
``reports/index.html``, the list of every published run.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from analysis import charts, slo, theory, timeseries
from analysis.compare import compare
from analysis.load import (EXCEPTION_COLUMNS, FAILURE_COLUMNS, HISTORY_COLUMNS, BadInput, Run, load_run, ok_cells,
                           read_csv, read_json, read_telemetry)
from analysis.render import render
from analysis.repeats import aggregate
from analysis.summary import add_baseline_ratios, summarise
from target_app import catalogue

MAX_REPORT_BYTES = 5 * 1024 * 1024
MAX_TIMELINES = 24


@dataclass
class Analysis:
    run: Run
    table: pd.DataFrame          # one row per cell and style
    repeats: pd.DataFrame        # one row per cell shape
    slo: pd.DataFrame
    cells: list[dict[str, Any]]  # per-cell evidence: time series, lag, failures, exceptions


def cpu_calibration(run: Run) -> dict[int, float]:
    raw = run.meta.get("calibration", {}).get("cpu_s_per_request", {})
    return {int(k): float(v) for k, v in raw.items()}


def analyse(run_dir: Path, extra_slo: list[str] | None = None) -> Analysis:
    run = load_run(run_dir)
    table = summarise(run)
    if table.empty:
        raise BadInput(f"{run_dir}: no finished cell with results to analyse")
    cells_by_id = {c["id"]: c for c in run.cells}
    table = add_baseline_ratios(table)
    table = theory.add_predictions(table, cells_by_id, cpu_calibration(run),
                                   cores=run.meta.get("machine", {}).get("cpu_count"))
    try:
        thresholds = [slo.parse(t) for t in [*run.meta.get("experiment", {}).get("slo", []), *(extra_slo or [])]]
    except slo.SloError as exc:
        raise BadInput(str(exc)) from None
    evidence = [cell_evidence(run, cell) for cell in ok_cells(run)]
    return Analysis(run, table, aggregate(table), slo.evaluate(thresholds, table), evidence)


def cell_evidence(run: Run, cell: dict[str, Any]) -> dict[str, Any]:
    cell_dir = run.dir / cell["dir"]
    exact = read_json(cell_dir / "exact.json")
    measure_from = exact.get("measure_from")
    history = read_csv(cell_dir / "locust_stats_history.csv", HISTORY_COLUMNS)
    telemetry = read_telemetry(cell_dir / "telemetry")
    failures = read_csv(cell_dir / "locust_failures.csv", FAILURE_COLUMNS, allow_empty=True)
    exceptions = read_csv(cell_dir / "locust_exceptions.csv", EXCEPTION_COLUMNS, allow_empty=True)
    return {
        "id": cell["id"], "styles": cell["styles"], "users": cell["users"],
        "client": timeseries.client_series(history, measure_from),
        "server": timeseries.server_series(telemetry, measure_from),
        **timeseries.lag_summary(telemetry, measure_from),
        "failures": failures.to_dict("records"), "exceptions": exceptions.to_dict("records"),
        "samples_by_worker": exact.get("samples_by_worker", {}),
        "lost_workers": cell.get("lost_workers", []),
        "server_worker_deaths": cell.get("server_worker_deaths", []),
        "saturated": bool(cell.get("generator_saturated")),
    }


def decision_table(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Per family, each style at its highest user count (solo cells, first repeat), with its verdict."""
    solo = table[~table["together"] & (table["repeat"] == 1)]
    out = []
    for family in catalogue.FAMILIES:
        fam = solo[solo["family"] == family]
        if fam.empty:
            continue
        rows = []
        for style in [s.id for s in catalogue.family(family) if s.id in set(fam["style"])]:
            srows = fam[fam["style"] == style]
            top = srows.sort_values("users").iloc[-1]
            rows.append({**top.to_dict(), "description": catalogue.BY_ID[style].description,
                         "prediction_text": catalogue.PREDICTIONS[catalogue.BY_ID[style].prediction].throughput,
                         "verdict": theory.verdict(srows)})
        out.append({"family": family, "rows": rows})
    return out


def headline(a: Analysis) -> dict[str, Any]:
    return {
        "run_id": a.run.meta.get("run_id", a.run.dir.name),
        "experiment": a.run.meta.get("experiment", {}).get("name", "?"),
        "status": a.run.meta.get("status", "?"),
        "started_at": a.run.meta.get("started_at"),
        "cells": len(a.run.cells), "cells_ok": len(ok_cells(a.run)),
        "styles": sorted(a.table["style"].unique()),
        "slo_passed": bool(a.slo["passed"].all()) if not a.slo.empty else None,
        "best_p99": _extreme(a.table, "p99_ms", min), "worst_p99": _extreme(a.table, "p99_ms", max),
    }


def _extreme(table: pd.DataFrame, col: str, pick: Any) -> dict[str, Any]:
    row = table.loc[pick(table.index, key=lambda i: table.loc[i, col])]
    return {"style": row["style"], "users": int(row["users"]), col: float(row[col])}


def build_context(a: Analysis) -> dict[str, Any]:
    figures: dict[str, object] = {
        "percentiles": charts.percentiles_by_style(a.table),
        "latency_users": charts.latency_vs_users(a.table),
        "predicted": charts.measured_vs_predicted(a.table),
        "neighbour": charts.neighbour_damage(a.table),
    }
    # A timeline per cell, up to a limit that keeps the page light; the CSVs hold the rest.
    for cell in a.cells[:MAX_TIMELINES]:
        figures[f"timeline_{cell['id']}"] = charts.cell_timeline(cell["id"], cell["client"], cell["server"])
    bokeh_js, bokeh_script, divs = charts.embed(figures)
    meta = a.run.meta
    failed = [c for c in a.run.cells if c.get("status") != "ok"]
    return {
        "meta": meta, "headline": headline(a), "families": decision_table(a.table),
        "rows": a.table.to_dict("records"),
        "repeats": a.repeats[a.repeats["repeats"] > 1].to_dict("records"),
        "slo": a.slo.to_dict("records"), "cells": a.cells, "failed_cells": failed,
        "saturated": [c for c in a.cells if c["saturated"]],
        "bokeh_js": bokeh_js, "bokeh_script": bokeh_script, "divs": divs, "max_timelines": MAX_TIMELINES,
        "generated_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }


def publish(run_dir: Path, reports_dir: Path, extra_slo: list[str] | None = None) -> Path:
    a = analyse(run_dir, extra_slo)
    out_dir = reports_dir / a.run.dir.name
    out_dir.mkdir(parents=True, exist_ok=True)
    html = render("report.html.j2", build_context(a))
    size = len(html.encode())
    if size > MAX_REPORT_BYTES:
        raise BadInput(f"{run_dir}: the report would be {size / 1e6:.1f} MB, over the 5 MB limit")
    _atomic_write(out_dir / "index.html", html)
    _atomic_write(out_dir / "report.json", json.dumps(_clean(headline(a)), indent=2))
    publish_index(reports_dir)
    return out_dir / "index.html"


def publish_index(reports_dir: Path) -> Path:
    runs = []
    for path in sorted(reports_dir.glob("*/report.json"), reverse=True):
        try:
            runs.append({**json.loads(path.read_text()), "href": f"{path.parent.name}/index.html"})
        except (OSError, json.JSONDecodeError):
            continue
    index = reports_dir / "index.html"
    _atomic_write(index, render("index.html.j2", {"runs": runs}))
    return index


def publish_comparison(run_a: Path, run_b: Path, reports_dir: Path, noise: float) -> Path:
    a, b = analyse(run_a), analyse(run_b)
    table = compare(a.repeats, b.repeats, noise=noise)
    if table.empty:
        raise BadInput(f"{run_a.name} and {run_b.name} share no cell (same style, users, workers, model, wait)")
    out = reports_dir / f"compare-{run_a.name}-vs-{run_b.name}.html"
    reports_dir.mkdir(parents=True, exist_ok=True)
    _atomic_write(out, render("compare.html.j2", {
        "a": headline(a), "b": headline(b), "rows": table.to_dict("records"), "noise": noise,
        "changed": int(table["significant"].sum()),
    }))
    return out


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _clean(obj: Any) -> Any:
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return obj
