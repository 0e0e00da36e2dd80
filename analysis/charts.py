"""Charts, with Bokeh: interactive (hover, zoom) and embeddable offline with one inlined script.

Every chart reads the same way: styles in catalogue order with one colour each across the report,
legends beside the plot (never over the data), log axes where values span orders of magnitude.
Points are means over repeats (n in the hover); a series never mixes shapes (summary.SHAPE): a style
measured in several gets one series per shape, labelled with what sets it apart (and dashed or
hollow after the first).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
from bokeh.document import Document
from bokeh.embed import components
from bokeh.layouts import column
from bokeh.models import (
    ColumnDataSource,
    FactorRange,
    FixedTicker,
    HoverTool,
    Legend,
    LegendItem,
    NumeralTickFormatter,
    Range1d,
    Span,
)
from bokeh.palettes import Category10_10, Category20_20
from bokeh.plotting import figure
from bokeh.resources import Resources

from analysis import profiles
from analysis.summary import catalogue_order, neighbour_points, shape_ids, shape_labels, solo_points, valid_rows
from target_app import catalogue

WIDTH = 1040
TOOLS = "pan,wheel_zoom,reset,save"
ROW_PX = 26  # height of one row of a dot chart
# One marker and colour per percentile, the same in every dot chart.
PERCENTILES = (
    ("p50_ms", "p50", "circle", "#2ca02c"),
    ("p95_ms", "p95", "square", "#ff7f0e"),
    ("p99_ms", "p99", "triangle", "#d62728"),
)
LOG_SPAN = 10  # a max/min ratio from which a linear axis squeezes the small values into slivers
MARKERS = ("circle", "square", "triangle", "diamond", "inverted_triangle")
LABEL_CHAR_PX = 6.3  # width of a 9pt legend character, to size legends before the browser measures them


def style_colors(styles: Iterable[str]) -> dict[str, str]:
    ordered = catalogue_order(styles)
    palette = Category10_10 if len(ordered) <= 10 else Category20_20
    return {s: palette[i % len(palette)] for i, s in enumerate(ordered)}


def style_marker(style: str) -> str:
    """A marker by the style's place in its family, so styles whose colours are close still differ."""
    family = [s.id for s in catalogue.family(catalogue.family_of(style))]
    return MARKERS[family.index(style) % len(MARKERS)] if style in family else MARKERS[0]


def _source(frame: pd.DataFrame) -> ColumnDataSource:
    # From plain lists: handing Bokeh a DataFrame makes it call pandas APIs that pandas deprecates.
    return ColumnDataSource({str(k): v for k, v in frame.to_dict("list").items()})


def _legend_outside(fig: figure, items: list[tuple[str, list]], label_width: int = 20) -> None:
    """A legend to the right of the plot area, so it never covers data; a click hides a series."""
    legend = Legend(
        items=[LegendItem(label=label, renderers=r) for label, r in items],
        click_policy="hide",
        label_text_font_size="9pt",
        spacing=2,
        padding=6,
        label_width=label_width,
    )
    fig.add_layout(legend, "right")


def _legend_height(entries: int, least: int) -> int:
    return max(least, 60 + 21 * entries)


def _spans_orders(values: Iterable[float]) -> bool:
    v = np.array([x for x in values if x == x and x > 0], dtype=float)
    return len(v) > 1 and v.max() / v.min() >= LOG_SPAN


def _log_range(values: Iterable[float]) -> Range1d:
    v = np.array([x for x in values if x == x and x > 0], dtype=float)
    lo, hi = (v.min(), v.max()) if len(v) else (1.0, 10.0)
    return Range1d(lo / 1.6, hi * 1.6)


def _log_ticks(lo: float, hi: float) -> list[float]:
    """Ticks inside [lo, hi], denser when the span is short: Bokeh's own log ticker labels only the
    decades, which leaves a range such as 8..500 with no label below 100."""
    span = np.log10(hi / lo)
    mantissas = (1, 2, 3, 5, 7) if span <= 1.2 else (1, 2, 5) if span <= 4 else (1, 3) if span <= 6 else (1,)
    decades = range(int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi))) + 1)
    return [m * 10.0**d for d in decades for m in mantissas if lo <= m * 10.0**d <= hi]


