"""A capacity run: per base cell (a style, a server shape, a repeat) a search for its maximum
sustainable throughput, each probe measured as a cell of the run and judged, its budget and ETA.

Searches start a little under the model's predicted MST (routebench.search decides the rates);
a probe that could not be measured is set aside and run once more. ``capacity.json``
(analysis.capacity.document) is rewritten after every probe, so an interrupted run keeps what it
found. The documents analysis.capacity makes and reads are the run's; here, only the driving.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from rich.progress import Progress, TaskID

from analysis import capacity
from analysis.rundir import MEASURED, CellRecord, write_json
from routebench import stopping
from routebench.cell import run_cell
from routebench.context import RunContext
from routebench.experiment import Cell, Experiment
from routebench.locust_cluster import default_worker_count
from routebench.probe import judge_probe, probe_cell, tail_s
from routebench.progress import CELL_OVERHEAD_S, STACK_START_S, clock, progress_bar
from routebench.search import Search, rounded

CALIBRATION_S_PER_STYLE = 3.0  # the CPU probes, for a capacity run's budget
DEFAULT_START_RPS = 10.0  # a search's first rate when the model predicts none
# A search starts a little under the model's predicted MST: the model takes the requests as one
# queue in front of the workers, which the real dispatch (by connection) only approaches.
START_SHARE = 0.9
# The generator's CPU per request before a probe measured it: open-model probes of many users cost
# about 0.4 ms here (make capacity; a closed plain user costs 0.1 ms, make bench).
GENERATOR_S_GUESS = 4e-4


def slos_of(exp: Experiment) -> list[dict[str, Any]]:
    """The capacity search's SLOs, parsed (analysis.capacity.parse_slo)."""
    return [capacity.parse_slo(t) for t in exp.capacity.slo]


def probe_times(exp: Experiment) -> tuple[float, float]:
    """A probe's and a confirmation's wall time: warm-up, window, tail and a cell's overhead."""
    cfg = exp.capacity
    extra = (exp.warmup_s or 0.0) + tail_s(slos_of(exp)) + CELL_OVERHEAD_S
    return cfg.probe_s + extra, cfg.confirm_s + extra


def expected_probes(exp: Experiment) -> int:
    """A search from a good start: the start and one step, the bisections, the confirmation."""
    cfg = exp.capacity
    return Search.expected_probes(1.0, cfg.growth, cfg.growth, cfg.tolerance)


def budget_before_probes(exp: Experiment, searches: int) -> float:
    """The calibration and the first stack start, for a capacity run's budget."""
    calibration = searches * CALIBRATION_S_PER_STYLE if exp.calibrate else 0.0
    return calibration + STACK_START_S


def budget(exp: Experiment, searches: int) -> tuple[float, float]:
    """A capacity run's time: about (each search at the expected number of probes), and at
    most (every probe of its budget, two of them confirmations); both from the start."""
    probe_s, confirm_s = probe_times(exp)
    before = budget_before_probes(exp, searches)
    expected = before + searches * ((expected_probes(exp) - 1) * probe_s + confirm_s)
    return expected, before + searches * ((exp.capacity.max_probes - 2) * probe_s + 2 * confirm_s)


def print_budget(ctx: RunContext) -> None:
    """The capacity run's time, up front (before calibrating)."""
    exp, cells = ctx.experiment, ctx.cells
    about, worst = budget(exp, len(cells))
    ctx.console.print(
        f"capacity run [bold]{ctx.state.header.run_id}[/]: {len(cells)} searches "
        f"({', '.join(c.styles[0] for c in cells)}); "
        f"budget about {about / 60:.1f} min (calibration, then about {expected_probes(exp)} probes a search: "
        f"{exp.capacity.probe_s:g} s windows and a {exp.capacity.confirm_s:g} s confirmation; "
        f"at most {worst / 60:.1f} min) -> {ctx.run_dir}"
    )


def save_capacity(ctx: RunContext, complete: bool = False) -> None:
    """``capacity.json`` from the run's state as it stands (analysis.capacity.document)."""
    write_json(ctx.files.capacity, capacity.document(ctx.state.to_json(), ctx.cores, complete=complete))


