"""Your app's routes: a verdict each, decided from the numbers by stated rules, with its evidence.

A route's verdict reads its cells alone (one route, closed model, the first repeat of one server
shape) at the lowest and the highest user count measured (1 and 50 in the probe profile; an
interrupted run: those that finished): how its throughput scales between them, and what the
server's own evidence shows at the highest (analysis.summary's per-cell rows, the stall detector's
call sites, the telemetry's threadpool tokens and CPU seconds). The rules, in order; the first that
holds is the verdict (``RULES`` says them in the report's words):

1. **unknown**: not measured alone at two user counts, a cell with fewer than ``MIN_REQUESTS``
   responses, or a cell whose numbers are void (the generator saturated, the counts disagree, a
   process lost, a final report missing).
2. **errors**: ``FAILURE_SHARE`` or more of its responses, over its alone cells, failed.
3. **blocks-event-loop**: at the highest count the event loops were stalled ``BLOCKED_SHARE`` or
   more of the time, mostly in the app's own code, while each worker was on the CPU (or its loop
   waiting for one) for less than half of that share of its time and the CPU had room (under
   ``CPU_SATURATED`` of the cores the server could use): the loop waited on a blocking call; it was
   not computing.
4. **cpu-bound**: it scaled less than ``SCALES`` of linear and its time is computation: its server
   CPU per request at the highest count is ``CPU_SHARE`` or more of its mean latency at the lowest
   (when that is known, not a lower bound), or the server's CPU ran out with the route costing more
   than ``OWN_CPU_FACTOR`` times the CPU per request of the cheapest other sound route (one whose
   cells are not void and whose errors are under ``FAILURE_SHARE``: the cost every request pays,
   framework and server, is not the route's).
5. **threadpool-bound**: it scaled less than ``SCALES`` of linear, and the tokens were the limit:
   every threadpool token of a worker in use, and requests waiting for one, each in
   ``EXHAUSTED_SHARE`` or more of the telemetry's samples, with the throughput at the highest count
   ``TOKENS_PACE_SHARE`` or more of what the tokens serve at the route's pace alone: the tokens in
   use on average, summed over the workers (W x T when all are taken), over its mean latency at
   the lowest count (when that is not known, rule 8: waiters alone do not tell the tokens from a lock
   behind them). Tokens all
   taken at a fraction of that pace are held by threads waiting behind them (a lock, a small pool):
   raising T would not help, and rule 8 says so.
6. **pool-bound**: it scaled less than ``SCALES`` of linear, with requests waiting for a pooled
   connection in ``EXHAUSTED_SHARE`` or more of the samples (routebench sees only its own target's
   pools).
7. **fine**: it scaled ``SCALES`` of linear or more; or the server's CPU ran out while the route
   cost no more than ``OWN_CPU_FACTOR`` times the cheapest other route: the machine's cap at that
   rate, not the route's code.
8. **unknown**: it did not scale, and nothing routebench sees explains it (a lock, an upstream, a
   pool it cannot see; its threadpool tokens all taken without requests waiting for them, or while
   serving less than ``TOKENS_PACE_SHARE`` of their pace, are named), there is no server evidence
   (telemetry) to say why, or its CPU ran out with no other route to compare its cost with.

What counts as blocked, exhausted or saturated (``BLOCKED_SHARE``, ``EXHAUSTED_SHARE``,
``CPU_SATURATED``) is analysis.bottleneck's, which the report's "Why" decides with too, and so is
what share of their pace tokens that are the limit serve (``TOKENS_PACE_SHARE``); the rules here
add what a verdict needs besides: whether the route scaled, and whose CPU it was.

What a worker wanted of a CPU is its time on one plus its loop's time waiting for one: the
kernel's run-queue wait of each loop thread (routebench.serverside.telemetry). The CPU ran out when the
workers used ``CPU_SATURATED`` of the cores they could, or each wanted a core ``CPU_SATURATED`` of
its time. A loop kept off the cores by another
process on the machine (a build, a browser, a second load) is stalled without computing and
without blocking; counting its wait as demand keeps such a route cpu-bound on a busy laptop, and a
loop that sleeps in a blocking call waits for no CPU, so it is still caught.

``findings.json`` (``SCHEMA``) holds every route's verdict, the rule that decided it, its evidence
and its latency figures, and the routes left out (routebench.routes).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import pandas as pd

from analysis.bottleneck import (
    BLOCKED_SHARE,
    CPU_SATURATED,
    EXHAUSTED_SHARE,
    TOKENS_PACE_SHARE,
    blocked_in_own_code,
    cpu_saturated,
    exhausted,
    tokens_limit,
    tokens_pace,
    usable_cores,
)
from analysis.load import Run, json_safe
from analysis.rundir import measured_until
from analysis.summary import own_code, same_shape
from analysis.timeseries import lag_summary, server_series, stall_summary
from analysis.validity import FAILURE_SHARE

SCHEMA = "routebench.findings/1"
VERDICTS = ("fine", "blocks-event-loop", "threadpool-bound", "cpu-bound", "pool-bound", "errors", "unknown")
MIN_REQUESTS = 20
SCALES = 0.80
CPU_SHARE = 0.50
OWN_CPU_FACTOR = 3.0
SITES_SHOWN = 3
SITES_FROM = 0.05  # call sites are listed when the loops were stalled at least this share of the time
# Validity rules whose failure voids a cell's numbers for a verdict; the others (window,
# littles_law, failures) speak of its latency percentiles, which the verdict does not use.
VOIDING = ("counts", "generator", "workers", "server", "final_reports", "schedule")

RULES = [
    f"unknown: not measured alone at two user counts, fewer than {MIN_REQUESTS} responses in a cell, or a cell whose "
    f"numbers are void (it broke one of: {', '.join(VOIDING)})",
    f"errors: {FAILURE_SHARE:.0%} or more of its responses failed (over its alone cells)",
    f"blocks-event-loop: at the highest user count the event loops were stalled {BLOCKED_SHARE:.0%} or more of the "
    "time, mostly in the app's own code, while each worker was on the CPU (or its loop waiting for one, behind "
    f"another process) for less than half of that share of its time and the CPU had room (under "
    f"{CPU_SATURATED:.0%} of the cores the server could use)",
    f"cpu-bound: throughput scaled less than {SCALES:.0%} of linear from the lowest to the highest user count, and "
    f"its time is computation: the server's CPU per request at the highest count is {CPU_SHARE:.0%} or more of its "
    f"mean latency at the lowest, or the CPU ran out ({CPU_SATURATED:.0%} of the cores the server could use, or "
    f"each worker on a CPU or waiting for one {CPU_SATURATED:.0%} of its time) with "
    f"the route costing more than {OWN_CPU_FACTOR:g}x the CPU per request of the cheapest other sound route (cells "
    f"not void, errors under {FAILURE_SHARE:.0%})",
    f"threadpool-bound: scaled less than {SCALES:.0%} of linear, and the tokens were the limit: every threadpool "
    f"token of a worker in use, and requests waiting for one, each in {EXHAUSTED_SHARE:.0%} or more of the server's "
    f"samples, with the throughput at the highest count {TOKENS_PACE_SHARE:.0%} or more of what the tokens serve at "
    "the route's pace alone (the tokens in use on average, summed over the workers: W x T when all are taken, over "
    "its mean latency at the lowest count; when that is not known, unknown: waiters alone do not tell the tokens "
    "from a lock behind them)",
    f"pool-bound: scaled less than {SCALES:.0%} of linear, with requests waiting for a pooled connection in "
    f"{EXHAUSTED_SHARE:.0%} or more of the samples (routebench sees only its own target's pools)",
    f"fine: scaled {SCALES:.0%} of linear or more, or the CPU ran out while the route cost no more than "
    f"{OWN_CPU_FACTOR:g}x the cheapest other route's CPU per request: the machine's cap, not the route's code",
    "unknown: did not scale, and nothing routebench sees explains it (a lock, an upstream, a pool it cannot see; "
    "threadpool tokens all taken without requests waiting for them, or serving less than "
    f"{TOKENS_PACE_SHARE:.0%} of their pace, are named: something behind them holds the route), no server evidence "
    "says why, or its CPU ran out with no other route to compare its cost with",
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
        # What a request to another route of the same workers met meanwhile (the canary: routebench's
        # health route, answered inside your app's workers), over every start, from its intended start.
        "others_p50_ms": _num(r.get("canary_p50_ms")),
        "others_p99_ms": _num(r.get("canary_p99_ms")),
        "others_p99_at_least": bool(r.get("canary_p99_ms_at_least", False)),
    }


def workers_cores(telemetry: pd.DataFrame, start: float, end: float, column: str = "cpu_s") -> float | None:
    """Cores the server's workers used in [start, end]: each worker's CPU seconds over the span its
    own samples cover there, summed (None without CPU readings). ``column`` names another of the
    samples' clocks of seconds (``loop_cpu_s``, ``loop_wait_s``): the same sum of its rates."""
    if column not in telemetry.columns:
        return None
    total, seen = 0.0, False
    for _, g in telemetry.dropna(subset=[column]).groupby("pid"):
        inside = g[(g["t"] >= start) & (g["t"] <= end)]
        span = float(inside["t"].iloc[-1] - inside["t"].iloc[0]) if len(inside) >= 2 else 0.0
        if span > 0:
            total += float(inside[column].iloc[-1] - inside[column].iloc[0]) / span
            seen = True
    return round(total, 3) if seen else None


