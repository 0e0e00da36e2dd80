"""Charts, with Bokeh: interactive (hover, zoom) and embeddable offline with one inlined script."""

from __future__ import annotations

import itertools

import pandas as pd
from bokeh.embed import components
from bokeh.layouts import column
from bokeh.models import ColumnDataSource, FactorRange, HoverTool, Range1d
from bokeh.palettes import Category10_10
from bokeh.plotting import figure
from bokeh.resources import Resources

WIDTH = 900
COLORS = Category10_10


def _source(frame: pd.DataFrame) -> ColumnDataSource:
    # From plain lists: handing Bokeh a DataFrame makes it call pandas APIs that pandas deprecates.
    return ColumnDataSource({str(k): v for k, v in frame.to_dict("list").items()})


def _color_map(names: list[str]) -> dict[str, str]:
    return {n: c for n, c in zip(names, itertools.cycle(COLORS))}


def percentiles_by_style(table: pd.DataFrame) -> figure:
    """p95 and p99 per style, solo cells at each style's highest user count."""
    solo = table[~table["together"]]
    top = solo.loc[solo.groupby("style")["users"].idxmax()] if not solo.empty else solo
    factors = [(f"{r.style} (U={r.users})", m) for r in top.itertuples() for m in ("p95", "p99")]
    values = [getattr(r, f"{m}_ms") for r in top.itertuples() for m in ("p95", "p99")]
    src = ColumnDataSource({"x": factors, "ms": values, "metric": [f[1] for f in factors],
                            "color": [COLORS[0] if f[1] == "p95" else COLORS[3] for f in factors]})
    fig = figure(x_range=FactorRange(*factors), height=380, width=WIDTH, title="p95 and p99 per style (exact, ms)",
                 y_axis_label="ms", tools="hover,pan,wheel_zoom,reset,save", tooltips=[("", "@x"), ("ms", "@ms{0.0}")])
    fig.vbar(x="x", top="ms", width=0.8, source=src, color="color")
    fig.xaxis.major_label_orientation = 1.2
    fig.xaxis.group_label_orientation = 1.2
    fig.y_range.start = 0
    return fig


def latency_vs_users(table: pd.DataFrame) -> figure:
    """p99 against user count, a line per style (solo cells)."""
    solo = (table[~table["together"]].groupby(["style", "users"], as_index=False)[["p99_ms", "rps"]].mean()
            .sort_values("users"))  # repeats averaged
    fig = figure(height=380, width=WIDTH, title="p99 latency against concurrent users (mean of repeats)", x_axis_label="users",
                 y_axis_label="p99 (ms, log)", y_axis_type="log", tools="pan,wheel_zoom,reset,save")
    colors = _color_map(sorted(solo["style"].unique()))
    for style, rows in solo.groupby("style"):
        src = _source(rows[["users", "p99_ms", "rps"]].assign(style=style))
        fig.line("users", "p99_ms", source=src, color=colors[style], legend_label=style, line_width=2)
        fig.scatter("users", "p99_ms", source=src, color=colors[style], size=7)
    fig.add_tools(HoverTool(tooltips=[("style", "@style"), ("users", "@users"), ("p99", "@p99_ms{0.0} ms"),
                                      ("req/s", "@rps{0}")]))
    fig.legend.location = "top_left"
    fig.legend.click_policy = "hide"
    return fig


def measured_vs_predicted(table: pd.DataFrame) -> figure:
    """Measured throughput against theory's, one point per solo cell; the diagonal is a perfect fit."""
    rows = table[~table["together"] & table["predicted_rps"].notna()]
    fig = figure(height=380, width=WIDTH, title="throughput: measured against predicted (req/s, log-log)",
                 x_axis_label="predicted req/s", y_axis_label="measured req/s", x_axis_type="log",
                 y_axis_type="log", tools="pan,wheel_zoom,reset,save")
    if not rows.empty:
        lo = max(0.1, min(rows["predicted_rps"].min(), rows["rps"].min()) / 1.5)
        hi = max(rows["predicted_rps"].max(), rows["rps"].max()) * 1.5
        fig.line([lo, hi], [lo, hi], color="#999999", line_dash="dashed", legend_label="measured = predicted")
        colors = _color_map(sorted(rows["style"].unique()))
        src = _source(rows[["style", "users", "rps", "predicted_rps"]].assign(color=rows["style"].map(colors)))
        fig.scatter("predicted_rps", "rps", source=src, color="color", size=9)
        fig.add_tools(HoverTool(tooltips=[("style", "@style"), ("users", "@users"), ("measured", "@rps{0}"),
                                          ("predicted", "@predicted_rps{0}")]))
        fig.legend.location = "top_left"
    return fig


