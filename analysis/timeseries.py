"""Client latency and server evidence on one time axis, per cell, over the measured window only.

Client side, best first: the exact per-second timeline in ``exact.json`` (responses completed in each
whole second and HDR percentiles of that second), else Locust's history, whose requests/s and
percentiles cover a rolling 10-second window. Server side: event-loop lag and threadpool tokens in
use from the workers' telemetry.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from routebench.serverside import stalls
from target_app.catalogue import CANARY

CLIENT_COLUMNS = ["t", "style", "rps", "p50_ms", "p95_ms", "p99_ms"]
EXACT = "exact, per second"
LOCUST = "Locust's rolling 10 s window"


def _window(frame: pd.DataFrame, start: float | None, end: float | None) -> pd.DataFrame:
    if start is not None:
        frame = frame[frame["t"] >= start]
    if end is not None:
        frame = frame[frame["t"] <= end]
    return frame


def exact_series(timeline: dict[str, list[list[Any]]]) -> pd.DataFrame:
    """Per whole second and style: responses completed in it (a true rate: the runner leaves out
    part-covered seconds) and that second's exact p50/p95/p99. ``t`` is the second's middle."""
    rows = [
        {
            "t": float(second) + 0.5,
            "style": style,
            "rps": float(count),
            "p50_ms": p50 / 1000,
            "p95_ms": p95 / 1000,
            "p99_ms": p99 / 1000,
        }
        for style, seconds in timeline.items()
        for second, count, p50, p95, p99 in seconds
    ]
    return pd.DataFrame(rows, columns=CLIENT_COLUMNS).sort_values(["style", "t"], ignore_index=True)


def client_series(history: pd.DataFrame, measure_from: float | None) -> pd.DataFrame:
    """Per second and request name: Locust's current requests/s and percentiles from the measured
    window's start. No end cut: Locust writes its last row as the test stops, just after the window."""
    rows = history[~history["Name"].isin(["Aggregated", CANARY])].copy()  # the styles' own (not the canary's)
    rows["t"] = rows["Timestamp"].astype(float)
    rows = _window(rows, measure_from, None)
    rows = rows.rename(
        columns={"Requests/s": "rps", "50%": "p50_ms", "95%": "p95_ms", "99%": "p99_ms", "Name": "style"}
    )
    for col in ("p50_ms", "p99_ms"):
        if col not in rows.columns:
            rows[col] = np.nan  # older or hand-made histories carry only the contract's p95
    return rows[CLIENT_COLUMNS].reset_index(drop=True)


def settled(series: pd.DataFrame) -> pd.DataFrame:
    """Without each style's leading rows where Locust's rolling window is still filling (zero
    requests/s or a zero p95): those zeros describe Locust's window, not the server. Zeros later in
    the run are kept, since a stalled server produces them too."""
    keep = []
    for _, rows in series.groupby("style", sort=False):
        filled = (rows["rps"].fillna(0) > 0) & (rows["p95_ms"].fillna(0) > 0)
        keep.append(rows[filled.cummax()])
    if not keep:
        return series.iloc[0:0]
    return pd.concat(keep).sort_values(["style", "t"], ignore_index=True)


def server_series(
    telemetry: pd.DataFrame, measure_from: float | None, measure_until: float | None = None
) -> pd.DataFrame:
    """Per second: the worst event-loop lag of any worker, and threadpool tokens and requests in
    flight summed over workers (each worker's mean over the second). A gauge a worker did not report
    (no ``inflight`` in older telemetry, no threadpool reading) stays missing, never a zero."""
    if telemetry.empty:
        return pd.DataFrame(columns=SERVER_COLUMNS)
    df = _window(telemetry.copy(), measure_from, measure_until)
    for col in SERVER_COLUMNS:
        df[col] = pd.to_numeric(df[col], errors="coerce") if col in df.columns else np.nan
    df["second"] = df["t"].floordiv(1)
    per_worker = df.groupby(["second", "pid"]).agg(
        t=("t", "mean"), lag_ms=("lag_ms", "max"), threads_busy=("threads_busy", "mean"), inflight=("inflight", "mean")
    )
    # ``t`` is the mean time of the samples, not the second's start: a second the window cuts is
    # drawn where its samples were, inside the window.
    out = per_worker.groupby(level="second").agg(
        t=("t", "mean"),
        lag_ms=("lag_ms", "max"),
        threads_busy=("threads_busy", _known_sum),
        inflight=("inflight", _known_sum),
    )
    return out.reset_index(drop=True)[SERVER_COLUMNS]


SERVER_COLUMNS = ["t", "lag_ms", "threads_busy", "inflight"]


def _known_sum(values: pd.Series) -> float:
    """The sum of what was reported; NaN when nothing was."""
    return float(values.sum(min_count=1))


