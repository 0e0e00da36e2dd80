"""Two runs, cell shape by cell shape and metric: did it get better, worse, or can we not tell?

Each shape and metric is tested, two-sided, at ``ALPHA`` = 0.05:

- with at least ``MIN_REPEATS`` repeats on both sides, Welch's t-test on that shape's own per-repeat
  values (unequal variances);
- with fewer, a t-test on the relative difference of the two means, against the repeat-to-repeat
  noise of that metric pooled over every shape repeated in either run (its relative standard
  deviation, with the degrees of freedom its repeats give): one repeat against one is tested too,
  at the stated rate, as long as some shape was repeated. The noise of one shape is taken to be,
  relative to its mean, that of the others (the rate holds as far as that does);
- when neither run repeated any shape, the caller's ``noise`` is taken as that relative standard
  deviation (an assumption, stated in the basis); without it the row is inconclusive.

Over the whole compare, the Benjamini-Hochberg procedure at ``ALPHA`` decides which tests count: a
row is better or worse only if it is among those the procedure keeps. Between two runs of the same
distribution every flag is false, and the procedure keeps any at all with a probability of at most
``ALPHA`` (for tests independent or positively dependent, as rows sharing one pooled noise are):
the whole compare then prints "no difference" at least 95% of the time, whatever its number of
rows; each row alone is flagged at most ``ALPHA`` of the time. Not significant reads "same": no
change these tests could see at this n.

Only each side's valid repeats are compared (:func:`analysis.repeats.aggregate`): a row whose shape
left repeats out on either side says which and why (``left_out``); a shape with no valid repeat on a
side is "not compared", named, never compared on invalid numbers. A mean one of whose repeats was
only a lower bound is one too (``a_at_least`` / ``b_at_least``), and its basis says so.

All of that holds as far as the repeats' noise within a run is the noise between the runs. What
within-run repeats cannot show is noise between runs (another day, another machine state): two
runs of the same code differ by it too, and a change smaller than it is not the code's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from analysis.repeats import SHAPE, t_two_sided_p, validity_note

ALPHA = 0.05
MIN_REPEATS = 3
METRICS = {
    "rps": "higher",
    "mean_ms": "lower",
    "p50_ms": "lower",
    "p95_ms": "lower",
    "p99_ms": "lower",
    "blocked_share": "lower",  # of the window the server's event loops were stalled (stall detector)
}
VERDICTS = ("better", "worse", "same", "inconclusive", "not compared")

TEST_METHOD = (
    f"Welch's t-test on the per-repeat values (two-sided, alpha = {ALPHA:g}) when both sides have at least "
    f"{MIN_REPEATS} repeats; with fewer, a t-test of the relative difference against the metric's "
    "repeat-to-repeat noise pooled over every shape repeated in either run (its relative sd and degrees of "
    f"freedom). Over the whole compare, Benjamini-Hochberg at {ALPHA:g}: between runs of the same distribution, "
    f"any false better/worse at all at most {ALPHA:.0%} of the time, each row at most {ALPHA:.0%}, as far as the "
    "noise between repeats of a run is the noise between the runs"
)
FLOOR_METHOD = (
    "A shape with too few repeats is tested against the noise pooled from the shapes that were repeated; when "
    "neither run repeated any shape, --noise is taken as the relative sd of one measurement (an assumption), "
    "else the row is inconclusive"
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
    "a_at_least",
    "b_at_least",
    "left_out",
]


@dataclass(frozen=True)
class Noise:
    """The repeat-to-repeat noise of one metric: a relative standard deviation of one measurement,
    its degrees of freedom (None: assumed, not measured), and where it came from."""

    rel_sd: float | None
    df: float | None
    source: str


def pooled_noise(merged: list[dict[str, Any]], metric: str, noise: float | None) -> Noise:
    """The metric's relative sd pooled over every shape with two repeats or more on either side
    (each weighted by its n - 1), else the given ``noise`` (assumed), else none."""
    ss, dof = 0.0, 0
    for r in merged:
        for side in "ab":
            n = r.get(f"{metric}_n_{side}", 0)
            sd, mean = r.get(f"{metric}_sd_{side}", math.nan), r.get(f"{metric}_mean_{side}", math.nan)
            if isinstance(n, (int, float)) and n >= 2 and math.isfinite(sd) and math.isfinite(mean) and mean:
                ss += (int(n) - 1) * (sd / abs(mean)) ** 2
                dof += int(n) - 1
    if dof:
        rel = math.sqrt(ss / dof)
        return Noise(rel, float(dof), f"pooled relative sd {rel:.1%} over {dof} degrees of freedom of the repeats")
    if noise is not None:
        return Noise(noise, None, f"assumed relative sd {noise:.1%} (--noise): no shape was repeated")
    return Noise(None, None, "no shape was repeated in either run and no --noise was given")


def benjamini_hochberg(p_values: pd.Series, level: float = ALPHA) -> pd.Series:
    """Which of ``p_values`` (NaN: no test) the Benjamini-Hochberg procedure keeps at ``level``: the
    k smallest, k the largest rank whose p-value is at most k / m x level, m the tests made."""
    tested = p_values.dropna().sort_values()
    m = len(tested)
    kept = pd.Series(False, index=p_values.index)
    if not m:
        return kept
    below = tested.to_numpy() <= level * np.arange(1, m + 1) / m
    if below.any():
        k = int(np.nonzero(below)[0].max()) + 1
        kept[tested.index[:k]] = True
    return kept


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
    ``n_b``, ``p_value`` (its test's, NaN without one), ``verdict`` (better, worse, same,
    inconclusive; not compared when a side has no valid repeat), ``significant`` (better or worse:
    kept by Benjamini-Hochberg over the compare), ``basis`` (the test, its noise and n, in words),
    ``direction`` (the verdict, under its former name), ``a_at_least`` / ``b_at_least`` (that mean
    is only a lower bound) and ``left_out`` (the repeats either side left out, named: "" when none).

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
    merged = a.merge(b, on=keys, suffixes=("_a", "_b")).to_dict("records")
    pooled = {m: pooled_noise(merged, m, noise) for m in metrics}
    rows = [
        {**{k: r[k] for k in keys}, "metric": metric, **_test(r, metric, pooled[metric])}
        for r in merged
        for metric in metrics
    ]
    out = pd.DataFrame(rows, columns=keys + COLUMNS)
    if out.empty:
        return out
    kept = benjamini_hochberg(out["p_value"].astype(float))
    tested = out["p_value"].notna()
    delta = out["b"].astype(float) - out["a"].astype(float)
    out["verdict"] = np.where(
        ~tested,
        out["verdict"],  # inconclusive, or not compared
        np.where(kept, [_direction(d, m) for d, m in zip(delta, out["metric"], strict=True)], "same"),
    )
    m = int(tested.sum())
    out.loc[tested, "basis"] = out.loc[tested, "basis"] + (
        f"; Benjamini-Hochberg over the compare's {m} tests at {ALPHA:g}: " + np.where(kept[tested], "kept", "not kept")
    )
    # A lower bound's true value is anywhere at or above it: a change is known only when the bound
    # side is the higher one (it can only be higher still). Any other row with a bound is undecided.
    a_low, b_low = out["a_at_least"].astype(bool), out["b_at_least"].astype(bool)
    known = tested & kept & ((a_low & ~b_low & (delta < 0)) | (b_low & ~a_low & (delta > 0)))
    undecided = tested & (a_low | b_low) & ~known
    out.loc[undecided, "verdict"] = "inconclusive"
    out.loc[undecided, "basis"] += "; inconclusive: a lower bound at or below the other side could be either"
    out["significant"] = out["verdict"].isin(["better", "worse"])
    out["direction"] = out["verdict"]
    return out


def _side(r: dict[str, Any], metric: str, s: str) -> tuple[float, float, int]:
    mean = float(r[f"{metric}_mean_{s}"])
    sd = float(r.get(f"{metric}_sd_{s}", math.nan))
    n = r.get(f"{metric}_n_{s}", r.get(f"repeats_{s}", 1))
    return mean, sd, 0 if math.isnan(mean) else int(n)


def _validity(r: dict[str, Any], s: str) -> tuple[int, int, str]:
    """One side's repeats of the shape, how many of them are valid, and those left out, named."""
    repeats = int(r.get(f"repeats_{s}", 1))
    return repeats, int(r.get(f"valid_repeats_{s}", repeats)), str(r.get(f"invalid_repeats_{s}") or "")