def _readable_log(axis: object, rng: Range1d) -> None:
    axis.ticker = FixedTicker(ticks=_log_ticks(rng.start, rng.end))  # type: ignore[attr-defined]
    axis.formatter = NumeralTickFormatter(format="0,0.[00]")  # type: ignore[attr-defined]


def _zero_based(values: Iterable[float]) -> Range1d:
    """From 0 to just above the top: a flat zero series gets 0..1, not Bokeh's -1..1."""
    v = [x for x in values if x == x]
    return Range1d(0, max(1.0, max(v, default=0.0) * 1.1))


def _dot_chart(
    rows: pd.DataFrame, factors: list[tuple[str, str]], title: str, extra: Sequence[tuple[str, str]] = ()
) -> figure:
    """p50, p95 and p99 as three markers per row on a log ms axis; ``factors`` (group, label) top-down,
    unique; ``extra`` more (name, field) tooltips from ``rows``' columns."""
    if len(set(factors)) < len(factors):
        raise ValueError(f"{title}: two rows share a label; each needs its own")
    fields = [col for col in ("label", "requests", "repeats", "baseline", "p99_vs_baseline") if col in rows.columns]
    src = _source(rows[[*fields, *(col for col, *_ in PERCENTILES)]].assign(y=factors))
    values = [v for col, *_ in PERCENTILES for v in rows[col]]
    fig = figure(
        y_range=FactorRange(*reversed(factors), group_padding=0.6),
        x_axis_type="log",
        x_range=_log_range(values),
        height=max(220, 100 + ROW_PX * len(factors)),
        width=WIDTH,
        title=title,
        x_axis_label="ms (log scale)",
        tools=TOOLS,
    )
    items = [
        (label, [fig.scatter(col, "y", source=src, marker=marker, color=color, size=11, alpha=0.9)])
        for col, label, marker, color in PERCENTILES
    ]
    _readable_log(fig.xaxis, fig.x_range)
    fig.add_tools(
        HoverTool(
            tooltips=[
                ("", "@label"),
                ("p50", "@p50_ms{0.0} ms"),
                ("p95", "@p95_ms{0.0} ms"),
                ("p99", "@p99_ms{0.0} ms"),
                ("requests", "@requests"),
                *extra,
            ]
        )
    )
    fig.yaxis.group_label_orientation = "horizontal"
    fig.yaxis.major_label_text_font_size = "9pt"
    fig.ygrid.grid_line_color = None
    _legend_outside(fig, items)
    return fig


DASHES = ("solid", "dashed", "dotted", "dotdash", "dashdot")
BASELINE_TIP = ("p99 vs the family's baseline", "@p99_vs_baseline{0.00}x @baseline's")


def series(points: pd.DataFrame) -> pd.DataFrame:
    """``points`` (repeats averaged) with ``shape`` (a number per shape, first seen first),
    ``shape_label`` (what sets the shape apart; "" when there is one) and ``series``: the style, with
    the shape label when there are several, in catalogue order and then shape order."""
    out = points.assign(shape=shape_ids(points), shape_label=shape_labels(points))
    pairs = zip(out["style"], out["shape_label"], strict=True)
    out["series"] = [f"{style} · {label}" if label else style for style, label in pairs]
    out["rank"] = out["style"].map(catalogue.rank)
    return out.sort_values(["rank", "style", "shape", "users"], kind="stable")


def _each_series(points: pd.DataFrame) -> Iterator[tuple[str, str, int, pd.DataFrame]]:
    """(style, series label, shape number, its rows by users) for each series of :func:`series` output."""
    for (style, shape), rows in points.groupby(["style", "shape"], sort=False):
        yield str(style), str(rows["series"].iloc[0]), int(shape), rows.sort_values("users")


