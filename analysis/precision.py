"""Precision: a confidence interval for a window's p99 that allows for correlated latencies.

Consecutive latencies are not independent: a queue that builds up slows many responses in a row,
so the slow responses come in clusters. The textbook interval for a percentile, which counts every
response as an independent draw, is then far too narrow. This module makes the interval from the
window itself, by *sectioning* (Asmussen and Glynn; Nakayama for quantiles): the window's whole
seconds are cut into b batches (5 to 20) of consecutive seconds, each long enough that what happens
in one says little about the next, and the spread between the batches measures how far the window's
p99 would move if the test were run again.

What is sectioned is not each batch's own p99 but the *share of each batch's responses at or below
the window's p99*, an average, which batches behave well for:

1. the point is the window's p99 (given by the caller, or the p99 of all its responses);
2. per batch, the share of its responses at or below that point (over the whole window, ~99%);
3. sectioning: the window's share ± t(0.975, b - 1) x sd of the batch shares / sqrt(b), an interval
   for the share of the window's responses that lie below the true p99;
4. mapped back through the window's latencies: the interval runs from the window's latency at the
   lower share to its latency at the upper share (its p98.6 to its p99.4, say). It is not symmetric
   about the point (the slow side is longer); its relative half width is the longer side over the
   point. When the upper share reaches 100% the window cannot bound the p99 from above: no interval.

Why not the batches' p99s, as sectioning a quantile is usually written: one second's p99 rests on its
ten slowest responses, often a single cluster, and the spread of such p99s across seconds understates
how far the whole window's p99 moves. Simulated single-server queues (utilisation 0.7 and 0.8; 500,
1000 and 2000 responses/s; windows of 10, 20 and 40 s; 200 runs each) showed it: intervals called 95%
from the batch p99s covered the true p99 47% to 92% of the time (median 78%); from the batch shares,
88% to 97% wherever at least 85% of the windows got an interval.

Assumptions, in plain words:

- the window is steady: the latency distribution does not drift during it (no warm-up inside it, no
  slow leak);
- a batch (a second or more) is much longer than a cluster of slow responses, and the window holds
  many clusters. When it holds only a few (a queue near saturation, whose p99 rests on a handful of
  busy spells), the batches' spread understates the p99's, and the few windows that happened to be
  calm give narrow intervals that miss. So the window must show enough independent slow responses:
  how many responses the slow ones come together over (``tau``) is read from the batches' shares
  above the window's p95 (:func:`correlation`: five times the p99's tail, so steadier, and the
  same busy spells), and a window whose responses above the p99 count as fewer than
  ``MIN_INDEPENDENT_TAIL`` (10) independent ones (responses above the p99 / tau) gets no interval,
  with the least window that might do (a lower estimate: a longer window's batches see longer
  spells, and tau grows with them). Read a missing interval as "run longer";
- every batch holds ``MIN_BATCH_SAMPLES`` responses and the window ``MIN_SAMPLES``.

From HdrHistograms (:func:`quantile_interval`, the path the capture takes): its per-second histograms
are recorded at 3 significant digits, a bucket 0.05% to 0.1% of its values wide (32 µs at 50 ms).
Within a bucket the responses are taken as spread evenly over its values, so the window's distribution
is continuous and its quantiles are its inverse: a batch's share below the point counts the point's
own bucket in part, and the interval's ends are interpolated latencies, not bucket edges. The point,
as HdrHistogram reports a percentile, is its bucket's highest value; the shares are taken where the
response at its rank lies in the bucket (:meth:`_Distribution.standing_for`), not at the bucket's top,
which would lean the interval up by half a bucket. Its ends then lie on either side of the point
unless the interval is about one bucket wide, where the point may lie above it and the upper end is
stretched to the point. In ``tests/analysis/test_precision.py``, through per-second histograms at 3
digits, the same coverage as from exact samples: queue 0.927 over a fixed 20 s and 0.942 at the
stopping time, log-normal stream 0.959 and 0.948, and a tight log-normal stream around 50 ms (sd
1.1%, intervals about 0.35% wide) 0.921 and 0.942 (exact samples: 0.932 over 10 s; 400 runs each).
Both ends lay off the point in all but 2 of the 2274 intervals, two of the tight stream's about a
bucket wide on the slow side, stretched to the point. Counting the point's whole bucket, with ends at bucket tops and
the low end clamped to the point, had covered 0.785 and 0.708 of that tight stream at 3 digits, and
none at 2 (every interval [point, high]).

Coverage by regime (``python -m tests.analysis.coverage_table``: simulated stations, open Poisson
arrivals and closed users with think time, at 100, 1000 and 5000 responses/s and utilisation 0.5,
0.8, 0.9 and 0.95; a 20 s window; 100 runs each; shown = windows given an interval, coverage among
those). Wherever 30 or more of the 100 windows got an interval, it covered 91-99%, but for the
kind below; closed users at 1000/s and more are shown every time up to utilisation 0.9 (25% for 80
servers at 0.9 and 1000/s; 1-100% at 0.95); at 100/s a 20 s window is short, and most regimes above
0.5 get none. Where the batches' spread had misled, the rule withholds: an open M/M/1 at 0.8 and
1000/s had been shown 57% of the time covering 88%, at 0.9 and 1000/s 10% covering 20%, at 0.9 and
5000/s 57% covering 84%; now 1%, 0% and 1%. Where it still falls short: an open station of many
servers with a nearly fixed service time (a threadpool of 80 tokens holding each request for the
same sleep), whose p99 sits at the knee where requests start to wait for a token, decided by a few
waiting spells that the p95's tail does not see: at utilisation 0.8, 100/s shown 42% covering 21%,
1000/s 83% covering 84%; at 0.9 and 5000/s 34% covering 82%; and, seldom shown, two servers at 0.9
and 5000/s (16%, covering 56%). An interval of a route whose p99 is where its requests begin to
queue is not to be trusted at 95%.

Used two ways: at save time, to report the interval; and every second during a test, to stop once the
interval is narrow enough (:func:`precise_enough`). Stopping on a narrow interval favours the moments
when the batches happen to agree, so the interval at the stopping time covers less than a fixed
window's: the check wants ``MIN_PRECISE_BATCHES`` batches, whose sd wobbles less than five batches'.
Measured in ``tests/analysis/test_precision.py``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

from analysis.student_t import t_quantile  # not analysis.repeats: it loads pandas

CONFIDENCE = 0.95
MIN_BATCHES = 5  # fewer batches: no interval
MAX_BATCHES = 20
# A batch must hold 100 responses: one, on average, above its p99, so that a batch's share at or below
# the window's p99 can fall short of 100%. Simulated independent log-normal latencies (1000 windows of
# 1000 responses): 10 batches of 100 covered the true p99 96% of the time, 5 batches of 200 93%; with
# 2000 responses or more, 100 or 200 a batch made no difference.
MIN_BATCH_SAMPLES = 100
# The window must hold 1000 responses, ten above its p99. From 500 (5 batches of 100, five responses
# above the p99) the intervals that could be made covered only 83% to 86%: five events are too few to
# estimate a share's spread from.
MIN_SAMPLES = 1000
# The slow responses' correlation is read from the tail above the window's p95 (:func:`correlation`);
# fewer than MIN_INDEPENDENT_TAIL independent responses above the point (p99): no interval.
TAIL_Q = 95.0
MIN_INDEPENDENT_TAIL = 10
# precise_enough wants 15 batches (in a window of 15 s or more): a sd from few batches is more often
# luckily small just when the check looks, and the test stops on it. Coverage at the stopping time in
# tests/analysis/test_precision.py (queue, then mildly correlated log-normal stream, 400 runs each):
# 0.90 and 0.92 when 5 batches may stop the test, 0.925 and 0.94 with 10, 0.947 and 0.948 with 15.
MIN_PRECISE_BATCHES = 15
METHOD = (
    "95% interval of p99 by sectioning: the window's whole seconds in b batches of consecutive seconds; "
    "the share of responses at or below the window's p99 ± t(b-1) x sd of the batch shares / sqrt(b), "
    "mapped back to latencies through the window's distribution"
)


def nearest_rank(q: float, n: int) -> int:
    """The 1-based rank of the ``q`` percentile (0-100) among ``n`` sorted values, as HdrHistogram takes it."""
    return min(n, max(1, int(min(q, 100.0) * n / 100.0 + 0.5)))


def sample_quantile(values: np.ndarray, q: float) -> float:
    """The ``q`` percentile (0-100) of ``values`` by HdrHistogram's rule: the value at :func:`nearest_rank`."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return math.nan
    k = nearest_rank(q, v.size) - 1
    return float(np.partition(v, k)[k])


