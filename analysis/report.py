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

from analysis import (
    answers,
    bottleneck,
    capacity,
    findings,
    precision,
    profiles,
    slo,
    theory,
    timeseries,
    validity,
)
from analysis.compare import ALPHA, FLOOR_METHOD, MIN_REPEATS, TEST_METHOD, VERDICTS, compare
from analysis.load import (
    BadInput,
    Run,
    json_safe,
    load_run,
    ok_cells,
    read_capacity,
)
from analysis.render import render
from analysis.repeats import INTERVAL_METHOD, SHAPE, aggregate, shape_keys, validity_note
from analysis.rundir import MEASURED, RunDir, measured_until, write_text
from analysis.summary import (
    add_baseline_ratios,
    cell_validity,
    neighbour_points,
    shape_ids,
    shape_labels,
    shape_of,
    shape_words,
    solo_points,
    summarise,
    together_points,
    users_label,
    valid_rows,
)
from target_app import catalogue
from target_app.catalogue import CANARY

MAX_REPORT_BYTES = 5 * 1024 * 1024
MAX_TIMELINES = 24


@dataclass
class Analysis:
    run: Run
    table: pd.DataFrame  # one row per cell and style
    repeats: pd.DataFrame  # one row per cell shape
    slo: pd.DataFrame
    cells: list[dict[str, Any]]  # per-cell evidence: time series, lag, failures, exceptions


def full_table(run: Run) -> pd.DataFrame:
    """One row per cell and style: the measurement, its validity, the ratios to the family's
    baseline and the model's predictions (what summary.csv holds)."""
    table = summarise(run)
    if table.empty:
        raise BadInput(f"{run.dir}: no finished cell with results to analyse")
    cells_by_id = {c["id"]: c for c in run.cells}
    table = add_baseline_ratios(table)
    return theory.add_predictions(
        table, cells_by_id, run.meta.get("calibration"), run.meta.get("machine", {}).get("cpu_count")
    )


def analyse(run_dir: Path, extra_slo: list[str] | None = None) -> Analysis:
    run = load_run(run_dir)
    table = full_table(run)
    try:
        thresholds = [slo.parse(t) for t in [*run.meta.get("experiment", {}).get("slo", []), *(extra_slo or [])]]
    except slo.SloError as exc:
        raise BadInput(str(exc)) from None
    capacity_only = [t.text for t in thresholds if t.metric == "mst_rps"]
    if capacity_only:
        raise BadInput(f"{capacity_only[0]}: mst thresholds are judged by routebench check on a capacity run")
    evidence = [cell_evidence(run, cell) for cell in ok_cells(run)]
    # Intervals and comparisons over each shape's valid repeats; the invalid ones named beside them.
    return Analysis(run, table, aggregate(table), slo.evaluate(thresholds, table), evidence)


def cell_evidence(run: Run, cell: dict[str, Any]) -> dict[str, Any]:
    data = run.data[cell["id"]]
    exact, history, telemetry = data.exact, data.history, data.telemetry
    failures, exceptions = data.failures, data.exceptions
    measure_from = exact.get("measure_from")
    measure_until = window_end(exact, cell)
    client, source = client_evidence(data.exact_path, exact, history)
    return {
        "id": cell["id"],
        "styles": cell["styles"],
        "users": cell["users"],
        "client": client,
        "client_source": source,
        "measure_from": measure_from,
        "server": timeseries.server_series(telemetry, measure_from, measure_until),
        **timeseries.lag_summary(telemetry, measure_from, measure_until),
        "stalls": timeseries.stall_summary(telemetry, measure_from, measure_until),
        "failures": failures.to_dict("records"),
        "exceptions": exceptions.to_dict("records"),
        "samples_by_worker": exact.get("samples_by_worker", {}),
        "lost_workers": lost_generators(cell),
        "server_worker_deaths": [{**d, **_when(d["pid"], cell)} for d in cell.get("server_worker_deaths", [])],
        "degraded_because": cell.get("degraded_because", []),
        "failed_requests": sum(int(e.get("failures", 0)) for e in exact.get("requests", {}).values()),
        "lost_requests": lost_connections(failures),
        "saturated": bool(cell.get("generator_saturated")),
        "warnings": list(cell.get("warnings", [])),
        "validity": (verdict := cell_validity(cell, data)),
        "badges": badges(verdict),
        "spread": spread_over_workers(
            telemetry, {s: run.path_of(s) for s in cell["styles"]}, measure_from, measure_until
        ),
        "open_counts": open_counts(exact, cell),
        **profile_evidence(run, cell),
    }


def profile_evidence(run: Run, cell: dict[str, Any]) -> dict[str, Any]:
    """The cell's CPU profile, when one was asked for: its stacks, the one-line summary of where
    the CPU went, or why there is none."""
    record = cell.get("profile")
    if not record:
        return {"profile": None}
    stacks = profiles.read(RunDir(run.dir).cell(cell["dir"]).profile)
    workers = len(record.get("files", []))
    return {
        "profile": {
            "summary": profiles.summary_line(profiles.where_cpu_went(stacks), record.get("rate_hz", 100), workers),
            "problem": record.get("problem"),
            "tool": record.get("tool", "py-spy"),
        },
        "profile_stacks": stacks,
    }