def route_evidence(run: Run, cell: dict[str, Any], row: pd.Series) -> dict[str, Any]:
    """The server's evidence for one alone cell: loop stalls and their sites in the app's code,
    threadpool tokens and their waiters, pool waiters, CPU per request and the cores it used."""
    data = run.data[cell["id"]]
    start, end = data.exact.get("measure_from"), measured_until(data.exact)
    stalls = stall_summary(data.telemetry, start, end)
    lag = lag_summary(data.telemetry, start, end)
    machine = float(run.meta.get("machine", {}).get("cpu_count") or 1)
    workers = int(cell.get("server_workers") or 1)
    total = _num(data.telemetry["threads_total"].max()) if "threads_total" in data.telemetry else None
    reporting = int(stalls.get("workers") or 0) or None
    # The loop threads' time waiting for a CPU (runnable, not running), a worker's share: a loop
    # that another process (or another worker) keeps off the cores is stalled, and not by the app.
    waiting = workers_cores(data.telemetry, float(start or 0), float(end or 0), "loop_wait_s")
    blocked = _num(row["blocked_share"])
    # Threadpool tokens in use on average, summed over the workers (each second's sum, over the window).
    in_use = _num(server_series(data.telemetry, start, end)["threads_busy"].mean())
    sites = [
        {"site": s["site"], "share": round(float(s["share"]), 3), "ms": s["ms"], "stack": s.get("stack", [])}
        for s in (stalls.get("sites") or [])
        if own_code(s["site"])
    ][:SITES_SHOWN]
    return {
        "cell": cell["id"],
        "users": _num(row["style_users"]),
        "blocked_share": blocked,
        "own_code_share": _num(row["own_code_share"]),
        "stalls": _num(row["stalls"]),
        "blocking_sites": sites if blocked is not None and blocked >= SITES_FROM else [],
        "threads_busy_max": _num(lag["threads_busy_max"]),
        "threads_total": total,
        "threads_full_share": _num(lag["threads_full_share"]),
        "threads_in_use": round(in_use, 2) if in_use is not None else None,
        "threads_waiting_share": _num(lag["threads_waiting_share"]),
        "threads_waiting_max": _num(lag["threads_waiting_max"]),
        "pool_waiting_share": _num(lag["db_waiting_share"]),
        "cpu_ms_per_request": _num(row["cell_workers_cpu_ms"]),
        "cores_used": workers_cores(data.telemetry, float(start or 0), float(end or 0)),
        "cores_usable": round(usable_cores(workers, cell, machine), 3),
        "workers": workers,
        "workers_reporting": reporting,
        "loop_cpu_wait_share": round(waiting / (reporting or workers), 3) if waiting is not None else None,
    }


