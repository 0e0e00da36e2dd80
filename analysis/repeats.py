"""Repeats: per cell shape and metric, the mean of the per-repeat values and a Student-t 95% interval.

The per-repeat statistic (a cell's req/s, or its exact p99) is one number per repeat; with n repeats
the interval is mean ± t(0.975, n-1) x sd / sqrt(n). For roughly normal per-repeat statistics it
covers the true mean 95% of the time at any n >= 2 (wide at small n, honestly); a percentile bootstrap
at n = 2 or 3 covers it only about half to three quarters of the time. One repeat gives no interval.

Student's t distribution comes from :mod:`analysis.student_t` (no scipy, and no pandas, so a Locust
process can take a t-quantile too); :func:`t_two_sided_p` and :func:`t_quantile` are named here as well
for :mod:`analysis.compare` and :mod:`analysis.capacity`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

# Re-exported: analysis.compare and analysis.capacity take t's tail probability from here.
from analysis.student_t import t_quantile as t_quantile
from analysis.student_t import t_two_sided_p as t_two_sided_p

# Everything that makes two cells different. The last three are in the summary table only from the
# runs that record them: :func:`shape_keys` uses those present.
REQUIRED_SHAPE = [
    "group",
    "together",
    "style",
    "users",
    "server_workers",
    "model",
    "arrival_rate",
    "wait_ms",
    "work",
    "fanout",
]
OPTIONAL_SHAPE = ["threadpool_tokens", "db_pool_size", "worker_class"]
SHAPE = REQUIRED_SHAPE + OPTIONAL_SHAPE

REQUIRED_METRICS = ("rps", "p95_ms", "p99_ms")
OPTIONAL_METRICS = ("mean_ms", "p50_ms", "blocked_share")
METRICS = ("rps", "mean_ms", "p50_ms", "p95_ms", "p99_ms", "blocked_share")  # display order

LEVEL = 0.95
INTERVAL_METHOD = (
    "Student-t 95% interval of the mean over n repeats "
    "(mean ± t(0.975, n-1) x sd/sqrt(n) of the per-repeat values; none from one repeat)"
)
# Per metric, in this order: what compare needs (n, mean, sd), the noise-floor spread (min, max), the interval.
STATS = ("mean", "sd", "n", "min", "max", "ci_low", "ci_high")


def shape_keys(table: pd.DataFrame) -> list[str]:
    """The grouping key of ``table``: every required shape column, and the optional ones it has."""
    return REQUIRED_SHAPE + [k for k in OPTIONAL_SHAPE if k in table.columns]


def metrics_in(table: pd.DataFrame) -> list[str]:
    """The metrics ``table`` (a summary table) has, in display order: always rps, p95 and p99."""
    return [m for m in METRICS if m in REQUIRED_METRICS or m in table.columns]


def t_interval(values: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """Student-t interval of the mean of ``values`` (NaNs dropped); (nan, nan) from fewer than two."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    n = len(v)
    if n < 2:
        return math.nan, math.nan
    half = t_quantile(1.0 - (1.0 - level) / 2.0, n - 1) * float(v.std(ddof=1)) / math.sqrt(n)
    mean = float(v.mean())
    return mean - half, mean + half


def aggregate(table: pd.DataFrame) -> pd.DataFrame:
    """One row per cell shape (:func:`shape_keys`, missing values a key of their own): ``repeats``
    (rows in the shape) and, per metric (:func:`metrics_in`) over its finite per-repeat values,
    ``{metric}_mean``, ``_sd`` (n-1; NaN from one value), ``_n``, ``_min``, ``_max`` and the
    Student-t 95% interval ``_ci_low`` / ``_ci_high`` (NaN from one value)."""
    keys = shape_keys(table)
    metrics = metrics_in(table)
    columns = keys + ["repeats"] + [f"{m}_{s}" for m in metrics for s in STATS]
    if table.empty:
        return pd.DataFrame(columns=columns)
    spec: dict[str, tuple[str, str]] = {"repeats": (metrics[0], "size")}
    for m in metrics:
        spec |= {
            f"{m}_mean": (m, "mean"),
            f"{m}_sd": (m, "std"),
            f"{m}_n": (m, "count"),
            f"{m}_min": (m, "min"),
            f"{m}_max": (m, "max"),
        }
    numeric = table[keys + metrics].astype({m: float for m in metrics})
    out = numeric.groupby(keys, sort=False, dropna=False).agg(**spec).reset_index()
    q = 1.0 - (1.0 - LEVEL) / 2.0
    for m in metrics:
        n = out[f"{m}_n"].astype(int)
        t = n.map(lambda k: t_quantile(q, k - 1) if k >= 2 else math.nan).astype(float)
        half = t * out[f"{m}_sd"] / np.sqrt(n.where(n >= 2))
        out[f"{m}_ci_low"] = out[f"{m}_mean"] - half
        out[f"{m}_ci_high"] = out[f"{m}_mean"] + half
    return out[columns]