def neighbour_damage(table: pd.DataFrame) -> figure | None:
    """Each style measured alone against the same style measured beside others (together cells)."""
    together = table[table["together"]]
    if together.empty:
        return None
    solo = table[~table["together"]]
    factors, values, kinds = [], [], []
    for r in together.itertuples():
        alone = solo[(solo["style"] == r.style) & (solo["server_workers"] == r.server_workers)]
        if not alone.empty:
            # The solo cell whose users match this style's share of the together cell, else the nearest.
            share = r.users / max(1, (together["cell"] == r.cell).sum())
            a = alone.iloc[(alone["users"] - share).abs().argsort().iloc[0]]
            for metric in ("p50", "p99"):
                factors.append((r.style, f"{metric} alone (U={a.users})"))
                values.append(a[f"{metric}_ms"])
                kinds.append("alone")
        for metric in ("p50", "p99"):
            factors.append((r.style, f"{metric} with neighbours"))
            values.append(getattr(r, f"{metric}_ms"))
            kinds.append("with neighbours")
    src = ColumnDataSource({"x": factors, "ms": values, "kind": kinds,
                            "color": [COLORS[2] if k == "alone" else COLORS[3] for k in kinds]})
    fig = figure(x_range=FactorRange(*factors), height=380, width=WIDTH,
                 title="neighbour damage: latency alone and beside the other styles of the cell (ms)",
                 y_axis_label="ms", tools="hover,pan,wheel_zoom,reset,save",
                 tooltips=[("", "@x"), ("ms", "@ms{0.0}")])
    fig.vbar(x="x", top="ms", width=0.8, source=src, color="color", legend_field="kind")
    fig.xaxis.major_label_orientation = 1.0
    fig.y_range.start = 0
    return fig


def cell_timeline(cell_id: str, client: pd.DataFrame, server: pd.DataFrame) -> column:
    """Requests/s, p95, event-loop lag and threadpool tokens in use, on one shared time axis."""
    t0 = min([s["t"].min() for s in (client, server) if not s.empty], default=0.0)
    shared = Range1d(0, max([s["t"].max() - t0 for s in (client, server) if not s.empty], default=1.0) + 1)
    colors = _color_map(sorted(client["style"].unique()) if not client.empty else [])
    figs = []
    for title, frame, y, label in (
        ("requests/s", client, "rps", "req/s"), ("p95 (Locust, current window)", client, "p95_ms", "ms"),
        ("event-loop lag, worst worker", server, "lag_ms", "ms"),
        ("threadpool tokens in use, all workers", server, "threads_busy", "tokens"),
    ):
        fig = figure(height=150, width=WIDTH, x_range=shared, title=f"{cell_id}: {title}", y_axis_label=label,
                     tools="pan,wheel_zoom,reset,save")
        if not frame.empty:
            if "style" in frame.columns:
                for style, rows in frame.groupby("style"):
                    fig.line(rows["t"] - t0, rows[y], color=colors[style], line_width=2, legend_label=style)
                fig.legend.location = "top_left"
                fig.legend.label_text_font_size = "8pt"
            else:
                fig.line(frame["t"] - t0, frame[y], color=COLORS[3] if y == "lag_ms" else COLORS[4], line_width=2)
        figs.append(fig)
    figs[-1].xaxis.axis_label = "seconds into the measured window"
    return column(*figs)


def embed(charts: dict[str, object]) -> tuple[str, str, dict[str, str]]:
    """(Bokeh's JavaScript to inline, the script that draws the charts, one div per chart name)."""
    present = {k: v for k, v in charts.items() if v is not None}
    script, divs = components(present)
    js = Resources(mode="inline", components=["bokeh"]).render_js()
    return js, script, dict(divs)
