"""Small hand-built summary tables, shaped like ``summarise`` + ``add_baseline_ratios`` output, for
tests that need numbers chosen to sit on either side of a rule."""

from __future__ import annotations

from typing import Any

import pandas as pd

from analysis.summary import COLUMNS


def row(
    style: str,
    users: float,
    rps: float,
    p99: float,
    *,
    cell: str | None = None,
    together: bool = False,
    cell_users: float | None = None,
    repeat: int = 1,
    workers: int = 2,
    threads: float = 40,
    pool: float = 10,
    worker_class: str | None = "uvicorn-worker",
    model: str = "closed",
    arrival_rate: float = 50.0,
    p50: float | None = None,
    mean: float | None = None,
    requests: int | None = None,
    failure_rate: float = 0.0,
    wait_ms: float = 50,
    work: int = 200_000,
    saturated: bool = False,
    predicted_rps: float = float("nan"),
    **more: Any,
) -> dict[str, Any]:
    """One style's measurement; ``users`` are the users on this style, ``cell_users`` the cell's total.
    The shape (W, T, P, worker class, model, rate, wait, work) defaults to one shared by every row;
    ``more``: other columns of the summary (``valid``, ``p99_ms_at_least``, ...)."""
    p50 = p99 / 2 if p50 is None else p50
    mean = p50 * 1.1 if mean is None else mean
    requests = int(rps * 10) if requests is None else requests
    total = users if cell_users is None else cell_users
    return {
        "cell": cell or f"{style}-{model}-u{users:g}-w{workers}-t{threads:g}-r{repeat}",
        "group": style.split("/")[0],
        "together": together,
        "repeat": repeat,
        "family": style.split("/")[0],
        "style": style,
        "users": total,
        "style_users": float(users),
        "server_workers": workers,
        "threadpool_tokens": threads,
        "db_pool_size": pool,
        "worker_class": worker_class,
        "model": model,
        "wait_ms": wait_ms,
        "work": work,
        "fanout": 5,
        "arrival_rate": arrival_rate,
        "requests": requests,
        "locust_requests": requests,
        "locust_rps": rps,
        "window_s": 10.0,
        "failures": int(requests * failure_rate),
        "failure_rate": failure_rate,
        "rps": rps,
        "mean_ms": mean,
        "p50_ms": p50,
        "p95_ms": (p50 + p99) / 2,
        "p99_ms": p99,
        "p999_ms": p99 * 1.1,
        # Every start's: the successes' (these rows' failures are as fast as they are).
        "p50_all_ms": p50,
        "p95_all_ms": (p50 + p99) / 2,
        "p99_all_ms": p99,
        "p999_all_ms": p99 * 1.1,
        "locust_p50_ms": p50,
        "locust_p95_ms": (p50 + p99) / 2,
        "locust_p99_ms": p99,
        "late_starts": 0,
        "generator_saturated": saturated,
        "predicted_rps": predicted_rps,
        **more,
    }


def table(*rows: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=[*COLUMNS, "predicted_rps", "predicted_even_rps"])


def together(cell: str, total: int, *styles: tuple[str, float, float, float]) -> list[dict[str, Any]]:
    """A neighbour cell: (style, users on it, rps, p99) for each style beside the others."""
    return [row(s, u, rps, p99, cell=cell, together=True, cell_users=total) for s, u, rps, p99 in styles]
