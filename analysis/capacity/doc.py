"""``capacity.json``, the document of a capacity run (schema in the README): per search its probes,
MST and theory's numbers; per style and server shape the MST over repeats with its interval and
ratios; each style against its family's baseline. Built from run.json's state as it stands, so an
interrupted run keeps what it found."""

from __future__ import annotations

import math
import statistics
from typing import Any

from analysis.capacity.judgement import PROBE_RULES
from analysis.capacity.limits import latency_limit_ms, parse_slo
from analysis.capacity.mst_stats import ALPHA, differ, mst_interval
from analysis.capacity.power import KNEE_METHOD, knee
from analysis.capacity.prediction import PREDICTION_METHOD, theory_numbers
from analysis.load import json_safe
from analysis.repeats import INTERVAL_METHOD
from target_app import catalogue

SCHEMA_VERSION = 1
SHAPE_KEYS = ("server_workers", "worker_class", "threadpool_tokens", "db_pool_size", "wait_ms", "work", "fanout")
SEARCH_METHOD = (
    "geometric ramp from the start rate (x growth while probes pass), bisection in geometric steps until the "
    "highest passing and lowest failing rates are within the tolerance, then a longer confirmation probe at the "
    "highest passing rate (a failed confirmation makes it a failing rate and the search goes on below)"
)


def baseline_of(style: str) -> str:
    """The family's baseline style (catalogue.baseline); your app's route is its own."""
    if style not in catalogue.BY_ID:
        return style
    return catalogue.baseline(catalogue.family_of(style)).id


def style_key(row: dict[str, Any]) -> tuple[str, str]:
    """A style and server shape as one key, the shape's settings in any order."""
    return row["style"], repr(sorted(row["shape"].items()))


def shape_label(shape: dict[str, Any]) -> str:
    """A server shape in words: every setting that can tell two shapes apart."""
    return ", ".join(f"{k}={v}" for k, v in shape.items())


def _probe_view(cell: dict[str, Any]) -> dict[str, Any]:
    v = cell.get("probe") or {}
    keep = (
        "achieved_rps",
        "requests",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "p99_at_least",
        "mean_ms",
        "error_share",
        "trend",
        "notes",
        "set_aside",
    )
    return {
        "cell": cell.get("id"),
        "phase": cell.get("phase") or (cell.get("id", "").split("-")[-2] if cell.get("id") else None),
        "offered_rps": cell.get("arrival_rate"),
        "users": cell.get("users"),
        "window_s": cell.get("window_s"),
        "status": cell.get("status"),
        "outcome": "pass" if v.get("passed") else "set aside" if v.get("set_aside") else "fail" if v else "not judged",
        "failed_rules": v.get("failed", []),
        "why": v.get("why", []),
        **{k: v.get(k) for k in keep},
        "generator_cpu_cores": cell.get("generator_cpu_cores"),
    }


def generator_s_per_request(probes: list[dict[str, Any]]) -> float:
    """The generator's CPU seconds per request over a search's probes (median), NaN without data."""
    ratios = [
        p["generator_cpu_cores"] / p["achieved_rps"]
        for p in probes
        if isinstance(p.get("generator_cpu_cores"), (int, float))
        and isinstance(p.get("achieved_rps"), (int, float))
        and p["achieved_rps"] > 0
    ]
    return statistics.median(ratios) if ratios else math.nan