def percentiles_by_style(table: pd.DataFrame) -> figure:
    """p50, p95 and p99 per style and shape at its highest user count in that shape (solo cells,
    repeats averaged, n in the label)."""
    points = series(solo_points(table))
    top = points.groupby(["style", "shape"], sort=False).tail(1)
    top = top.assign(
        label=[
            f"{r.style} (U={r.users:g}" + (f", {r.shape_label}" if r.shape_label else "") + f") n={r.repeats}"
            for r in top.itertuples()
        ]
    )
    factors = [(str(r.family), str(r.label)) for r in top.itertuples()]
    return _dot_chart(
        top,
        factors,
        "p50, p95 and p99 per style at its highest user count (exact, from HDR histograms; mean of n repeats)",
        [("n repeats", "@repeats"), BASELINE_TIP],
    )


def latency_vs_users(table: pd.DataFrame) -> figure:
    """p99 against user count, a line per style and shape (solo cells, repeats averaged)."""
    points = series(solo_points(table))
    log_x = _spans_orders(points["users"])
    fig = figure(
        height=_legend_height(points.groupby(["style", "shape"]).ngroups, 400),
        width=WIDTH,
        title="p99 latency against concurrent users (exact; mean of n repeats; a line per style and shape)",
        x_axis_label="users" + (" (log scale)" if log_x else ""),
        y_axis_label="p99 (ms, log scale)",
        x_axis_type="log" if log_x else "linear",
        y_axis_type="log",
        y_range=_log_range(points["p99_ms"]),
        tools=TOOLS,
    )
    colors = style_colors(table["style"])
    items = []
    for style, label, shape, rows in _each_series(points):
        src = _source(
            rows[["users", "p99_ms", "rps", "requests", "repeats", "baseline", "p99_vs_baseline"]].assign(series=label)
        )
        dash = DASHES[shape % len(DASHES)]
        items.append(
            (
                label,
                [
                    fig.line("users", "p99_ms", source=src, color=colors[style], line_width=2, line_dash=dash),
                    fig.scatter("users", "p99_ms", source=src, color=colors[style], size=8, marker=style_marker(style)),
                ],
            )
        )
    fig.add_tools(
        HoverTool(
            tooltips=[
                ("", "@series"),
                ("users", "@users"),
                ("p99", "@p99_ms{0.0} ms"),
                ("req/s", "@rps{0}"),
                ("n repeats", "@repeats"),
                ("requests", "@requests"),
                BASELINE_TIP,
            ]
        )
    )
    _readable_log(fig.yaxis, fig.y_range)
    if log_x:
        fig.x_range = _log_range(points["users"])
        _readable_log(fig.xaxis, fig.x_range)
    _legend_outside(fig, items)
    return fig


def measured_vs_predicted(table: pd.DataFrame) -> column:
    """Measured against theory's throughput, then measured mean latency against the predicted mean (what
    Little's law predicts is a mean): one point per style, users and shape (solo cells, repeats
    averaged), a series per style and shape; the diagonal is a perfect fit. Cells that broke a
    validity rule are left out: the model is judged on numbers that can be trusted."""
    valid = table[valid_rows(table)]
    points = series(solo_points(valid))
    return column(
        _against_model(
            points,
            "rps",
            "throughput: measured against predicted (req/s, log-log; mean of n repeats; valid cells only)",
        ),
        _against_model(
            points,
            "mean_ms",
            "mean latency: measured (exact) against predicted (ms, log-log; mean of n repeats; valid cells)",
        ),
    )


