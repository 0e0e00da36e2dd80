"""The knee of a capacity search: Kleinrock's operating point. Among the passing probes at or below
the MST, the one where power, achieved throughput over mean latency, is highest. It has no
parameter to tune and does not depend on axis scaling."""

from __future__ import annotations

import math
from typing import Any

KNEE_METHOD = (
    "Kleinrock's power: among the passing probes (at or below the MST), the one with the highest achieved "
    "throughput / mean latency "
    "(no tuning parameter, the same on any axis scale; it can only be a rate that was probed)"
)


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