def _top_error(run: Run, cell_ids: list[str], route: str) -> str:
    frames = [run.data[c].failures for c in cell_ids if not run.data[c].failures.empty]
    if not frames:
        return ""
    failures = pd.concat(frames)
    mine = failures[failures["Name"] == route].groupby("Error")["Occurrences"].sum().sort_values(ascending=False)
    return f"{mine.index[0]} ({int(mine.iloc[0]):,} times)" if not mine.empty else ""


def _completed(f: dict[str, Any]) -> int:
    return int(f["requests"]) + int(f["failures"])


def decide(
    lo: dict[str, Any],
    hi: dict[str, Any],
    ev: dict[str, Any],
    void: list[str],
    failed: tuple[int, int] = (0, 0),
    floor_cpu_ms: float | None = None,
) -> tuple[str, int, str]:
    """The verdict, the number of the rule that decided it (``RULES``) and why, in words, from the
    lowest and highest counts' figures, the server's evidence at the highest (``ev``), what voids
    the cells (``void``), the failures over every alone cell (failed, completed) and the cheapest
    other route's CPU per request (``floor_cpu_ms``)."""
    span = f"from {lo['users']:g} to {hi['users']:g} users"
    if void:
        return "unknown", 1, "; ".join(void)
    fails, completed = failed if failed[1] else (lo["failures"] + hi["failures"], _completed(lo) + _completed(hi))
    if completed and fails / completed >= FAILURE_SHARE:
        return "errors", 2, f"{fails / completed:.1%} of its {completed:,} responses {span} failed"
    if not lo["rps"] or hi["rps"] is None or not lo["users"] or not hi["users"]:
        return "unknown", 1, "no throughput to compare"
    scaling = hi["rps"] / lo["rps"]
    efficiency = scaling / (hi["users"] / lo["users"])
    scales = efficiency >= SCALES
    scaled = f"throughput grew {scaling:.1f}x {span} ({efficiency:.0%} of linear)"
    blocked, cpu_ms, cores = ev["blocked_share"], ev["cpu_ms_per_request"], ev["cores_used"]
    at = f"at {hi['users']:g} users"
    if blocked is None or cores is None or cpu_ms is None:
        if scales:
            return "fine", 7, f"{scaled}; no server evidence {at}"
        return "unknown", 8, f"{scaled}, and no server evidence (telemetry) {at} to say why"
    # Each worker's share of wall time on the CPU (stalls are a share of each worker's time too),
    # and its loop's share waiting for one (runnable, while another process or worker held the
    # cores): together what it would have computed had the cores been its own.
    reporting = max(1, ev.get("workers_reporting") or ev["workers"])
    on_cpu = cores / reporting
    waiting = ev.get("loop_cpu_wait_share") or 0.0
    # The CPU ran out for the workers: they used CPU_SATURATED of the cores they could, or each
    # wanted a core (on it, or its loop waiting for it) CPU_SATURATED of its time or more.
    saturated = cpu_saturated(cores, ev["cores_usable"]) or cpu_saturated(on_cpu + waiting, 1.0)
    used = f"{cores:.2f} of {ev['cores_usable']:.2f} cores" + (
        f", their loops waiting for a CPU {waiting:.0%} of the time" if waiting >= 0.01 else ""
    )
    # Stalled, and not computing: a worker on the CPU, or waiting for one, less than half of its
    # stalled time.
    if blocked_in_own_code(blocked, ev["own_code_share"]) and on_cpu + waiting < blocked / 2 and not saturated:
        where = f" at {ev['blocking_sites'][0]['site']}" if ev["blocking_sites"] else ""
        return (
            "blocks-event-loop",
            3,
            f"the event loops were stalled {blocked:.0%} of the time {at}{where}, while each worker was on the CPU "
            f"{on_cpu:.0%} of the time and the CPU had room ({used}); {scaled}",
        )
    floor = floor_cpu_ms if floor_cpu_ms else None  # a floor of 0 says nothing of what a request costs
    own_cost = floor is not None and cpu_ms > OWN_CPU_FACTOR * floor
    # The latency at the lowest count, when it is known (not a lower bound).
    lo_ms = lo["mean_ms"] if lo["mean_ms"] and "mean" not in lo.get("at_least", []) else None
    if not scales and ((lo_ms is not None and cpu_ms >= CPU_SHARE * lo_ms) or (saturated and own_cost)):
        than = f" ({cpu_ms / floor:,.1f}x the cheapest other route's)" if floor else ""
        against = f" against {lo_ms:,.1f} ms of latency at {lo['users']:g} user(s)" if lo_ms is not None else ""
        return (
            "cpu-bound",
            4,
            f"{scaled}; {cpu_ms:,.2f} ms of server CPU per request {at}{than}{against}; the workers used {used}"
            + where_it_computes(blocked, ev, lo, hi),
        )
    full, queued = ev["threads_full_share"], ev.get("threads_waiting_share")
    tokens_full = not scales and exhausted(full) and bool(ev["threads_total"])
    # What the tokens in use serve at the route's pace alone (W x T of them when every worker's are
    # all taken; fewer when the users landed unevenly on the workers), and the share of it reached.
    in_use = ev.get("threads_in_use")
    pace, limited = None, False
    if tokens_full and lo_ms is not None and in_use:
        pace, limited = tokens_pace(in_use, lo_ms), tokens_limit(hi["rps"], in_use, lo_ms)
    paced = f"{hi['rps']:,.0f} req/s is {hi['rps'] / pace:.0%} of what" if pace is not None else ""
    of_tokens = (
        f"the {in_use:.1f} tokens in use on average (of {ev['threads_total']:.0f} a worker x {ev['workers']} "
        f"workers) serve at {lo['users']:g} user(s)'s {lo_ms:,.1f} ms a request"
        if pace is not None
        else ""
    )
    if tokens_full and exhausted(queued):
        waited = (
            f"{scaled}; every threadpool token ({ev['threads_total']:.0f} a worker) was in use in {full:.0%} of the "
            f"server's samples {at}, and requests waited for one in {queued:.0%} of them"
            + (f" (up to {ev['threads_waiting_max']:.0f} on a worker)" if ev.get("threads_waiting_max") else "")
        )
        if pace is None:
            # Waiters do not tell the tokens from a lock behind them (its waiters hold tokens too):
            # without the pace, the limit is not known.
            alone = "only a lower bound" if "mean" in lo.get("at_least", []) else "not known"
            unknown = (
                f"the mean latency at {lo['users']:g} user(s) is {alone}"
                if lo_ms is None
                else "the tokens in use on average were not recorded"
            )
            return (
                "unknown",
                8,
                f"{waited}; but {unknown}, so what the tokens serve at the route's pace is not known, and the "
                "tokens cannot be told from a lock or a small pool behind them",
            )
        if limited:
            return "threadpool-bound", 5, f"{waited}; {paced} {of_tokens}"
    waiting = ev["pool_waiting_share"]
    if not scales and exhausted(waiting):
        return (
            "pool-bound",
            6,
            f"{scaled}; requests waited for a pooled connection in {waiting:.0%} of the samples {at}",
        )
    tokens = (
        f"; threadpool tokens in use at most {ev['threads_busy_max']:.0f} of {ev['threads_total']:.0f} a worker"
        if ev["threads_busy_max"] is not None and ev["threads_total"]
        else ""
    )
    if scales:
        return "fine", 7, f"{scaled}{tokens} (fine up to {hi['users']:g} users: no more were tried)"
    if saturated and floor is not None:
        return (
            "fine",
            7,
            f"{scaled}: the server's CPU ran out ({used}) at "
            f"{hi['rps']:,.0f} req/s with {cpu_ms:,.2f} ms of CPU per request, within {OWN_CPU_FACTOR:g}x the cheapest "
            f"other route's {floor:,.2f} ms: the machine's cap at that rate, not the route's code",
        )
    if saturated:
        return (
            "unknown",
            8,
            f"{scaled}; the server's CPU ran out ({used}), and no other route "
            "was measured to tell the route's own cost from what every request costs",
        )
    seen = [
        f"the loops were stalled {blocked:.0%} of the time",
        f"the workers used {used}",
    ]
    if tokens_full:
        every = f"every threadpool token ({ev['threads_total']:.0f} a worker) was in use in {full:.0%} of the samples"
        if pace is not None and not limited:
            return (
                "unknown",
                8,
                f"{scaled}; {every}, but {paced} {of_tokens}: something behind the tokens (a lock, a small pool) "
                f"serialises the route; raising the tokens would not help ({', '.join(seen)})",
            )
        if queued is None:
            seen.append(f"{every}, but the telemetry has no record of requests waiting for one (older telemetry)")
        else:
            seen.append(f"{every}, but requests waited for one in only {queued:.0%} of them")
    elif full is not None:
        seen.append(f"every threadpool token was in use in {full:.0%} of the samples")
    return (
        "unknown",
        8,
        f"{scaled}, yet {', '.join(seen)}: none explains it (the limit is outside what routebench sees: a lock, "
        "an upstream, a pool)",
    )


