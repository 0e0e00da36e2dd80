"""Client latency and server evidence on one time axis, per cell: requests/s and p95 from Locust's
full history, event-loop lag and threadpool tokens in use from the workers' telemetry."""

from __future__ import annotations

import pandas as pd


def client_series(history: pd.DataFrame, measure_from: float | None) -> pd.DataFrame:
    """Per second and request name: requests/s and Locust's current p95, measured window only."""
    rows = history[history["Name"] != "Aggregated"].copy()
    rows["t"] = rows["Timestamp"].astype(float)
    if measure_from is not None:
        rows = rows[rows["t"] >= measure_from]
    rows = rows.rename(columns={"Requests/s": "rps", "95%": "p95_ms", "Name": "style"})
    return rows[["t", "style", "rps", "p95_ms"]].reset_index(drop=True)


def server_series(telemetry: pd.DataFrame, measure_from: float | None) -> pd.DataFrame:
    """Per second: the worst event-loop lag of any worker, and threadpool tokens in use summed over
    workers (each worker's mean over the second)."""
    if telemetry.empty:
        return pd.DataFrame(columns=["t", "lag_ms", "threads_busy", "inflight"])
    df = telemetry.copy()
    if measure_from is not None:
        df = df[df["t"] >= measure_from]
    df["second"] = df["t"].astype(float).floordiv(1)
    per_worker = df.groupby(["second", "pid"]).agg(
        lag_ms=("lag_ms", "max"), threads_busy=("threads_busy", "mean"), inflight=("inflight", "mean"))
    out = per_worker.groupby(level="second").agg(
        lag_ms=("lag_ms", "max"), threads_busy=("threads_busy", "sum"), inflight=("inflight", "sum"))
    return out.reset_index().rename(columns={"second": "t"})


def lag_summary(telemetry: pd.DataFrame, measure_from: float | None) -> dict[str, float]:
    if telemetry.empty:
        return {"lag_p99_ms": float("nan"), "lag_max_ms": float("nan"), "threads_busy_max": float("nan")}
    df = telemetry if measure_from is None else telemetry[telemetry["t"] >= measure_from]
    if df.empty:
        return {"lag_p99_ms": float("nan"), "lag_max_ms": float("nan"), "threads_busy_max": float("nan")}
    return {"lag_p99_ms": float(df["lag_ms"].quantile(0.99)), "lag_max_ms": float(df["lag_ms"].max()),
            "threads_busy_max": float(df["threads_busy"].max())}
