"""Intervals that earn their label, and a compare that keeps its stated false-positive rate.

Seeded simulations through the project's own functions (:func:`analysis.repeats.aggregate`,
:func:`analysis.compare.compare`): each trial is one cell shape (``users`` is the trial number),
each repeat one row of a summary-like table whose per-repeat statistics are drawn from a known
distribution, so the truth the interval should cover is known.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from analysis.compare import ALPHA, compare
from analysis.repeats import INTERVAL_METHOD, SHAPE, aggregate, t_interval, t_quantile, t_two_sided_p

TRIALS = 2000
SIGMA = 0.25  # lognormal: skewed, as a per-repeat p99 can be
Draw = Callable[[np.random.Generator, tuple[int, int]], np.ndarray]


def normal(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    return rng.normal(100.0, 10.0, size)


def lognormal(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    return 50.0 * rng.lognormal(0.0, SIGMA, size)


TRUE_MEAN = {normal: 100.0, lognormal: 50.0 * math.exp(SIGMA**2 / 2)}
LOGNORMAL_SD = 50.0 * math.sqrt((math.exp(SIGMA**2) - 1) * math.exp(SIGMA**2))


def summary(rps: np.ndarray, p99: np.ndarray, **extra: object) -> pd.DataFrame:
    """A summary-like table from (trials, n) arrays: trial i is the shape with ``users`` = i."""
    trials, n = rps.shape
    base = {
        "group": "sleep",
        "together": False,
        "style": "sleep/async-await",
        "server_workers": 2,
        "model": "closed",
        "arrival_rate": np.nan,
        "wait_ms": 50,
        "work": 200_000,
        "fanout": 5,
        **extra,
    }
    return pd.DataFrame(
        {
            **base,
            "users": np.repeat(np.arange(trials), n),
            "repeat": np.tile(np.arange(1, n + 1), trials),
            "rps": rps.ravel(),
            "p95_ms": p99.ravel() * 0.9,
            "p99_ms": p99.ravel(),
        }
    )


def run(rng: np.random.Generator, n: int, shift: float = 0.0, trials: int = TRIALS) -> pd.DataFrame:
    """An aggregate table: rps ~ normal (+ ``shift``), p99 ~ lognormal (+ ``shift``), n repeats each."""
    return aggregate(summary(normal(rng, (trials, n)) + shift, lognormal(rng, (trials, n)) + shift))


def test_t_distribution_matches_published_tables() -> None:
    for df, q in [(1, 12.7062), (2, 4.3027), (4, 2.7764), (9, 2.2622), (30, 2.0423), (120, 1.9799)]:
        assert t_quantile(0.975, df) == pytest.approx(q, abs=1e-4)
    assert t_quantile(0.025, 4) == pytest.approx(-2.7764, abs=1e-4)
    assert t_two_sided_p(2.0, 5) == pytest.approx(0.10194, abs=1e-5)
    assert t_two_sided_p(1.0, 1) == pytest.approx(0.5)
    assert t_two_sided_p(0.0, 3.5) == pytest.approx(1.0)


def test_one_repeat_has_no_interval_and_two_have_a_wide_one() -> None:
    assert all(math.isnan(v) for v in t_interval(np.array([5.0])))
    low, high = t_interval(np.array([1.0, 3.0]))  # mean 2, sd sqrt(2): half-width 12.706
    assert low == pytest.approx(2 - 12.7062, abs=1e-3) and high == pytest.approx(2 + 12.7062, abs=1e-3)
    agg = aggregate(summary(np.array([[10.0], [12.0]]), np.array([[5.0], [6.0]])))
    assert (agg["repeats"] == 1).all() and agg["rps_ci_low"].isna().all() and agg["rps_sd"].isna().all()
    assert "Student-t 95%" in INTERVAL_METHOD and "n repeats" in INTERVAL_METHOD


@pytest.mark.parametrize("n", [3, 5, 10])
def test_interval_covers_the_true_mean_95_percent_of_the_time(n: int) -> None:
    rng = np.random.default_rng(1000 + n)
    agg = run(rng, n)
    assert len(agg) == TRIALS and (agg["repeats"] == n).all() and (agg["rps_n"] == n).all()
    for metric, draw in (("rps", normal), ("p99_ms", lognormal)):
        truth = TRUE_MEAN[draw]
        covered = (agg[f"{metric}_ci_low"] <= truth) & (truth <= agg[f"{metric}_ci_high"])
        assert covered.mean() >= 0.93, (metric, n, covered.mean())
        assert covered.mean() <= 0.97, (metric, n, covered.mean())  # not a vacuously wide interval


def test_the_coverage_simulation_catches_an_interval_that_undercovers() -> None:
    """The same simulation on a normal-quantile (z) interval at n = 3 falls well short: it can fail."""
    rng = np.random.default_rng(7)
    x = normal(rng, (TRIALS, 3))
    half = 1.96 * x.std(axis=1, ddof=1) / math.sqrt(3)
    covered = np.abs(x.mean(axis=1) - 100.0) <= half
    assert covered.mean() < 0.90


@pytest.mark.parametrize("n", [3, 5, 10])
def test_compare_false_positive_rate_between_identical_distributions(n: int) -> None:
    rng = np.random.default_rng(2000 + n)
    result = compare(run(rng, n), run(rng, n))
    assert len(result) == TRIALS * 3
    assert set(result["verdict"]) <= {"same", "better", "worse"}  # n >= 3: every row is tested
    assert result["p_value"].between(0, 1).all()
    assert result["basis"].str.startswith(f"Welch's t-test, n = {n} vs {n}").all()
    assert (result["significant"] == result["verdict"].isin(["better", "worse"])).all()
    for metric in ("rps", "p99_ms"):
        rate = result[result["metric"] == metric]["significant"].mean()
        assert rate <= 0.065, (metric, n, rate)


def test_compare_detects_a_large_difference_in_the_right_direction() -> None:
    rng = np.random.default_rng(3)
    a = run(rng, 5)
    b = aggregate(summary(normal(rng, (TRIALS, 5)) + 5 * 10.0, lognormal(rng, (TRIALS, 5)) + 5 * LOGNORMAL_SD))
    result = compare(a, b)
    rps = result[result["metric"] == "rps"]  # 5 sd more req/s: better
    p99 = result[result["metric"] == "p99_ms"]  # 5 sd more latency: worse
    assert (rps["verdict"] == "better").mean() >= 0.90
    assert (p99["verdict"] == "worse").mean() >= 0.90
    assert not (rps["verdict"] == "worse").any() and not (p99["verdict"] == "better").any()


def one_shape(values: list[float], users: int = 10, **extra: object) -> pd.DataFrame:
    v = np.array([values])
    return summary(v, v, **extra).assign(users=users)


def test_without_any_repeat_or_given_noise_nothing_is_tested() -> None:
    a, b = aggregate(one_shape([100.0])), aggregate(one_shape([300.0]))  # no repeats anywhere
    result = compare(a, b)
    assert (result["verdict"] == "inconclusive").all() and not result["significant"].any()
    assert result["p_value"].isna().all() and result["basis"].str.contains("no noise to test against").all()
    two = compare(aggregate(one_shape([100.0, 101.0])), aggregate(one_shape([300.0, 301.0, 302.0])))
    assert (two["n_a"] == 2).all() and (two["n_b"] == 3).all()
    # n = 2 against 3: no Welch, but the repeats' own noise (under 1%) makes 200% a change.
    assert two["significant"].all() and two["basis"].str.contains("pooled relative sd").all()


def test_a_given_noise_is_assumed_only_without_repeats() -> None:
    a = aggregate(one_shape([100.0]))
    far, near = aggregate(one_shape([150.0])), aggregate(one_shape([105.0]))
    result = compare(a, far, noise=0.10).set_index("metric")
    assert result.loc["rps", "verdict"] == "better" and result.loc["p99_ms", "verdict"] == "worse"
    assert result["significant"].all() and "assumed relative sd 10.0%" in result.loc["rps", "basis"]
    assert (compare(a, near, noise=0.10)["verdict"] == "same").all()
    with pytest.raises(ValueError):
        compare(a, far, noise=-0.1)


def test_the_noise_is_pooled_from_every_repeated_shape() -> None:
    # Three repeats of users=1 (relative sd 1%) are the noise every shape is tested against.
    a = aggregate(pd.concat([one_shape([99.0, 100.0, 101.0], users=1), one_shape([100.0], users=2)]))
    beyond = aggregate(pd.concat([one_shape([125.0], users=1), one_shape([400.0], users=2)]))
    within = aggregate(pd.concat([one_shape([102.0], users=1), one_shape([100.5], users=2)]))
    row = compare(a, beyond).set_index(["users", "metric"])
    assert row.loc[(1, "rps"), "verdict"] == "better" and row.loc[(2, "rps"), "verdict"] == "better"
    assert "pooled relative sd 1.0% over 2 degrees of freedom" in row.loc[(2, "rps"), "basis"]
    assert (compare(a, within)["verdict"] == "same").all()


def test_compare_keeps_its_rate_at_one_repeat_against_one_and_two_against_one() -> None:
    """2,000 shapes measured once on each side (or twice against once), 200 of them three times on
    each side to show the noise: each shape's own test, before the procedure, flags at most 5% of
    the identical pairs (the binomial bound of 2,000 rows: 6.4%), and with normal noise about that
    (3.6% at least); with skewed (lognormal) noise it is more cautious."""
    rng = np.random.default_rng(11)
    for n_a, n_b in ((1, 1), (2, 1)):
        repeated_a, repeated_b = run(rng, 3, trials=200), run(rng, 3, trials=200)
        once_a, once_b = run(rng, n_a), run(rng, n_b)
        once_a["users"] += 1000
        once_b["users"] += 1000
        result = compare(pd.concat([repeated_a, once_a]), pd.concat([repeated_b, once_b]))
        for metric in ("rps", "p99_ms"):
            rows = result[(result["metric"] == metric) & (result["users"] >= 1000)]
            raw = (rows["p_value"] < ALPHA).mean()
            assert raw <= 0.064, (n_a, n_b, metric, raw)
            if metric == "rps":  # normal noise, the test's own model: its rate, not a vacuous one
                assert raw >= 0.036, (n_a, n_b, metric, raw)
            assert rows["significant"].mean() <= raw  # the procedure only ever keeps fewer


def test_a_whole_compare_of_the_same_distribution_flags_nothing_95_percent_of_the_time() -> None:
    """400 compares of two runs of the same distribution, each 10 shapes (3 of them repeated three
    times, 7 once) and 3 metrics: the share of compares with any better or worse at all is at most
    5% (plus the binomial margin of 400 compares: 7.6%). Unadjusted, 30 tests at 5% would flag one
    in most of them. Every compare's shapes are drawn and aggregated in one table per side (compare
    i owns the ``users`` 3i..3i+2 repeated and ONCE+7i..ONCE+7i+6 once); each compare then sees its
    own 10 shapes only, so its adjustment covers its own 30 tests."""
    rng, compares, once_from = np.random.default_rng(12), 400, 100_000
    sides = []
    for _side in "ab":
        repeated, once = run(rng, 3, trials=3 * compares), run(rng, 1, trials=7 * compares)
        once["users"] += once_from
        sides.append(pd.concat([repeated, once]))
    owner = [
        np.where(side["users"] < once_from, side["users"] // 3, (side["users"] - once_from) // 7) for side in sides
    ]
    flagged = raw_flagged = 0
    for i in range(compares):
        result = compare(*(side[mine == i] for side, mine in zip(sides, owner, strict=True)))
        assert len(result) == 10 * 3
        flagged += bool(result["significant"].any())
        raw_flagged += bool((result["p_value"] < ALPHA).any())
    assert flagged / compares <= 0.076, flagged
    assert raw_flagged / compares > 0.5, raw_flagged  # what the procedure is for


def test_identical_repeats_are_not_a_measured_change() -> None:
    a, b = aggregate(one_shape([101.1] * 3)), aggregate(one_shape([101.2] * 3))
    assert (compare(a, b)["verdict"] == "inconclusive").all()


def test_every_shape_column_present_keeps_cells_apart() -> None:
    both = pd.concat(
        [
            one_shape([100.0, 101.0, 102.0], threadpool_tokens=40, worker_class="uvicorn"),
            one_shape([200.0, 201.0, 202.0], threadpool_tokens=80, worker_class="uvicorn"),
            one_shape([300.0], threadpool_tokens=np.nan, worker_class=None),
        ]
    )
    agg = aggregate(both)
    assert {"threadpool_tokens", "worker_class"} <= set(agg.columns) and "db_pool_size" not in agg.columns
    assert sorted(agg["rps_mean"]) == [101.0, 201.0, 300.0]
    assert set(SHAPE) >= {"threadpool_tokens", "db_pool_size", "worker_class", "arrival_rate", "work", "fanout"}
    paired = compare(agg, agg)
    assert len(paired) == 3 * 3  # each shape meets only itself, the missing-key one too
    # An older run without the column does not pair its cells with any that has a value.
    older = aggregate(one_shape([100.0, 101.0, 102.0]))
    assert compare(older, agg[agg["threadpool_tokens"].notna()]).empty
