"""A capacity search's SLO and the limits it sets a search: the probe's tail and the latency limit
the model aims at. ``p99<250ms`` or ``failure_rate<1%``: upper limits only (a capacity SLO bounds
what gets worse as the rate grows), on a percentile or the failure rate. The grammar and units are
analysis.slo's, the one reader of an SLO's text; this module keeps the capacity search's subset."""

from __future__ import annotations

from typing import Any

from analysis import slo

# The percentiles a capacity SLO may name, and their key among a probe's exact percentiles.
SLO_FIELDS = {metric: metric.removeprefix("p") for metric in slo.PERCENTILES}
FAILURE_RATE = "failure_rate"
UPPER = ("<", "<=")
DEFAULT_LIMIT_MS = 250.0  # without a latency SLO: the search's default p99 limit


class CapacityError(ValueError):
    """A capacity SLO that cannot be read, said in one line."""


def parse_slo(text: str) -> dict[str, Any]:
    """``p99<250ms`` or ``failure_rate<1%`` (upper limits: a capacity SLO bounds what gets worse)."""
    m = slo.BARE.match(text.strip())
    if m is None or (m["metric"] not in SLO_FIELDS and m["metric"] != FAILURE_RATE) or m["op"] not in UPPER:
        raise CapacityError(
            f"capacity SLO {text!r}: expected METRIC<VALUE with METRIC one of p50, p95, p99, p99.9, "
            "failure_rate (e.g. p99<250ms, failure_rate<1%)"
        )
    metric, unit = m["metric"], m["unit"] or ""
    problem = slo.unit_problem(metric, unit)
    if problem:
        raise CapacityError(f"capacity SLO {text!r}: {problem}")
    limit = slo.in_units(metric, float(m["value"]), unit)
    return {"text": text.strip(), "metric": metric, "op": m["op"], "limit": limit}


def holds(limit: dict[str, Any], value: float) -> bool:
    """Whether ``value`` is within a parsed capacity SLO."""
    return value < limit["limit"] if limit["op"] == "<" else value <= limit["limit"]


def tail_ms(slos: list[dict[str, Any]]) -> float:
    """A probe's tail: the longest latency limit among the SLOs (250 ms without one), so every
    request of the window is decided against each of them when the probe stops."""
    return max([s["limit"] for s in slos if s["metric"] != FAILURE_RATE] or [DEFAULT_LIMIT_MS])


def latency_limit_ms(slos: list[dict[str, Any]]) -> float:
    """The SLO's p99 limit (ms), or the tightest percentile limit given; 250 ms without one."""
    p99 = [s["limit"] for s in slos if s["metric"] == "p99"]
    any_p = [s["limit"] for s in slos if s["metric"] != FAILURE_RATE]
    return min(p99 or any_p or [DEFAULT_LIMIT_MS])


def latency_label(slos: list[dict[str, Any]]) -> str:
    """The latency SLO latency_limit_ms takes, in words (``p99 < 250 ms``)."""
    limit = latency_limit_ms(slos)
    named = [s for s in slos if s["metric"] != FAILURE_RATE and s["limit"] == limit]
    return f"{named[0]['metric']} {named[0]['op']} {limit:g} ms" if named else f"p99 < {limit:g} ms (none given)"