def where_it_computes(blocked: float, ev: dict[str, Any], lo: dict[str, Any], hi: dict[str, Any]) -> str:
    """For a cpu-bound route, whether its work holds the event loop (so every other route of the
    worker waits behind it) or runs off it (threads, processes), from the stall detector, with what
    another route met meanwhile (the canary's median at the highest count, beside the lowest's)."""
    holds = blocked_in_own_code(blocked, ev["own_code_share"])
    where = f" at {ev['blocking_sites'][0]['site']}" if holds and ev["blocking_sites"] else ""
    text = (
        f"; it computes on the event loop (stalled {blocked:.0%} of the time{where}): every other route of a "
        "worker waits behind it"
        if holds
        else f"; it computes off the event loop (stalled {blocked:.0%} of the time)"
    )
    others, alone = hi.get("others_p50_ms"), lo.get("others_p50_ms")
    if others is not None:
        text += f"; a request to another route meanwhile took {others:,.1f} ms at the median" + (
            f" ({alone:,.1f} ms at {lo['users']:g} user(s))" if alone is not None else ""
        )
    return text


def _void(cell: dict[str, Any], r: pd.Series) -> list[str]:
    """Why a cell's numbers cannot carry a verdict, in words (empty: they can)."""
    why = []
    failed = set((cell.get("validity") or {}).get("failed", []))
    voiding = [rule for rule in VOIDING if rule in failed]
    if voiding:
        why.append(f"cell {cell['id']} broke the validity rule(s) {', '.join(voiding)}")
    if bool(r["generator_saturated"]) and "generator" not in failed:
        why.append(f"cell {cell['id']}: the load generator was saturated")
    completed = int(r["requests"]) + int(r["failures"])
    if completed < MIN_REQUESTS:
        why.append(f"cell {cell['id']}: {completed} responses (fewer than {MIN_REQUESTS})")
    return why


