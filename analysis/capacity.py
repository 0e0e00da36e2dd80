"""Capacity under an SLO: how a probe is judged, what theory expects, where the knee is, and the
``capacity.json`` of a capacity run. Pure functions over what the runner saved.

A probe is one open-model cell of one style at one offered rate, with a tail: the load goes on for
the SLOs' longest latency limit after the measured window, so when it stops every request started
in the window has finished or is known to have broken the limit (censored at its elapsed time). It
passes only when every rule holds (:func:`judge`):

- ``slo``: each of the search's thresholds (``p99<250ms``, ``failure_rate<1%`` by default) on the
  probe's exact numbers over the window's starts (latency from each intended start); a percentile
  still only a lower bound under its limit is undecided, and fails;
- ``throughput``: the window's starts that finished, over the window, >= 98% of the offered rate;
- ``trend``: no growing queue: the median of the per-second p50s in the probe's last third is not
  above that of its first third by more than 20% and 5 ms;
- the cell's validity rules (analysis.validity) but ``failures`` and ``littles_law`` (the SLO's
  failure_rate decides; Little's law is for closed cells): ``schedule``, ``generator``, ``counts``,
  ``window``, ``final_reports``, ``workers``, ``server``.

A probe that failed only the measurement's own rules, or while its latency was still falling from
the start, carries ``retry``: the runner sets it aside and runs it once more.

Theory's two numbers for a style (:func:`theory_numbers`), from the same stations as every other
prediction (analysis.theory.network, CPU per request from the run's calibration):

- ``ceiling_rps``: the hard ceiling, min over the stations of servers / demand, with the cores the
  server has left once the generator took its share at that rate (its CPU per request measured in
  the run's probes): the rate where the ceiling meets itself;
- ``predicted_mst_rps``: the highest rate at which the model's p99 stays within the SLO's p99. The
  p99 is the sum over stations of the service time plus, at a station of m servers, the 99th
  percentile of the wait of a G/G/m queue: Allen-Cunneen's mean wait ((ca² + cs²) / 2 times
  Erlang C's M/M/m mean wait) with Erlang C's exponential tail. The arrivals are the schedule's,
  evenly spaced (ca² = 0); a fixed wait is served in a fixed time (cs² = 0), the CPU in exponential
  times (cs² = 1). A stated approximation: the measured MST is set beside it, as a ratio.

The knee (:func:`knee`) is Kleinrock's operating point: among the passing probes at or below the
MST, the one where power, achieved throughput over mean latency, is highest. It has no parameter
to tune and does not depend on axis scaling.
"""

from __future__ import annotations

import math
import re
import statistics
from typing import Any

import numpy as np

from analysis import theory
from analysis.load import json_safe
from analysis.repeats import INTERVAL_METHOD, LEVEL, t_interval, t_two_sided_p
from target_app import catalogue

SCHEMA_VERSION = 1
ACHIEVED_SHARE = 0.98  # achieved / offered below this: the server did not keep up
TREND_GROWTH = 0.20  # last third's median p50 over the first third's, beyond this ...
TREND_MS = 5.0  # ... and by more than this: a growing queue
TREND_SECONDS = 3  # fewer whole seconds than this: no trend can be read
QUANTILE = 0.99
ALPHA = 0.05  # two styles' MSTs differ when Welch's t-test over their repeats gives p below this
KNEE_METHOD = (
    "Kleinrock's power: among the passing probes (at or below the MST), the one with the highest achieved "
    "throughput / mean latency "
    "(no tuning parameter, the same on any axis scale; it can only be a rate that was probed)"
)
PREDICTION_METHOD = (
    "the model's stations (CPU from the run's calibration, the cores the generator leaves at that rate); "
    "ceiling = min over stations of servers / demand; predicted MST = the highest rate whose p99 (service "
    "times plus each station's G/G/m wait p99: Allen-Cunneen mean, Erlang C tail; evenly spaced arrivals, "
    "fixed waits, exponential CPU) stays within the SLO's p99"
)