def _against_model(points: pd.DataFrame, metric: str, title: str) -> figure:
    predicted = f"predicted_{metric}"
    unit = "req/s" if metric == "rps" else "ms"
    shown = points.copy()
    if predicted not in shown.columns:
        shown[predicted] = np.nan
    ok = np.isfinite(shown[predicted].astype(float)) & np.isfinite(shown[metric].astype(float))
    rows = shown[ok & (shown[predicted] > 0) & (shown[metric] > 0)]
    fig = figure(
        height=_legend_height(rows.groupby(["style", "shape"]).ngroups + 1, 400),
        width=WIDTH,
        title=title if not rows.empty else f"{title}: nothing predicted in this run",
        x_axis_label=f"predicted {unit} (log scale)",
        y_axis_label=f"measured {unit} (log scale)",
        x_axis_type="log",
        y_axis_type="log",
        tools=TOOLS,
    )
    if rows.empty:
        fig.x_range, fig.y_range = Range1d(1, 10), Range1d(1, 10)
        _legend_outside(fig, [("nothing to compare", [fig.scatter([], [], color="#999999")])])
        return fig
    lo = max(0.1, min(rows[predicted].min(), rows[metric].min()) / 1.5)
    hi = max(rows[predicted].max(), rows[metric].max()) * 1.5
    fig.x_range, fig.y_range = Range1d(lo, hi), Range1d(lo, hi)
    items = [("measured = predicted", [fig.line([lo, hi], [lo, hi], color="#888888", line_dash="dashed")])]
    colors = style_colors(points["style"])
    for style, label, shape, mine in _each_series(rows):
        src = _source(mine[["users", "repeats", metric, predicted]].assign(series=label))
        hollow = {"fill_color": "white"} if shape else {}
        marker = fig.scatter(
            predicted, metric, source=src, color=colors[style], size=9, marker=style_marker(style), **hollow
        )
        items.append((label, [marker]))
    digits = "0.0"
    fig.add_tools(
        HoverTool(
            tooltips=[
                ("", "@series"),
                ("users", "@users"),
                ("measured", f"@{metric}{{{digits}}} {unit}"),
                ("predicted", f"@{predicted}{{{digits}}} {unit}"),
                ("n repeats", "@repeats"),
            ]
        )
    )
    _readable_log(fig.xaxis, fig.x_range)
    _readable_log(fig.yaxis, fig.y_range)
    _legend_outside(fig, items)
    return fig


def neighbour_damage(table: pd.DataFrame) -> figure | None:
    """Each style of a together group beside its neighbours (mean over the group's repeats at those
    users and shape), against the same style alone (its solo point, itself a mean over repeats)."""
    nb = neighbour_points(table)
    if nb.empty:
        return None
    names = [f"{r.style}: {r.users_label} users" for r in nb.itertuples()]
    # The same style and share measured twice (another shape, another group) says what sets them apart.
    names = _apart(names, list(shape_labels(nb)))
    names = _apart(names, [str(g) for g in nb["group"]])
    names = _apart(names, [str(c[0]) for c in nb["cells"]])
    rows, factors = [], []
    for r, group in zip(nb.itertuples(), names, strict=True):
        if r.alone_repeats:
            alone = (
                f"alone (U={r.alone_users:g}"
                + ("" if r.alone_users_match else ", nearest measured")
                + f") n={r.alone_repeats}"
            )
            rows.append(
                {
                    "label": f"{r.style} {alone}",
                    "requests": r.alone_requests,
                    "repeats": r.alone_repeats,
                    **{c: getattr(r, f"{c}_alone") for c, *_ in PERCENTILES},
                }
            )
            factors.append((group, alone))
        beside = f"beside the others n={r.repeats}"
        rows.append(
            {
                "label": f"{r.style} beside {', '.join(r.neighbours)}",
                "requests": r.requests,
                "repeats": r.repeats,
                **{c: getattr(r, f"{c}_beside") for c, *_ in PERCENTILES},
            }
        )
        factors.append((group, beside))
    return _dot_chart(
        pd.DataFrame(rows),
        factors,
        "neighbour damage: each style alone and beside the other styles of its cell (exact ms; mean of n repeats)",
        [("n repeats", "@repeats")],
    )


