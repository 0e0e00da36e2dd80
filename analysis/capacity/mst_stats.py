"""The MSTs of a style's repeats as statistics: their mean with an interval, and whether two
styles' (or two runs') MSTs differ (Welch's t-test)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from analysis.repeats import INTERVAL_METHOD, LEVEL, t_interval
from analysis.student_t import t_two_sided_p

ALPHA = 0.05  # two styles' MSTs differ when Welch's t-test over their repeats gives p below this
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