def alone_rows(table: pd.DataFrame, route: str) -> pd.DataFrame:
    """The route's alone cells the verdict reads: closed model, the first repeat, one server shape
    (the first measured), by user count."""
    rows = table[(table["style"] == route) & ~table["together"] & (table["model"] == "closed") & (table["repeat"] == 1)]
    if rows.empty:
        return rows
    return rows[same_shape(rows, rows.iloc[0])].sort_values("style_users")


def _server(cells: dict[str, dict[str, Any]], out: list[dict[str, Any]]) -> dict[str, Any]:
    """How the app was served in the cells the verdicts read (the first route's highest count)."""
    cell = next((cells[r["evidence"]["cell"]] for r in out if r.get("evidence", {}).get("cell") in cells), {})
    return {k: cell.get(k) for k in ("server_workers", "worker_class", "threadpool_tokens")}


def findings(run: Run, table: pd.DataFrame) -> dict[str, Any] | None:
    """``findings.json``: every route's verdict and evidence; None for a run that is not of your app."""
    if run.routes is None or "capacity" in run.meta:
        return None  # not your app's, or a capacity run (its MSTs are its answer: capacity.json)
    cells = {c["id"]: c for c in run.cells}
    planned = [r for r in run.routes.get("routes", []) if any(r["id"] in c.get("styles", []) for c in run.cells)]
    # What a request costs at the highest count, route by route, of the routes whose cells are sound
    # and that answer (an error page is cheap): the cheapest is the floor.
    cost = {}
    for route in planned:
        rows = alone_rows(table, route["id"])
        if rows.empty or _num(rows.iloc[-1]["cell_workers_cpu_ms"]) is None:
            continue
        completed = int(rows["requests"].sum() + rows["failures"].sum())
        sound = not any(_void(cells[r["cell"]], r) for _, r in rows.iterrows())
        if sound and completed and rows["failures"].sum() / completed < FAILURE_SHARE:
            cost[route["id"]] = float(rows.iloc[-1]["cell_workers_cpu_ms"])
    out = []
    for route in planned:
        rid = route["id"]
        rows = alone_rows(table, rid)
        together = table[(table["style"] == rid) & table["together"] & (table["repeat"] == 1)]
        if not rows.empty:
            together = together[same_shape(together, rows.iloc[0])]
        beside = [_figures(r) for _, r in together.iterrows()]
        entry: dict[str, Any] = {
            "route": rid,
            "method": route["method"],
            "path": route["template"],
            "sent": route["path"],
            "source": route["source"],
        }
        counts = rows["style_users"].nunique()
        if counts < 2:
            entry.update(
                verdict="unknown",
                rule=1,
                why=f"measured alone at {counts} user count(s), not two",
                evidence={},
                latency=[_figures(r) for _, r in rows.iterrows()],
                beside_others=beside,
            )
            out.append(entry)
            continue
        lo_row, hi_row = rows.iloc[0], rows.iloc[-1]
        lo, hi = _figures(lo_row), _figures(hi_row)
        ev = route_evidence(run, cells[hi_row["cell"]], hi_row)
        void = _void(cells[lo_row["cell"]], lo_row) + _void(cells[hi_row["cell"]], hi_row)
        failed = (int(rows["failures"].sum()), int(rows["requests"].sum() + rows["failures"].sum()))
        others = [v for k, v in cost.items() if k != rid]
        verdict, rule, why = decide(lo, hi, ev, void, failed, min(others) if others else None)
        if verdict == "errors":
            top = _top_error(run, list(rows["cell"]), rid)
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
                "error_share": round(failed[0] / failed[1], 4) if failed[1] else None,
                "cheapest_other_cpu_ms": min(others) if others else None,
                "holds_the_loop": blocked_in_own_code(ev["blocked_share"], ev["own_code_share"])
                if ev.get("blocked_share") is not None
                else None,
                "others_p50_ms": hi["others_p50_ms"],
                "others_p99_ms": hi["others_p99_ms"],
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
            "server": _server(cells, out),
            "rules": RULES,
            "verdicts": list(VERDICTS),
            "routes": out,
            "left_out": (run.routes or {}).get("left_out", []),
        }
    )