def _apart(names: list[str], extra: list[str]) -> list[str]:
    """``names``, each that is not unique followed by its ``extra`` (when that tells them apart)."""
    counts = pd.Series(names).value_counts()
    return [f"{n} ({e})" if counts[n] > 1 and e else n for n, e in zip(names, extra, strict=True)]


def cell_timeline(
    cell_id: str,
    client: pd.DataFrame,
    server: pd.DataFrame,
    source: str,
    t0: float | None = None,
    colors: dict[str, str] | None = None,
) -> column:
    """Requests/s, latency, event-loop lag and threadpool tokens in use, on one shared time axis that
    starts at the measured window (``t0``)."""
    starts = [s["t"].min() for s in (client, server) if not s.empty]
    t0 = t0 if t0 is not None else min(starts, default=0.0)
    end = max([s["t"].max() - t0 for s in (client, server) if not s.empty], default=1.0)
    shared = Range1d(min([0.0, *(s - t0 for s in starts)]), max(1.0, end) + 0.5)
    colors = {**style_colors(client["style"]), **(colors or {})}
    client = client.assign(x=client["t"] - t0)
    server = server.assign(x=server["t"] - t0)
    latency = [("p95_ms", "p95", "solid", "square"), ("p99_ms", "p99", "dashed", "triangle")]
    # One legend width for the four charts, so their plot areas, and so their time axes, line up.
    longest = max([len("worst worker"), *(len(f"{s} p99") for s in client["style"].unique())])
    legend_px = int(longest * LABEL_CHAR_PX)
    figs = [
        _style_lines(
            f"{cell_id}: requests/s ({source})",
            client,
            [("rps", "", "solid", "circle")],
            colors,
            shared,
            "req/s",
            legend_px,
        ),
        _style_lines(f"{cell_id}: latency ({source})", client, latency, colors, shared, "ms", legend_px),
        _server_line(
            f"{cell_id}: event-loop lag (server telemetry)",
            server,
            "lag_ms",
            "ms",
            ("worst worker", Category10_10[3]),
            shared,
            legend_px,
        ),
        _server_line(
            f"{cell_id}: threadpool tokens in use (server telemetry)",
            server,
            "threads_busy",
            "tokens",
            ("all workers", Category10_10[4]),
            shared,
            legend_px,
        ),
    ]
    figs[-1].xaxis.axis_label = "seconds into the measured window"
    return column(*figs)


def _style_lines(
    title: str,
    frame: pd.DataFrame,
    metrics: Sequence[tuple[str, str, str, str]],
    colors: dict[str, str],
    x_range: Range1d,
    y_label: str,
    legend_px: int,
) -> figure:
    """A line per style and metric; a metric that history lacks (Locust's p99 in old runs) is skipped."""
    present = [m for m in metrics if m[0] in frame.columns and frame[m[0]].notna().any()]
    entries = frame["style"].nunique() * len(present)
    fig = figure(
        height=_legend_height(entries, 180),
        width=WIDTH,
        x_range=x_range,
        title=title,
        y_axis_label=y_label,
        tools=TOOLS,
        y_range=_zero_based(v for col, *_ in present for v in frame[col]),
    )
    items = []
    for style in catalogue_order(frame["style"]):
        rows = frame[frame["style"] == style]
        for col, name, dash, marker in present:
            src = _source(rows[["x", col]])
            items.append(
                (
                    f"{style} {name}".strip(),
                    [
                        fig.line("x", col, source=src, color=colors[style], line_width=2, line_dash=dash),
                        fig.scatter("x", col, source=src, color=colors[style], marker=marker, size=7),
                    ],
                )
            )
    if not items:
        items = [("no data in the window", [fig.scatter([], [], color="#999999")])]
    _legend_outside(fig, items, legend_px)
    return fig


