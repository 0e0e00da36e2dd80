"""Per cell and style: throughput, exact and Locust-rounded percentiles, the exact mean, failures,
saturation, and each style's ratio to its own family's baseline at the same users and shape; points
(one per style, users and shape, repeats averaged, n kept) and the neighbour table (a style alone
against the same style beside others).

:data:`SHAPE` is the one definition of what makes two cells comparable: every stage that groups or
matches cells (baseline ratios, points, neighbour matching, the decision table, the charts, the
answers) keys on it, plus users and repeat where they apply.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any

import numpy as np
import pandas as pd

from analysis import validity
from analysis.load import CellData, Run, ok_cells, window_s
from analysis.rundir import LAB_SERVICES, measured_until
from analysis.timeseries import stall_summary
from routebench.serverside.stalls import OUTSIDE_APP
from target_app import catalogue

# Everything of the load and the server a cell was measured with, except its users and repeat.
# A run written before a field existed leaves it missing (NaN / None); missing equals missing.
SHAPE = [
    "model",
    "arrival_rate",
    "server_workers",
    "threadpool_tokens",
    "db_pool_size",
    "worker_class",
    "wait_ms",
    "work",
    "fanout",
]
POINT = ["family", "style", "users", *SHAPE]

# users: the cell's; style_users: those on this style (fewer in a cell shared with other styles).
COLUMNS = [
    "cell",
    "group",
    "together",
    "repeat",
    "family",
    "style",
    "users",
    "style_users",
    "server_workers",
    "threadpool_tokens",
    "db_pool_size",
    "worker_class",
    "model",
    "wait_ms",
    "work",
    "fanout",
    "arrival_rate",
    "requests",
    "locust_requests",
    "locust_rps",
    "window_s",
    "failures",
    "failure_rate",
    "rps",
    "mean_ms",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "p999_ms",
    "locust_p50_ms",
    "locust_p95_ms",
    "locust_p99_ms",
    "late_starts",
    "generator_saturated",
    "censored",
    "mean_ms_at_least",
    "p50_ms_at_least",
    "p95_ms_at_least",
    "p99_ms_at_least",
    "p999_ms_at_least",
    "p50_all_ms",
    "p95_all_ms",
    "p99_all_ms",
    "p999_all_ms",
    "p50_all_ms_at_least",
    "p95_all_ms_at_least",
    "p99_all_ms_at_least",
    "p999_all_ms_at_least",
    "p99_low_ms",
    "p99_high_ms",
    "p99_half_width",
    "p99_batches",
    "p99_no_interval",
    "stopped_by",
    "offered",
    "sent",
    "unsent_at_stop",
    "inflight_at_stop",
    "canary_p50_ms",
    "canary_p99_ms",
    "canary_p99_ms_at_least",
    "canary_requests",
    "canary_failures",
    "canary_late_starts",
    "cell_workers_cpu_ms",
    *(f"{name}_cpu_{unit}" for name in LAB_SERVICES for unit in ("cores", "ms")),
    "users_per_worker",
    "blocked_share",
    "own_code_share",
    "stalls",
    "top_site",
    "top_site_share",
    "valid",
    "invalid_because",
    "validity_failed",
]
# Metric -> its ratio to the family baseline's (same users, same shape).
BASELINE_RATIOS = {"rps": "rps_vs_baseline", "p95_ms": "p95_vs_baseline", "p99_ms": "p99_vs_baseline"}


def style_users(cell: dict[str, Any], style: str) -> float:
    """Users driving ``style`` in ``cell``: the runner's own count when it wrote one, else an even
    split, which is what Locust does between user classes of equal weight (exact when it divides)."""
    by_style = cell.get("users_by_style")
    if isinstance(by_style, dict) and style in by_style:
        return float(by_style[style])
    users = cell.get("users")
    if not isinstance(users, (int, float)):
        return np.nan  # a web-UI session: users change while it runs
    return users / max(1, len(cell["styles"]))


def valid_rows(table: pd.DataFrame) -> pd.Series:
    """Which rows of ``table`` (a summary table) are valid: its ``valid`` column, a missing value not
    valid; every row of a table without the column (one built by hand, with no validity to check)."""
    if "valid" not in table.columns:
        return pd.Series(True, index=table.index)
    return table["valid"].astype("boolean").fillna(False).astype(bool)


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else np.nan


def cell_rows(run: Run, cell: dict[str, Any]) -> list[dict[str, Any]]:
    data = run.data[cell["id"]]
    exact, window = data.exact["requests"], window_s(data.exact)
    stats = data.stats.set_index("Name")
    verdict = cell_validity(cell, data)
    until = measured_until(data.exact)
    workers_cpu = workers_cpu_s(data.telemetry, data.exact.get("measure_from"), until) - canary_cpu_s(run, data.exact)
    placement = users_per_worker(cell)
    stalls = stall_summary(data.telemetry, data.exact.get("measure_from"), until)
    rows = []
    for style in cell["styles"]:
        e = exact.get(style)
        if style not in stats.index or e is None:
            continue
        s = stats.loc[style]
        pct = e["percentiles_us"]
        # Counts and rate from the exact capture over the window it covers: Locust's own can carry
        # warm-up reports that reached the master after its reset (kept beside, as locust_rps).
        locust_requests, failures = int(s["Request Count"]), int(s["Failure Count"])
        if "failures" in e:  # failures in their own histogram: count is successes only
            failures = int(e["failures"])
            completed = int(e["count"]) + failures
            # Open model: what completed in the window though scheduled in the warm-up is not in
            # the latency distribution (its schedule was not the window's) but is throughput.
            # With a tail (capacity probes) the window's own starts only, as the probe judged them.
            served_in_window = completed + (
                0 if data.exact.get("measure_until") else int(e.get("started_in_warmup", 0))
            )
        else:  # runs from before: count held every response, failed or not
            completed = int(e["count"]) if window else locust_requests
            served_in_window = completed
        requests = completed - failures
        rps = served_in_window / window if window else float(s["Requests/s"])
        censored = int(e.get("censored", 0))
        at_least = set(e.get("at_least") or [])
        # This style's reasons, and the cell's own (generator, workers, reports) that hold for all.
        reasons = [
            r.removeprefix(f"{style}: ")
            for r in verdict["reasons"]
            if r.startswith(f"{style}:") or not any(r.startswith(f"{o}:") for o in cell["styles"])
        ]
        rows.append(
            {
                "cell": cell["id"],
                "group": cell["group"],
                "together": len(cell["styles"]) > 1,
                "repeat": cell.get("repeat", 1),
                "family": catalogue.family_of(style),
                "style": style,
                "users": cell["users"],
                "style_users": style_users(cell, style),
                "server_workers": cell["server_workers"],
                "threadpool_tokens": _number(cell.get("threadpool_tokens")),
                "db_pool_size": _number(cell.get("db_pool_size")),
                "worker_class": cell.get("worker_class"),
                "model": cell["model"],
                "wait_ms": cell.get("wait_ms"),
                "work": cell.get("work"),
                "fanout": cell.get("fanout"),
                "arrival_rate": cell.get("arrival_rate"),
                "requests": requests,
                "failures": failures,
                "failure_rate": failures / completed if completed else 0.0,
                "rps": rps,
                "locust_requests": locust_requests,
                "locust_rps": float(s["Requests/s"]),
                "window_s": window,
                "mean_ms": _number(e.get("completed_mean_us", e.get("mean_us"))) / 1000,
                **{col: pct[key] / 1000 for key, col in PERCENTILE_COLUMNS.items()},
                "locust_p50_ms": float(s["50%"]),
                "locust_p95_ms": float(s["95%"]),
                "locust_p99_ms": float(s["99%"]),
                "late_starts": int(e.get("late_starts", 0)),
                "generator_saturated": bool(cell.get("generator_saturated", False)),
                # Unfinished when the window closed, kept at their elapsed time: the percentiles
                # they reach are lower bounds (``*_at_least``).
                "censored": censored,
                **{f"{col}_at_least": key in at_least for key, col in PERCENTILE_COLUMNS.items()},
                # The mean of completed requests leaves the unfinished ones out: with any of them,
                # the true mean is larger (a lower bound too).
                "mean_ms_at_least": censored > 0,
                **every_start(e),
                **p99_interval(data.exact, style, "99" in at_least),
                "stopped_by": cell.get("stopped_by", ""),
                "offered": _number(e.get("offered")) if cell["model"] == "open" else np.nan,
                "sent": _number(e.get("sent")) if cell["model"] == "open" else np.nan,
                "unsent_at_stop": _number(e.get("unsent_at_stop")) if cell["model"] == "open" else np.nan,
                "inflight_at_stop": _number(e.get("inflight_at_stop")),
                **canary(data.exact),
                # The Gunicorn workers' own CPU per request in this cell (solo cells only: a
                # shared cell's CPU cannot be split between its styles).
                "cell_workers_cpu_ms": workers_cpu / completed * 1000
                if len(cell["styles"]) == 1 and completed
                else np.nan,
                **lab_cpu(cell, rps, len(cell["styles"]) == 1),
                "users_per_worker": placement,
                **blocked_by(stalls, run.path_of(style), len(cell["styles"]) == 1),
                "valid": not reasons,
                "invalid_because": "; ".join(reasons),
                "validity_failed": ", ".join(verdict["failed"]) if reasons else "",
            }
        )
    return rows


def lab_cpu(cell: dict[str, Any], rps: float, solo: bool) -> dict[str, float]:
    """The cores each of the lab's services (the upstream, PostgreSQL) took over the window, and per
    request of a solo cell (a shared cell's cannot be split between its styles); NaN unmeasured."""
    took = cell.get("lab_cpu_cores") or {}
    out = {}
    for name in LAB_SERVICES:
        cores = _number(took.get(name))
        out[f"{name}_cpu_cores"] = cores
        out[f"{name}_cpu_ms"] = cores / rps * 1000 if solo and rps > 0 else np.nan
    return out


def p99_interval(exact: dict[str, Any], style: str, lower_bound: bool) -> dict[str, Any]:
    """The 95% interval of the style's p99 the Locust master computed at the save
    (analysis.precision: sectioning over batches of whole seconds), or why there is none."""
    iv = (exact.get("p99_intervals") or {}).get(style) or {}
    why = iv.get("reason", "" if iv else "not recorded (a run from before intervals were saved)")
    if lower_bound and not why:
        why = "the p99 is a lower bound (requests unfinished at the stop reach it)"
    if why:
        return {
            "p99_low_ms": np.nan,
            "p99_high_ms": np.nan,
            "p99_half_width": np.nan,
            "p99_batches": 0,
            "p99_no_interval": why,
        }
    return {
        "p99_low_ms": iv["low_us"] / 1000,
        "p99_high_ms": iv["high_us"] / 1000,
        "p99_half_width": iv["half_width_rel"],
        "p99_batches": int(iv["batches"]),
        "p99_no_interval": "",
    }


def blocked_by(stalls: dict[str, Any], path: str, alone: bool) -> dict[str, Any]:
    """The share of the window the server's loops were stalled by the requests to ``path`` (a
    style's, or your route's), and the call site that stalled them most: a solo cell's whole
    record; in a shared cell, the sites whose running route was this path (NaN/empty without the
    detector's samples)."""
    if not stalls:
        return {
            "blocked_share": np.nan,
            "own_code_share": np.nan,
            "stalls": np.nan,
            "top_site": "",
            "top_site_share": np.nan,
        }
    sites = stalls["sites"] if alone else [s for s in stalls["sites"] if s.get("route") == path]
    mine = sum(s["ms"] for s in sites)
    total = sum(s["ms"] for s in stalls["sites"])
    share = stalls["blocked_share"] if alone else (stalls["blocked_share"] * mine / total if total else 0.0)
    top = sites[0] if sites else None
    # The part of it in the application's own code (a site under the app's root), not the loop's
    # own code nor a library's: what "blocks the event loop" means.
    own = sum(s["ms"] for s in sites if own_code(s["site"]))
    return {
        "blocked_share": share,
        "own_code_share": share * own / mine if mine else 0.0,
        "stalls": stalls["stalls"] if alone else sum(s["n"] for s in sites),
        "top_site": top["site"] if top else "",
        "top_site_share": top["ms"] / mine if top and mine else np.nan,
    }


def own_code(site: str) -> bool:
    """A call site in the application's code: a path relative to its root (target_app/...), not
    the loop's own code and not a file elsewhere (a library, the standard library)."""
    return bool(site) and not site.startswith((OUTSIDE_APP, "/"))


def users_per_worker(cell: dict[str, Any]) -> list[float] | float:
    """A closed cell of one style: the users each server worker held, from the established
    connections the runner counted on each worker during the window (where the users' keep-alive
    connections landed: an input the kernel decided, not an outcome of the route), scaled to the
    cell's users; NaN when not recorded (shared or open cells, runs from before, a worker replaced)."""
    placed = cell.get("connections_per_worker")
    users = cell.get("users")
    if (
        cell.get("model") != "closed"
        or len(cell.get("styles", [])) != 1
        or not isinstance(placed, list)
        or len(placed) != cell.get("server_workers")
        or not sum(placed) > 0
        or not isinstance(users, (int, float))
    ):
        return np.nan
    return [round(n * users / sum(placed), 2) for n in placed]


def canary_cpu_s(run: Run, exact: dict[str, Any]) -> float:
    """The workers' CPU seconds the canary's requests of the window cost, by the calibration's probe of
    it (0 when either is missing: your app's cells, runs from before the canary)."""
    per_request = ((run.meta.get("calibration") or {}).get("canary") or {}).get("workers_cpu_s_per_request")
    c = exact.get("canary") or {}
    return float(per_request or 0.0) * (int(c.get("count", 0)) + int(c.get("failures", 0)))


# Starts of the canary's schedule a worker may account differently from its window: the master's
# "window ends" message reaches the worker a moment after the end (closed model, let finish).
CANARY_SLACK = 2


def canary(exact: dict[str, Any]) -> dict[str, Any]:
    """The canary's numbers in the cell (catalogue.CANARY: what a request to another route of the
    same workers met meanwhile): its percentiles over every start of the window (failed and
    unfinished ones too, at their elapsed time), from each request's intended start; NaN without one."""
    c = exact.get("canary") or {}
    accounted = int(c.get("count", 0)) + int(c.get("failures", 0)) + int(c.get("censored", 0))
    if c and int(c.get("offered", 0)) > accounted + CANARY_SLACK:
        c = {}  # starts of its schedule neither answered nor censored: Locust moved it mid-test
    pct, at_least = c.get("every_start_percentiles_us") or {}, set(c.get("every_start_at_least") or [])
    return {
        "canary_p50_ms": pct["50"] / 1000 if "50" in pct else np.nan,
        "canary_p99_ms": pct["99"] / 1000 if "99" in pct else np.nan,
        "canary_p99_ms_at_least": "99" in at_least,
        "canary_requests": accounted if c else np.nan,
        "canary_failures": int(c.get("failures", 0)) if c else np.nan,
        "canary_late_starts": int(c.get("late_starts", 0)) if c else np.nan,
    }


def every_start(e: dict[str, Any]) -> dict[str, Any]:
    """A style's percentiles over every start of the window, each with whether it is only a lower
    bound. A run from before they were recorded: its successes' where nothing failed, else NaN."""
    pct, at_least = e.get("every_start_percentiles_us"), e.get("every_start_at_least")
    if pct is None and not int(e.get("failures", 0)):
        pct, at_least = e.get("percentiles_us") or {}, e.get("at_least") or []
    pct, at_least = pct or {}, set(at_least or [])
    return {
        **{col: pct[key] / 1000 if key in pct else np.nan for key, col in EVERY_START_COLUMNS.items()},
        **{f"{col}_at_least": key in at_least for key, col in EVERY_START_COLUMNS.items()},
    }


def workers_cpu_s(telemetry: pd.DataFrame, start: Any, end: Any) -> float:
    """CPU seconds the server's workers used in [start, end], from their own samples (NaN when the
    run's telemetry has no CPU readings)."""
    if "cpu_s" not in telemetry.columns or not isinstance(start, (int, float)) or not isinstance(end, (int, float)):
        return np.nan
    total = 0.0
    for _, samples in telemetry.dropna(subset=["cpu_s"]).groupby("pid"):
        inside = samples[(samples["t"] >= start) & (samples["t"] <= end)]
        if len(inside) >= 2:
            total += float(inside["cpu_s"].iloc[-1] - inside["cpu_s"].iloc[0])
    return total


PERCENTILE_COLUMNS = {"50": "p50_ms", "95": "p95_ms", "99": "p99_ms", "99.9": "p999_ms"}
# The same percentiles over every start of the window (successes, failures at their latency, the
# unfinished at their elapsed time): what the users met, which SLOs and capacity probes judge.
EVERY_START_COLUMNS = {"50": "p50_all_ms", "95": "p95_all_ms", "99": "p99_all_ms", "99.9": "p999_all_ms"}


def cell_validity(cell: dict[str, Any], data: CellData) -> dict[str, Any]:
    """The cell's validity record (analysis.validity) as the runner stored it, or computed now
    for runs from before it did."""
    stored = cell.get("validity")
    if isinstance(stored, dict) and "valid" in stored:
        return stored
    counts = {str(r["Name"]): int(r["Request Count"]) for _, r in data.stats.iterrows()}
    return validity.check(cell, data.exact, counts)


def summarise(run: Run) -> pd.DataFrame:
    rows = [row for cell in ok_cells(run) for row in cell_rows(run, cell)]
    return pd.DataFrame(rows, columns=COLUMNS)


# -- shapes -------------------------------------------------------------------------------------------


def shape_of(row: Any) -> tuple[Hashable, ...]:
    """``row``'s :data:`SHAPE` (a Series or a dict) as a hashable key, every missing value as None."""
    values = [row.get(c) for c in SHAPE]  # a table without a column (an old run's) reads it as missing
    return tuple(None if _missing(v) else v for v in values)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def shape_ids(frame: pd.DataFrame) -> pd.Series:
    """A number per distinct shape of ``frame``'s rows, in order of first appearance."""
    keys = [shape_of(r) for _, r in frame.iterrows()]
    ids: dict[tuple[Hashable, ...], int] = {}
    return pd.Series([ids.setdefault(k, len(ids)) for k in keys], index=frame.index, dtype=int)


def same_shape(frame: pd.DataFrame, row: Any) -> pd.Series:
    """Rows of ``frame`` with ``row``'s shape; a missing value matches a missing value."""
    mask = pd.Series(True, index=frame.index)
    for col in SHAPE:
        value = row[col]
        mask &= frame[col].isna() if _missing(value) else frame[col] == value
    return mask


def _load_words(model: Any, rate: Any) -> str:
    if _missing(model):
        return "model unknown"
    if model == "open":
        return "open model" + ("" if _missing(rate) else f" at {rate:g} req/s")
    return f"{model} model"


_SYMBOL = {
    "server_workers": ("W=", "{:g}"),
    "threadpool_tokens": ("T=", "{:g}"),
    "db_pool_size": ("P=", "{:g}"),
    "wait_ms": ("d=", "{:g} ms"),
    "work": ("work=", "{:,.0f}"),
    "fanout": ("k=", "{:g}"),
}


def shape_words(row: Any, columns: Iterable[str] = SHAPE) -> str:
    """The shape of ``row`` in the report's symbols, for ``columns`` only: "closed model, W=2"."""
    columns = list(columns)
    parts = []
    if "model" in columns or "arrival_rate" in columns:
        parts.append(_load_words(row["model"], row["arrival_rate"]))
    for col in columns:
        if col in ("model", "arrival_rate"):
            continue
        value = row[col]
        if col == "worker_class":
            parts.append("worker class unknown" if _missing(value) else str(value))
            continue
        symbol, fmt = _SYMBOL[col]
        parts.append(f"{symbol}?" if _missing(value) else symbol + fmt.format(value))
    return ", ".join(parts)


def shape_labels(frame: pd.DataFrame) -> pd.Series:
    """Per row, what sets its shape apart from the other shapes in ``frame`` ("W=4", "open model at
    30 req/s"); "" when every row has the same shape."""
    keys = [shape_of(r) for _, r in frame.iterrows()]
    varying = [c for i, c in enumerate(SHAPE) if len({k[i] for k in keys}) > 1]
    if not varying:
        return pd.Series("", index=frame.index, dtype=object)
    words = {k: shape_words(dict(zip(SHAPE, k, strict=True)), varying) for k in keys}
    if len(set(words.values())) < len(words):  # two shapes that read the same (a closed model's rate)
        words = {k: ", ".join(f"{c}={k[SHAPE.index(c)]}" for c in varying) for k in keys}
    return pd.Series([words[k] for k in keys], index=frame.index, dtype=object)


# -- baselines ----------------------------------------------------------------------------------------


def baseline_ids(families: pd.Series) -> pd.Series:
    """The baseline style of each row's family (catalogue.baseline); None for a family it lacks."""
    known = {f: catalogue.baseline(f).id for f in catalogue.FAMILIES}
    return families.map(lambda f: known.get(f)).astype(object)


def _ratios(frame: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """Each row's metrics over those of its family baseline's row with the same ``key``."""
    out = frame.copy()
    out["baseline"] = baseline_ids(out["family"])
    bounds = [f"{m}_at_least" for m in BASELINE_RATIOS if f"{m}_at_least" in out.columns]
    base = out[out["style"] == out["baseline"]][key + list(BASELINE_RATIOS) + bounds].drop_duplicates(key)
    matched = out[key].merge(base, on=key, how="left", suffixes=("", "_base"))
    for metric, ratio in BASELINE_RATIOS.items():
        b = matched[metric].to_numpy(dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            values = np.where(b > 0, out[metric].to_numpy(dtype=float) / b, np.nan)
        flag = f"{metric}_at_least"
        if flag in matched.columns:
            # A bound is never a denominator; over a decided one, a bound makes the ratio a bound.
            base_bound = matched[flag].astype("boolean").fillna(False).to_numpy(dtype=bool)
            values = np.where(base_bound, np.nan, values)
            out[f"{ratio}_at_least"] = out[flag].astype("boolean").fillna(False).to_numpy(dtype=bool) & ~base_bound
        out[ratio] = values
    return out


def add_baseline_ratios(table: pd.DataFrame) -> pd.DataFrame:
    """``baseline`` (the family's baseline style) and rps, p95 and p99 over that baseline's in the
    same repeat at the same users and shape; solo cells only (NaN beside others)."""
    solo = ~table["together"].astype(bool)
    ratios = _ratios(table[solo], ["family", "users", *SHAPE, "repeat"])
    out = table.copy()
    out["baseline"] = baseline_ids(out["family"])
    for col in BASELINE_RATIOS.values():
        out[col] = np.nan
        out.loc[solo, col] = ratios[col]
        if f"{col}_at_least" in ratios.columns:
            out[f"{col}_at_least"] = False
            out.loc[solo, f"{col}_at_least"] = ratios[f"{col}_at_least"]
    return out


# -- points: repeats averaged -------------------------------------------------------------------------

MEANS = (
    "rps",
    "mean_ms",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "p99_all_ms",
    "failure_rate",
    "style_users",
    "canary_p50_ms",
    "canary_p99_ms",
    "canary_failures",
    "canary_requests",
    *(f"{name}_cpu_ms" for name in LAB_SERVICES),
    "p99_low_ms",  # the cell's own p99 interval: what the answers read where a point is one cell
    "p99_high_ms",
    "rps_ranked",  # the answers' throughput, as at an even spread of the users (analysis.answers.ranked_rps)
)
SPREADS = ("rps", "rps_ranked", "p99_ms", "canary_p99_ms")  # a point's repeats' spread of these: {metric}_spread


def spread(values: pd.Series) -> float:
    """How far a point's repeats differ: (highest - lowest) / mean; NaN from fewer than two."""
    v = values.astype(float).dropna()
    return float((v.max() - v.min()) / v.mean()) if len(v) >= 2 and v.mean() > 0 else float("nan")


def _carried(column: str) -> bool:
    """Theory's columns travel with the points: predicted_* and *_vs_predicted."""
    return column.startswith("predicted_") or column.endswith("_vs_predicted")


def _rules_of(values: pd.Series) -> str:
    """The validity rules any of the repeats broke, joined."""
    rules = {r.strip() for v in values if isinstance(v, str) for r in v.split(",") if r.strip()}
    return ", ".join(sorted(rules))


def points(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """One row per ``keys``: metrics averaged over its valid repeats (all of them when none is valid),
    ``repeats`` (n averaged), ``left_out`` (invalid repeats not averaged), ``requests`` summed,
    ``cells`` listed, ``saturated`` if any was, ``{metric}_spread`` (:func:`spread`) of ``SPREADS``;
    the baseline's ratios from the averages."""
    # A point whose repeats are valid in part is made of its valid ones (the others counted in
    # ``left_out``); one with no valid repeat keeps them all and stays invalid, to be named as such.
    left = pd.Series(False, index=rows.index)
    if "valid" in rows.columns and not rows.empty:
        ok = valid_rows(rows)
        some = rows.assign(_ok=ok).groupby(keys, dropna=False, sort=False)["_ok"].transform("any")
        left = some & ~ok
    rows = rows.assign(_left=left)
    counted = rows.groupby(keys, as_index=False, sort=False, dropna=False)["_left"].sum()
    rows = rows[~left]
    spec: dict[str, tuple[str, Any]] = {m: (m, "mean") for m in MEANS if m in rows.columns}
    spec |= {f"{m}_spread": (m, spread) for m in SPREADS if m in rows.columns}
    spec |= {
        "requests": ("requests", "sum"),
        "repeats": ("cell", "count"),
        "cells": ("cell", list),
        "saturated": ("generator_saturated", "any"),
    }
    # The lab's services at their busiest repeat: one where the upstream was the limit sets the point aside.
    spec |= {f"{n}_cpu_cores": (f"{n}_cpu_cores", "max") for n in LAB_SERVICES if f"{n}_cpu_cores" in rows.columns}
    # Validity and lower bounds travel too: a point is valid only if every repeat was, and a
    # percentile is a lower bound if it was one in any repeat.
    spec |= {c: (c, "any") for c in rows.columns if c.endswith("_at_least")}
    if "valid" in rows.columns:
        spec["valid"] = ("valid", "all")
        spec["invalid_because"] = (
            "invalid_because",
            lambda v: "; ".join(dict.fromkeys(x for x in v if isinstance(x, str) and x)),
        )
        spec["validity_failed"] = ("validity_failed", _rules_of)
    for col in rows.columns:
        if _carried(col) and col not in keys:
            spec[col] = (col, "mean" if pd.api.types.is_numeric_dtype(rows[col]) else "first")
    columns = [*keys, *spec, "left_out"]
    if rows.empty:
        out = pd.DataFrame(columns=columns)
    else:
        out = rows.groupby(keys, as_index=False, sort=False, dropna=False).agg(**spec)
        out = out.merge(counted.rename(columns={"_left": "left_out"}), on=keys, how="left")
    if "predicted_rps" in out.columns:
        out["rps_vs_predicted"] = out["rps"] / out["predicted_rps"]
    if "predicted_mean_ms" in out.columns:
        out["mean_vs_predicted"] = out["mean_ms"] / out["predicted_mean_ms"]
    return _ratios(out, ["family", "users", *SHAPE])


def solo_points(table: pd.DataFrame) -> pd.DataFrame:
    """One row per style, users and shape from solo cells: repeats averaged, n in ``repeats``."""
    return points(table[~table["together"].astype(bool)], POINT)


def together_points(table: pd.DataFrame) -> pd.DataFrame:
    """One row per group, style, users and shape from cells shared with other styles."""
    return points(table[table["together"].astype(bool)], ["group", *POINT])


# -- neighbours ---------------------------------------------------------------------------------------

NEIGHBOUR_METRICS = ("p50_ms", "p95_ms", "p99_ms", "rps")
NEIGHBOUR_COLUMNS = [
    "cell",
    "group",
    "family",
    "style",
    "neighbours",
    "blocking_neighbours",
    "style_users",
    "users",
    "users_label",
    *SHAPE,
    "requests",
    "alone_users",
    "alone_users_match",
    "alone_repeats",
    "alone_requests",
    "alone_cells",
    *(f"{m}_{k}" for m in NEIGHBOUR_METRICS for k in ("alone", "beside", "ratio")),
    # a lower bound (requests unfinished at the stop reach it): never a ratio's denominator
    *(f"{m}_{k}_at_least" for m in NEIGHBOUR_METRICS for k in ("alone", "beside")),
]


def catalogue_order(styles: Iterable[str]) -> list[str]:
    """Styles as the catalogue lists them (by family, in the catalogue's order); unknown ones last."""
    return sorted(set(styles), key=lambda s: (catalogue.rank(s), s))


def blocks_the_loop(style: str) -> bool:
    """Whether theory says ``style`` stalls every request on its worker (a blocking call in async def)."""
    known = catalogue.BY_ID.get(style)
    return known is not None and catalogue.PREDICTIONS[known.prediction].blocks_loop


def users_label(users: Any, share: Any) -> str:
    """ "8", or "4 of 8" for a style that shared its cell's users with others."""
    if users is None or pd.isna(users):
        return "–"
    if share is None or pd.isna(share) or share == users:
        return f"{users:g}"
    return f"{share:g} of {users:g}"


def neighbour_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per together cell and style: the style beside the others against the same style alone (solo
    points of the same shape, at users equal to its share of the cell, else the nearest)."""
    alone = solo_points(table)
    together = table[table["together"].astype(bool)]
    rows = [_neighbour_row(r, together[together["cell"] == r["cell"]], alone) for _, r in together.iterrows()]
    return pd.DataFrame(rows, columns=NEIGHBOUR_COLUMNS)


def _neighbour_row(row: pd.Series, cell_rows: pd.DataFrame, alone: pd.DataFrame) -> dict[str, Any]:
    neighbours = [s for s in cell_rows["style"] if s != row["style"]]
    match = _alone(row, alone)
    out: dict[str, Any] = {
        "cell": row["cell"],
        "group": row["group"],
        "family": row["family"],
        "style": row["style"],
        "neighbours": neighbours,
        "blocking_neighbours": [s for s in neighbours if blocks_the_loop(s)],
        "style_users": row["style_users"],
        "users": row["users"],
        "users_label": users_label(row["users"], row["style_users"]),
        **{c: row[c] for c in SHAPE},
        "requests": row["requests"],
        "alone_users": match["users"] if match is not None else np.nan,
        "alone_users_match": match is not None and match["users"] == row["style_users"],
        "alone_repeats": int(match["repeats"]) if match is not None else 0,
        "alone_requests": int(match["requests"]) if match is not None else 0,
        "alone_cells": list(match["cells"]) if match is not None else [],
    }
    for m in NEIGHBOUR_METRICS:
        a, b = (float(match[m]) if match is not None else np.nan), float(row[m])
        a_low = match is not None and is_bound(match, m)
        out.update(
            {
                f"{m}_alone": a,
                f"{m}_beside": b,
                f"{m}_ratio": b / a if a and not a_low else np.nan,
                f"{m}_alone_at_least": a_low,
                f"{m}_beside_at_least": is_bound(row, m),
            }
        )
    return out


def is_bound(row: Any, metric: str) -> bool:
    """Whether ``metric`` of ``row`` (a table row or point) is only a lower bound: its
    ``{metric}_at_least`` flag is set (requests unfinished at the stop reach it); a missing flag is not."""
    value = row.get(f"{metric}_at_least", False)
    return bool(value) and not pd.isna(value)


def _alone(row: pd.Series, alone: pd.DataFrame) -> pd.Series | None:
    """The solo point of ``row``'s style and shape whose users are nearest its share (the fewer on a tie)."""
    mine = alone[(alone["style"] == row["style"]) & same_shape(alone, row)]
    if mine.empty or pd.isna(row["style_users"]):
        return None
    mine = mine.assign(distance=(mine["users"] - row["style_users"]).abs())
    return mine.sort_values(["distance", "users"], kind="stable").iloc[0]


NEIGHBOUR_POINT_COLUMNS = [c for c in NEIGHBOUR_COLUMNS if c != "cell"] + [
    "cells",
    "repeats",
    *(f"{m}_beside_{end}" for m in NEIGHBOUR_METRICS for end in ("min", "max")),
]


def neighbour_points(table: pd.DataFrame) -> pd.DataFrame:
    """The neighbour table with repeats averaged: one row per group, style, users and shape; the
    beside figures are means over its ``repeats`` cells (listed in ``cells``), the alone ones the
    solo point's (itself a mean over its own repeats, ``alone_repeats``)."""
    nb = neighbour_table(table)
    if nb.empty:
        return pd.DataFrame(columns=NEIGHBOUR_POINT_COLUMNS)
    nb = nb.assign(_with=nb["neighbours"].map(tuple))
    keys = ["group", "family", "style", "_with", "users", "style_users", *SHAPE]
    beside = [f"{m}_beside" for m in NEIGHBOUR_METRICS]
    first = [c for c in NEIGHBOUR_COLUMNS if c not in (*keys, *beside, "cell", "requests") and not c.endswith("_ratio")]
    spec: dict[str, tuple[str, Any]] = {c: (c, "mean") for c in beside}
    # The range over repeats: the neighbour's outcome depends on how connections spread over
    # the workers, so one repeat can differ from the next by far more than noise.
    spec |= {f"{c}_{end}": (c, end) for c in beside for end in ("min", "max")}
    spec |= {c: (c, "first") for c in first}
    spec |= {"requests": ("requests", "sum"), "cells": ("cell", list), "repeats": ("cell", "count")}
    spec |= {f"{m}_beside_at_least": (f"{m}_beside_at_least", "any") for m in NEIGHBOUR_METRICS}
    out = nb.groupby(keys, as_index=False, sort=False, dropna=False).agg(**spec)
    for m in NEIGHBOUR_METRICS:
        alone = out[f"{m}_alone"].to_numpy(dtype=float)
        decided = (alone > 0) & ~out[f"{m}_alone_at_least"].astype(bool).to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            out[f"{m}_ratio"] = np.where(decided, out[f"{m}_beside"].to_numpy(dtype=float) / alone, np.nan)
    return out[NEIGHBOUR_POINT_COLUMNS]
