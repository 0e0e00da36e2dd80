"""``check`` on a capacity run: ``STYLE:mst>=N`` thresholds (analysis.slo.Threshold) judged against
its capacity.json, one row per threshold and server shape of its style."""

from __future__ import annotations

from typing import Any

from analysis.capacity.doc import shape_label
from analysis.slo import Threshold


def evaluate(doc: dict[str, Any], thresholds: list[Threshold]) -> list[dict[str, Any]]:
    """``STYLE:mst>=N`` thresholds (analysis.slo.Threshold) against a capacity.json: one row per
    threshold and server shape of its style. A confirmed MST is judged as it is; one confirmed at
    the search's upper bound is a lower bound that proves a floor it meets; an MST below the
    search's lower bound fails a floor at or above it; an unconfirmed search proves nothing."""
    rows = []
    for th in thresholds:
        mine = [r for r in doc.get("styles", []) if r["style"] == th.style]
        if not mine:
            rows.append(_row(th, None, None, False, True, "style not searched in this run"))
        floor = th.op in (">", ">=")
        for r in mine:
            where = shape_label(r["shape"])
            value = r.get("mst_rps")
            if value is not None and not r.get("at_search_bound"):
                rows.append(_row(th, where, value, th.holds(value), True, ""))
            elif value is not None and floor and th.holds(value):
                rows.append(_row(th, where, value, True, True, f"at least {value:,.4g} req/s (the search's bound)"))
            elif value is not None:
                rows.append(_row(th, where, value, False, False, "at least this: the search's upper bound"))
            elif r.get("upper_bound_rps") is not None and floor and not th.holds(r["upper_bound_rps"]):
                below = r["upper_bound_rps"]
                rows.append(
                    _row(th, where, below, False, True, f"below {below:,.4g} req/s (failed at the lower bound)")
                )
            else:
                low = r.get("lower_bound_rps")
                said = f" (best passing probe {low:,.4g} req/s)" if low is not None else ""
                rows.append(_row(th, where, low, False, False, f"no confirmed MST{said}: not judged"))
    return rows


def _row(
    th: Threshold, where: str | None, value: float | None, passed: bool, judged: bool, note: str
) -> dict[str, Any]:
    return {
        "slo": th.text,
        "style": th.style,
        "shape": where,
        "value": value,
        "passed": passed,
        "judged": judged,
        "note": note,
    }