def _server_line(
    title: str, frame: pd.DataFrame, y: str, y_label: str, name: tuple[str, str], x_range: Range1d, legend_px: int
) -> figure:
    fig = figure(
        height=150,
        width=WIDTH,
        x_range=x_range,
        title=title,
        y_axis_label=y_label,
        tools=TOOLS,
        y_range=_zero_based(frame[y] if not frame.empty else []),
    )
    label, color = name
    xs, ys = (frame["x"].tolist(), frame[y].tolist()) if not frame.empty else ([], [])
    _legend_outside(fig, [(label, [fig.line(xs, ys, color=color, line_width=2)])], legend_px)
    return fig


def embed(charts: dict[str, object]) -> tuple[str, str, dict[str, str]]:
    """(Bokeh's JavaScript to inline, the script that draws the charts, one div per chart name)."""
    present = {k: v for k, v in charts.items() if v is not None}
    # One document for every chart, its model graph computed once: left to components(), each
    # chart's add_root recomputes the graph of all charts before it (quadratic in the charts).
    doc = Document()
    with doc.models.freeze():
        for chart in present.values():
            doc.add_root(chart)
    script, divs = components(present)
    js = Resources(mode="inline", components=["bokeh"]).render_js()
    return js, script, dict(divs)


FLAME_MIN_SHARE = 0.005  # frames under half a percent of the samples are left out of the picture
CATEGORY_COLORS = dict(zip(profiles.CATEGORIES, Category10_10, strict=False))


def flame_graph(cell_id: str, stacks: profiles.Stacks) -> figure | None:
    """An icicle of the cell's CPU samples: the outermost frame at the top, each frame as wide as
    the samples that ran in it or below it, coloured by the category of the frame itself."""
    total = sum(stacks.values())
    if not total:
        return None
    width: dict[tuple[str, ...], int] = {}
    for stack, n in stacks.items():
        for depth in range(1, len(stack) + 1):
            width[stack[:depth]] = width.get(stack[:depth], 0) + n
    rows: dict[str, list] = {k: [] for k in ("left", "right", "top", "bottom", "frame", "samples", "share", "color")}
    next_left: dict[tuple[str, ...], float] = {(): 0.0}
    for path in sorted(width):  # a parent sorts before its children, siblings by name
        n = width[path]
        left = next_left[path[:-1]]
        next_left[path[:-1]] = left + n
        next_left[path] = left
        if n / total < FLAME_MIN_SHARE:
            continue
        rows["left"].append(left)
        rows["right"].append(left + n)
        rows["top"].append(-(len(path) - 1))
        rows["bottom"].append(-len(path) + 0.1)
        rows["frame"].append(path[-1])
        rows["samples"].append(n)
        rows["share"].append(f"{n / total:.1%}")
        rows["color"].append(CATEGORY_COLORS[profiles.category(path[-1])])
    depth = max(len(p) for p in width)
    fig = figure(
        title=f"{cell_id}: server CPU by stack ({total:,} samples)",
        height=min(700, 60 + 18 * depth),
        sizing_mode="stretch_width",
        x_range=(0, total),
        y_range=(-depth, 0),
        tools="xwheel_zoom,xpan,reset",
        toolbar_location="above",
    )
    fig.quad(
        source=ColumnDataSource(rows),
        left="left",
        right="right",
        top="top",
        bottom="bottom",
        fill_color="color",
        line_color="white",
    )
    fig.add_tools(HoverTool(tooltips=[("frame", "@frame"), ("samples", "@samples (@share)")]))
    fig.yaxis.visible = False
    fig.xaxis.axis_label = "samples"
    return fig


# Theory's and the search's rates on a capacity chart: (key in capacity.json, label, colour, dash).
CAPACITY_MARKS = (
    ("mst_rps", "MST (confirmed)", "#2ca02c", "solid"),
    ("knee_rps", "knee (max power)", "#1f77b4", "dotdash"),
    ("predicted_mst_rps", "predicted MST", "#7f7f7f", "dashed"),
    ("ceiling_rps", "ceiling (model)", "#d62728", "dotted"),
)


