"""Two runs, cell shape by cell shape and metric: did it get better, worse, or can we not tell?

The test, stated: with at least ``MIN_REPEATS`` repeats on both sides, Welch's t-test on the
per-repeat values (two-sided, unequal variances) at ``ALPHA`` = 0.05, so between two runs of the
same (roughly normal) distribution at most 5% of the shape-metric pairs come out better or worse.
Not significant reads "same": no change this test could see at this n.

With fewer repeats on either side no test has a stated false-positive rate, and the verdict is
"inconclusive" unless the relative change exceeds a noise floor: ``NOISE_FACTOR`` times the widest
relative spread (max - min) / mean of that metric among the repeated shapes of the two runs. When
neither run repeated any shape there is nothing to measure the floor from: the caller's ``noise``
(the relative change to count, e.g. 0.10) is used if given, else every such row is inconclusive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from analysis.repeats import SHAPE, t_two_sided_p

ALPHA = 0.05
MIN_REPEATS = 3
NOISE_FACTOR = 2.0
METRICS = {
    "rps": "higher",
    "mean_ms": "lower",
    "p50_ms": "lower",
    "p95_ms": "lower",
    "p99_ms": "lower",
    "blocked_share": "lower",  # of the window the server's event loops were stalled (stall detector)
}
VERDICTS = ("better", "worse", "same", "inconclusive")

TEST_METHOD = (
    f"Welch's t-test on the per-repeat values (two-sided), alpha = {ALPHA:g}: at most {ALPHA:.0%} false "
    f"positives between runs of the same distribution; used when both sides have at least {MIN_REPEATS} repeats"
)
MIN_FLOOR = 0.02  # no floor below 2%: two or three repeats can agree by chance far closer than that
FLOOR_METHOD = (
    f"Below {MIN_REPEATS} repeats on either side: inconclusive unless the relative change exceeds a noise "
    f"floor of {NOISE_FACTOR:g} x the relative spread (max - min) / mean of that cell shape's own repeats "
    f"(at least {MIN_FLOOR:.0%}); a shape repeated on neither side has no measured floor: the given "
    "--noise decides, else it is inconclusive. No stated false-positive rate"
)
COLUMNS = [
    "metric",
    "a",
    "b",
    "change",
    "n_a",
    "n_b",
    "p_value",
    "verdict",
    "significant",
    "basis",
    "direction",
]


@dataclass(frozen=True)
class Floor:
    """The noise floor of one metric: a relative change, and where it came from."""

    value: float | None
    source: str


def floor_of(r: dict[str, Any], metric: str, noise: float | None) -> Floor:
    """The floor a change of ``metric`` in the merged row ``r`` must exceed below MIN_REPEATS: from
    this shape's own repeats on either side, else the given noise, else none."""
    spreads = []
    for side in "ab":
        n = r.get(f"{metric}_n_{side}", 0)
        low, high, mean = (r.get(f"{metric}_{k}_{side}", math.nan) for k in ("min", "max", "mean"))
        if isinstance(n, (int, float)) and n >= 2 and mean and math.isfinite(high - low):
            spreads.append((high - low) / abs(mean))
    if spreads:
        widest = max(spreads)
        return Floor(
            max(MIN_FLOOR, NOISE_FACTOR * widest),
            f"{NOISE_FACTOR:g} x {widest:.1%}, the spread of this shape's repeats (at least {MIN_FLOOR:.0%})",
        )
    if noise is not None:
        return Floor(noise, "given (--noise): this shape was repeated on neither side")
    return Floor(None, "none: this shape was repeated on neither side and no --noise was given")


def _metrics(a: pd.DataFrame, b: pd.DataFrame) -> list[str]:
    return [m for m in METRICS if f"{m}_mean" in a.columns and f"{m}_mean" in b.columns]


def welch(mean_a: float, sd_a: float, n_a: int, mean_b: float, sd_b: float, n_b: int) -> float:
    """Two-sided p-value of Welch's t-test from each side's mean, sd (n-1) and n (both n >= 2)."""
    va, vb = sd_a**2 / n_a, sd_b**2 / n_b
    se2 = va + vb
    if not se2 > 0:  # no spread on either side: nothing to measure the noise from
        return math.nan
    t = (mean_b - mean_a) / math.sqrt(se2)
    df = se2**2 / ((va**2 / (n_a - 1) if va else 0.0) + (vb**2 / (n_b - 1) if vb else 0.0))
    return t_two_sided_p(t, df)