def sectioning(
    point: float, batch_values: Sequence[float] | np.ndarray, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """(low, high): ``point`` ± t((1 + confidence) / 2, b - 1) x sd(batch values) / sqrt(b); NaNs from b < 2."""
    v = np.asarray(batch_values, dtype=float)
    b = v.size
    if b < 2 or not np.all(np.isfinite(v)) or not math.isfinite(point):
        return math.nan, math.nan
    half = t_quantile((1.0 + confidence) / 2.0, b - 1) * float(v.std(ddof=1)) / math.sqrt(b)
    return point - half, point + half


def batch_counts(n_seconds: int, total_samples: int) -> int:
    """How many batches ``n_seconds`` whole seconds holding ``total_samples`` responses make (0: none).

    As many as there are seconds, up to ``MAX_BATCHES``, each holding ``MIN_BATCH_SAMPLES`` on average;
    none from fewer than ``MIN_BATCHES`` or from a window of fewer than ``MIN_SAMPLES``.
    """
    b = min(MAX_BATCHES, n_seconds, total_samples // MIN_BATCH_SAMPLES)
    return b if b >= MIN_BATCHES and total_samples >= MIN_SAMPLES else 0


def batch_edges(n_seconds: int, b: int) -> np.ndarray:
    """The b + 1 edges (indices into the seconds) of b batches of consecutive seconds, sizes within one."""
    return (np.arange(b + 1) * n_seconds) // b


def plan(counts: Sequence[int] | np.ndarray) -> tuple[np.ndarray, str]:
    """The batches of the consecutive seconds whose response counts are ``counts`` (first to last second).

    Returns the edges (:func:`batch_edges`) and ``""``, or no edges and why no interval can be made.
    Starts at :func:`batch_counts` batches and takes fewer while a batch would hold fewer than
    ``MIN_BATCH_SAMPLES`` responses (unevenly spread seconds: a stall, a ramp). The one owner of the
    batching rule.
    """
    c = np.asarray(counts, dtype=np.int64)
    n, total = len(c), int(c.sum())
    none = np.empty(0, dtype=np.int64)
    b = batch_counts(n, total)
    if b == 0:
        if n < MIN_BATCHES:
            return none, f"only {n} s: fewer than {MIN_BATCHES} batches of whole seconds"
        if total < MIN_SAMPLES:
            return none, f"only {total} responses in {n} s: fewer than {MIN_SAMPLES}"
        return none, f"only {total} responses in {n} s: fewer than {MIN_BATCHES} batches of {MIN_BATCH_SAMPLES}"
    cumulative = np.concatenate(([0], np.cumsum(c)))
    for k in range(b, MIN_BATCHES - 1, -1):
        edges = batch_edges(n, k)
        if int(np.diff(cumulative[edges]).min()) >= MIN_BATCH_SAMPLES:
            return edges, ""
    return none, (
        f"{total} responses in {n} s, too unevenly spread: no split of the seconds into {MIN_BATCHES} to {b} "
        f"batches of equal length holds {MIN_BATCH_SAMPLES} in each"
    )


def _none(q: float, point: float, samples: int, reason: str) -> dict[str, Any]:
    return {"q": q, "point_us": point, "samples": samples, "batches": 0, "reason": reason}


def correlation(totals: np.ndarray, above: np.ndarray, starts: np.ndarray) -> float:
    """How many consecutive responses the slow ones come together over: the batches' shares of
    responses above the window's ``TAIL_Q`` percentile vary as much as shares of ``tau`` times fewer
    independent responses would (tau = responses a batch x variance of the batch shares / p(1 - p);
    at least 1). From the p95's tail, not the p99's: five times as many responses, so its spread is
    steadier, and read from the same kind of episode (a queue that builds and drains)."""
    n = np.add.reduceat(totals, starts).astype(float)
    shares = np.add.reduceat(above, starts) / n
    p = float(above.sum()) / float(totals.sum())
    if len(n) < 2 or not 0.0 < p < 1.0:
        return 1.0
    return max(1.0, float(n.mean() * shares.var(ddof=1) / (p * (1.0 - p))))


def _interval(
    q: float,
    point: float,
    totals: np.ndarray,
    at_or_below: np.ndarray,
    quantile_at: Callable[[float], float],
    confidence: float,
    above_tail: np.ndarray,
) -> dict[str, Any]:
    """The interval from per-second counts over consecutive seconds: all responses, and those at or
    below ``point`` (from histograms: below the latency it stands for, within its bucket).
    ``quantile_at(pct)`` is the window's ``pct`` percentile (0-100), the inverse of the counting: the
    window's share maps back to that latency, so the ends fall on either side of it whenever the
    batches' shares differ. ``above_tail`` (per second, the responses above the window's ``TAIL_Q``
    percentile) gives :func:`correlation`: a window whose responses above the point count as fewer
    than ``MIN_INDEPENDENT_TAIL`` independent ones gets none."""
    samples = int(totals.sum())
    edges, reason = plan(totals)
    if reason:
        return _none(q, point, samples, reason)
    starts = edges[:-1]
    tau = correlation(totals, above_tail, starts)
    tail = samples * (1.0 - q / 100.0)  # the responses above the point
    if tail / tau < MIN_INDEPENDENT_TAIL:
        seconds = math.ceil(len(totals) * MIN_INDEPENDENT_TAIL * tau / tail) if tail > 0 else 0
        out = _none(
            q,
            point,
            samples,
            f"the slow responses come together, about {tau:,.0f} at a time (a queue that builds and drains): "
            f"the {tail:,.0f} above the p{q:g} count as {tail / tau:,.1f} independent ones, fewer than "
            f"{MIN_INDEPENDENT_TAIL}"
            + (
                f"; run longer: at least about {seconds:,} s (more where the slow spells outlast the batches)"
                if seconds
                else ""
            ),
        )
        return out | {"correlation": round(tau, 1)}
    shares = np.add.reduceat(at_or_below, starts) / np.add.reduceat(totals, starts)
    share_low, share_high = sectioning(float(at_or_below.sum()) / samples, shares, confidence)
    if not share_high < 1.0:
        return _none(
            q,
            point,
            samples,
            f"too few responses above the p{q:g} to bound it: the upper end lies beyond the window's slowest response",
        )
    # min and max only matter when the batches' shares all agree (no spread), when the point lies above
    # the latency it stands for by more than the slow side (an interval about a bucket wide), or, from
    # samples, when the nearest rank rounds an end across it.
    low = min(point, quantile_at(100.0 * share_low)) if share_low > 0.0 else 0.0
    high = max(point, quantile_at(100.0 * share_high))
    b = len(starts)
    return {
        "q": q,
        "point_us": point,
        "low_us": low,
        "high_us": high,
        "half_width_rel": max(point - low, high - point) / point if point > 0 else math.nan,
        "batches": b,
        "batch_s": len(totals) / b,
        "samples": samples,
        "correlation": round(tau, 1),
        "confidence": confidence,
        "method": METHOD,
    }


def interval_from_samples(
    latencies: np.ndarray,
    seconds: np.ndarray,
    q: float = 99.0,
    point: float | None = None,
    confidence: float = CONFIDENCE,
) -> dict[str, Any]:
    """:func:`quantile_interval` from raw samples: ``latencies[i]`` completed in whole second ``seconds[i]``.

    Percentiles by HdrHistogram's rule (:func:`sample_quantile`), exactly, without its buckets.
    """
    lat = np.asarray(latencies, dtype=float)
    sec = np.asarray(seconds, dtype=np.int64)
    centre = sample_quantile(lat, q) if point is None else float(point)
    if lat.size == 0:
        return _none(q, centre, 0, "no responses")
    offset = sec - sec.min()
    totals = np.bincount(offset)
    at_or_below = np.bincount(offset, weights=lat <= centre)
    above_tail = np.bincount(offset, weights=lat > sample_quantile(lat, TAIL_Q))
    return _interval(q, centre, totals, at_or_below, lambda pct: sample_quantile(lat, pct), confidence, above_tail)


Layout = tuple[int, int, int]  # an HdrHistogram's counts length, sub-bucket half-count magnitude, unit magnitude


def _layout(h: HdrHistogram) -> Layout:
    return (h.counts_len, h.sub_bucket_half_count_magnitude, h.unit_magnitude)


@functools.lru_cache(maxsize=8)
def _bucket_ranges(layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """Per index of the counts array of an HdrHistogram of ``layout``: its bucket's lowest value and its
    width (the values lowest to lowest + width - 1 share it), as hdrh's lowest and highest equivalent values."""
    counts_len, half_magnitude, unit_magnitude = layout
    index = np.arange(counts_len, dtype=np.int64)
    half = 1 << half_magnitude
    bucket = (index >> half_magnitude) - 1
    sub = (index & (half - 1)) + half
    first = bucket < 0  # the first half-bucket: its values below half, at the unit resolution
    sub[first] -= half
    bucket[first] = 0
    shift = bucket + unit_magnitude
    lows, widths = np.left_shift(sub, shift), np.left_shift(np.ones_like(sub), shift)
    lows.flags.writeable = widths.flags.writeable = False
    return lows, widths


def _counts(h: HdrHistogram, top: int) -> np.ndarray:
    """A view of the first ``top`` bucket counts of ``h``."""
    return np.ctypeslib.as_array(h.counts)[:top]


class _Distribution:
    """The window's latency distribution from its per-second histograms' buckets, each bucket's count spread
    evenly over its values: a recorded value v (a truncated microsecond count) stands for a latency in
    [v, v + 1), so the bucket of lowest value l and width w holds latencies in [l, l + w). Its distribution
    function (:meth:`below`) and quantiles (:meth:`quantile`) are continuous and each other's inverse, so
    the share below a latency maps back to that latency, and no bucket edge leans the shares or the
    interval's ends one way."""

    def __init__(self, histograms: Sequence[HdrHistogram]) -> None:
        self.layout = _layout(histograms[0])
        # Only the buckets up to the highest value recorded in any of them (hdrh tracks it).
        self.top = 1 + max(h.get_counts_array_index(max(0, int(h.get_max_value()))) for h in histograms)
        self.top = min(self.top, self.layout[0])
        merged = np.zeros(self.top, dtype=np.uint64)  # hdrh's counters are unsigned 64-bit
        for h in histograms:
            merged += _counts(h, self.top)
        self.cumulative = np.cumsum(merged).astype(np.int64)
        lows, widths = _bucket_ranges(self.layout)
        self.lows, self.widths = lows[: self.top], widths[: self.top]

    @property
    def total(self) -> int:
        return int(self.cumulative[-1])

    def value_at_percentile(self, q: float) -> float:
        """HdrHistogram's ``get_value_at_percentile``: the highest value of the bucket holding the response
        at :func:`nearest_rank` (the lowest value for q = 0)."""
        target = max(1, int(min(q, 100.0) * self.total / 100 + 0.5))
        i = int(np.searchsorted(self.cumulative, target, side="left"))
        return float(self.lows[i] + (self.widths[i] - 1 if q else 0))

    def _bucket(self, value: float) -> tuple[int, float]:
        """The index of the bucket holding ``value`` and the share of the bucket's range below it."""
        if value >= float(self.lows[-1] + self.widths[-1]):
            return self.top, 0.0
        i = max(0, int(np.searchsorted(self.lows, value, side="right")) - 1)
        return i, min(1.0, max(0.0, (value - float(self.lows[i])) / float(self.widths[i])))

    def standing_for(self, point: float, q: float) -> float:
        """The latency ``point`` stands for, at which the shares are taken.

        HdrHistogram reports a percentile as the highest value of the bucket that holds the response at
        its rank; taking the shares there would lean them, and the interval with them, up by half a
        bucket on average. So: the window's own ``q`` percentile stands for that response's place in its
        bucket, the bucket's count spread evenly (the middle of the k-th of n responses' slot, the
        latency below which (k - 1/2) / n of them lie); another bucket's highest value (the caller's
        percentile, lifted by censored samples) for the bucket's middle; any other value for itself.
        """
        if point == self.value_at_percentile(q):
            return self.quantile((nearest_rank(q, self.total) - 0.5) / self.total)
        i, _ = self._bucket(point)
        if i < self.top and point == float(self.lows[i] + self.widths[i] - 1):
            return float(self.lows[i]) + float(self.widths[i]) / 2.0
        return point

    def below(self, h: HdrHistogram, value: float) -> float:
        """How many of ``h``'s responses lie below ``value``: all those of the buckets below its bucket and
        the share of its bucket's count that its bucket's range below it makes."""
        i, part = self._bucket(value)
        counts = _counts(h, self.top)
        return float(counts[:i].sum()) + (float(counts[i]) * part if i < self.top else 0.0)

    def quantile(self, share: float) -> float:
        """The latency below which ``share`` (0 to 1) of the responses lie: the inverse of :meth:`below`
        over the whole window, interpolated within the bucket where it falls."""
        target = min(max(share, 0.0), 1.0) * self.total
        i = min(int(np.searchsorted(self.cumulative, target, side="left")), self.top - 1)
        before = float(self.cumulative[i - 1]) if i else 0.0
        inside = float(self.cumulative[i]) - before
        part = (target - before) / inside if inside > 0 else 0.0
        return float(self.lows[i]) + float(self.widths[i]) * part


def quantile_interval(
    per_second: Sequence[tuple[int, HdrHistogram]],
    q: float = 99.0,
    point: float | None = None,
    confidence: float = CONFIDENCE,
) -> dict[str, Any]:
    """The interval of the ``q`` percentile over the window's whole seconds.

    ``per_second``: (epoch second, histogram of the successes completed in it) for the window's whole
    seconds, in any order; a second missing between the first and the last counts as one with no
    responses. The histograms share one layout (lowest, highest value, significant digits); one that
    does not is re-recorded into the first's. ``point`` (default: the ``q`` percentile of all the
    histograms merged, by HdrHistogram's rule) is the centre: when it is not the merged histograms' own
    (censored samples in it), the shares are taken at it, or at its bucket's middle when it is its
    bucket's highest value, as a percentile from a histogram of the same layout is.

    Within a bucket the responses are taken as spread evenly over its values (:class:`_Distribution`):
    the shares count the point's own bucket in part, at the latency it stands for
    (:meth:`_Distribution.standing_for`, within its bucket), and the ends are interpolated latencies, not
    bucket edges. They lie on either side of the point unless the interval is about a bucket wide (or
    the batches' shares all agree): then an end is stretched to the point.

    Returns ``q``, ``point_us``, ``low_us``, ``high_us``, ``half_width_rel`` (the longer side over the
    point), ``batches``, ``batch_s`` (mean seconds per batch), ``samples``, ``correlation`` (tau of
    :func:`correlation`), ``confidence``, ``method``; or, when no interval can be made, ``q``,
    ``point_us``, ``samples``, ``batches`` (0) and ``reason`` (and ``correlation`` when it decided).
    """
    rows = sorted(((int(s), h) for s, h in per_second if h.get_total_count()), key=lambda r: r[0])
    if not rows:
        return _none(q, math.nan if point is None else float(point), 0, "no responses")
    like = rows[0][1]
    rows = [(s, h if _layout(h) == _layout(like) else _relaid(h, like)) for s, h in rows]
    window = _Distribution([h for _, h in rows])
    if window.total != sum(h.get_total_count() for _, h in rows):  # a stale maximum: take every bucket
        window = _Distribution([_relaid(h, like) for _, h in rows])
    centre = window.value_at_percentile(q) if point is None else float(point)
    first = rows[0][0]
    totals = np.zeros(rows[-1][0] - first + 1, dtype=np.int64)
    below = np.zeros(len(totals), dtype=float)
    above_tail = np.zeros(len(totals), dtype=float)
    at, tail_at = window.standing_for(centre, q), window.quantile(TAIL_Q / 100.0)
    for s, h in rows:
        count = h.get_total_count()
        totals[s - first] += count
        below[s - first] += window.below(h, at)
        above_tail[s - first] += count - window.below(h, tail_at)
    return _interval(q, centre, totals, below, lambda pct: window.quantile(pct / 100.0), confidence, above_tail)


def _relaid(h: HdrHistogram, like: HdrHistogram) -> HdrHistogram:
    """``h`` recorded afresh in ``like``'s layout, its maximum tracked from its counts."""
    out = HdrHistogram(like.lowest_trackable_value, like.highest_trackable_value, like.significant_figures)
    out.add(h)
    nonzero = np.flatnonzero(_counts(out, out.counts_len))
    if nonzero.size:
        out.set_internal_tacking_values(int(nonzero[0]), int(nonzero[-1]), int(out.get_total_count()))
    return out


def precise_enough(interval: dict[str, Any], target: float) -> bool:
    """Whether ``interval`` is an interval from ``MIN_PRECISE_BATCHES`` batches or more whose relative half
    width is at most ``target`` (the stopping check)."""
    rel = interval.get("half_width_rel", math.nan)
    return interval.get("batches", 0) >= MIN_PRECISE_BATCHES and math.isfinite(rel) and rel <= target