def capacity_curve(
    style: dict[str, Any], searches: list[dict[str, Any]], slo_ms: float, slo_label: str
) -> figure | None:
    """One style's probes: p50/p95/p99 against the offered rate (filled: the probe passed; hollow:
    it failed), the SLO's p99 as a horizontal line, and the MST, knee, predicted MST and ceiling as
    vertical ones."""
    rows = [
        {
            **p,
            "search": s["search"],
            "outcome_words": p["outcome"] + (f" ({', '.join(p['failed_rules'])})" if p["failed_rules"] else ""),
        }
        for s in searches
        for p in s["probes"]
        if isinstance(p.get("p99_ms"), (int, float)) and p["outcome"] in ("pass", "fail")  # not the set-aside
    ]
    if not rows:
        return None
    frame = pd.DataFrame(rows).sort_values("offered_rps")
    marks = {key: style.get(key) for key, *_ in CAPACITY_MARKS}
    xs = [*frame["offered_rps"], *(v for v in marks.values() if isinstance(v, (int, float)) and v > 0)]
    log_x = _spans_orders(xs)
    ys = [*frame["p50_ms"], *frame["p99_ms"], slo_ms]
    fig = figure(
        height=330,
        width=WIDTH,
        title=f"{style['style']}: latency against offered load (exact, from each request's intended start; "
        "filled: the probe passed, hollow: it failed)",
        x_axis_label="offered requests/s" + (" (log scale)" if log_x else ""),
        y_axis_label="latency (ms, log scale)",
        x_axis_type="log" if log_x else "linear",
        y_axis_type="log",
        y_range=_log_range(ys),
        tools=TOOLS,
    )
    items = []
    shown = ["offered_rps", "achieved_rps", "outcome_words", "cell", "phase"]
    ok = frame["outcome"] == "pass"
    for col, label, marker, color in PERCENTILES:
        src, passed, failed = (
            _source(f[[*shown, col]].rename(columns={col: "ms"})) for f in (frame, frame[ok], frame[~ok])
        )
        items.append(
            (
                label,
                [
                    fig.line("offered_rps", "ms", source=src, color=color, line_width=1.5, alpha=0.6),
                    fig.scatter("offered_rps", "ms", source=passed, color=color, size=9, marker=marker),
                    fig.scatter(
                        "offered_rps", "ms", source=failed, line_color=color, fill_color="white", size=9, marker=marker
                    ),
                ],
            )
        )
    slo_line = Span(location=slo_ms, dimension="width", line_color="#d62728", line_dash="dashed", line_width=1.5)
    fig.add_layout(slo_line)
    # A Span has no legend entry: an invisible line of the same look stands in for it.
    items.append((f"SLO {slo_label}", [_legend_only(fig, xs[0], "#d62728", "dashed")]))
    for key, label, color, dash in CAPACITY_MARKS:
        value = marks[key]
        if not isinstance(value, (int, float)) or value <= 0:
            continue
        fig.add_layout(Span(location=value, dimension="height", line_color=color, line_dash=dash, line_width=2))
        items.append((f"{label} {value:,.4g}/s", [_legend_only(fig, xs[0], color, dash)]))
    fig.add_tools(
        HoverTool(
            tooltips=[
                ("probe", "@cell (@phase)"),
                ("offered", "@offered_rps{0,0.0}/s"),
                ("achieved", "@achieved_rps{0,0.0}/s"),
                ("latency", "@ms{0,0.0} ms"),
                ("outcome", "@outcome_words"),
            ]
        )
    )
    _readable_log(fig.yaxis, fig.y_range)
    if log_x:
        fig.x_range = _log_range(xs)
        _readable_log(fig.xaxis, fig.x_range)
    else:
        fig.x_range = _zero_based(xs)
    _legend_outside(fig, items, label_width=150)
    return fig


def _legend_only(fig: figure, x: float, color: str, dash: str) -> Any:
    """A line with no visible point (its y is NaN), for a legend entry that looks like a Span."""
    return fig.line([x, x], [float("nan"), float("nan")], line_color=color, line_dash=dash, line_width=2)