@dataclass
class CapacityRun:
    ctx: RunContext
    slos: list[dict[str, Any]] = field(init=False)

    def __post_init__(self) -> None:
        self.slos = slos_of(self.ctx.experiment)

    def searches(self) -> list[tuple[Cell, Search]]:
        """A search per base cell, from a little under the model's predicted MST."""
        cfg = self.ctx.experiment.capacity
        limit_ms = capacity.latency_limit_ms(self.slos)
        out = []
        for base in self.ctx.cells:
            model = capacity.theory_numbers(
                base.styles[0],
                base.model_dump(),
                self.ctx.state.calibration,
                self.ctx.cores,
                GENERATOR_S_GUESS,
                limit_ms,
            )
            guess = model.get("predicted_mst_rps")
            start = cfg.start_rps or (START_SHARE * guess if guess else DEFAULT_START_RPS)
            start = min(max(start, cfg.min_rps), cfg.max_rps)
            search = Search(
                rounded(start),
                cfg.min_rps,
                cfg.max_rps,
                cfg.growth,
                cfg.tolerance,
                cfg.max_probes,
                model.get("ceiling_rps"),
            )
            out.append((base, search))
        return out

    def run(self) -> None:
        """Each search to its end, probes added as cells as it decides them."""
        ctx, cfg = self.ctx, self.ctx.experiment.capacity
        searches = self.searches()
        left = budget(ctx.experiment, len(ctx.cells))[0] - budget_before_probes(ctx.experiment, len(ctx.cells))
        ctx.state.capacity = {"slo": cfg.slo, "searches": []}
        with progress_bar(ctx.console) as progress:
            task = progress.add_task("starting", total=len(searches), eta=clock(left))
            for i, (base, search) in enumerate(searches):
                stopping.check()
                style = base.styles[0]
                entry: dict[str, Any] = {"style": style, "cell": base.model_dump(), "search": i + 1}
                ctx.state.capacity["searches"].append(entry)
                if base.needs_db and ctx.db_problem:
                    search.outcome = f"skipped: {ctx.db_problem}"
                    entry.update(search.summary())
                    save_capacity(ctx)
                    continue
                while (step := search.next_probe()) is not None:
                    stopping.check()
                    rate, phase = step
                    verdict = self.probe(i, len(searches), base, search, rate, phase, progress, task)
                    if verdict.get("set_aside"):  # the same probe once more
                        verdict = self.probe(i, len(searches), base, search, rate, phase, progress, task)
                    search.record(rate, phase, verdict["passed"])
                    entry.update(search.summary())
                    ctx.save()
                    save_capacity(ctx)
                entry.update(search.summary())
                save_capacity(ctx)
                found = search.mst()
                ctx.console.print(
                    f"[bold]{style}[/]: "
                    + (f"MST {found['mst_rps']:,.4g} req/s" if found["confirmed"] else "no confirmed MST")
                    + f" ({search.outcome}; {len(search.probes)} probes"
                    + (f", {len(search.retries)} of them run twice" if search.retries else "")
                    + ")"
                )
                progress.update(task, completed=i + 1)

    def probe(
        self,
        i: int,
        n: int,
        base: Cell,
        search: Search,
        rate: float,
        phase: str,
        progress: Progress,
        task: TaskID,
    ) -> dict[str, Any]:
        """One probe as a cell of the run, judged; a probe to run again is marked set aside."""
        ctx = self.ctx
        processes = base.locust_workers or default_worker_count()
        index = len(ctx.state.cells) + 1
        probe = probe_cell(base, rate, phase, index, ctx.experiment.capacity, self.slos, processes)
        ctx.state.cells.append(CellRecord(probe.model_dump(), search=i + 1, phase=phase))
        done, expected = len(search.probes), expected_probes(ctx.experiment)
        probe_s, confirm_s = probe_times(ctx.experiment)
        style = base.styles[0]
        label = f"search {i + 1}/{n} {style} probe {done + 1} ({phase} {rate:,.4g} req/s)"

        def eta(elapsed: float) -> tuple[float, str]:
            # This probe's rest, this search's expected rest, then the searches to come.
            whole = probe.duration_s + probe.warmup_s + probe.tail_s + CELL_OVERHEAD_S
            rest = max(0, expected - done - 1) * probe_s + (n - i - 1) * ((expected - 1) * probe_s + confirm_s)
            share = (done + min(1.0, elapsed / whole)) / max(expected, done + 1)
            return i + min(0.95, share), clock(max(0.0, whole - elapsed) + rest)

        record = run_cell(ctx, probe, progress, task, label, eta)
        files = ctx.files.cell(probe.id)
        exact = json.loads(files.exact.read_text()) if record.status in MEASURED else None
        verdict = judge_probe(probe, record, exact, self.slos)
        if not verdict["passed"] and verdict.get("retry") and not search.retried(rate, phase):
            verdict["set_aside"] = f"run again: {verdict['retry']}"
            search.retries.append((rate, phase))
        record.probe = verdict
        files.write_record(record)
        ctx.save()
        shown = (
            "[green]pass[/]"
            if verdict["passed"]
            else f"[yellow]set aside[/] ({verdict['set_aside']})"
            if verdict.get("set_aside")
            else f"[red]fail[/] ({'; '.join(verdict['why'])})"
        )
        ctx.console.print(f"  {style} {phase} {rate:,.4g} req/s: {shown}", soft_wrap=False)
        return verdict
