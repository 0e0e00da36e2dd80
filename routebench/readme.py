"""``routebench readme-tables``: the README's measured figures, produced from a run, never typed.

The README holds them between two markers; ``--write README.md`` replaces what stands between them
with this run's tables, stamped with the run id, the commit and the machine, so every figure there
names the run it came from and the command that made it.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from analysis.answers import answers
from analysis.report import Analysis, analyse
from analysis.rundir import MEASURED
from analysis.summary import neighbour_points
from target_app import catalogue

BEGIN = "<!-- readme-tables: begin (made by `routebench readme-tables`; do not edit by hand) -->"
END = "<!-- readme-tables: end -->"
BLOCK = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)


def _num(value: object, digits: int = 1) -> str:
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "–"
    return "–" if math.isnan(f) else f"{f:,.{digits}f}"


def provenance(a: Analysis) -> str:
    meta = a.run.meta
    git = meta.get("git", {})
    commit = (git.get("commit") or "unknown")[:12] + (" with uncommitted changes" if git.get("dirty") else "")
    machine = meta.get("machine", {})
    cells = a.run.cells
    ok = sum(1 for c in cells if c.get("status") in MEASURED)
    wall = meta.get("wall_s")
    took = f", {wall:.0f} s of matrix" if isinstance(wall, (int, float)) else ""
    return (
        f"Run `{meta.get('run_id', a.run.dir.name)}` (experiment `{meta.get('experiment', {}).get('name', '?')}`, "
        f"{ok} of {len(cells)} cells{took}), commit `{commit}`, {machine.get('cpu_model', 'unknown CPU')} "
        f"x {machine.get('cpu_count', '?')}. Reproduce: `{meta.get('reproduce', {}).get('command', 'make loadtest')}`."
    )


def answers_markdown(a: Analysis) -> str:
    lines = []
    for ans in answers(a.table):
        lines.append(f"- **{ans.headline}**")
    return "\n".join(lines)


def _bound(r: object, col: str, digits: int = 1) -> str:
    """A figure, "≥" in front when it is only a lower bound (requests unfinished at the close)."""
    value = _num(getattr(r, col), digits)
    return ("≥" if bool(getattr(r, f"{col}_at_least", False)) else "") + value


def cells_markdown(a: Analysis) -> str:
    t = a.table[~a.table["together"]]
    t = t.assign(_order=t["style"].map(catalogue.rank))
    t = t.sort_values(["_order", "users", "repeat"], kind="stable")
    header = (
        "| style | users | repeat | req/s | predicted | measured / predicted | mean | predicted mean | p50 | p99 | "
        "Locust's p99 | valid |\n|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|:--|"
    )
    rows = [
        f"| `{r.style}` | {r.users:g} | {r.repeat} | {_num(r.rps)} | {_num(r.predicted_rps, 0)} | "
        f"{_num(r.rps_vs_predicted, 2)} | {_bound(r, 'mean_ms')} | {_num(r.predicted_mean_ms)} | "
        f"{_bound(r, 'p50_ms')} | {_bound(r, 'p99_ms')} | {_num(r.locust_p99_ms, 0)} | "
        f"{'yes' if r.valid else 'no: ' + str(r.validity_failed)} |"
        for r in t.itertuples()
    ]
    return "\n".join([header, *rows])


def neighbours_markdown(a: Analysis) -> str:
    n = neighbour_points(a.table)
    if n.empty:
        return ""
    header = (
        "| style | users | n | alone at | p50 alone | p50 beside (range) | x | p99 alone | p99 beside (range) | x | "
        "req/s alone | req/s beside |\n|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
    )

    def beside(r: dict[str, object], m: str) -> str:
        spread = f" ({_num(r[f'{m}_beside_min'])}–{_num(r[f'{m}_beside_max'])})" if r["repeats"] > 1 else ""  # type: ignore[operator]
        return _num(r[f"{m}_beside"]) + spread

    rows = [
        f"| `{r['style']}` | {r['users_label']} | {r['repeats']} | {_num(r['alone_users'], 0)} users |"
        f" {_num(r['p50_ms_alone'])} | {beside(r, 'p50_ms')} | {_num(r['p50_ms_ratio'], 2)} |"
        f" {_num(r['p99_ms_alone'])} | {beside(r, 'p99_ms')} | {_num(r['p99_ms_ratio'], 2)} |"
        f" {_num(r['rps_alone'])} | {beside(r, 'rps')} |"
        for r in n.to_dict("records")
    ]
    return "\n".join([header, *rows])


def _repeats(a: Analysis) -> str:
    most = int(a.table["repeat"].max()) if not a.table.empty else 1
    if most == 1:
        return "one measurement per cell (no repeats, so no interval)"
    return f"up to {most} repeats per cell, each its own row (intervals in the report)"


def tables(run_dir: Path) -> str:
    """The README block for ``run_dir``, markers included."""
    a = analyse(run_dir)
    parts = [
        BEGIN,
        provenance(a),
        "",
        "Latency in ms, exact (HDR histograms merged from every Locust worker; Locust's own p99 beside "
        "it, rounded as Locust rounds), of the requests started in the window, each let finish after it; ≥: a "
        "lower bound (requests of the window still unfinished when the test stopped); req/s: the window's "
        "completed requests over the measured window; "
        f"{_repeats(a)}; predicted: the route style's queueing model ([docs/model.md](docs/model.md)) "
        "for the cell's own W, T, P, d and U, with the CPU per request measured by the run's "
        "calibration and the cores the load generator left; its mean latency is compared with the "
        "measured mean; valid: the cell's validity rules (the report gives the reasons).",
        "",
        "What this run answers, per family:",
        "",
        answers_markdown(a),
        "",
        cells_markdown(a),
    ]
    beside = neighbours_markdown(a)
    if beside:
        parts += [
            "",
            "Neighbour damage: each style beside the others (the mean over n repeats of the shared cell, "
            "lowest–highest in brackets) against the same style alone (its solo cells at the users named, "
            "repeats averaged); users: on the style of the cell's.",
            "",
            beside,
        ]
    return "\n".join([*parts, END]) + "\n"


def write(readme: Path, block: str) -> None:
    text = readme.read_text(encoding="utf-8")
    if not BLOCK.search(text):
        raise ValueError(f"{readme}: no readme-tables markers to replace")
    readme.write_text(BLOCK.sub(lambda _: block.rstrip("\n"), text, count=1), encoding="utf-8")


def columns_of(block: str) -> list[str]:
    """The header row of each table in a block (what tests compare)."""
    return [line for line in block.splitlines() if line.startswith("| style")]
