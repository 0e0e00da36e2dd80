"""Repeats: per cell shape and metric, the mean of the per-repeat values and a Student-t 95% interval.

The per-repeat statistic (a cell's req/s, or its exact p99) is one number per repeat; with n repeats
the interval is mean ± t(0.975, n-1) x sd / sqrt(n). For roughly normal per-repeat statistics it
covers the true mean 95% of the time at any n >= 2 (wide at small n, honestly); a percentile bootstrap
at n = 2 or 3 covers it only about half to three quarters of the time. One repeat gives no interval.

Only a shape's valid repeats are aggregated; the others are counted and named beside the numbers
(:func:`validity_note`), never dropped in silence nor used: a shape with no valid repeat keeps its
row, with no numbers. A repeat whose value is only a lower bound makes the mean a lower bound too.

Student's t distribution comes from :mod:`analysis.student_t` (no scipy, and no pandas, so a Locust
process can take a t-quantile too); :func:`t_two_sided_p` and :func:`t_quantile` are named here as well
for :mod:`analysis.compare` and :mod:`analysis.capacity`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

# Re-exported: analysis.compare and analysis.capacity take t's tail probability from here.
from analysis.student_t import t_quantile as t_quantile
from analysis.student_t import t_two_sided_p as t_two_sided_p
from analysis.summary import valid_rows

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
# Why a mean over the valid repeats alone is said to be one.
LEFT_OUT_BIAS = "the mean of the valid repeats; an invalid repeat is often the slow one, so this may read fast"


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
    """One row per cell shape of ``table`` (a summary table, valid and invalid rows;
    :func:`shape_keys`, missing values a key of their own): ``repeats`` (its rows), ``valid_repeats``
    (those valid: :func:`analysis.summary.valid_rows`), ``invalid_repeats`` (the others named, each
    with why: "repeat 2 (reason)", comma-separated; "" when none) and, per metric (:func:`metrics_in`)
    over the finite values of its valid repeats only, ``{metric}_mean``, ``_sd`` (n-1; NaN from one
    value), ``_n``, ``_min``, ``_max``, the Student-t 95% interval ``_ci_low`` / ``_ci_high`` (NaN
    from one value) and ``_at_least`` (a valid repeat's value was only a lower bound: so are these).
    A shape with no valid repeat keeps its row: n = 0 and NaN for every number."""
    keys = shape_keys(table)
    metrics = metrics_in(table)
    columns = (
        keys
        + ["repeats", "valid_repeats", "invalid_repeats"]
        + [f"{m}_{s}" for m in metrics for s in (*STATS, "at_least")]
    )
    if table.empty:
        return pd.DataFrame(columns=columns)
    valid = valid_rows(table)
    used = table[keys].copy()
    spec: dict[str, tuple[str, object]] = {
        "repeats": ("_valid", "size"),
        "valid_repeats": ("_valid", "sum"),
        "invalid_repeats": ("_left_out", lambda v: ", ".join(x for x in v if x)),
    }
    used["_valid"] = valid.astype(int)
    used["_left_out"] = ""
    used.loc[~valid, "_left_out"] = [_left_out(r) for r in table[~valid].to_dict("records")]
    for m in metrics:
        used[m] = table[m].astype(float).where(valid)
        flag = f"{m}_at_least"
        used[flag] = valid & (
            table[flag].astype("boolean").fillna(False).astype(bool) if flag in table.columns else False
        )
        spec |= {
            f"{m}_mean": (m, "mean"),
            f"{m}_sd": (m, "std"),
            f"{m}_n": (m, "count"),
            f"{m}_min": (m, "min"),
            f"{m}_max": (m, "max"),
            flag: (flag, "any"),
        }
    out = used.groupby(keys, sort=False, dropna=False).agg(**spec).reset_index()
    q = 1.0 - (1.0 - LEVEL) / 2.0
    for m in metrics:
        n = out[f"{m}_n"].astype(int)
        t = n.map(lambda k: t_quantile(q, k - 1) if k >= 2 else math.nan).astype(float)
        half = t * out[f"{m}_sd"] / np.sqrt(n.where(n >= 2))
        out[f"{m}_ci_low"] = out[f"{m}_mean"] - half
        out[f"{m}_ci_high"] = out[f"{m}_mean"] + half
    return out[columns]


def _left_out(row: dict[str, Any]) -> str:
    """An invalid repeat, named ("repeat 2", else its cell) with why it is not valid."""
    repeat = row.get("repeat")
    if isinstance(repeat, (int, float)) and not isinstance(repeat, bool) and math.isfinite(repeat):
        name = f"repeat {repeat:g}"
    else:
        name = f"cell {row['cell']}" if row.get("cell") else "a repeat"
    why = next(
        (row[c] for c in ("invalid_because", "validity_failed") if isinstance(row.get(c), str) and row[c]),
        "no reason recorded",
    )
    return f"{name} ({why})"


def validity_note(repeats: int, valid: int, left_out: str) -> str:
    """In words, what a shape's numbers are made from: "k of n repeats valid", and when some are
    not, which were left out and what leaving them out may do to the mean."""
    repeats, valid = int(repeats), int(valid)
    if valid == repeats:
        return f"{valid} of {repeats} repeats valid"
    if valid == 0:
        return f"no valid repeat of {repeats}; left out: {left_out}"
    return f"{valid} of {repeats} repeats valid; left out: {left_out}; {LEFT_OUT_BIAS}"
