"""When a driven test stops itself: after its run time or, precision-driven, once every style's p99
is known to within the target (analysis.precision), or at its maximum window: pure decisions.

The master checks each second from the minimum window on, over the seconds whose responses every
worker has sent it (:func:`complete_until`): a worker slow to report holds the check back instead
of thinning its seconds. The interval comes from analysis.precision, which loads no pandas.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from analysis import precision
from target_app.catalogue import CANARY

RUN_TIME = "run time"
PRECISION_REACHED = "precision reached"
MAXIMUM_WINDOW = "maximum window"
CHECK_S = 1.0  # how often a precision-driven test asks whether its p99s are precise yet
# Workers report every second (Locust's default is 3): a precision-driven test sees its data sooner,
# and the live tab is fresher. A second is complete at the master once every worker reported after it.
REPORT_INTERVAL_S = 1.0
REPORT_LAG_S = 2 * REPORT_INTERVAL_S  # no worker reports known: wait this long
REPORT_MARGIN_S = 0.01  # a response is stamped a moment before it is recorded


def verdict(intervals: Mapping[str, dict[str, Any]], target: float, now: float, deadline: float) -> str:
    """Why a precision-driven test stops at ``now``, or "" to measure on: its maximum window is
    reached (``deadline``), or every style has an interval (``intervals``, by style) precise to
    ``target`` (analysis.precision.precise_enough)."""
    if now >= deadline:
        return MAXIMUM_WINDOW
    if intervals and all(precision.precise_enough(i, target) for i in intervals.values()):
        return PRECISION_REACHED
    return ""


def complete_until(workers: Sequence[str], reported_at: Mapping[str, float], measure_from: float, now: float) -> float:
    """Up to when every worker's responses have reached the master: the earliest of the moments their
    last reports were taken (each carries everything its worker recorded before it, on its own clock),
    a moment's margin off. ``workers``: those told of the test and still heard from (one gone missing
    cannot hold the check back); none: a local runner, whose seconds are complete a report lag ago.
    Workers on other hosts are taken to keep this host's time."""
    if not workers:
        return now - REPORT_LAG_S
    if any(w not in reported_at for w in workers):
        return measure_from
    return min(reported_at[w] for w in workers) - REPORT_MARGIN_S


def window_seconds(
    per_second: Iterable[tuple[tuple[str, int], Any]], measure_from: float, until: float
) -> dict[str, list[tuple[int, Any]]]:
    """Each style's per-second histograms (the capture's, ``((name, second), histogram)``) of the
    window's whole seconds up to ``until``. The canary is not a style: its p99 neither stops a test
    nor is one of its intervals."""
    by_style: dict[str, list[tuple[int, Any]]] = {}
    for (name, second), h in per_second:
        if name != CANARY and measure_from <= second and second + 1 <= until:
            by_style.setdefault(name, []).append((second, h))
    return by_style


def p99_intervals(
    per_second: Iterable[tuple[tuple[str, int], Any]],
    measure_from: float,
    until: float,
    points: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """Each style's p99 with its interval (analysis.precision) over the window up to ``until``,
    centred on ``points`` where given. An interval that cannot be computed says why: it never
    costs the test its save."""
    out = {}
    for name, seconds in window_seconds(per_second, measure_from, until).items():
        try:
            out[name] = precision.quantile_interval(seconds, point=(points or {}).get(name))
        except Exception as exc:  # noqa: BLE001 (kept in the results, in words)
            out[name] = {"q": 99.0, "batches": 0, "reason": f"the interval could not be computed: {exc!r}"}
    return out