def lost_generators(cell: dict[str, Any]) -> list[dict[str, Any]]:
    """Load-generator processes lost in the cell: the runner's record (by process handle) first,
    then workers only the master's heartbeat saw go (on other machines)."""
    seen = [
        x
        for x in cell.get("losses", [])
        if x.get("kind") in ("locust worker", "locust master") and x.get("phase") in validity.MEASURED_PHASES
    ]
    out = [
        {
            "id": x.get("client_id") or x["process"],
            "lost_at": x["at"],
            "samples_received": x.get("samples_delivered", 0),
            "how": f"{x['how']}, {validity.PHASE_WORDS.get(x['phase'], x['phase'])}",
        }
        for x in seen
    ]
    ids = {x["id"] for x in out}
    out += [
        {**w, "how": "missing from the master's heartbeat"} for w in cell.get("lost_workers", []) if w["id"] not in ids
    ]
    return out


def _when(pid: int, cell: dict[str, Any]) -> dict[str, Any]:
    """The runner's record of a lost process (seconds into the cell, phase), by pid."""
    loss: dict[str, Any] = next((x for x in cell.get("losses", []) if x.get("pid") == pid), {})
    phase = loss.get("phase")
    return {"at_s": loss.get("at_s"), "phase": validity.PHASE_WORDS.get(phase, phase) if phase else None}


def lost_connections(failures: pd.DataFrame) -> int:
    """Failed requests whose connection closed under them (Locust's failures CSV, by error)."""
    if failures.empty or "Error" not in failures or "Occurrences" not in failures:
        return 0
    closed = failures["Error"].astype(str).str.contains("ConnectionClosed|closed|reset", case=False)
    if "Name" in failures:
        closed &= failures["Name"] != CANARY  # the test's requests, as the failed count beside it
    return int(failures.loc[closed, "Occurrences"].sum())


def badges(record: dict[str, Any]) -> list[dict[str, Any]]:
    """One badge per validity rule: passed, or failed with its reasons."""
    failed = set(record.get("failed", []))
    broken = record.get("broken", [])
    return [
        {"rule": rule, "ok": rule not in failed, "why": "; ".join(b["text"] for b in broken if b["rule"] == rule)}
        for rule in validity.RULES
    ]


def spread_over_workers(
    telemetry: pd.DataFrame, paths: dict[str, str], start: float | None, end: float | None
) -> dict[str, list[dict[str, Any]]]:
    """Per style, the requests each server worker served in the window (from the workers' own
    counts, by the path the style's requests were sent to: ``paths``, Run.path_of), largest first:
    how the users' connections spread over the workers."""
    if telemetry.empty or "served" not in telemetry.columns or start is None or end is None:
        return {}
    out: dict[str, list[dict[str, Any]]] = {}
    for style, path in paths.items():
        per_worker: list[dict[str, Any]] = []
        for pid, samples in telemetry.groupby("pid"):
            served = [
                (t, (s or {}).get(path, 0))
                for t, s in zip(samples["t"], samples["served"], strict=True)
                if isinstance(s, dict)
            ]
            before = [n for t, n in served if t <= start]
            during = [n for t, n in served if t <= end]
            if not during:
                continue
            n = during[-1] - (before[-1] if before else 0)
            if n > 0:
                per_worker.append({"pid": int(pid), "requests": int(n)})
        total = sum(w["requests"] for w in per_worker)
        for w in per_worker:
            w["share"] = w["requests"] / total
        if per_worker:
            out[style] = sorted(per_worker, key=lambda w: -w["requests"])
    return out