METRIC = re.compile(
    r"^(?P<metric>p50|p95|p99|p99\.9|failure_rate)\s*(?P<op><=|<)\s*(?P<value>[0-9]*\.?[0-9]+)\s*(?P<unit>ms|s|%)?$"
)
SLO_FIELDS = {"p50": "50", "p95": "95", "p99": "99", "p99.9": "99.9"}


class CapacityError(ValueError):
    """A capacity SLO that cannot be read, said in one line."""


def parse_slo(text: str) -> dict[str, Any]:
    """``p99<250ms`` or ``failure_rate<1%`` (upper limits: a capacity SLO bounds what gets worse)."""
    m = METRIC.match(text.strip())
    if m is None:
        raise CapacityError(
            f"capacity SLO {text!r}: expected METRIC<VALUE with METRIC one of p50, p95, p99, p99.9, "
            "failure_rate (e.g. p99<250ms, failure_rate<1%)"
        )
    metric, unit, value = m["metric"], m["unit"] or "", float(m["value"])
    if metric == "failure_rate":
        if unit not in ("%", ""):
            raise CapacityError(f"capacity SLO {text!r}: failure_rate takes a fraction or %")
        limit = value / 100 if unit == "%" else value
    else:
        if unit == "%":
            raise CapacityError(f"capacity SLO {text!r}: a percentile takes ms or s")
        limit = value * (1000 if unit == "s" else 1)
    return {"text": text.strip(), "metric": metric, "op": m["op"], "limit": limit}


def tail_ms(slos: list[dict[str, Any]]) -> float:
    """A probe's tail: the longest latency limit among the SLOs (250 ms without one), so every
    request of the window is decided against each of them when the probe stops."""
    return max([s["limit"] for s in slos if s["metric"] != "failure_rate"] or [250.0])


def latency_limit_ms(slos: list[dict[str, Any]]) -> float:
    """The SLO's p99 limit (ms), or the tightest percentile limit given; 250 ms without one."""
    p99 = [s["limit"] for s in slos if s["metric"] == "p99"]
    any_p = [s["limit"] for s in slos if s["metric"] != "failure_rate"]
    return min(p99 or any_p or [250.0])


def latency_label(slos: list[dict[str, Any]]) -> str:
    """The latency SLO latency_limit_ms takes, in words (``p99 < 250 ms``)."""
    limit = latency_limit_ms(slos)
    named = [s for s in slos if s["metric"] != "failure_rate" and s["limit"] == limit]
    return f"{named[0]['metric']} {named[0]['op']} {limit:g} ms" if named else f"p99 < {limit:g} ms (none given)"


def _holds(slo: dict[str, Any], value: float) -> bool:
    return value < slo["limit"] if slo["op"] == "<" else value <= slo["limit"]