def lag_summary(
    telemetry: pd.DataFrame, measure_from: float | None, measure_until: float | None = None
) -> dict[str, float]:
    nothing = {
        "lag_p99_ms": float("nan"),
        "lag_max_ms": float("nan"),
        "threads_busy_max": float("nan"),
        "db_waiting_max": float("nan"),
        "db_in_use_max": float("nan"),
        "threads_full_share": float("nan"),
        "threads_waiting_max": float("nan"),
        "threads_waiting_share": float("nan"),
        "db_waiting_share": float("nan"),
    }
    if telemetry.empty:
        return nothing
    df = _window(telemetry, measure_from, measure_until)
    if df.empty:
        return nothing
    waiting = pd.to_numeric(df.get("threads_waiting", pd.Series(dtype=float)), errors="coerce").dropna()
    return {
        "lag_p99_ms": float(df["lag_ms"].quantile(0.99)),
        "lag_max_ms": float(df["lag_ms"].max()),
        "threads_busy_max": float(df["threads_busy"].max()),
        # Requests waiting for a database connection (asyncpg's or psycopg's pool), at worst.
        "db_waiting_max": max(
            (float(df[c].max()) for c in ("db_async_waiting", "db_sync_waiting") if c in df and df[c].notna().any()),
            default=float("nan"),
        ),
        "db_in_use_max": max(
            (float(df[c].max()) for c in ("db_async_in_use", "db_sync_in_use") if c in df and df[c].notna().any()),
            default=float("nan"),
        ),
        # How much of the window a resource was exhausted: the share of samples with every
        # threadpool token in use, and with a request waiting for a database connection.
        "threads_full_share": float((df["threads_busy"] >= df["threads_total"]).mean())
        if "threads_total" in df and df["threads_total"].notna().any()
        else float("nan"),
        # Tasks waiting for a threadpool token, at worst on a worker, and the share of the samples
        # (of those that record it: older telemetry does not) with one waiting.
        "threads_waiting_max": float(waiting.max()) if not waiting.empty else float("nan"),
        "threads_waiting_share": float((waiting > 0).mean()) if not waiting.empty else float("nan"),
        "db_waiting_share": float(
            pd.concat([df[c].fillna(0) > 0 for c in ("db_async_waiting", "db_sync_waiting") if c in df], axis=1)
            .any(axis=1)
            .mean()
        )
        if any(c in df for c in ("db_async_waiting", "db_sync_waiting"))
        else float("nan"),
    }


STALL_SITES_SHOWN = 5


def stall_summary(telemetry: pd.DataFrame, measure_from: float | None, measure_until: float | None) -> dict[str, Any]:
    """What blocked the event loops in the window, from the stall detector's samples
    (routebench.serverside.stalls): ``stalls`` (count), ``blocked_ms`` (summed over workers, each stall
    clipped to the window), ``blocked_share`` (of the time the workers covered in the window: each
    worker's span from its first to its last sample there, so a worker Gunicorn replaced mid-window
    counts for the time it lived; 1.0 is every loop stuck throughout), and ``sites``, the call sites
    that blocked them, most blocked time first, each with its share of the blocked time, the route
    that was running and the application frames of its stack. A stall is reported in the sample
    it ended in, so samples after the window are read too (for the stalls that ran past its end).
    Empty when the detector was off (no ``blocked_ms`` in the samples)."""
    if telemetry.empty or "blocked_ms" not in telemetry.columns or measure_from is None or measure_until is None:
        return {}
    after = telemetry[(telemetry["t"] >= measure_from) & telemetry["blocked_ms"].notna()]
    inside = after[after["t"] <= measure_until]
    if inside.empty:
        return {}
    # The same arithmetic as the web UI's live tab (routebench.serverside.stalls), per worker.
    covered_ms = {
        pid: stalls.covered_s(g[["t", "pid"]].to_dict("records"), measure_from, measure_until) * 1000
        for pid, g in inside.groupby("pid")
    }
    blocked_by_pid: dict[Any, float] = {}
    if "spans" in after.columns and after["spans"].notna().any():
        for pid, g in after.groupby("pid"):
            records = [{"spans": s} for s in g["spans"] if isinstance(s, list)]
            blocked_by_pid[pid] = stalls.clipped_ms(records, measure_from, measure_until)
        method = "each stall clipped to the window"
    else:  # runs from before spans were recorded: each worker's stalls, at most the time it covered
        for pid, g in inside.groupby("pid"):
            blocked_by_pid[pid] = min(float(g["blocked_ms"].sum()), covered_ms.get(pid, 0.0))
        method = "stalls ending in the window (approximate: no spans recorded)"
    blocked = sum(min(ms, covered_ms.get(pid, 0.0)) for pid, ms in blocked_by_pid.items())
    reported = float(inside["blocked_ms"].sum())
    sites: dict[str, dict[str, Any]] = {}
    stacks = telemetry["sites"].dropna() if "sites" in telemetry.columns else pd.Series(dtype=object)
    for per_sample in inside["sites"].dropna() if "sites" in inside.columns else []:
        for site, info in per_sample.items():
            s = sites.setdefault(site, {"site": site, "ms": 0.0, "n": 0, "route": info.get("route")})
            s["ms"] += float(info.get("ms", 0.0))
            s["n"] += int(info.get("n", 0))
    # A worker sends a site's stack the first time it reports it, which may be before the window.
    for per_sample in stacks:
        for site, info in per_sample.items():
            if site in sites and "stack" in info and "stack" not in sites[site]:
                sites[site]["stack"], sites[site]["folded"] = info["stack"], info.get("folded", 0)
    ranked = sorted(sites.values(), key=lambda s: -s["ms"])
    for s in ranked:
        s["share"] = s["ms"] / reported if reported else 0.0
        s["ms"] = round(s["ms"], 1)
    covered = sum(covered_ms.values())
    return {
        "stalls": int(inside["stalls"].sum()),
        "blocked_ms": round(blocked, 1),
        "blocked_share": blocked / covered if covered > 0 else float("nan"),
        "covered_ms": round(covered, 1),
        "workers": int(inside["pid"].nunique()),
        "method": method,
        "sites": ranked,
    }
