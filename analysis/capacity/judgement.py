"""How a capacity probe is judged. A probe is one open-model cell of one style at one offered rate,
with a tail: the load goes on for the SLOs' longest latency limit after the measured window, so
when it stops every request started in the window has finished or is known to have broken the
limit (censored at its elapsed time). It passes only when every rule holds (:func:`judge`):

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
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from analysis.capacity.limits import FAILURE_RATE, SLO_FIELDS, holds

ACHIEVED_SHARE = 0.98  # achieved / offered below this: the server did not keep up
TREND_GROWTH = 0.20  # last third's median p50 over the first third's, beyond this ...
TREND_MS = 5.0  # ... and by more than this: a growing queue
TREND_SECONDS = 3  # fewer whole seconds than this: no trend can be read

# The server's rules: a failure says the server did not sustain the rate. The others say the
# measurement could not be made (the generator, the harness): such a probe is run again once.
SERVER_RULES = frozenset({"slo", "throughput", "trend", "window", "server", "data"})
# Validity rules a capacity SLO decides instead (its failure_rate), or that hold for closed cells only.
NOT_FOR_PROBES = frozenset({"failures", "littles_law"})

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
    # Every start of the window judges the SLO: a timeout is a slow request too (runs from before
    # they were recorded: the successes').
    every = "every_start_percentiles_us" in e
    pct = (e.get("every_start_percentiles_us") if every else e.get("percentiles_us")) or {}
    at_least = set((e.get("every_start_at_least") if every else e.get("at_least")) or [])
    latency = {k: (pct[v] / 1000 if v in pct else math.nan) for k, v in SLO_FIELDS.items()}
    failed: list[str] = []
    why: list[str] = []
    for slo in slos:
        if slo["metric"] == FAILURE_RATE:
            value, shown = error_share, f"{error_share:.2%}"
        else:
            value = latency[slo["metric"]]
            lower = SLO_FIELDS[slo["metric"]] in at_least
            shown = f"{'≥ ' if lower else ''}{value:,.1f} ms"
            if lower and math.isfinite(value) and holds(slo, value):
                # Unfinished requests could be anywhere above their elapsed time: undecided (with a
                # tail as long as the limit, every one of them is over it, so this cannot happen).
                failed.append("slo")
                why.append(f"SLO {slo['text']} undecided: {shown} is a lower bound (no tail of {slo['limit']:g} ms)")
                continue
        if not (math.isfinite(value) and holds(slo, value)):
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