def trend(timeline: list[list[int]]) -> dict[str, Any]:
    """Whether latency moved across the probe: the per-second p50s (``[second, count, p50, p95,
    p99]`` rows, microseconds) of its last third against its first third. ``growing``: a queue
    building up; ``falling``: a start that had not settled (the probe is not steady either way);
    ``read``: False with fewer than TREND_SECONDS whole seconds, when no trend can be read."""
    rows = [r for r in timeline if r[1] > 0]
    if len(rows) < TREND_SECONDS:
        return {
            "read": False,
            "growing": False,
            "falling": False,
            "first_ms": None,
            "last_ms": None,
            "seconds": len(rows),
        }
    third = max(1, len(rows) // 3)
    first = statistics.median(r[2] for r in rows[:third]) / 1000
    last = statistics.median(r[2] for r in rows[-third:]) / 1000
    growing = last > first * (1 + TREND_GROWTH) and last - first > TREND_MS
    falling = first > last * (1 + TREND_GROWTH) and first - last > TREND_MS
    return {
        "read": True,
        "growing": growing,
        "falling": falling,
        "first_ms": round(first, 2),
        "last_ms": round(last, 2),
        "seconds": len(rows),
    }


# The server's rules: a failure says the server did not sustain the rate. The others say the
# measurement could not be made (the generator, the harness): such a probe is run again once.
SERVER_RULES = frozenset({"slo", "throughput", "trend", "window", "server", "data"})
# Validity rules a capacity SLO decides instead (its failure_rate), or that hold for closed cells only.
NOT_FOR_PROBES = frozenset({"failures", "littles_law"})


def judge(cell: dict[str, Any], exact: dict[str, Any], style: str, slos: list[dict[str, Any]]) -> dict[str, Any]:
    """One probe's outcome: ``passed``, the rules that failed (``failed``: rule names, ``why``: in
    words) and the figures they were judged on."""
    offered = float(cell["arrival_rate"])
    e = (exact.get("requests") or {}).get(style)
    window = float(cell.get("window_s") or 0.0)
    if not e or window <= 0:
        return {
            "passed": False,
            "failed": ["data"],
            "why": ["no request of this style completed in the window"],
            "offered_rps": offered,
        }
    completed = int(e.get("count", 0)) + int(e.get("failures", 0))
    tailed = bool(cell.get("tail_s"))
    # With a tail, the window's own starts that finished, over the window; without, what finished
    # in the window, warm-up starts included (the old open-model count).
    achieved = (completed + (0 if tailed else int(e.get("started_in_warmup", 0)))) / window
    error_share = int(e.get("failures", 0)) / completed if completed else 1.0
    pct = e.get("percentiles_us") or {}
    at_least = set(e.get("at_least") or [])
    latency = {k: (pct[v] / 1000 if v in pct else math.nan) for k, v in SLO_FIELDS.items()}
    failed: list[str] = []
    why: list[str] = []
    for slo in slos:
        if slo["metric"] == "failure_rate":
            value, shown = error_share, f"{error_share:.2%}"
        else:
            value = latency[slo["metric"]]
            lower = SLO_FIELDS[slo["metric"]] in at_least
            shown = f"{'≥ ' if lower else ''}{value:,.1f} ms"
            if lower and math.isfinite(value) and _holds(slo, value):
                # Unfinished requests could be anywhere above their elapsed time: undecided (with a
                # tail as long as the limit, every one of them is over it, so this cannot happen).
                failed.append("slo")
                why.append(f"SLO {slo['text']} undecided: {shown} is a lower bound (no tail of {slo['limit']:g} ms)")
                continue
        if not (math.isfinite(value) and _holds(slo, value)):
            failed.append("slo")
            why.append(f"SLO {slo['text']} broken: {shown}")
    if achieved < ACHIEVED_SHARE * offered:
        failed.append("throughput")
        why.append(
            f"achieved {achieved:,.1f} req/s of {offered:,.1f} offered "
            f"({achieved / offered:.0%} < {ACHIEVED_SHARE:.0%})"
        )
    t = trend((exact.get("timeline") or {}).get(style) or [])
    notes = [] if t["read"] else [f"no trend read: {t['seconds']} whole second(s), {TREND_SECONDS} needed"]
    if t["growing"]:
        failed.append("trend")
        why.append(f"latency grew across the probe: p50 {t['first_ms']:,.1f} ms -> {t['last_ms']:,.1f} ms (a queue)")
    validity = cell.get("validity") or {}
    for broken in validity.get("broken", []):
        if broken["rule"] not in NOT_FOR_PROBES:
            failed.append(broken["rule"])
            why.append(broken["text"])
    failed = list(dict.fromkeys(failed))
    # Run again once: a failure of the harness alone, or one while latency was still settling.
    retry = ""
    if failed and not set(failed) & SERVER_RULES:
        retry = f"only the measurement's own rules failed ({', '.join(failed)})"
    elif failed and t["falling"]:
        retry = f"latency was still settling (p50 {t['first_ms']:,.1f} ms -> {t['last_ms']:,.1f} ms)"
    return {
        "passed": not failed,
        "failed": failed,
        "why": why,
        "notes": notes,
        "retry": retry,
        "requests": completed,
        "offered_rps": offered,
        "achieved_rps": round(achieved, 2),
        "p50_ms": latency["p50"],
        "p95_ms": latency["p95"],
        "p99_ms": latency["p99"],
        "p99_at_least": "99" in at_least,
        "mean_ms": (e.get("completed_mean_us") or e.get("mean_us") or math.nan) / 1000,
        "error_share": round(error_share, 5) if completed else None,
        "trend": t,
        "window_s": window,
        "generator_cpu_cores": cell.get("generator_cpu_cores"),
    }


# -- theory ----------------------------------------------------------------------------------------


def _wait_p99(st: theory.Station, rate: float, scv: float) -> float:
    """The 99th percentile of the wait for a server at ``st`` (G/G/m: Allen-Cunneen's mean, Erlang
    C's exponential tail); inf at or past saturation."""
    if math.isinf(st.servers):
        return 0.0
    servers, demand = (1.0, st.demand / st.servers) if st.servers < 1 else (st.servers, st.demand)
    offered = rate * demand
    if offered >= servers:
        return math.inf
    c = theory.erlang_c(servers, offered)
    if c <= 1 - QUANTILE or scv <= 0:
        return 0.0
    # P(wait > t) = C exp(-t (m - a) / (D s)): the M/M/m tail, stretched by s = (ca² + cs²) / 2.
    s = scv / 2
    return s * demand / (servers - offered) * math.log(c / (1 - QUANTILE))


def predicted_p99_s(stations: list[theory.Station], rate: float) -> float:
    """The model's p99 at ``rate`` (seconds): each station's service time plus its wait's p99."""
    total = 0.0
    for st in stations:
        service = st.demand / st.servers if st.servers < 1 else st.demand
        cs2 = 1.0 if st.name == theory.CPU else 0.0  # CPU: exponential; a fixed wait: fixed
        total += service + _wait_p99(st, rate, 0.0 + cs2)
    return total


def _shape(
    style: str, cell: dict[str, Any], calibration: dict[str, Any] | None, cores: float, gen_s: float, rate: float
) -> theory.Shape:
    probe = {**cell, "generator_cpu_cores": gen_s * rate}
    row = {"style": style, "model": "open", "arrival_rate": rate, "style_users": math.nan}
    return theory.shape_for(row, probe, calibration, cores)


def theory_numbers(
    style: str,
    cell: dict[str, Any],
    calibration: dict[str, Any] | None,
    machine_cores: float,
    generator_s_per_request: float,
    slo_p99_ms: float,
) -> dict[str, Any]:
    """``ceiling_rps`` and ``predicted_mst_rps`` for ``style`` on ``cell``'s server shape (None where
    the model has nothing to go on, with ``reason``)."""
    if style not in catalogue.BY_ID:
        return {"ceiling_rps": None, "predicted_mst_rps": None, "reason": "your app's route: no model of its code"}
    gen = generator_s_per_request if math.isfinite(generator_s_per_request) else 0.0

    def stations(rate: float) -> list[theory.Station]:
        return theory.network(style, _shape(style, cell, calibration, machine_cores, gen, rate))

    if not stations(1.0):
        return {"ceiling_rps": None, "predicted_mst_rps": None, "reason": "no CPU per request measured for it"}

    def ceiling_at(rate: float) -> float:
        return theory.bounds(stations(rate), math.inf)[1]

    # The ceiling falls as the generator takes more cores: where it meets the rate, by bisection.
    lo, hi = 0.0, ceiling_at(0.0)
    if not math.isfinite(hi):
        return {"ceiling_rps": None, "predicted_mst_rps": None, "reason": "the model has no finite ceiling"}
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if ceiling_at(mid) > mid else (lo, mid)
    ceiling = lo
    limit = slo_p99_ms / 1000
    if predicted_p99_s(stations(min(1.0, ceiling / 2)), min(1.0, ceiling / 2)) > limit:
        return {
            "ceiling_rps": round(ceiling, 2),
            "predicted_mst_rps": 0.0,
            "reason": "the p99 at no load is over the SLO",
        }
    lo, hi = 0.0, ceiling
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if predicted_p99_s(stations(mid), mid) <= limit else (lo, mid)
    return {"ceiling_rps": round(ceiling, 2), "predicted_mst_rps": round(lo, 2)}


def knee(probes: list[dict[str, Any]]) -> float | None:
    """The offered rate of the probe with the highest power (achieved req/s / mean latency), over
    the probes that measured both."""
    scored = [
        (p["achieved_rps"] / p["mean_ms"], p["offered_rps"])
        for p in probes
        if isinstance(p.get("achieved_rps"), (int, float))
        and isinstance(p.get("mean_ms"), (int, float))
        and math.isfinite(p["mean_ms"])
        and p["mean_ms"] > 0
    ]
    return max(scored)[1] if scored else None


INTERVAL_FLOOR = (
    "; widened to cover each repeat's bracket (its MST to the next rate up, which failed: the search's "
    "resolution, so repeats that land on the same rate still get an interval) and never below 0"
)


def mst_interval(values: list[float], uppers: list[float | None] | None = None) -> dict[str, Any]:
    """The repeats' MSTs: mean and Student-t 95% interval (none from one repeat), widened to cover
    every repeat's bracket [MST, the failed rate above it) and clipped at 0 (both only widen it)."""
    arr = np.array([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    out: dict[str, Any] = {"n": int(arr.size), "method": INTERVAL_METHOD + INTERVAL_FLOOR, "level": LEVEL}
    if arr.size:
        out["mean"] = round(float(arr.mean()), 2)
    if arr.size >= 2:
        low, high = t_interval(arr)
        tops = [u for u in uppers or [] if u is not None and math.isfinite(u)]
        out.update(low=round(max(0.0, min(low, float(arr.min()))), 2), high=round(max([high, *tops]), 2))
    return out


def differ(a: list[float], b: list[float]) -> dict[str, Any]:
    """Whether two styles' MSTs differ: Welch's t-test over their repeats (alpha 0.05); with fewer
    than two repeats a side, no verdict."""
    if len(a) < 2 or len(b) < 2:
        return {"verdict": "not tested", "why": "needs 2 or more repeats a side", "p": None}
    xa, xb = np.array(a, float), np.array(b, float)
    va, vb = xa.var(ddof=1) / xa.size, xb.var(ddof=1) / xb.size
    if va + vb == 0:
        # Repeats on the same grid rate: the search's resolution hides the noise, so no test.
        return {"verdict": "not tested", "why": "no spread between repeats (below the search's resolution)", "p": None}
    t = (xa.mean() - xb.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (xa.size - 1) + vb**2 / (xb.size - 1))
    p = t_two_sided_p(float(t), float(df))
    return {"verdict": "differ" if p < ALPHA else "no difference shown", "why": f"Welch's t-test, p = {p:.3g}", "p": p}


def baseline_of(style: str) -> str:
    """The family's reference style (its first, the async one); your app's route is its own."""
    family = catalogue.family(catalogue.family_of(style))
    return family[0].id if family and style in catalogue.BY_ID else style


SHAPE_KEYS = ("server_workers", "worker_class", "threadpool_tokens", "db_pool_size", "wait_ms", "work", "fanout")
SEARCH_METHOD = (
    "geometric ramp from the start rate (x growth while probes pass), bisection in geometric steps until the "
    "highest passing and lowest failing rates are within the tolerance, then a longer confirmation probe at the "
    "highest passing rate (a failed confirmation makes it a failing rate and the search goes on below)"
)


def _probe_view(cell: dict[str, Any]) -> dict[str, Any]:
    v = cell.get("probe") or {}
    keep = (
        "achieved_rps",
        "requests",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "p99_at_least",
        "mean_ms",
        "error_share",
        "trend",
        "notes",
        "set_aside",
    )
    return {
        "cell": cell.get("id"),
        "phase": cell.get("phase") or (cell.get("id", "").split("-")[-2] if cell.get("id") else None),
        "offered_rps": cell.get("arrival_rate"),
        "users": cell.get("users"),
        "window_s": cell.get("window_s"),
        "status": cell.get("status"),
        "outcome": "pass" if v.get("passed") else "set aside" if v.get("set_aside") else "fail" if v else "not judged",
        "failed_rules": v.get("failed", []),
        "why": v.get("why", []),
        **{k: v.get(k) for k in keep},
        "generator_cpu_cores": cell.get("generator_cpu_cores"),
    }


def generator_s_per_request(probes: list[dict[str, Any]]) -> float:
    """The generator's CPU seconds per request over a search's probes (median), NaN without data."""
    ratios = [
        p["generator_cpu_cores"] / p["achieved_rps"]
        for p in probes
        if isinstance(p.get("generator_cpu_cores"), (int, float))
        and isinstance(p.get("achieved_rps"), (int, float))
        and p["achieved_rps"] > 0
    ]
    return statistics.median(ratios) if ratios else math.nan


def document(state: dict[str, Any], machine_cores: float, complete: bool) -> dict[str, Any]:
    """``capacity.json`` (schema in the README): per search its probes, MST and theory's numbers;
    per style and server shape the MST over repeats with its interval and ratios."""
    cap = state.get("capacity") or {}
    slos = [parse_slo(t) for t in cap.get("slo", [])]
    limit = latency_limit_ms(slos)
    calibration = state.get("calibration")
    searches = []
    for entry in cap.get("searches", []):
        cell = entry["cell"]
        probes = [_probe_view(c) for c in state.get("cells", []) if c.get("search") == entry["search"]]
        gen = generator_s_per_request(probes)
        numbers = theory_numbers(entry["style"], cell, calibration, machine_cores, gen, limit)
        mst = entry.get("mst_rps")
        searches.append(
            {
                "search": entry["search"],
                "style": entry["style"],
                "shape": {k: cell.get(k) for k in SHAPE_KEYS},
                "repeat": cell.get("repeat", 1),
                "outcome": entry.get("outcome", "running"),
                "mst_rps": mst,
                "confirmed": bool(entry.get("confirmed")),
                "bracket_rps": entry.get("bracket"),
                "lower_bound_rps": None if mst is not None else entry.get("best_unconfirmed_rps"),
                "below_rps": entry.get("below_rps"),
                "at_search_bound": bool(entry.get("lower_bound")),
                "start_rps": entry.get("start_rps"),
                # Passes above a confirmed MST were refuted by a confirmation: not operating points.
                "knee_rps": knee(
                    [p for p in probes if p["outcome"] == "pass" and (mst is None or p["offered_rps"] <= mst)]
                ),
                "generator_s_per_request": gen,
                **numbers,
                "probes": probes,
            }
        )
    styles: dict[tuple[str, str], dict[str, Any]] = {}
    for s in searches:
        key = (s["style"], repr(sorted(s["shape"].items())))
        styles.setdefault(key, {"style": s["style"], "shape": s["shape"], "searches": []})["searches"].append(s)
    out_styles = [_style_row(row["style"], row["shape"], row["searches"]) for row in styles.values()]
    by_key = {(r["style"], repr(sorted(r["shape"].items()))): r for r in out_styles}
    comparisons = []
    for r in out_styles:
        base = by_key.get((baseline_of(r["style"]), repr(sorted(r["shape"].items()))))
        r["baseline"] = base["style"] if base else None
        r["vs_baseline"] = r["mst_rps"] / base["mst_rps"] if base and base["mst_rps"] and r["mst_rps"] else None
        if base and base is not r:
            comparisons.append({"a": base["style"], "b": r["style"], **differ(base["values"], r["values"])})
    return json_safe(
        {
            "schema": f"routebench.capacity/{SCHEMA_VERSION}",
            "run_id": state.get("run_id"),
            "complete": complete,
            "slo": [s["text"] for s in slos],
            "methods": {
                "search": SEARCH_METHOD,
                "probe": "every rule holds: " + ", ".join(PROBE_RULES),
                "knee": KNEE_METHOD,
                "prediction": PREDICTION_METHOD,
                "interval": INTERVAL_METHOD,
                "comparison": f"Welch's t-test over the repeats' MSTs, alpha {ALPHA}",
            },
            "styles": out_styles,
            "comparisons": comparisons,
            "searches": searches,
        }
    )


def _style_row(style: str, shape: dict[str, Any], searches: list[dict[str, Any]]) -> dict[str, Any]:
    """One style and shape over its repeats. The MST is the repeats' mean only when every repeat
    confirmed one; otherwise the row gives the least of their best rates as an unconfirmed lower
    bound, or, when every search failed at its lower bound, that bound as an upper one."""
    found = [s["mst_rps"] for s in searches if s["mst_rps"] is not None]
    whole = len(found) == len(searches)
    interval = mst_interval(found, [(s.get("bracket_rps") or [None, None])[1] for s in searches]) if whole else {}
    mean = interval.get("mean")
    first = searches[0]
    predicted = first.get("predicted_mst_rps")
    knees = [s["knee_rps"] for s in searches if s["knee_rps"] is not None]
    best = [s["mst_rps"] if s["mst_rps"] is not None else s.get("lower_bound_rps") for s in searches]
    known = [b for b in best if b is not None]
    below = [s.get("below_rps") for s in searches]
    return {
        "style": style,
        "shape": shape,
        "mst_rps": mean,
        "mst_interval": interval,
        "repeats": len(searches),
        "confirmed": len(found),
        "at_search_bound": any(s["at_search_bound"] for s in searches),
        "lower_bound_rps": None if whole or len(known) < len(best) else min(known),
        "upper_bound_rps": below[0] if below and all(b is not None for b in below) else None,
        "predicted_mst_rps": predicted,
        "ceiling_rps": first.get("ceiling_rps"),
        "knee_rps": statistics.median(knees) if knees else None,
        "probes": sum(len(s["probes"]) for s in searches),
        "vs_predicted": mean / predicted if mean and predicted else None,
        "values": found if whole else [],
    }


PROBE_RULES = (
    "slo (each capacity SLO, over the window's starts: the load runs on for the SLO's latency after the window, "
    "so each of them finished or is known to have broken it)",
    f"throughput (the window's starts that finished >= {ACHIEVED_SHARE:.0%} of those offered)",
    f"trend (last third's median p50 not {TREND_GROWTH:.0%} and {TREND_MS:g} ms above the first third's)",
    "schedule (at most 5% of starts late; the rate offered as asked)",
    "generator (no Locust process saturated)",
    "the cell's other validity rules (counts, window, final reports, workers, server); a probe that failed only "
    "rules of the measurement itself (schedule, generator, counts, final reports, workers), or while its latency "
    "was still falling from the start, is set aside and run once more",
)


def evaluate(doc: dict[str, Any], thresholds: list[Any]) -> list[dict[str, Any]]:
    """``STYLE:mst>=N`` thresholds (analysis.slo.Threshold) against a capacity.json: one row per
    threshold and server shape of its style. A confirmed MST is judged as it is; one confirmed at
    the search's upper bound is a lower bound that proves a floor it meets; an MST below the
    search's lower bound fails a floor at or above it; an unconfirmed search proves nothing."""
    rows = []
    for th in thresholds:
        mine = [r for r in doc.get("styles", []) if r["style"] == th.style]
        if not mine:
            rows.append(_row(th, None, None, False, True, "style not searched in this run"))
        floor = th.op in (">", ">=")
        for r in mine:
            where = shape_label(r["shape"])
            value = r.get("mst_rps")
            if value is not None and not r.get("at_search_bound"):
                rows.append(_row(th, where, value, th.holds(value), True, ""))
            elif value is not None and floor and th.holds(value):
                rows.append(_row(th, where, value, True, True, f"at least {value:,.4g} req/s (the search's bound)"))
            elif value is not None:
                rows.append(_row(th, where, value, False, False, "at least this: the search's upper bound"))
            elif r.get("upper_bound_rps") is not None and floor and not th.holds(r["upper_bound_rps"]):
                below = r["upper_bound_rps"]
                rows.append(
                    _row(th, where, below, False, True, f"below {below:,.4g} req/s (failed at the lower bound)")
                )
            else:
                low = r.get("lower_bound_rps")
                said = f" (best passing probe {low:,.4g} req/s)" if low is not None else ""
                rows.append(_row(th, where, low, False, False, f"no confirmed MST{said}: not judged"))
    return rows


def _slo_set(doc: dict[str, Any]) -> set[tuple[str, str, float]]:
    """A run's SLOs as what they mean (``0.25s`` is ``250ms``), in any order."""
    return {(s["metric"], s["op"], s["limit"]) for s in (parse_slo(t) for t in doc.get("slo", []))}


def _row(th: Any, where: str | None, value: float | None, passed: bool, judged: bool, note: str) -> dict[str, Any]:
    return {
        "slo": th.text,
        "style": th.style,
        "shape": where,
        "value": value,
        "passed": passed,
        "judged": judged,
        "note": note,
    }


def shape_label(shape: dict[str, Any]) -> str:
    """A server shape in words: every setting that can tell two shapes apart."""
    return ", ".join(f"{k}={v}" for k, v in shape.items())


def compare_docs(a: dict[str, Any], b: dict[str, Any], noise: float | None = None) -> list[dict[str, Any]]:
    """Two capacity runs' MSTs per style and server shape: the ratio b / a and a verdict (better:
    a higher MST): Welch's t-test when both have 2+ repeats; else beyond ``noise`` (a relative
    change) or inconclusive."""
    out = []
    same_slo = _slo_set(a) == _slo_set(b)
    index = {(r["style"], repr(sorted(r["shape"].items()))): r for r in a.get("styles", [])}
    for rb in b.get("styles", []):
        ra = index.get((rb["style"], repr(sorted(rb["shape"].items()))))
        if ra is None:
            continue
        ma, mb = ra.get("mst_rps"), rb.get("mst_rps")
        row = {
            "style": rb["style"],
            "shape": rb["shape"],
            "mst_a": ma,
            "mst_b": mb,
            "n_a": len(ra.get("values", [])),
            "n_b": len(rb.get("values", [])),
        }
        if ma is None or mb is None:
            out.append({**row, "ratio": None, "verdict": "inconclusive", "why": "an MST was not confirmed"})
            continue
        ratio = mb / ma
        if not same_slo:
            out.append({**row, "ratio": ratio, "verdict": "inconclusive", "why": "the runs' SLOs differ"})
            continue
        test = differ(ra.get("values", []), rb.get("values", []))
        if test["p"] is not None:
            verdict = ("better" if ratio > 1 else "worse") if test["verdict"] == "differ" else "same"
            why = test["why"]
        elif noise is not None:
            verdict = ("better" if ratio > 1 else "worse") if abs(ratio - 1) > noise else "same"
            why = f"one repeat: against the floor you gave, ±{noise:.0%}"
        else:
            verdict, why = "inconclusive", "one repeat a side: run-to-run noise unknown (give --noise, or repeat)"
        out.append({**row, "ratio": ratio, "verdict": verdict, "why": why})
    return out


__all__ = [
    "ACHIEVED_SHARE",
    "document",
    "KNEE_METHOD",
    "PREDICTION_METHOD",
    "SCHEMA_VERSION",
    "CapacityError",
    "differ",
    "judge",
    "knee",
    "mst_interval",
    "parse_slo",
    "predicted_p99_s",
    "theory_numbers",
    "trend",
]