def open_counts(exact: dict[str, Any], cell: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Open model: per style, what the schedule offered and what became of it."""
    if cell.get("model") != "open":
        return {}
    keys = ("offered", "sent", "unsent_at_stop", "inflight_at_stop")
    out = {}
    for style in cell["styles"]:
        e = exact.get("requests", {}).get(style) or {}
        if "offered" in e:
            out[style] = {
                "completed": int(e.get("count", 0)) + int(e.get("failures", 0)),
                **{k: int(e[k]) for k in keys},
            }
    return out


def window_end(exact: dict[str, Any], cell: dict[str, Any]) -> float | None:
    """When the measured window closed: the capture's own record (analysis.rundir.measured_until),
    else its start plus the cell's duration."""
    until = measured_until(exact)
    if until is not None:
        return until
    start, duration = exact.get("measure_from"), cell.get("duration_s")
    if isinstance(start, (int, float)) and isinstance(duration, (int, float)):
        return float(start) + float(duration)
    return None


def client_evidence(path: Path, exact: dict[str, Any], history: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Per-second client series and what it is: exact when the run recorded a timeline, else Locust's
    history without the seconds its rolling window spends filling."""
    timeline = exact.get("timeline")
    if not timeline:
        return timeseries.settled(timeseries.client_series(history, exact.get("measure_from"))), timeseries.LOCUST
    try:
        return timeseries.exact_series(timeline), timeseries.EXACT
    except (AttributeError, TypeError, ValueError):
        raise BadInput(f"{path}: 'timeline' is not {{style: [[second, count, p50_us, p95_us, p99_us], ...]}}") from None


# Columns every decision-table row has, whatever the theory or the run provided.
DECISION_DEFAULTS: dict[str, Any] = {
    "mean_ms": math.nan,
    "predicted_rps": math.nan,
    "predicted_mean_ms": math.nan,
    "predicted_bottleneck": None,
    "predicted_cpu_utilisation": math.nan,
    "rps_vs_baseline": math.nan,
    "p99_vs_baseline": math.nan,
    "p99_vs_baseline_at_least": False,
    "canary_p99_ms": math.nan,
    "canary_p99_ms_at_least": False,
    "canary_failures": math.nan,
}


def decision_table(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Per family: its baseline (catalogue.baseline) and one section per shape, the shape the answers
    compare at first, each labelled with what sets it apart from the family's other shapes. In a
    section, each style at its highest user count there, repeats averaged (n in ``repeats``), its
    ratios to the baseline of the same users and shape, and its verdict. A style measured only
    beside others (a web-UI test of several classes, say) shows its shared cells instead, named as
    such: its numbers include what its neighbours did to it."""
    solo, shared = solo_points(table), together_points(table)
    out = []
    for family in catalogue.FAMILIES:
        base = catalogue.baseline(family).id
        mine = solo[solo["family"] == family].assign(shared=False)
        others = shared[(shared["family"] == family) & ~shared["style"].isin(set(mine["style"]))]
        parts = [frame for frame in (mine, others.assign(shared=True)) if not frame.empty]
        if not parts:
            continue
        fam = pd.concat(parts, ignore_index=True)
        ids, labels = shape_ids(fam), shape_labels(fam)
        order = list(dict.fromkeys(ids))
        main = answers.main_shape(mine, base) if not mine.empty else None
        if main is not None:
            first = ids[[shape_of(r) == shape_of(main.iloc[0]) for _, r in fam.iterrows()]].iloc[0]
            order = [first, *(i for i in order if i != first)]
        sections = []
        for number, sid in enumerate(order):
            section = fam[ids == sid]
            label = labels[section.index[0]]
            rows = [
                _decision_row(table, section, style, base, label if number else "")
                for style in catalogue_order_of(family, section["style"])
            ]
            sections.append({"label": label, "shape": shape_words(section.iloc[0]), "rows": rows})
        out.append({"family": family, "baseline": base, "sections": sections})
    return out


# The rules the "Why" sentences follow, in words (analysis.bottleneck decides; docs/model.md's resources).
WHY_RULE = (
    f"A style blocks the event loop when its loops were stalled at least {bottleneck.BLOCKED_SHARE:.0%} of the "
    "window, mostly at call sites in the application's own code; "
    f"pool-bound when requests waited for a database connection at least {bottleneck.EXHAUSTED_SHARE:.0%} of the "
    "window (threads waiting for one hold their tokens: the pool comes first); "
    f"threadpool-bound when all T tokens were in use at least {bottleneck.EXHAUSTED_SHARE:.0%} of it and requests "
    f"waited for a token at least {bottleneck.EXHAUSTED_SHARE:.0%} of it (where the telemetry records those); "
    "it is CPU-bound when its server CPU per request "
    f"times its throughput reached {bottleneck.CPU_SATURATED:.0%} of the cores its workers can use (one per worker, "
    "the GIL, and no more than the machine has less what the load generator used); "
    "else none of these limited it."
)


def why_view(a: Analysis) -> list[dict[str, Any]]:
    """Per family, per style measured alone: the evidence behind its latency, in words generated
    from the numbers (its cell at the highest user count, the last repeat)."""
    # The cell as run.json has it (the generator's cores, its settings) with the server's evidence.
    run_cells = {c["id"]: c for c in a.run.cells}
    cells = {c["id"]: {**run_cells.get(c["id"], {}), **c} for c in a.cells}
    threshold = (a.run.meta.get("settings") or {}).get("stall_threshold_ms", 20)
    cores = (a.run.meta.get("machine") or {}).get("cpu_count")
    alone = a.table[~a.table["together"].astype(bool)]
    out = []
    for family in catalogue.FAMILIES:
        rows = alone[alone["family"] == family]
        if rows.empty:
            continue
        items = []
        for style in catalogue_order_of(family, rows["style"]):
            r = rows[rows["style"] == style].sort_values(["users", "repeat"], kind="stable").iloc[-1]
            text = why_text(r, cells.get(r["cell"], {}), threshold, cores)
            if not r.get("valid", True):
                text += f" (This cell is not valid: {r['invalid_because']}.)"
            items.append({"style": style, "cell": r["cell"], "text": text})
        out.append({"family": family, "items": items})
    return out


def why_text(r: pd.Series, cell: dict[str, Any], threshold_ms: float, cores: int | None = None) -> str:
    """One style's evidence: latency and throughput, loop stalls and their top call site, threadpool
    tokens, database pool waiters, server CPU per request, then the limit they point to (decided by
    analysis.bottleneck's rules; ``cores``: the machine's, None when unknown)."""
    bound = "≥" if r.get("p99_ms_at_least") else ""
    said = [
        f"p99 {bound}{r['p99_ms']:,.1f} ms and {r['rps']:,.0f} req/s at {int(r['users'])} users, "
        f"W={int(r['server_workers'])}"
    ]
    share = r.get("blocked_share")
    blocked = isinstance(share, float) and not math.isnan(share)
    if not blocked:
        said.append("no loop-stall record (detector off)")
    elif share < 0.005:
        said.append(f"the event loops were stalled beyond {threshold_ms:g} ms for {share:.1%} of the window")
    else:
        top = r.get("top_site") or "an unknown site"
        said.append(f"the event loops were stalled {share:.0%} of the window, {r['top_site_share']:.0%} of it at {top}")
    tokens, total = cell.get("threads_busy_max"), r.get("threadpool_tokens")
    if isinstance(tokens, float) and not math.isnan(tokens):
        said.append(f"threadpool tokens in use at most {tokens:.0f}" + (f" of {total:.0f}" if total == total else ""))
    waiting = cell.get("db_waiting_max")
    if isinstance(waiting, float) and not math.isnan(waiting) and waiting > 0:
        in_use = cell.get("db_in_use_max")
        said.append(
            f"up to {waiting:.0f} request(s) waited for a database connection"
            + (f", with up to {in_use:.0f} of P={r['db_pool_size']:.0f} in use" if isinstance(in_use, float) else "")
        )
    cpu = r.get("cell_workers_cpu_ms")
    if isinstance(cpu, float) and not math.isnan(cpu):
        said.append(f"server CPU {cpu:.2f} ms per request")
    lab = [
        f"{words} {ms:.2f} ms"
        for words, ms in (("the upstream", r.get("upstream_cpu_ms")), ("PostgreSQL", r.get("postgres_cpu_ms")))
        if isinstance(ms, float) and not math.isnan(ms) and ms > 0
    ]
    if lab:
        said.append("the lab's own CPU per request: " + ", ".join(lab))
    limit = (
        "none of the limits measured here was reached (the loop, the threadpool, the database pool, the "
        "workers' own CPU; a process pool's CPU is not the workers'): its latency is its own wait"
    )
    own_code = blocked and bottleneck.blocked_in_own_code(share, r.get("own_code_share"))
    usable = bottleneck.usable_cores(int(r["server_workers"]), cell, float(cores) if cores else math.inf)
    cpu_bound = (
        isinstance(cpu, float) and not math.isnan(cpu) and bottleneck.cpu_saturated(cpu / 1000 * r["rps"], usable)
    )
    in_use, pool = cell.get("db_in_use_max"), r.get("db_pool_size")
    queued = cell.get("db_waiting_share")
    pool_waits = (
        isinstance(queued, float)
        and bottleneck.exhausted(queued)  # requests queued for a connection
        and isinstance(in_use, float)
        and isinstance(pool, float)
        and in_use >= pool
    )
    full, waited = cell.get("threads_full_share"), cell.get("threads_waiting_share")
    # Tokens all taken by threads that wait on a pool are the pool's doing (it comes first); and
    # where the telemetry records tasks waiting for a token, the tokens limit only when some did.
    threads_full = (
        isinstance(full, float)
        and bottleneck.exhausted(full)
        and not (isinstance(waited, float) and not math.isnan(waited) and not bottleneck.exhausted(waited))
    )
    if lab_limit := bottleneck.lab_limit(r):
        limit = f"the lab, not the style, set its pace: {lab_limit}"
    elif own_code:
        limit = "it blocks the event loop: requests waited for a loop stuck in that call" + (
            ", and it is CPU-bound: that call is CPU work, and the workers' CPU was nearly all in use"
            if cpu_bound
            else ""
        )
    elif pool_waits:
        limit = f"it is pool-bound: requests queued for a database connection {queued:.0%} of the window"
    elif threads_full:
        limit = f"it is threadpool-bound: every token was in use {full:.0%} of the window" + (
            f", and requests waited for one {waited:.0%} of it" if isinstance(waited, float) else ""
        )
    elif cpu_bound:
        limit = "it is CPU-bound: its workers' CPU was nearly all in use" + (
            " (the loops waited for the GIL its threads held, not for a call of its own)"
            if bottleneck.loop_blocked(share)
            else ""
        )
    elif bottleneck.loop_blocked(share):
        limit = (
            "its loops were stalled, but mostly not at a call of its own (the event loop's own code, or "
            "waiting for the GIL other threads held)"
        )
    return "; ".join(said) + f". So {limit}."


def catalogue_order_of(family: str, styles: pd.Series) -> list[str]:
    present = set(styles)
    return [s.id for s in catalogue.family(family) if s.id in present]


def _decision_row(table: pd.DataFrame, section: pd.DataFrame, style: str, base: str, shape: str) -> dict[str, Any]:
    points = section[section["style"] == style]
    top = points.sort_values("users", kind="stable").iloc[-1]
    beside: list[str] = []
    if top["shared"]:
        points = points[points["group"] == top["group"]]  # one group's cells: the same neighbours
        beside = sorted(set(table[table["cell"].isin(top["cells"])]["style"]) - {style})
    known = catalogue.BY_ID[style]
    return {
        **DECISION_DEFAULTS,
        **top.to_dict(),
        "repeats": int(top["repeats"]),
        "row_id": answers.row_id(style, shape),
        "description": known.description,
        "prediction_text": catalogue.PREDICTIONS[known.prediction].throughput,
        "users_label": users_label(top["users"], top["style_users"]),
        "beside": beside,
        "verdict": answers.verdict(points, base),
    }


def headline(a: Analysis) -> dict[str, Any]:
    trusted = a.table[valid_rows(a.table)]  # the lowest and highest p99 of valid cells only
    return {
        "run_id": a.run.meta.get("run_id", a.run.dir.name),
        "experiment": a.run.meta.get("experiment", {}).get("name", "?"),
        "status": a.run.meta.get("status", "?"),
        "started_at": a.run.meta.get("started_at"),
        "cells": len(a.run.cells),
        "cells_ok": len(ok_cells(a.run)),
        "styles": sorted(a.table["style"].unique()),
        # As `routebench check` decides: a failure that is the neighbour lesson does not count.
        "slo_passed": slo_outcome(a),
        "slo_judged_any": not a.slo.empty,
        "best_p99": _extreme(trusted, "p99_ms", min),  # None when no cell is valid
        "worst_p99": _extreme(trusted, "p99_ms", max),
    }


def slo_outcome(a: Analysis) -> bool | None:
    """As `routebench check` decides: False when a judged threshold broke (a failure that is the
    neighbour lesson does not count), None when the run cannot be judged (incomplete, a cell
    failed, a value is only a lower bound, or a cell it rests on is invalid), else True."""
    if a.slo.empty:
        return None
    judged = a.slo[a.slo["judged"] & a.slo["valid"]]
    if (~judged["passed"] & ~judged["expected_failure"]).any():
        return False
    unfit = a.run.meta.get("status") != "complete" or any(c.get("status") not in MEASURED for c in a.run.cells)
    if unfit or len(judged) < len(a.slo):
        return None
    return True


def _extreme(table: pd.DataFrame, col: str, pick: Any) -> dict[str, Any] | None:
    if table.empty:
        return None
    row = table.loc[pick(table.index, key=lambda i: table.loc[i, col])]
    return {"style": row["style"], "users": int(row["users"]), col: float(row[col])}


def build_context(a: Analysis) -> dict[str, Any]:
    # Bokeh takes a third of a second to import: only what renders a page pays for it (a command
    # that stops on bad input answers at once).
    from analysis import charts

    colors = charts.style_colors(a.table["style"])
    # The first three compare styles measured alone; a run without such cells (a web-UI test of
    # several classes at once) gets no empty frames, and the page says why.
    alone = not a.table[~a.table["together"]].empty
    figures: dict[str, object] = {
        "percentiles": charts.percentiles_by_style(a.table) if alone else None,
        "latency_users": charts.latency_vs_users(a.table) if alone else None,
        "predicted": charts.measured_vs_predicted(a.table) if alone else None,
        "neighbour": charts.neighbour_damage(a.table),
    }
    shown = timeline_cells(a.cells)
    for cell in shown:
        figures[f"timeline_{cell['id']}"] = charts.cell_timeline(
            cell["id"], cell["client"], cell["server"], cell["client_source"], cell["measure_from"], colors
        )
    for cell in a.cells:
        if cell.get("profile_stacks"):
            figures[f"flame_{cell['id']}"] = charts.flame_graph(cell["id"], profiles.busy(cell["profile_stacks"]))
    cap = capacity_view(a.run)
    if cap is not None:  # the matrix's charts compare user counts: a capacity run's probes are rates
        figures.update(percentiles=None, latency_users=None, predicted=None)
        for row in cap["styles"]:
            figures[f"capacity_{row['n']}"] = charts.capacity_curve(
                row, row["searches"], cap["slo_ms"], cap["slo_label"]
            )
    bokeh_js, bokeh_script, divs = charts.embed(figures)
    meta = a.run.meta
    failed = [c for c in a.run.cells if c.get("status") not in MEASURED]
    return {
        "meta": meta,
        "findings": findings.findings(a.run, a.table),
        "verdict_css": VERDICT_CSS,
        "headline": headline(a),
        "any_alone": alone,
        "families": decision_table(a.table),
        "why": why_view(a),
        "category_colors": charts.CATEGORY_COLORS,
        "why_rule": WHY_RULE,
        "answers": [answer_view(x) for x in answers.answers(a.table)],
        "rule": answers.RULE,
        "neighbour": neighbour_view(a.table),
        "rows": [{**r, "users_label": users_label(r["users"], r["style_users"])} for r in a.table.to_dict("records")],
        "repeats": repeats_view(a.repeats),
        "precision": precision_view(a),
        "capacity": cap,
        "repeat_metrics": REPEAT_METRICS,
        "slo": [slo_view(r) for r in a.slo.to_dict("records")],
        "cells": a.cells,
        "failed_cells": failed,
        "saturated": [c for c in a.cells if c["saturated"]],
        "timeline_cells": shown,
        "warnings": warning_count(a, failed),
        "bokeh_js": bokeh_js,
        "bokeh_script": bokeh_script,
        "divs": divs,
        "generated_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }


# How each verdict of your app's routes is shown: what to fix in red, what to look at in amber.
VERDICT_CSS = {
    "fine": "good",
    "blocks-event-loop": "bad",
    "cpu-bound": "warn-inline",
    "threadpool-bound": "warn-inline",
    "pool-bound": "warn-inline",
    "errors": "bad",
    "unknown": "muted",
}


def findings_document(run: Run) -> dict[str, Any] | None:
    """Your app's run: findings.json made from the run (analysis.findings); None for other runs."""
    return findings.findings(run, full_table(run)) if run.routes is not None else None


def capacity_document(run: Run) -> dict[str, Any] | None:
    """A capacity run's capacity.json, made afresh from its run.json (each probe's verdict as the
    search used it) with this version's methods, as the summary is; None for other runs."""
    if "capacity" not in run.meta:
        return read_capacity(run.dir)  # a capacity.json without its state: as it was written
    cores = float(run.meta.get("machine", {}).get("cpu_count") or 1)
    return capacity.document(run.meta, cores, complete=run.meta.get("status") == "complete")


def capacity_view(run: Run) -> dict[str, Any] | None:
    """A capacity run's capacity.json as the report shows it: per style the MST with its validity,
    the knee, theory's numbers and ratios, its searches and probes; None for other runs."""
    doc = capacity_document(run)
    if doc is None or not doc.get("styles"):
        return None
    searches = doc.get("searches", [])
    rows = []
    for n, r in enumerate(doc["styles"]):
        mine = [s for s in searches if s["style"] == r["style"] and s["shape"] == r["shape"]]
        rows.append(
            {
                **r,
                "n": n,
                "searches": mine,
                "mst_text": capacity_text(r),
                "validity": capacity_validity(mine),
                "shape_label": capacity.shape_label(r["shape"]),
            }
        )
    slos = [capacity.parse_slo(t) for t in doc.get("slo", [])]
    return {
        **doc,
        "styles": rows,
        "slo_ms": capacity.latency_limit_ms(slos),
        "slo_label": capacity.latency_label(slos),
        "probes": sum(r["probes"] for r in rows),
    }


def capacity_text(r: dict[str, Any]) -> str:
    """An MST as the report and the terminal show it: with its interval over repeats; "≥" when it
    is a bound (the search's upper one, or the best passing probe when nothing was confirmed); "<"
    when every search failed at its lower bound."""
    iv = r.get("mst_interval") or {}
    if r.get("mst_rps") is None:
        if r.get("upper_bound_rps") is not None:
            return f"< {r['upper_bound_rps']:,.4g} (failed at the search's lower bound)"
        low = r.get("lower_bound_rps")
        confirmed = (
            f"{r.get('confirmed', 0)} of {r.get('repeats', 1)} repeats confirmed; " if r.get("repeats", 1) > 1 else ""
        )
        return f"≥ {low:,.4g} ({confirmed}best passing probe, unconfirmed)" if low else "none found"
    text = f"{'≥ ' if r.get('at_search_bound') else ''}{r['mst_rps']:,.4g}"
    if r.get("at_search_bound"):
        return text + " (the search's highest rate: a lower bound, no interval)"
    if "low" in iv:
        text += f" [{iv['low']:,.4g}, {iv['high']:,.4g}], n = {iv['n']}"
    return text


def capacity_validity(searches: list[dict[str, Any]]) -> str:
    """How far the style's MST can be trusted, in words: each search's outcome."""
    parts = [
        f"{s['outcome']} ({_confirm_window(s)} s confirmation)" if s["confirmed"] else f"not confirmed: {s['outcome']}"
        for s in searches
    ]
    return "; ".join(dict.fromkeys(parts))


def _confirm_window(search: dict[str, Any]) -> str:
    windows = [p["window_s"] for p in search["probes"] if p["phase"] == "confirm" and p["outcome"] == "pass"]
    return f"{windows[-1]:,.0f}" if windows else "longer"


def precision_view(a: Analysis) -> dict[str, Any]:
    """How the cells' windows were set: fixed, or precision-driven (the target, the windows, every
    cell that hit its maximum window before its p99s reached the target, and every cell the check
    stopped whose final interval, over the whole window with its unfinished requests, is withheld or
    wider than the target; each with how near)."""
    measured = [c for c in a.run.cells if c.get("status") in MEASURED]
    driven = [c for c in measured if c.get("precision")]
    short, unheld = [], []
    for c in driven:
        rows = a.table[a.table["cell"] == c["id"]].to_dict("records")
        final = [
            f"{r['style']} ±{r['p99_half_width']:.1%} at the end"
            if r["p99_batches"]
            else f"{r['style']}: {r['p99_no_interval']}"
            for r in rows
        ]
        checked = [
            f"{style} ±{i['half_width_rel']:.1%}"
            for style, i in ((c.get("last_check") or {}).get("intervals") or {}).items()
            if i.get("batches")
        ]
        entry = {
            "cell": c["id"],
            "window_s": c.get("window_s"),
            "styles": "; ".join(final),
            "checked": "; ".join(checked),
        }
        if c.get("stopped_by") == "maximum window":
            short.append(entry)
        elif c.get("stopped_by") == "precision reached" and not all(
            r["p99_batches"] and r["p99_half_width"] <= float(c["precision"]) for r in rows
        ):
            unheld.append(entry)
    return {
        "method": precision.METHOD,
        "targets": ", ".join(f"±{t:.0%}" for t in sorted({float(c["precision"]) for c in driven})),
        "windows": ", ".join(
            sorted({f"{c['duration_s']:g} to {c.get('max_duration_s') or c['duration_s']:g} s" for c in driven})
        ),
        "driven": len(driven),
        "cells": len(measured),
        "reached": sum(1 for c in driven if c.get("stopped_by") == "precision reached"),
        "short": short,
        "unheld": unheld,
    }


def warning_count(a: Analysis, failed: list[dict[str, Any]]) -> int:
    """How many warnings the page shows under the answers: each one qualifies the numbers they use."""
    deaths = sum(len(c["server_worker_deaths"]) for c in a.cells)
    saturated = sum(1 for c in a.cells if c["saturated"])
    noted = sum(len(c["warnings"]) for c in a.cells)
    degraded = sum(len(c["degraded_because"]) for c in a.cells)
    return int(a.run.meta.get("status", "?") != "complete") + len(failed) + deaths + saturated + noted + degraded


def timeline_cells(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The cells that get a timeline, in run order: up to a limit that keeps the page light (the CSVs
    hold the rest), every neighbour cell first, since it shows the damage as it happens."""
    together = [c for c in cells if len(c["styles"]) > 1][:MAX_TIMELINES]
    rest = [c for c in cells if len(c["styles"]) == 1][: MAX_TIMELINES - len(together)]
    chosen = {c["id"] for c in together + rest}
    return [c for c in cells if c["id"] in chosen]


def code_spans(text: str) -> list[dict[str, Any]]:
    """Text split on backticks: the odd pieces are code. The template escapes every piece."""
    return [{"text": piece, "code": i % 2 == 1} for i, piece in enumerate(text.split("`")) if piece]


def answer_view(answer: answers.Answer) -> dict[str, Any]:
    return {
        "family": answer.family,
        "headline": code_spans(answer.headline),
        "sentences": [
            {"parts": code_spans(s.text), "detail": code_spans(s.detail), "links": s.links} for s in answer.sentences
        ],
    }


def neighbour_view(table: pd.DataFrame) -> list[dict[str, Any]]:
    """One row per together point (repeats averaged), labelled with its shape when the points differ."""
    nb = neighbour_points(table)
    labels = shape_labels(nb) if not nb.empty else pd.Series(dtype=object)
    return [
        {
            **r,
            "row_id": answers.neighbour_row_id(r["cells"][0], r["style"]),
            "alone_label": _alone_label(r),
            "shape_label": labels[i],
        }
        for i, r in zip(nb.index, nb.to_dict("records"), strict=True)
    ]


def repeats_view(agg: pd.DataFrame) -> dict[str, Any]:
    """The repeated shapes (n > 1) with their intervals, each labelled with what sets its shape apart
    and with how many of its repeats are valid (the others named), the metrics the interval table
    has, and how the intervals were made."""
    shown = agg[agg["repeats"] > 1]
    labels = shape_labels(shown) if not shown.empty else pd.Series(dtype=object)
    rows = [
        {
            **r,
            "shape_label": labels[i],
            "users_label": users_label(r["users"], r.get("style_users")),
            "validity": validity_note(r["repeats"], r["valid_repeats"], r["invalid_repeats"]),
            "all_valid": r["valid_repeats"] == r["repeats"],
        }
        for i, r in zip(shown.index, shown.to_dict("records"), strict=True)
    ]
    metrics = [m for m in REPEAT_METRICS if f"{m}_mean" in agg.columns]
    return {"rows": rows, "metrics": metrics, "method": INTERVAL_METHOD}


# Interval metrics the report shows (those the interval table has): (heading, decimals).
REPEAT_METRICS = {
    "rps": ("req/s", 0),
    "mean_ms": ("mean ms", 1),
    "p50_ms": ("p50 ms", 1),
    "p95_ms": ("p95 ms", 1),
    "p99_ms": ("p99 ms", 1),
    "blocked_share": ("loop blocked share", 3),
}


def _alone_label(r: dict[str, Any]) -> str:
    if not r["alone_repeats"]:
        return "not measured alone"
    return (
        f"U={r['alone_users']:g}"
        + ("" if r["alone_users_match"] else ", the nearest measured")
        + (f", mean of {r['alone_repeats']} repeats" if r["alone_repeats"] > 1 else "")
    )


def slo_view(row: dict[str, Any]) -> dict[str, Any]:
    """A threshold row with its shown result: a failure the neighbour lesson expects reads as such."""
    if not row.get("judged", True):
        result, css = "not judged", "expected"
    elif not row.get("valid", True):
        result, css = ("passed" if row["passed"] else "FAILED") + ", in a cell that is not valid", "expected"
    elif row["passed"]:
        result, css = "passed", "good"
    elif row["expected_failure"]:
        result, css = "failed, as expected", "expected"
    else:
        result, css = "FAILED", "bad"
    return {**row, "result": result, "css": css, "users_label": users_label(row["users"], row["style_users"])}


def publish(run_dir: Path, reports_dir: Path, extra_slo: list[str] | None = None) -> Path:
    a = analyse(run_dir, extra_slo)
    out_dir = reports_dir / a.run.dir.name
    out_dir.mkdir(parents=True, exist_ok=True)
    html = render("report.html.j2", build_context(a))
    size = len(html.encode())
    if size > MAX_REPORT_BYTES:
        raise BadInput(f"{run_dir}: the report would be {size / 1e6:.1f} MB, over the 5 MB limit")
    write_text(out_dir / "index.html", html)
    write_text(out_dir / "report.json", json.dumps(json_safe(headline(a)), indent=2))
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
    write_text(index, render("index.html.j2", {"runs": runs}))
    return index


SHOWN_KEYS = ("group", "together", "style", "users", "server_workers")  # the comparison's own columns


def publish_comparison(run_a: Path, run_b: Path, reports_dir: Path, noise: float | None = None) -> Path:
    """``reports/compare-<a>-vs-<b>.html``: per shared cell shape and metric, the verdict of
    :func:`analysis.compare.compare` and its basis; ``noise`` is the relative sd of one measurement
    assumed only when neither run has repeats (None: such rows are inconclusive)."""
    if noise is not None and not noise > 0:
        raise BadInput(f"--noise must be a positive relative value such as 0.10, not {noise}")
    for r in (run_a, run_b):
        if not RunDir(r).run_json.is_file():
            raise BadInput(f"{r}: no run.json there: not a run directory")
    docs = [capacity_document(load_run(r)) for r in (run_a, run_b)]
    if any(d is not None for d in docs):
        return _publish_capacity_comparison(run_a, run_b, docs, reports_dir, noise)
    a, b = analyse(run_a), analyse(run_b)
    table = compare(a.repeats, b.repeats, noise=noise)
    if table.empty:
        raise BadInput(f"{run_a.name} and {run_b.name} share no cell (same {', '.join(shape_keys(a.repeats))})")
    out = reports_dir / f"compare-{run_a.name}-vs-{run_b.name}.html"
    reports_dir.mkdir(parents=True, exist_ok=True)
    counts = table["verdict"].value_counts()
    write_text(
        out,
        render(
            "compare.html.j2",
            {
                "a": headline(a),
                "b": headline(b),
                "rows": table.to_dict("records"),
                "shape_columns": [k for k in SHAPE if k in table.columns and k not in SHOWN_KEYS],
                "noise": noise,
                "changed": int(table["significant"].sum()),
                "counts": {v: int(counts.get(v, 0)) for v in VERDICTS},
                "test_method": TEST_METHOD,
                "floor_method": FLOOR_METHOD,
                "interval_method": INTERVAL_METHOD,
                "alpha": ALPHA,
                "min_repeats": MIN_REPEATS,
            },
        ),
    )
    return out


def _publish_capacity_comparison(
    run_a: Path, run_b: Path, docs: list[Any], reports_dir: Path, noise: float | None
) -> Path:
    """``reports/compare-<a>-vs-<b>.html`` for two capacity runs: each style's MST, side by side."""
    doc_a, doc_b = docs
    if not (isinstance(doc_a, dict) and isinstance(doc_b, dict)):
        plain = run_a.name if not isinstance(doc_a, dict) else run_b.name
        raise BadInput(f"{plain} is not a capacity run: MSTs compare with MSTs only")
    rows = capacity.compare_docs(doc_a, doc_b, noise)
    if not rows:
        raise BadInput(f"{run_a.name} and {run_b.name} searched no style on the same server shape")
    out = reports_dir / f"compare-{run_a.name}-vs-{run_b.name}.html"
    reports_dir.mkdir(parents=True, exist_ok=True)
    write_text(
        out,
        render(
            "compare_capacity.html.j2",
            {"a": doc_a, "b": doc_b, "rows": rows, "noise": noise, "methods": doc_b.get("methods", {})},
        ),
    )
    return out
