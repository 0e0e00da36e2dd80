"""Two runs, cell by cell: what changed by more than the run-to-run noise.

With repeats on both sides, a change counts when the two 95% confidence intervals do not overlap.
Without, it counts when the relative change is larger than ``noise`` (default 10%).
"""

from __future__ import annotations

import math

import pandas as pd

from analysis.repeats import SHAPE

METRICS = {"rps": "higher", "p95_ms": "lower", "p99_ms": "lower"}


def compare(a: pd.DataFrame, b: pd.DataFrame, noise: float = 0.10) -> pd.DataFrame:
    """``a`` and ``b`` are :func:`analysis.repeats.aggregate` tables; one row per shared shape and metric."""
    merged = a.merge(b, on=SHAPE, suffixes=("_a", "_b"))
    rows = []
    for r in merged.to_dict("records"):
        for metric, better in METRICS.items():
            va, vb = r[f"{metric}_mean_a"], r[f"{metric}_mean_b"]
            change = (vb - va) / va if va else math.nan
            ci = [r[f"{metric}_ci_{e}_{s}"] for s in "ab" for e in ("low", "high")]
            if not any(math.isnan(x) for x in ci):
                a_low, a_high, b_low, b_high = ci
                significant = b_low > a_high or b_high < a_low
                basis = "confidence intervals"
            else:
                significant = not math.isnan(change) and abs(change) > noise
                basis = f"{noise:.0%} noise threshold"
            direction = "same"
            if significant:
                improved = (change > 0) == (better == "higher")
                direction = "better" if improved else "worse"
            rows.append(
                {
                    **{k: r[k] for k in SHAPE},
                    "metric": metric,
                    "a": va,
                    "b": vb,
                    "change": change,
                    "significant": significant,
                    "direction": direction,
                    "basis": basis,
                }
            )
    return pd.DataFrame(rows)
