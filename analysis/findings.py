"""Your app's routes: a verdict each, decided from the numbers by stated rules, with its evidence.

A route's verdict reads its cells alone (one route, closed model) at the lowest and the highest
user count of the run (1 and 50 in the probe profile): how its throughput scales between them, and
what the server's own evidence shows at the highest (analysis.summary's per-cell rows, the stall
detector's call sites, the telemetry's threadpool tokens). The rules, in order; the first that
holds is the verdict (``RULES`` says them in the report's words):

1. **unknown**: the route was not measured alone at two user counts, a cell has fewer than
   ``MIN_REQUESTS`` responses, or a cell broke a rule that voids its numbers (the generator was
   saturated, the counts disagree, a process was lost, a final report is missing).
2. **errors**: ``ERROR_SHARE`` or more of its responses, over its alone cells, failed.
3. **blocks-event-loop**: at the highest count the event loops were stalled ``BLOCKED_SHARE`` or
   more of the time, in the app's own code, and the workers were on the CPU for less than half of
   that time (the loop waited on a blocking call; it was not computing).
4. **cpu-bound**: its throughput scaled less than ``SCALES`` of linear, and its server CPU per
   request is at least ``CPU_SHARE`` of its latency at the lowest count (its time is computation).
5. **threadpool-bound**: it scaled less than ``SCALES`` of linear, and every threadpool token of a
   worker was in use in ``FULL_SHARE`` or more of the telemetry's samples.
6. **pool-bound**: it scaled less than ``SCALES`` of linear, and requests waited for a pooled
   connection in ``FULL_SHARE`` or more of the samples (pools routebench can see: its own target's).
7. **fine**: it scaled at least ``SCALES`` of linear, or the server's CPU ran out
   (``CPU_SATURATED`` of the cores it could use) while the route's own CPU per request is small:
   the cap any route meets at that rate on this machine, not this route's code.
8. **unknown**: it did not scale and nothing routebench sees explains it (the limit is outside:
   a lock, an upstream, a pool it cannot see).

``findings.json`` (``SCHEMA``) holds every route's verdict, the rule that decided it, its evidence
and its latency figures, and the routes left out (routebench.routes).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import pandas as pd

from analysis.load import Run, json_safe
from analysis.summary import own_code
from analysis.timeseries import lag_summary, stall_summary

SCHEMA = "routebench.findings/1"
VERDICTS = ("fine", "blocks-event-loop", "threadpool-bound", "cpu-bound", "pool-bound", "errors", "unknown")
MIN_REQUESTS = 30
ERROR_SHARE = 0.01
BLOCKED_SHARE = 0.20
SCALES = 0.80
CPU_SHARE = 0.50
FULL_SHARE = 0.25
CPU_SATURATED = 0.70
SITES_SHOWN = 3
# Validity rules whose failure voids a cell's numbers for a verdict; the others (window,
# littles_law, failures) speak of its latency percentiles, which the verdict does not use.
VOIDING = ("counts", "generator", "workers", "server", "final_reports", "schedule")

RULES = [
    f"unknown: not measured alone at two user counts, fewer than {MIN_REQUESTS} responses in a cell, or a cell "
    f"whose numbers are void (it broke one of: {', '.join(VOIDING)})",
    f"errors: {ERROR_SHARE:.0%} or more of its responses failed (over its alone cells)",
    f"blocks-event-loop: at the highest user count the event loops were stalled {BLOCKED_SHARE:.0%} or more of the "
    "time, in the app's own code, while the workers were on the CPU for less than half of that time",
    f"cpu-bound: throughput scaled less than {SCALES:.0%} of linear from the lowest to the highest user count, and "
    f"the server's CPU per request is {CPU_SHARE:.0%} or more of the route's latency at the lowest count",
    f"threadpool-bound: scaled less than {SCALES:.0%} of linear, with every threadpool token of a worker in use in "
    f"{FULL_SHARE:.0%} or more of the server's samples",
    f"pool-bound: scaled less than {SCALES:.0%} of linear, with requests waiting for a pooled connection in "
    f"{FULL_SHARE:.0%} or more of the samples (routebench sees only its own target's pools)",
    f"fine: scaled {SCALES:.0%} of linear or more, or the server's CPU ran out ({CPU_SATURATED:.0%} of the cores it "
    "could use) while the route's own CPU per request is small: the cap of the machine, not of the route",
    "unknown: did not scale, and nothing routebench sees explains it (a lock, an upstream, a pool it cannot see)",
]


def _num(value: Any) -> float | None:
    """A finite number (numpy's too) as a float, else None."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _figures(r: pd.Series) -> dict[str, Any]:
    """A row's latency and throughput, each lower bound marked."""
    return {
        "users": _num(r["style_users"]),
        "cell": r["cell"],
        "requests": int(r["requests"]),
        "failures": int(r["failures"]),
        "rps": _num(r["rps"]),
        "mean_ms": _num(r["mean_ms"]),
        "p50_ms": _num(r["p50_ms"]),
        "p95_ms": _num(r["p95_ms"]),
        "p99_ms": _num(r["p99_ms"]),
        "at_least": [
            q
            for q, col in (("mean", "mean_ms"), ("p50", "p50_ms"), ("p95", "p95_ms"), ("p99", "p99_ms"))
            if bool(r.get(f"{col}_at_least"))
        ],
        "valid": bool(r["valid"]),
        "invalid_because": r["invalid_because"],
    }


def route_evidence(run: Run, cell: dict[str, Any], row: pd.Series) -> dict[str, Any]:
    """The server's evidence for one alone cell: loop stalls and their sites in the app's code,
    threadpool tokens, pool waiters, CPU per request and the cores it used."""
    data = run.data[cell["id"]]
    start, end = data.exact.get("measure_from"), data.exact.get("stopped_at")
    stalls = stall_summary(data.telemetry, start, end)
    lag = lag_summary(data.telemetry, start, end)
    window = _num(row["window_s"]) or 0.0
    cpu_ms = _num(row["cell_workers_cpu_ms"])
    completed = int(row["requests"]) + int(row["failures"])
    machine = float(run.meta.get("machine", {}).get("cpu_count") or 1)
    generator = _num(cell.get("generator_cpu_cores")) or 0.0
    workers = int(cell.get("server_workers") or 1)
    usable = max(0.1, min(float(workers), machine - generator))
    cores = cpu_ms * completed / 1000 / window if cpu_ms is not None and window else None
    total = _num(data.telemetry["threads_total"].max()) if "threads_total" in data.telemetry else None
    sites = [
        {"site": s["site"], "share": round(float(s["share"]), 3), "ms": s["ms"], "stack": s.get("stack", [])}
        for s in (stalls.get("sites") or [])
        if own_code(s["site"])
    ][:SITES_SHOWN]
    return {
        "cell": cell["id"],
        "users": _num(row["style_users"]),
        "blocked_share": _num(row["blocked_share"]),
        "own_code_share": _num(row["own_code_share"]),
        "stalls": _num(row["stalls"]),
        "blocking_sites": sites,
        "threads_busy_max": _num(lag["threads_busy_max"]),
        "threads_total": total,
        "threads_full_share": _num(lag["threads_full_share"]),
        "pool_waiting_share": _num(lag["db_waiting_share"]),
        "cpu_ms_per_request": cpu_ms,
        "cores_used": round(cores, 3) if cores is not None else None,
        "cores_usable": round(usable, 3),
        "workers": workers,
    }


def _top_error(run: Run, cell_id: str, route: str) -> str:
    failures = run.data[cell_id].failures
    mine = failures[failures["Name"] == route] if not failures.empty else failures
    if mine.empty:
        return ""
    top = mine.sort_values("Occurrences", ascending=False).iloc[0]
    return f"{top['Error']} ({int(top['Occurrences']):,} times)"


def decide(lo: dict[str, Any], hi: dict[str, Any], ev: dict[str, Any], void: list[str]) -> tuple[str, int, str]:
    """The verdict, the number of the rule that decided it (``RULES``) and why, in words."""
    if void:
        return "unknown", 1, "; ".join(void)
    completed = lo["requests"] + lo["failures"] + hi["requests"] + hi["failures"]
    failed = lo["failures"] + hi["failures"]
    if completed and failed / completed >= ERROR_SHARE:
        return "errors", 2, f"{failed / completed:.1%} of its {completed:,} responses failed"
    scaling = hi["rps"] / lo["rps"] if lo["rps"] and hi["rps"] is not None else None
    ideal = hi["users"] / lo["users"] if lo["users"] and hi["users"] else None
    efficiency = scaling / ideal if scaling is not None and ideal else None
    scales = efficiency is not None and efficiency >= SCALES
    span = f"from {lo['users']:g} to {hi['users']:g} users"
    scaled = f"throughput grew {scaling:.1f}x {span} ({efficiency:.0%} of linear)" if efficiency is not None else ""
    blocked, cpu_ms = ev["blocked_share"], ev["cpu_ms_per_request"]
    on_cpu = ev["cores_used"] / ev["workers"] if ev["cores_used"] is not None else None
    own = ev["own_code_share"] or 0.0
    if (
        blocked is not None
        and blocked >= BLOCKED_SHARE
        and own >= BLOCKED_SHARE / 2
        and (on_cpu is not None and on_cpu < blocked / 2)
    ):
        where = f" at {ev['blocking_sites'][0]['site']}" if ev["blocking_sites"] else ""
        return (
            "blocks-event-loop",
            3,
            f"the event loops were stalled {blocked:.0%} of the time at {hi['users']:g} users{where}, while the "
            f"workers were on the CPU {on_cpu:.0%} of it; {scaled}",
        )
    own_cpu = cpu_ms is not None and lo["mean_ms"] and cpu_ms >= CPU_SHARE * lo["mean_ms"]
    if not scales and own_cpu:
        return (
            "cpu-bound",
            4,
            f"{cpu_ms:,.1f} ms of server CPU per request against {lo['mean_ms']:,.1f} ms of latency at "
            f"{lo['users']:g} user(s); {scaled}; the workers used {ev['cores_used']:.2f} of {ev['cores_usable']:.2f} "
            "cores they could",
        )
    full = ev["threads_full_share"]
    if not scales and full is not None and full >= FULL_SHARE:
        return (
            "threadpool-bound",
            5,
            f"every threadpool token ({ev['threads_total']:.0f} a worker) was in use in {full:.0%} of the samples "
            f"at {hi['users']:g} users; {scaled}",
        )
    waiting = ev["pool_waiting_share"]
    if not scales and waiting is not None and waiting >= FULL_SHARE:
        return "pool-bound", 6, f"requests waited for a pooled connection in {waiting:.0%} of the samples; {scaled}"
    saturated = ev["cores_used"] is not None and ev["cores_used"] >= CPU_SATURATED * ev["cores_usable"]
    if scales:
        return "fine", 7, scaled
    if saturated:
        return (
            "fine",
            7,
            f"{scaled}: the server's CPU ran out ({ev['cores_used']:.2f} of {ev['cores_usable']:.2f} cores) at "
            f"{hi['rps']:,.0f} req/s, with {cpu_ms or 0:,.2f} ms of CPU per request against {lo['mean_ms']:,.1f} ms of "
            "latency: the machine's cap, not the route's",
        )
    if efficiency is None:
        return "unknown", 1, "no throughput to compare"
    return (
        "unknown",
        8,
        f"{scaled}, yet the loops were free, the CPU had room ({ev['cores_used'] or 0:.2f} of "
        f"{ev['cores_usable']:.2f} cores) and the threadpool never filled: the limit is outside what routebench sees",
    )


def _void(cell: dict[str, Any], r: pd.Series) -> list[str]:
    """Why a cell's numbers cannot carry a verdict, in words (empty: they can)."""
    why = []
    failed = set((cell.get("validity") or {}).get("failed", []))
    voiding = [rule for rule in VOIDING if rule in failed]
    if voiding:
        why.append(f"cell {cell['id']} broke the validity rule(s) {', '.join(voiding)}")
    if bool(r["generator_saturated"]) and "generator" not in failed:
        why.append(f"cell {cell['id']}: the load generator was saturated")
    if int(r["requests"]) + int(r["failures"]) < MIN_REQUESTS:
        why.append(
            f"cell {cell['id']}: {int(r['requests']) + int(r['failures'])} responses (fewer than {MIN_REQUESTS})"
        )
    return why


def findings(run: Run, table: pd.DataFrame) -> dict[str, Any] | None:
    """``findings.json``: every route's verdict and evidence; None for a run that is not of your app."""
    if run.routes is None:
        return None
    cells = {c["id"]: c for c in run.cells}
    out = []
    for route in run.routes.get("routes", []):
        rid = route["id"]
        rows = table[(table["style"] == rid) & ~table["together"] & (table["model"] == "closed")]
        rows = rows.sort_values("style_users")
        beside = [_figures(r) for _, r in table[(table["style"] == rid) & table["together"]].iterrows()]
        entry: dict[str, Any] = {
            "route": rid,
            "method": route["method"],
            "path": route["template"],
            "sent": route["path"],
            "source": route["source"],
        }
        if len(rows["style_users"].unique()) < 2:
            entry.update(
                verdict="unknown",
                rule=1,
                why=f"measured alone at {len(rows)} user count(s), not two",
                evidence={},
                latency=[_figures(r) for _, r in rows.iterrows()],
                beside_others=beside,
            )
            out.append(entry)
            continue
        lo_row, hi_row = rows.iloc[0], rows.iloc[-1]
        lo, hi = _figures(lo_row), _figures(hi_row)
        ev = route_evidence(run, cells[hi_row["cell"]], hi_row)
        low_ev = route_evidence(run, cells[lo_row["cell"]], lo_row)
        void = _void(cells[lo_row["cell"]], lo_row) + _void(cells[hi_row["cell"]], hi_row)
        verdict, rule, why = decide(lo, hi, ev, void)
        if verdict == "errors":
            top = _top_error(run, hi_row["cell"], rid) or _top_error(run, lo_row["cell"], rid)
            why += f"; most common: {top}" if top else ""
        scaling = hi["rps"] / lo["rps"] if lo["rps"] and hi["rps"] is not None else None
        entry.update(
            verdict=verdict,
            rule=rule,
            why=why,
            evidence={
                **ev,
                "throughput_scaling": round(scaling, 3) if scaling is not None else None,
                "users_from": lo["users"],
                "users_to": hi["users"],
                "linear_share": round(scaling / (hi["users"] / lo["users"]), 3) if scaling is not None else None,
                "error_share": round(
                    (lo["failures"] + hi["failures"])
                    / max(1, lo["requests"] + lo["failures"] + hi["requests"] + hi["failures"]),
                    4,
                ),
                "cpu_ms_per_request_lowest": low_ev["cpu_ms_per_request"],
            },
            latency=[_figures(r) for _, r in rows.iterrows()],
            beside_others=beside,
        )
        out.append(entry)
    return json_safe(
        {
            "schema": SCHEMA,
            "run_id": run.meta.get("run_id"),
            "app": (run.routes or {}).get("app", {}),
            "complete": run.meta.get("status") == "complete",
            "rules": RULES,
            "verdicts": list(VERDICTS),
            "routes": out,
            "left_out": (run.routes or {}).get("left_out", []),
        }
    )
