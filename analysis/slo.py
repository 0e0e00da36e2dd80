"""SLO thresholds, parsed into objects: ``STYLE:METRIC<VALUE[UNIT]``, for example
``sleep/async-await:p99<120ms``, ``db/asyncpg:rps>=200``, ``http/sync-def:failure_rate<1%``, and for
a capacity run ``sleep/async-await:mst>=1000`` (judged by analysis.capacity.evaluate).

The one reader of an SLO's text: its grammar (``METRIC<VALUE[UNIT]``), the units each metric takes
and their conversion. A capacity search's SLO (``p99<250ms``, no style: analysis.capacity.limits)
is the same limit without the style."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from analysis.summary import EVERY_START_COLUMNS, blocks_the_loop, is_bound
from analysis.validity import FAILURE_SHARE
from target_app import catalogue

# The percentiles measured (analysis.summary's columns), by the name an SLO gives them: p50 ... p99.9,
# over every start of the window (a failure at its latency, an unfinished request at its elapsed
# time): a timeout breaks a latency SLO as a slow success does.
PERCENTILES = {f"p{key}": column for key, column in EVERY_START_COLUMNS.items()}
METRICS = {
    **PERCENTILES,
    "rps": "rps",
    "failure_rate": "failure_rate",
    "mst": "mst_rps",  # a capacity run's maximum sustainable throughput (analysis.capacity)
}
OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}
PER_SECOND = ("rps", "mst")  # requests/s, whatever unit follows
# A limit, METRIC OP VALUE[UNIT]: a check's follows its STYLE:, a capacity search's stands alone.
LIMIT = r"(?P<metric>[\w.]+)\s*(?P<op><=|>=|<|>)\s*(?P<value>[0-9]*\.?[0-9]+)\s*(?P<unit>ms|s|%)?$"
PATTERN = re.compile(r"^(?P<style>[\w/-]+):" + LIMIT)
BARE = re.compile("^" + LIMIT)


class SloError(ValueError):
    pass


@dataclass(frozen=True)
class Threshold:
    text: str
    style: str
    metric: str
    op: str
    limit: float  # in the metric's own unit (ms, req/s, or a fraction)

    def holds(self, value: float) -> bool:
        return OPS[self.op](value, self.limit)


def unit_problem(metric: str, unit: str) -> str | None:
    """What is wrong with ``unit`` after ``metric``, in words; None when it fits."""
    if metric in PERCENTILES and unit == "%":
        return "a percentile takes ms or s"
    if metric == "failure_rate" and unit not in ("%", ""):
        return "failure_rate takes a fraction or %"
    if metric == "mst" and unit:
        return "mst is in requests/s, without a unit"
    return None


def in_units(metric: str, value: float, unit: str) -> float:
    """``value`` in the metric's own unit: ms for a percentile, a fraction for a rate of failures
    (``1%`` is 0.01: divided by 100, since multiplying by 0.01 is a unit in the last place off for
    some values, 3.1% among them), requests/s as written."""
    if metric in PER_SECOND:
        return value
    if unit == "%":
        return value / 100
    return value * 1000 if unit == "s" else value


def parse(text: str) -> Threshold:
    m = PATTERN.match(text.strip())
    if m is None:
        raise SloError(f"SLO {text!r}: expected STYLE:METRIC<VALUE, e.g. sleep/async-await:p99<120ms")
    style, metric, unit = m["style"], m["metric"], m["unit"] or ""
    if style not in catalogue.BY_ID:
        raise SloError(f"SLO {text!r}: unknown style {style!r}")
    if metric not in METRICS:
        raise SloError(f"SLO {text!r}: unknown metric {metric!r} (one of {', '.join(METRICS)})")
    problem = unit_problem(metric, unit)
    if problem:
        raise SloError(f"SLO {text!r}: {problem}")
    return Threshold(text.strip(), style, METRICS[metric], m["op"], in_units(metric, float(m["value"]), unit))


# judged: False when the value cannot decide (a lower bound under a "<" threshold it meets);
# valid: the cell's validity (analysis.validity), which `check` requires unless asked;
# at_least: the value is only a lower bound (the summary's ``{metric}_at_least``), shown "≥".
COLUMNS = [
    "slo",
    "cell",
    "users",
    "style_users",
    "value",
    "at_least",
    "passed",
    "expected_failure",
    "note",
    "judged",
    "valid",
]


LATENCY_METRICS = frozenset(PERCENTILES.values())


def evaluate(thresholds: list[Threshold], table: pd.DataFrame) -> pd.DataFrame:
    """One row per threshold and measured cell of its style: the value and whether it held.
    A threshold whose style was not measured fails: an SLO nobody checked is not met.
    ``expected_failure`` marks a check in a cell that shares its workers with a style blocking the
    event loop: the neighbour experiment exists to show that damage, so a failure there is the lesson.
    ``passed`` is left as measured, so a check command still counts it."""
    rows: list[dict[str, Any]] = []
    styles_by_cell = table.groupby("cell")["style"].agg(list).to_dict() if not table.empty else {}
    budgeted = {th.style for th in thresholds if th.metric == "failure_rate"}
    for th in thresholds:
        matching = table[table["style"] == th.style]
        if matching.empty:
            rows.append(
                {
                    "slo": th.text,
                    "cell": None,
                    "users": None,
                    "style_users": None,
                    "value": None,
                    "at_least": False,
                    "passed": False,
                    "expected_failure": False,
                    "note": "style not measured in this run",
                    "judged": True,
                    "valid": True,
                }
            )
        for r in matching.itertuples():
            value = float(getattr(r, th.metric))
            # Only latency is the lesson: a failure rate or a throughput floor broken beside a
            # blocking neighbour is a real failure.
            blockers = (
                _blocking_neighbours(th.style, styles_by_cell[r.cell])
                if r.together and th.metric in LATENCY_METRICS
                else []
            )
            passed = th.holds(value)
            note = _expected_note(blockers, passed)
            # Fast errors pull every start's percentiles down: a cell full of them must not pass a
            # latency SLO unless the SLOs name a failure budget for the style.
            failures = float(getattr(r, "failure_rate", 0.0) or 0.0)
            if th.metric != "failure_rate" and failures > FAILURE_SHARE and th.style not in budgeted:
                passed = False
                note = (
                    f"{failures:.1%} of requests failed: fast failures lower the percentiles, so this SLO "
                    f"needs a failure budget (add {th.style}:failure_rate<N%)"
                )
            # A percentile that unfinished requests reach is only a lower bound: below the limit it
            # cannot show the threshold holds; at or above it, the threshold is certainly broken.
            at_least = is_bound(r._asdict(), th.metric)
            judged = True
            if at_least and th.op in ("<", "<=") and passed:
                judged = False
                note = (
                    f"only a lower bound (≥ {value:,.1f}): requests of the window were unfinished when the "
                    "test stopped, so it cannot show the threshold holds; measure with a longer window or finish_s"
                )
            rows.append(
                {
                    "slo": th.text,
                    "cell": r.cell,
                    "users": r.users,
                    "style_users": r.style_users,
                    "value": value,
                    "at_least": at_least,
                    "passed": passed,
                    "expected_failure": bool(blockers) and failures <= FAILURE_SHARE,
                    "note": note,
                    "judged": judged,
                    "valid": bool(getattr(r, "valid", True)),
                }
            )
    return pd.DataFrame(rows, columns=COLUMNS)


def _expected_note(blockers: list[str], passed: bool) -> str:
    if not blockers:
        return ""
    shared = f"this cell shares its workers with {', '.join(blockers)}"
    if passed:
        return f"held although {shared}, where a failure is the lesson"
    return f"expected: {shared} (neighbour damage is the lesson)"


def _blocking_neighbours(style: str, cell_styles: list[str]) -> list[str]:
    return [s for s in cell_styles if s != style and blocks_the_loop(s)]