def compare(a: pd.DataFrame, b: pd.DataFrame, noise: float | None = None) -> pd.DataFrame:
    """``a`` and ``b`` are :func:`analysis.repeats.aggregate` tables; one row per shared shape and
    metric: the shape keys, ``metric``, ``a``, ``b`` (means), ``change`` ((b - a) / a), ``n_a``,
    ``n_b``, ``p_value`` (Welch's, else NaN), ``verdict`` (better, worse, same, inconclusive),
    ``significant`` (better or worse), ``basis`` (the test or floor, alpha and n, in words) and
    ``direction`` (the verdict, under its former name).

    A shape key one table lacks (an older run) is missing there: it matches only missing values."""
    if noise is not None and not noise > 0:
        raise ValueError(f"noise must be a positive relative change, not {noise}")
    keys = [k for k in SHAPE if k in a.columns or k in b.columns]
    a = a.assign(**{k: np.nan for k in keys if k not in a.columns})
    b = b.assign(**{k: np.nan for k in keys if k not in b.columns})
    # Keys typed differently on the two sides (numbers beside all-missing, text beside numbers):
    # compared as plain objects, where a missing value still matches only a missing value.
    mixed = {k: object for k in keys if a[k].dtype != b[k].dtype}
    a, b = a.astype(mixed), b.astype(mixed)
    metrics = _metrics(a, b)
    merged = a.merge(b, on=keys, suffixes=("_a", "_b"))
    rows = []
    for r in merged.to_dict("records"):
        for metric in metrics:
            rows.append({**{k: r[k] for k in keys}, "metric": metric, **_decide(r, metric, floor_of(r, metric, noise))})
    return pd.DataFrame(rows, columns=keys + COLUMNS)


def _side(r: dict[str, Any], metric: str, s: str) -> tuple[float, float, int]:
    mean = float(r[f"{metric}_mean_{s}"])
    sd = float(r.get(f"{metric}_sd_{s}", math.nan))
    n = r.get(f"{metric}_n_{s}", r.get(f"repeats_{s}", 1))
    return mean, sd, 0 if math.isnan(mean) else int(n)


def _decide(r: dict[str, Any], metric: str, floor: Floor) -> dict[str, Any]:
    (ma, sa, na), (mb, sb, nb) = _side(r, metric, "a"), _side(r, metric, "b")
    change = (mb - ma) / ma if ma else math.nan
    p = math.nan
    sides = f"n = {na} vs {nb}"
    if na == 0 or nb == 0:
        verdict, basis = "inconclusive", f"not measured on both sides ({sides})"
    elif na >= MIN_REPEATS and nb >= MIN_REPEATS and not (math.isnan(sa) or math.isnan(sb)) and sa + sb == 0:
        verdict = "inconclusive"
        basis = f"{sides}, but every repeat gave the same value on both sides: no noise to test against"
    elif na >= MIN_REPEATS and nb >= MIN_REPEATS and not (math.isnan(sa) or math.isnan(sb)):
        p = welch(ma, sa, na, mb, sb, nb)
        moved = p < ALPHA
        verdict = _direction(mb - ma, metric) if moved else "same"
        basis = f"Welch's t-test, alpha = {ALPHA:g}, {sides}: p = {p:.2g} ({'<' if moved else '>='} {ALPHA:g})"
    elif floor.value is None:
        verdict = "inconclusive"
        basis = f"{sides}, under {MIN_REPEATS} repeats, and no noise floor ({floor.source})"
    elif math.isnan(change):
        verdict, basis = "inconclusive", f"{sides}, under {MIN_REPEATS} repeats, and no relative change (A is 0)"
    else:
        beyond = abs(change) > floor.value
        verdict = _direction(mb - ma, metric) if beyond else "inconclusive"
        basis = (
            f"{sides}, under {MIN_REPEATS} repeats: |change| {abs(change):.1%} "
            f"{'>' if beyond else '<='} noise floor {floor.value:.1%} ({floor.source})"
        )
    return {
        "a": ma,
        "b": mb,
        "change": change,
        "n_a": na,
        "n_b": nb,
        "p_value": p,
        "verdict": verdict,
        "significant": verdict in ("better", "worse"),
        "basis": basis,
        "direction": verdict,
    }


def _direction(delta: float, metric: str) -> str:
    return "better" if (delta > 0) == (METRICS[metric] == "higher") else "worse"
