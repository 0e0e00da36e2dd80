"""Theory beside measurement: what the model in docs/model.md predicts for each cell, from the cell's own
W, T, P, d, U, k and c, and a verdict per style written from the numbers.

Closed model with no think time: throughput X = concurrency / latency (Little's law); each style
caps concurrency differently (one loop per worker, T threads, P connections, the cores).
"""

from __future__ import annotations

import math
import os

import pandas as pd

from target_app import catalogue
from target_app.catalogue import Shape


def predict(style_id: str, s: Shape) -> tuple[float, float]:
    """(throughput in requests/s, latency in seconds) that theory expects for ``style_id``."""
    if s.wait_s <= 0 and catalogue.BY_ID[style_id].family != "cpu":
        return math.nan, math.nan
    if s.cpu_s <= 0 and catalogue.BY_ID[style_id].family == "cpu":
        return math.nan, math.nan
    return catalogue.PREDICTIONS[catalogue.BY_ID[style_id].prediction].model(s)


def add_predictions(
    table: pd.DataFrame, cells: dict[str, dict], cpu_s: dict[int, float], cores: int | None = None
) -> pd.DataFrame:
    """Predicted throughput and p50 per row, and measured/predicted ratios. U is the users on the
    row's own style (``style_users``): in a together cell the others drive the other styles."""
    cores = cores or os.cpu_count() or 1
    out = table.copy()
    pred_x, pred_l = [], []
    for row in out.itertuples():
        cell = cells[row.cell]
        try:
            if math.isnan(row.style_users):
                raise TypeError("no fixed users")
            shape = Shape(
                users=row.style_users,
                workers=cell["server_workers"],
                threads=cell["threadpool_tokens"],
                pool=cell["db_pool_size"],
                wait_s=cell["wait_ms"] / 1000,
                fanout=cell["fanout"],
                cpu_s=cpu_s.get(cell["work"], math.nan),
                cores=cores,
            )
            x, latency = predict(row.style, shape)
        except (KeyError, TypeError, ZeroDivisionError):
            # A web-UI session has no fixed users or work sizes: nothing to predict from.
            x, latency = math.nan, math.nan
        pred_x.append(x)
        pred_l.append(latency * 1000)
    out["predicted_rps"] = pred_x
    out["predicted_latency_ms"] = pred_l
    out["rps_vs_predicted"] = out["rps"] / out["predicted_rps"]
    out["p50_vs_predicted"] = out["p50_ms"] / out["predicted_latency_ms"]
    return out


def verdict(rows: pd.DataFrame) -> str:
    """One line for a style, from its rows (one per user count), written from the numbers. Users
    are those on this style (its share of a shared cell)."""
    rows = rows.sort_values("style_users")
    top = rows.iloc[-1]
    parts = [f"at U={top.style_users:g}: {top.rps:,.0f} req/s"]
    if not math.isnan(top.predicted_rps):
        parts[0] += f" against {top.predicted_rps:,.0f} predicted ({top.rps_vs_predicted:.0%})"
    parts.append(f"p50 {top.p50_ms:,.1f} ms (predicted {top.predicted_latency_ms:,.1f}), p99 {top.p99_ms:,.1f} ms")
    ratio = top.get("p99_vs_async")
    if ratio is not None and not math.isnan(ratio) and abs(ratio - 1) > 0.05:
        parts.append(f"p99 {ratio:.1f}x async-await's")
    if len(rows) > 1:
        low = rows.iloc[0]
        growth_users = top.style_users / low.style_users
        growth_rps = top.rps / low.rps if low.rps else math.nan
        if growth_rps < 0.5 * growth_users:
            parts.append(
                f"throughput capped: {growth_users:g}x the users gave {growth_rps:.1f}x the requests/s "
                f"({low.rps:,.0f} -> {top.rps:,.0f})"
            )
        else:
            parts.append(f"throughput scaled {growth_rps:.1f}x for {growth_users:g}x the users")
    return "; ".join(parts)
