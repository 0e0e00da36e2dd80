"""SLO thresholds, parsed into objects: ``STYLE:METRIC<VALUE[UNIT]``, for example
``sleep/async-await:p99<120ms``, ``db/asyncpg:rps>=200``, ``http/sync-def:failure_rate<1%``."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from target_app import catalogue

METRICS = {"p50": "p50_ms", "p95": "p95_ms", "p99": "p99_ms", "p99.9": "p999_ms", "rps": "rps",
           "failure_rate": "failure_rate"}
OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}
UNITS = {"ms": 1.0, "s": 1000.0, "%": 0.01, "": 1.0}
PATTERN = re.compile(r"^(?P<style>[\w/-]+):(?P<metric>[\w.]+)\s*(?P<op><=|>=|<|>)\s*"
                     r"(?P<value>[0-9]*\.?[0-9]+)\s*(?P<unit>ms|s|%)?$")


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
    scale = UNITS[unit] if metric != "rps" else 1.0
    return Threshold(text.strip(), style, METRICS[metric], m["op"], float(m["value"]) * scale)


def evaluate(thresholds: list[Threshold], table: pd.DataFrame) -> pd.DataFrame:
    """One row per threshold and measured cell of its style: the value and whether it held.
    A threshold whose style was not measured fails: an SLO nobody checked is not met."""
    rows = []
    for th in thresholds:
        matching = table[table["style"] == th.style]
        if matching.empty:
            rows.append({"slo": th.text, "cell": None, "users": None, "value": None, "passed": False,
                         "note": "style not measured in this run"})
        for r in matching.itertuples():
            value = float(getattr(r, th.metric))
            rows.append({"slo": th.text, "cell": r.cell, "users": r.users, "value": value,
                         "passed": th.holds(value), "note": ""})
    return pd.DataFrame(rows, columns=["slo", "cell", "users", "value", "passed", "note"])
