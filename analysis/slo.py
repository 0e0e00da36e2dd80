"""SLO thresholds, parsed into objects: ``STYLE:METRIC<VALUE[UNIT]``, for example
``sleep/async-await:p99<120ms``, ``db/asyncpg:rps>=200``, ``http/sync-def:failure_rate<1%``, and for
a capacity run ``sleep/async-await:mst>=1000`` (judged by analysis.capacity.evaluate)."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from analysis.summary import blocks_the_loop
from target_app import catalogue

METRICS = {
    "p50": "p50_ms",
    "p95": "p95_ms",
    "p99": "p99_ms",
    "p99.9": "p999_ms",
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
UNITS = {"ms": 1.0, "s": 1000.0, "%": 0.01, "": 1.0}
PATTERN = re.compile(
    r"^(?P<style>[\w/-]+):(?P<metric>[\w.]+)\s*(?P<op><=|>=|<|>)\s*"
    r"(?P<value>[0-9]*\.?[0-9]+)\s*(?P<unit>ms|s|%)?$"
)


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


def parse(text: str) -> Threshold:
    m = PATTERN.match(text.strip())
    if m is None:
        raise SloError(f"SLO {text!r}: expected STYLE:METRIC<VALUE, e.g. sleep/async-await:p99<120ms")
    style, metric, unit = m["style"], m["metric"], m["unit"] or ""
    if style not in catalogue.BY_ID:
        raise SloError(f"SLO {text!r}: unknown style {style!r}")
    if metric not in METRICS:
        raise SloError(f"SLO {text!r}: unknown metric {metric!r} (one of {', '.join(METRICS)})")
    if metric.startswith("p") and metric != "p" and unit == "%":
        raise SloError(f"SLO {text!r}: a percentile takes ms or s")
    if metric == "failure_rate" and unit not in ("%", ""):
        raise SloError(f"SLO {text!r}: failure_rate takes a fraction or %")
    if metric == "mst" and unit:
        raise SloError(f"SLO {text!r}: mst is in requests/s, without a unit")
    scale = UNITS[unit] if metric not in ("rps", "mst") else 1.0
    return Threshold(text.strip(), style, METRICS[metric], m["op"], float(m["value"]) * scale)


# judged: False when the value cannot decide (a lower bound under a "<" threshold it meets);
# valid: the cell's validity (analysis.validity), which `check` requires unless asked.
COLUMNS = ["slo", "cell", "users", "style_users", "value", "passed", "expected_failure", "note", "judged", "valid"]


LATENCY_METRICS = frozenset({"p50_ms", "p95_ms", "p99_ms", "p999_ms"})
FAILURE_SHARE = 0.01  # above it, a latency or throughput SLO fails unless a failure budget is named


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
            # Percentiles are of successful requests: a cell full of fast errors must not pass a
            # latency SLO unless the SLOs name a failure budget for the style.
            failures = float(getattr(r, "failure_rate", 0.0) or 0.0)
            if th.metric != "failure_rate" and failures > FAILURE_SHARE and th.style not in budgeted:
                passed = False
                note = (
                    f"{failures:.1%} of requests failed: percentiles are of successes only, so this SLO "
                    f"needs a failure budget (add {th.style}:failure_rate<N%)"
                )
            # A percentile that unfinished requests reach is only a lower bound: below the limit it
            # cannot show the threshold holds; at or above it, the threshold is certainly broken.
            judged = True
            if bool(getattr(r, f"{th.metric}_at_least", False)) and th.op in ("<", "<=") and passed:
                judged = False
                note = (
                    f"only a lower bound (≥ {value:,.1f}): requests were unfinished when the window "
                    "closed, so it cannot show the threshold holds; measure with a longer window"
                )
            rows.append(
                {
                    "slo": th.text,
                    "cell": r.cell,
                    "users": r.users,
                    "style_users": r.style_users,
                    "value": value,
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
