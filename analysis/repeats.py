"""Repeats: mean and a 95% bootstrap confidence interval of throughput, p95 and p99 per cell shape."""

from __future__ import annotations

import numpy as np
import pandas as pd

SHAPE = ["group", "together", "style", "users", "server_workers", "model", "wait_ms", "work", "fanout", "arrival_rate"]
METRICS = ("rps", "p95_ms", "p99_ms")
RESAMPLES = 2000


def bootstrap_ci(values: np.ndarray, rng: np.random.Generator, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap of the mean. With one value there is no interval: (nan, nan)."""
    if len(values) < 2:
        return np.nan, np.nan
    means = rng.choice(values, size=(RESAMPLES, len(values)), replace=True).mean(axis=1)
    tail = (1 - level) / 2 * 100
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def aggregate(table: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """One row per cell shape: n repeats, and for each metric its mean, ci_low and ci_high."""
    rng = np.random.default_rng(seed)
    rows = []
    for shape, group in table.groupby(SHAPE, sort=False, dropna=False):
        row = dict(zip(SHAPE, shape, strict=True))
        row["repeats"] = len(group)
        for metric in METRICS:
            values = group[metric].to_numpy(dtype=float)
            low, high = bootstrap_ci(values, rng)
            row[f"{metric}_mean"] = float(values.mean())
            row[f"{metric}_ci_low"], row[f"{metric}_ci_high"] = low, high
        rows.append(row)
    return pd.DataFrame(rows)