def document(state: dict[str, Any], machine_cores: float, complete: bool) -> dict[str, Any]:
    """``capacity.json`` (schema in the README): per search its probes, MST and theory's numbers;
    per style and server shape the MST over repeats with its interval and ratios."""
    cap = state.get("capacity") or {}
    slos = [parse_slo(t) for t in cap.get("slo", [])]
    limit = latency_limit_ms(slos)
    calibration = state.get("calibration")
    searches = []
    for entry in cap.get("searches", []):
        cell = entry["cell"]
        probes = [_probe_view(c) for c in state.get("cells", []) if c.get("search") == entry["search"]]
        gen = generator_s_per_request(probes)
        numbers = theory_numbers(entry["style"], cell, calibration, machine_cores, gen, limit)
        mst = entry.get("mst_rps")
        searches.append(
            {
                "search": entry["search"],
                "style": entry["style"],
                "shape": {k: cell.get(k) for k in SHAPE_KEYS},
                "repeat": cell.get("repeat", 1),
                "outcome": entry.get("outcome", "running"),
                "mst_rps": mst,
                "confirmed": bool(entry.get("confirmed")),
                "bracket_rps": entry.get("bracket"),
                "lower_bound_rps": None if mst is not None else entry.get("best_unconfirmed_rps"),
                "below_rps": entry.get("below_rps"),
                "at_search_bound": bool(entry.get("lower_bound")),
                "start_rps": entry.get("start_rps"),
                # Passes above a confirmed MST were refuted by a confirmation: not operating points.
                "knee_rps": knee(
                    [p for p in probes if p["outcome"] == "pass" and (mst is None or p["offered_rps"] <= mst)]
                ),
                "generator_s_per_request": gen,
                **numbers,
                "probes": probes,
            }
        )
    styles: dict[tuple[str, str], dict[str, Any]] = {}
    for s in searches:
        row = styles.setdefault(style_key(s), {"style": s["style"], "shape": s["shape"], "searches": []})
        row["searches"].append(s)
    out_styles = [_style_row(row["style"], row["shape"], row["searches"]) for row in styles.values()]
    by_key = {style_key(r): r for r in out_styles}
    comparisons = []
    for r in out_styles:
        base = by_key.get(style_key({"style": baseline_of(r["style"]), "shape": r["shape"]}))
        r["baseline"] = base["style"] if base else None
        r["vs_baseline"] = r["mst_rps"] / base["mst_rps"] if base and base["mst_rps"] and r["mst_rps"] else None
        # A bound is never a denominator; over an exact MST, a style's bound makes the ratio a bound.
        r["vs_baseline_at_least"] = False
        r["vs_baseline_note"] = None
        if base is not None and base is not r and r["vs_baseline"] is not None:
            if base["at_search_bound"]:
                r["vs_baseline"] = None
                r["vs_baseline_note"] = (
                    f"{base['style']}'s MST is only a lower bound (it reached its search's highest rate)"
                )
            else:
                r["vs_baseline_at_least"] = r["at_search_bound"]
        if base and base is not r:
            comparisons.append({"a": base["style"], "b": r["style"], **differ(base["values"], r["values"])})
    return json_safe(
        {
            "schema": f"routebench.capacity/{SCHEMA_VERSION}",
            "run_id": state.get("run_id"),
            "complete": complete,
            "slo": [s["text"] for s in slos],
            "methods": {
                "search": SEARCH_METHOD,
                "probe": "every rule holds: " + ", ".join(PROBE_RULES),
                "knee": KNEE_METHOD,
                "prediction": PREDICTION_METHOD,
                "interval": INTERVAL_METHOD,
                "comparison": f"Welch's t-test over the repeats' MSTs, alpha {ALPHA}",
            },
            "styles": out_styles,
            "comparisons": comparisons,
            "searches": searches,
        }
    )


def _style_row(style: str, shape: dict[str, Any], searches: list[dict[str, Any]]) -> dict[str, Any]:
    """One style and shape over its repeats. The MST is the repeats' mean only when every repeat
    confirmed one; otherwise the row gives the least of their best rates as an unconfirmed lower
    bound, or, when every search failed at its lower bound, that bound as an upper one."""
    found = [s["mst_rps"] for s in searches if s["mst_rps"] is not None]
    whole = len(found) == len(searches)
    interval = mst_interval(found, [(s.get("bracket_rps") or [None, None])[1] for s in searches]) if whole else {}
    mean = interval.get("mean")
    first = searches[0]
    predicted = first.get("predicted_mst_rps")
    knees = [s["knee_rps"] for s in searches if s["knee_rps"] is not None]
    best = [s["mst_rps"] if s["mst_rps"] is not None else s.get("lower_bound_rps") for s in searches]
    known = [b for b in best if b is not None]
    below = [s.get("below_rps") for s in searches]
    return {
        "style": style,
        "shape": shape,
        "mst_rps": mean,
        "mst_interval": interval,
        "repeats": len(searches),
        "confirmed": len(found),
        "at_search_bound": any(s["at_search_bound"] for s in searches),
        "lower_bound_rps": None if whole or len(known) < len(best) else min(known),
        "upper_bound_rps": below[0] if below and all(b is not None for b in below) else None,
        "predicted_mst_rps": predicted,
        "ceiling_rps": first.get("ceiling_rps"),
        "knee_rps": statistics.median(knees) if knees else None,
        "probes": sum(len(s["probes"]) for s in searches),
        "vs_predicted": mean / predicted if mean and predicted else None,
        "values": found if whole else [],
    }