def _left_out(r: dict[str, Any]) -> str:
    """The repeats each side left out of its numbers, named with why: "" when none."""
    said = []
    for s in "ab":
        repeats, valid, names = _validity(r, s)
        if valid < repeats:
            said.append(f"{s.upper()}: {validity_note(repeats, valid, names)}")
    return ". ".join(said)


def _test(r: dict[str, Any], metric: str, pooled: Noise) -> dict[str, Any]:
    """One shape's test of one metric, before the compare-wide procedure: its p-value and basis."""
    (ma, sa, na), (mb, sb, nb) = _side(r, metric, "a"), _side(r, metric, "b")
    change = (mb - ma) / ma if ma else math.nan
    p = math.nan
    sides = f"n = {na} vs {nb}"
    verdict = "inconclusive"
    bounds = {s: r.get(f"{metric}_at_least_{s}") in (True, np.True_) for s in "ab"}
    none_valid = [f"{s.upper()} (of {_validity(r, s)[0]})" for s in "ab" if _validity(r, s)[1] == 0]
    if none_valid:
        basis = f"not compared: no valid repeat in {' nor in '.join(none_valid)}"
        verdict = "not compared"
    elif na == 0 or nb == 0:
        basis = f"not measured on both sides ({sides})"
    elif na >= MIN_REPEATS and nb >= MIN_REPEATS and not (math.isnan(sa) or math.isnan(sb)):
        p = welch(ma, sa, na, mb, sb, nb)
        basis = (
            f"Welch's t-test, {sides}: p = {p:.2g}"
            if math.isfinite(p)
            else f"{sides}, but every repeat gave the same value on both sides: no noise to test against"
        )
    elif pooled.rel_sd is None or not pooled.rel_sd > 0:
        basis = f"{sides}, under {MIN_REPEATS} repeats, and no noise to test against ({pooled.source})"
    elif not (ma > 0 and mb > 0):
        basis = f"{sides}: a mean of 0 has no relative noise to test against"
    else:
        # Each mean's sd is its own value times the relative sd, over the root of its repeats.
        se = pooled.rel_sd * math.sqrt(ma**2 / na + mb**2 / nb)
        t = (mb - ma) / se
        p = t_two_sided_p(t, pooled.df) if pooled.df is not None else math.erfc(abs(t) / math.sqrt(2))
        basis = f"t-test against the metric's noise ({pooled.source}), {sides}: p = {p:.2g}"
    if not none_valid:
        basis += "".join(f"; {s.upper()} is only a lower bound (a repeat's was)" for s in "ab" if bounds[s])
    return {
        "a": ma,
        "b": mb,
        "change": change,
        "n_a": na,
        "n_b": nb,
        "p_value": p if math.isfinite(p) else math.nan,
        "verdict": verdict,
        "significant": False,
        "basis": basis,
        "direction": verdict,
        "a_at_least": bounds["a"],
        "b_at_least": bounds["b"],
        "left_out": _left_out(r),
    }


def _direction(delta: float, metric: str) -> str:
    return "better" if (delta > 0) == (METRICS[metric] == "higher") else "worse"
