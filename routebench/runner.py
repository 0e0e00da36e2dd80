"""``routebench run``: the experiment matrix, cell by cell, into ``results/<run-id>/``.

Each cell runs on a target stack and a Locust cluster from the lab (routebench.lab: reused while
the configuration stays the same and every cell goes cleanly). A cell is one test the runner starts
through the Locust master's web API; the locustfile stops it (after its window, or once its p99s are
precise) and saves it in the cell's directory. The runner then keeps the cell's slice of the
server's log and telemetry, and waits until the server holds nothing of it (drained) before the
next cell. ``cell.json`` says how the cell went, ``run.json`` holds the metadata and every cell's
state; it is rewritten (atomically) after each cell, so an interrupted run keeps what finished.
"""

from __future__ import annotations

import csv
import functools
import json
import math
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psutil
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from analysis import capacity, validity
from analysis.load import read_telemetry
from analysis.rundir import MEASURED, CellDir, RunDir, set_aside, write_json
from analysis.timeseries import stall_summary
from routebench import calibrate, metadata, postgres, stopping
from routebench.capacity import Search, rounded
from routebench.experiment import Cell, Experiment, expand, reproduce
from routebench.lab import Lab
from routebench.launcher import AppError, DiedWhileStarting, Stack, StackError, http_status, wait_for
from routebench.locust_cluster import CPU_WARNING, LoadSpec, LocustCluster, default_worker_count
from routebench.profiler import Profiler
from routebench.watch import BEFORE_WINDOW, TICK_S, GeneratorLost, Watch, heartbeat_losses
from target_app import catalogue
from target_app.settings import Settings
from target_app.telemetry import copy_window, drained, sizes, worker_file

RESULTS_DIR = Path("results")
CELL_OVERHEAD_S = 2.0  # a cell's time beyond warm-up and window, for the ETA until cells have run
STACK_START_S = 5.0  # a fresh stack (more with PostgreSQL), for the ETA
DRAIN_TIMEOUT_S = 30.0  # a server still holding requests this long after a cell is started afresh
SAVE_TIMEOUT_S = 90.0  # past a test's latest end, for its final reports and save
GENERATOR_ATTEMPTS = 3  # a load generator lost before the window is started again, this many times in all
NOTHING_COMPLETED = "no request completed in the window"  # a failed cell's reason (a probe: overload)
# Capacity probes: users enough for the rate at the SLO's latency, this many times over (an open
# model short of users starts late: the schedule rule then fails the probe, not the server).
USERS_HEADROOM = 2.0
MIN_USER_LATENCY_MS = 100.0
CALIBRATION_S_PER_STYLE = 3.0  # the CPU probes, for a capacity run's budget
DEFAULT_START_RPS = 10.0  # a search's first rate when the model predicts none
# A search starts a little under the model's predicted MST: the model takes the requests as one
# queue in front of the workers, which the real dispatch (by connection) only approaches.
START_SHARE = 0.9
# The generator's CPU per request before a probe measured it: open-model probes of many users cost
# about 0.4 ms here (make capacity; a closed plain user costs 0.1 ms, make bench).
GENERATOR_S_GUESS = 4e-4
PROGRESS_COLUMNS_WIDTH = 44  # bar (up to 40 shrinks to fit), "100%", "0:01:23", "ETA", "0:04:56", spaces


def new_run_id(name: str) -> str:
    return f"{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}-{name}"


def clock(seconds: float) -> str:
    s = max(0, round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def eta_text(low: float, high: float) -> str:
    """What is left, as a range when precision-driven cells may stop anywhere between their
    minimum and maximum windows."""
    return clock(low) if high - low < 1 else f"{clock(low)}–{clock(high)}"


def current_rps(history_csv: Path) -> float | None:
    """Requests/s of the last row Locust wrote to its stats history (the Aggregated line)."""
    try:
        with history_csv.open(newline="") as f:
            rows = [r for r in csv.DictReader(f) if r.get("Name") == "Aggregated"]
        return float(rows[-1]["Requests/s"]) if rows else None
    except (OSError, ValueError, KeyError, csv.Error):
        return None


@dataclass
class Runner:
    experiment: Experiment
    base_settings: Settings
    results_dir: Path = RESULTS_DIR
    external_workers: int = 0
    master_host: str = "127.0.0.1"
    master_port: int = 0
    target_url: str | None = None  # a target already running elsewhere: no stack is started
    console: Console = field(default_factory=lambda: Console(stderr=True, highlight=False, soft_wrap=True))
    on_worker_command: Callable[[list[str]], None] | None = None
    source: str = ""  # the profile name or file path the experiment came from, for "Reproduce"
    app_routes: dict[str, Any] | None = None  # your app: the routes plan (routebench.routes.plan)

    def __post_init__(self) -> None:
        self.classes = (
            {r["id"]: r["class_name"] for r in self.app_routes["routes"]}
            if self.app_routes is not None
            else {s.id: s.class_name for s in catalogue.STYLES}
        )
        self.cells = expand(self.experiment, list(self.classes) if self.app_routes is not None else None)
        self.run_id = new_run_id(self.experiment.name)
        # Absolute: the Locust processes and your app's server run in directories of their own.
        self.run_dir = self.results_dir.resolve() / self.run_id
        self.state: dict[str, Any] = {}
        self._drain_s: float | None = None

    # -- the run --------------------------------------------------------------------------------
    def run(self) -> Path:
        self.run_dir.mkdir(parents=True, exist_ok=False)
        started = time.monotonic()
        files = RunDir(self.run_dir)
        if self.app_routes is not None:
            write_json(files.routes, self.app_routes)
        self.lab = Lab(
            self.run_dir,
            reuse=self.experiment.reuse,
            master_host=self.master_host,
            master_port=self.master_port,
            external_workers=self.external_workers,
            on_worker_command=self.on_worker_command,
            routes_file=files.routes if self.app_routes is not None else None,
        )
        self.state = {
            "run_id": self.run_id,
            "status": "running",
            "started_at": time.time(),
            "experiment": self.experiment.model_dump(exclude_none=True),
            "settings": self.base_settings.model_dump(mode="json", exclude={"database_url"}),
            "database": "your app's own"
            if self.base_settings.app
            else "DATABASE_URL"
            if self.base_settings.database_url
            else "embedded",
            # A capacity run's cells are its probes, added as the searches decide them.
            "cells": [] if self.capacity else [{**c.model_dump(), "status": "pending"} for c in self.cells],
        }
        try:
            self._save_state()  # first, so an interrupted run is always marked as such
            app = self.app_routes.get("app") if self.app_routes is not None else None
            self.state["reproduce"] = reproduce(self.source or self.experiment.name, self.experiment, self.run_dir, app)
            self.state.update(metadata.collect(self.base_settings))
            if self.capacity:
                self._print_budget()
            self.state["calibration"] = self._calibrate()
            self._save_state()
            if self.capacity:
                self._run_capacity()
            else:
                self._run_matrix()
        except KeyboardInterrupt:
            self._finish("incomplete", time.monotonic() - started)
            raise
        except AppError as exc:  # said in one line by the CLI; the run directory says it too
            self.state["reason"] = str(exc)
            self._finish("failed", time.monotonic() - started)
            raise
        finally:
            self.lab.close()
        self._finish("complete", time.monotonic() - started)
        return self.run_dir

    def _plan(self, cells: list[Cell]) -> tuple[float, float]:
        """The least and the most time ``cells`` can take: each measures from its minimum to its
        maximum window (the same when its window is fixed), plus the overhead seen so far per cell."""
        done = [c for c in self.state["cells"] if c.get("wall_s") is not None and c.get("window_s") is not None]
        reuse = self.experiment.reuse
        if done:  # what cells took here beyond their windows (a fresh stack each, without reuse)
            overhead = statistics.median(c["wall_s"] - c["warmup_s"] - c["window_s"] for c in done)
        else:
            overhead = CELL_OVERHEAD_S + (0.0 if reuse else STACK_START_S)
        # Reusing: a stack starts where the server settings change (and for the first cell).
        keys = [self._settings(c).model_dump_json() for c in cells]
        starts = sum(1 for i, k in enumerate(keys) if i == 0 and self.lab.stack is None or i and k != keys[i - 1])
        extra = starts * STACK_START_S if reuse else 0.0
        low = sum(c.warmup_s + c.duration_s + overhead for c in cells) + extra
        high = sum(c.warmup_s + c.longest_s + overhead for c in cells) + extra
        return low, high

    def _run_matrix(self) -> None:
        low, high = self._plan(self.cells)
        span = f"{low / 60:.1f} min" if high - low < 30 else f"{low / 60:.1f} to {high / 60:.1f} min"
        self.console.print(
            f"run [bold]{self.run_id}[/]: {len(self.cells)} cells, about {span} -> {self.run_dir}"
            + ("" if self.experiment.reuse else " (reuse = false: a fresh stack and Locust for every cell)")
        )
        db_problem = self._db_problem
        with self._progress() as progress:
            task = progress.add_task("starting", total=len(self.cells), eta=eta_text(low, high))
            for cell in self.cells:
                stopping.check()
                if cell.needs_db and db_problem:
                    self._skip_cell(cell, db_problem)
                else:
                    self._run_cell(cell, progress, task)
                progress.update(task, completed=cell.index, eta=eta_text(*self._plan(self.cells[cell.index :])))

    def _progress(self) -> Progress:
        """The progress line: what runs now, a bar, elapsed time and the ETA."""
        return Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            TextColumn("ETA {task.fields[eta]}"),
            console=self.console,
            transient=True,
        )

    @property
    def capacity(self) -> bool:
        return self.experiment.mode == "capacity"

    def _run_capacity(self) -> None:
        """A search per style (and server shape, and repeat): probes added as cells as it decides
        them; capacity.json rewritten after every probe, so an interrupted run keeps what it found."""
        cfg = self.experiment.capacity
        limit_ms = capacity.latency_limit_ms(self._slos)
        searches: list[tuple[Cell, Search]] = []
        for base in self.cells:
            model = capacity.theory_numbers(
                base.styles[0],
                base.model_dump(),
                self.state.get("calibration"),
                self._cores,
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
            searches.append((base, search))
        budget = self._budget()[0] - self._budget_before_probes()
        self.state["capacity"] = {"slo": cfg.slo, "searches": []}
        with self._progress() as progress:
            task = progress.add_task("starting", total=len(searches), eta=clock(budget))
            for i, (base, search) in enumerate(searches):
                stopping.check()
                style = base.styles[0]
                entry = {"style": style, "cell": base.model_dump(), "search": i + 1}
                self.state["capacity"]["searches"].append(entry)
                if base.needs_db and self._db_problem:
                    search.outcome = f"skipped: {self._db_problem}"
                    entry.update(self._search_state(search))
                    self._save_capacity()
                    continue
                while (step := search.next_probe()) is not None:
                    stopping.check()
                    rate, phase = step
                    verdict = self._run_probe(i, len(searches), base, search, rate, phase, progress, task)
                    if verdict.get("set_aside"):  # the same probe once more
                        verdict = self._run_probe(i, len(searches), base, search, rate, phase, progress, task)
                    search.record(rate, phase, verdict["passed"])
                    entry.update(self._search_state(search))
                    self._save_state()
                    self._save_capacity()
                entry.update(self._search_state(search))
                self._save_capacity()
                found = search.mst()
                self.console.print(
                    f"[bold]{style}[/]: "
                    + (f"MST {found['mst_rps']:,.4g} req/s" if found["confirmed"] else "no confirmed MST")
                    + f" ({search.outcome}; {len(search.probes)} probes"
                    + (f", {len(search.retries)} of them run twice" if search.retries else "")
                    + ")"
                )
                progress.update(task, completed=i + 1)

    def _run_probe(
        self,
        i: int,
        n: int,
        base: Cell,
        search: Search,
        rate: float,
        phase: str,
        progress: Progress,
        task: Any,
    ) -> dict[str, Any]:
        """One probe as a cell of the run, judged; a probe to run again is marked set aside."""
        probe = self._probe_cell(base, rate, phase)
        self.state["cells"].append({**probe.model_dump(), "status": "pending", "search": i + 1, "phase": phase})
        done, expected = len(search.probes), self._expected_probes()
        probe_s, confirm_s = self._probe_times()
        style = base.styles[0]
        label = f"search {i + 1}/{n} {style} probe {done + 1} ({phase} {rate:,.4g} req/s)"

        def eta(elapsed: float) -> tuple[float, str]:
            # This probe's rest, this search's expected rest, then the searches to come.
            whole = probe.duration_s + probe.warmup_s + probe.tail_s + CELL_OVERHEAD_S
            rest = max(0, expected - done - 1) * probe_s + (n - i - 1) * ((expected - 1) * probe_s + confirm_s)
            share = (done + min(1.0, elapsed / whole)) / max(expected, done + 1)
            return i + min(0.95, share), clock(max(0.0, whole - elapsed) + rest)

        record = self._run_cell(probe, progress, task, label, eta)
        verdict = self._judge_probe(probe, record, self._slos)
        if not verdict["passed"] and verdict.get("retry") and not search.retried(rate, phase):
            verdict["set_aside"] = f"run again: {verdict['retry']}"
            search.retries.append((rate, phase))
        record["probe"] = verdict
        self.state["cells"][probe.index - 1]["probe"] = verdict
        write_json(CellDir(self.run_dir / probe.id).cell_json, {**probe.model_dump(), **record})
        self._save_state()
        shown = (
            "[green]pass[/]"
            if verdict["passed"]
            else f"[yellow]set aside[/] ({verdict['set_aside']})"
            if verdict.get("set_aside")
            else f"[red]fail[/] ({'; '.join(verdict['why'])})"
        )
        self.console.print(f"  {style} {phase} {rate:,.4g} req/s: {shown}", soft_wrap=False)
        return verdict

    def _probe_times(self) -> tuple[float, float]:
        """A probe's and a confirmation's wall time: warm-up, window, tail and a cell's overhead."""
        cfg = self.experiment.capacity
        extra = (self.experiment.warmup_s or 0.0) + self._tail_s() + CELL_OVERHEAD_S
        return cfg.probe_s + extra, cfg.confirm_s + extra

    @functools.cached_property
    def _slos(self) -> list[dict[str, Any]]:
        """The capacity search's SLOs, parsed (analysis.capacity.parse_slo)."""
        return [capacity.parse_slo(t) for t in self.experiment.capacity.slo]

    @property
    def _cores(self) -> float:
        """The machine's cores as run.json records them (the report reads the same)."""
        return float(self.state.get("machine", {}).get("cpu_count") or psutil.cpu_count() or 1)

    def _tail_s(self) -> float:
        """A probe's tail: the SLOs' longest latency limit (analysis.capacity.tail_ms)."""
        return capacity.tail_ms(self._slos) / 1000

    def _expected_probes(self) -> int:
        """A search from a good start: the start and one step, the bisections, the confirmation."""
        cfg = self.experiment.capacity
        return Search.expected_probes(1.0, cfg.growth, cfg.growth, cfg.tolerance)

    def _budget_before_probes(self) -> float:
        """The calibration and the first stack start, for a capacity run's budget."""
        calibration = len(self.cells) * CALIBRATION_S_PER_STYLE if self.experiment.calibrate else 0.0
        return calibration + STACK_START_S

    def _budget(self) -> tuple[float, float]:
        """A capacity run's time: about (each search at the expected number of probes), and at
        most (every probe of its budget, two of them confirmations); both from the start."""
        cfg, n = self.experiment.capacity, len(self.cells)
        probe_s, confirm_s = self._probe_times()
        before = self._budget_before_probes()
        expected = before + n * ((self._expected_probes() - 1) * probe_s + confirm_s)
        return expected, before + n * ((cfg.max_probes - 2) * probe_s + 2 * confirm_s)

    def _print_budget(self) -> None:
        """The capacity run's time, up front (before calibrating)."""
        cfg, n = self.experiment.capacity, len(self.cells)
        budget, worst = self._budget()
        expected = self._expected_probes()
        self.console.print(
            f"capacity run [bold]{self.run_id}[/]: {n} searches ({', '.join(c.styles[0] for c in self.cells)}); "
            f"budget about {budget / 60:.1f} min (calibration, then about {expected} probes a search: "
            f"{cfg.probe_s:g} s windows and a {cfg.confirm_s:g} s confirmation; at most {worst / 60:.1f} min) "
            f"-> {self.run_dir}"
        )

    def _probe_cell(self, base: Cell, rate: float, phase: str) -> Cell:
        """One probe of ``base``'s style at ``rate``: an open-model cell with users enough for the
        rate at the SLO's latency (twice that, and two per generator process at least)."""
        cfg = self.experiment.capacity
        limit_ms = capacity.latency_limit_ms(self._slos)
        index = len(self.state["cells"]) + 1
        processes = base.locust_workers or default_worker_count()
        users = min(
            10_000, math.ceil(rate * max(limit_ms, MIN_USER_LATENCY_MS) / 1000 * USERS_HEADROOM) + 2 * processes
        )
        window = cfg.confirm_s if phase == "confirm" else cfg.probe_s
        return base.model_copy(
            update={
                "index": index,
                "id": catalogue.slug(
                    f"{index:03d}-{base.styles[0]}-w{base.server_workers}-r{base.repeat}-{phase}-{rate:g}rps"
                ),
                "model": "open",
                "arrival_rate": rate,
                "users": users,
                "duration_s": window,
                "precision": 0.0,
                "max_duration_s": None,
                # The load goes on for the SLO's latency after the window: each of its requests then
                # finished, or is known to have broken the limit.
                "tail_s": self._tail_s(),
            }
        )

    def _judge_probe(self, probe: Cell, record: dict[str, Any], slos: list[dict[str, Any]]) -> dict[str, Any]:
        """A probe's verdict (analysis.capacity.judge). A probe that measured nothing is the
        server's failure when no request finished (overload), else the harness's (run once more);
        a degraded one (a generator process lost) is the harness's too, unless a server rule broke."""
        if record.get("status") not in MEASURED:
            reason = str(record.get("reason", ""))
            overloaded = reason == NOTHING_COMPLETED
            return {
                "passed": False,
                "failed": ["data" if overloaded else "cell"],
                "why": [f"the probe {record.get('status')}: {reason}".strip()],
                "retry": "" if overloaded else "the probe could not be measured",
                "offered_rps": probe.arrival_rate,
            }
        exact = json.loads(RunDir(self.run_dir).cell(probe.id).exact.read_text())
        verdict = capacity.judge({**probe.model_dump(), **record}, exact, probe.styles[0], slos)
        if record["status"] == "degraded":
            verdict.update(passed=False, failed=[*verdict["failed"], "degraded"])
            verdict["why"] = [*verdict["why"], *record.get("degraded_because", [])]
            if not set(verdict["failed"]) & capacity.SERVER_RULES:
                verdict["retry"] = f"only the measurement's own rules failed ({', '.join(verdict['failed'])})"
        return verdict

    @staticmethod
    def _search_state(search: Search) -> dict[str, Any]:
        return {
            "outcome": search.outcome or "running",
            "probes": list(search.probes),
            "start_rps": search.start,
            **search.mst(),
        }

    def _save_capacity(self, complete: bool = False) -> None:
        """``capacity.json`` from the run's state as it stands (analysis.capacity.document)."""
        write_json(RunDir(self.run_dir).capacity, capacity.document(self.state, self._cores, complete=complete))

    def _settings(self, cell: Cell) -> Settings:
        return self.base_settings.model_copy(
            update={
                "workers": cell.server_workers,
                "worker_class": cell.worker_class,
                "threadpool_tokens": cell.threadpool_tokens,
                "db_pool_size": cell.db_pool_size,
            }
        )

    @property
    def _with_db(self) -> bool:
        """The run's stacks have the database when any cell needs it (one stack serves them all)."""
        return any(c.needs_db for c in self.cells) and self._db_problem is None

    def _calibrate(self) -> dict[str, Any]:
        """Each style's server CPU per request, measured apart from the cells (routebench.calibrate),
        on the stack the first cells then run on."""
        if self.target_url is not None:
            return {"method": calibrate.METHOD, "probes": [], "reason": "the target runs elsewhere: not measured"}
        if self.base_settings.app:
            return {
                "method": calibrate.METHOD,
                "probes": [],
                "reason": "your app: the CPU probes are routebench's styles",
            }
        if not self.experiment.calibrate:
            return {"method": calibrate.METHOD, "probes": [], "reason": "off in the experiment (calibrate = false)"}
        cells = [c for c in self.cells if not (c.needs_db and self._db_problem)]
        if not cells:
            return {"method": calibrate.METHOD, "probes": []}
        begun = time.monotonic()
        with self.console.status("calibrating") as status:
            try:
                stack = self.lab.target(self._settings(cells[0]), self._with_db)
            except StackError as exc:
                return {"method": calibrate.METHOD, "probes": [], "reason": f"the stack did not start: {exc}"}
            result = calibrate.calibrate(
                cells,
                stack,
                lambda i, n, style: status.update(f"calibrating server CPU per request: probe {i}/{n} {style}"),
            )
        result["wall_s"] = round(time.monotonic() - begun, 1)
        self.console.print(
            f"calibrated server CPU per request for {len(result['probes'])} styles in {result['wall_s']:.0f} s"
        )
        return result

    @functools.cached_property
    def _db_problem(self) -> str | None:
        """Why the db cells cannot run (your DATABASE_URL does not answer), or None; asked once."""
        url = self.base_settings.database_url
        if not url or not any(c.needs_db for c in self.cells):
            return None
        problem = postgres.probe(url, 5)
        return f"PostgreSQL unreachable at DATABASE_URL: {problem}" if problem else None

    def _skip_cell(self, cell: Cell, reason: str) -> None:
        self._cell_state(cell).update(status="skipped", reason=reason)
        self._save_state()
        self.console.print(f"[yellow]cell {cell.index}/{len(self.cells)} {'+'.join(cell.styles)} skipped:[/] {reason}")

    def _finish(self, status: str, wall_s: float) -> None:
        for c in self.state["cells"]:
            if c["status"] in ("running", "pending"):
                c["status"] = "interrupted" if c["status"] == "running" else "not run"
        self.state.update(status=status, ended_at=time.time(), wall_s=round(wall_s, 1))
        self._save_state()
        if self.capacity and "capacity" in self.state:
            self._save_capacity(complete=status == "complete")

    def _save_state(self) -> None:
        RunDir(self.run_dir).write_state(self.state)

    def _fit(self, description: str) -> str:
        """The progress line's description, cut to leave the bar, percentage, elapsed time and ETA
        whole in a narrow terminal (they take about 40 columns)."""
        room = max(16, self.console.width - PROGRESS_COLUMNS_WIDTH)
        return description if len(description) <= room else description[: room - 1] + "…"

    def _cell_state(self, cell: Cell) -> dict[str, Any]:
        return self.state["cells"][cell.index - 1]

    # -- one cell ---------------------------------------------------------------------------------
    def _run_cell(
        self,
        cell: Cell,
        progress: Progress,
        task: Any,
        label: str | None = None,
        eta: Callable[[float], tuple[float, str]] | None = None,
    ) -> dict[str, Any]:
        """Measure one cell; its record (run.json's entry, also written as cell.json). ``eta`` maps
        the seconds spent in the cell to the progress bar's (completed, ETA text)."""
        n = len(self.cells)
        label = label or f"cell {cell.index}/{n} {'+'.join(cell.styles)} U={cell.users} W={cell.server_workers}"
        cell_dir = self.run_dir / cell.id
        cell_dir.mkdir()
        record = self._cell_state(cell)
        record.update(status="running", started_at=time.time(), dir=cell.id)
        self._save_state()
        progress.update(task, description=self._fit(label))
        begun = time.monotonic()
        rest = self.cells[cell.index :]

        def matrix_eta(elapsed: float) -> tuple[float, str]:
            low, high = self._plan(rest)
            here = cell.warmup_s + CELL_OVERHEAD_S
            return cell.index - 1 + min(0.99, elapsed / (here + cell.longest_s)), eta_text(
                low + max(0.0, here + cell.duration_s - elapsed), high + max(0.0, here + cell.longest_s - elapsed)
            )

        def on_rps(rps: float | None) -> None:
            completed, left = (eta or matrix_eta)(time.monotonic() - begun)
            progress.update(
                task,
                description=self._fit(f"{label} {rps:,.0f} req/s" if rps is not None else label),
                completed=completed,
                eta=left,
            )

        try:
            outcome = self._measure(cell, cell_dir, on_rps)
        except AppError as exc:
            record.update(status="failed", reason=str(exc), ended_at=time.time())
            self._save_state()
            raise
        except StackError as exc:
            outcome = {"status": "failed", "reason": str(exc)}
        except KeyboardInterrupt:
            record.update(status="interrupted", ended_at=time.time())
            write_json(CellDir(cell_dir).cell_json, {**cell.model_dump(), **record})
            raise
        self.lab.after_cell(outcome["status"] == "ok")
        record.update(outcome, ended_at=time.time(), wall_s=round(time.monotonic() - begun, 1))
        write_json(CellDir(cell_dir).cell_json, {**cell.model_dump(), **record})
        self._save_state()
        self._report_cell(cell, record, label)
        return record

    def _measure(self, cell: Cell, cell_dir: Path, on_rps: Callable[[float | None], None]) -> dict[str, Any]:
        spec = LoadSpec(
            target_url="",
            user_classes=[self.classes[s] for s in cell.styles],
            users=cell.users,
            out_dir=cell_dir,
            run_time_s=cell.warmup_s + cell.duration_s + cell.tail_s,
            tail_s=cell.tail_s,
            warmup_s=cell.warmup_s,
            model=cell.model,
            arrival_rate=cell.arrival_rate,
            wait_ms=cell.wait_ms,
            work=cell.work,
            fanout=cell.fanout,
            precision=cell.precision,
            max_run_time_s=cell.warmup_s + cell.longest_s + cell.tail_s,
        )
        workers = cell.locust_workers or default_worker_count()
        if self.external_workers:
            workers = 0
        watch = Watch(cell_dir, spec.max_run_time_s)
        files = CellDir(cell_dir)
        begun = time.time()
        telemetry_from = sizes(RunDir(self.run_dir).telemetry)
        stack: Stack | ExternalTarget | None = None
        log_from = 0
        try:
            stacks_before = self.lab.started["stacks"]
            stack = (
                self.lab.target(self._settings(cell), self._with_db) if self.target_url is None else self._external()
            )
            # A stack started for this cell: its whole log is the cell's (a worker lost while it started).
            log_from = 0 if self.lab.started["stacks"] > stacks_before else len(stack.log("target"))
            spec.target_url = stack.target_url
            reported = stack.server_shape() if isinstance(stack, ExternalTarget) else {}
            for attempt in range(1, GENERATOR_ATTEMPTS + 1):
                profiler = Profiler(files.profile) if self.experiment.profile and isinstance(stack, Stack) else None
                try:
                    cluster, placements = self._load(spec, workers, stack, watch, on_rps, profiler)
                    break
                except GeneratorLost as gone:
                    self.lab.drop_cluster()
                    if attempt == GENERATOR_ATTEMPTS:
                        return {
                            "status": "failed",
                            "reason": f"the load generator could not be started: {gone} "
                            f"({GENERATOR_ATTEMPTS} attempts; logs: {self.lab.logs()})",
                            "losses": watch.losses,
                        }
                    self.console.print(f"[yellow]{gone}: starting the cell's load again[/]")
                    set_aside(cell_dir, attempt)
                    watch.new_attempt()
            cpu = {
                str(pid): list(zip(cluster.cpu_at[pid], readings, strict=True)) for pid, readings in cluster.cpu.items()
            }
            names = {str(m.proc.pid): m.name for m in cluster.processes()}
            profile = profiler.finish(timeout_s=10) if profiler is not None and profiler.started else None
        except AppError:
            raise  # your app cannot be served: no cell can run
        except StackError as exc:
            if isinstance(exc, DiedWhileStarting):
                watch.dead([exc.managed], "target stack")
            return {"status": "failed", "reason": str(exc), "losses": watch.losses}
        finally:
            # A cluster missing a process, or whose test was never saved, may still be loading the
            # server (workers whose master died load on): stopped now, so the server can drain.
            c = self.lab.cluster
            if c is not None and (not files.exact.exists() or not all(m.alive() for m in c.processes())):
                self.lab.drop_cluster()
            server_log = self._keep_server_evidence(stack, files, log_from, begun, telemetry_from)
        deaths = worker_deaths(server_log, files.telemetry)
        master = next((loss for loss in watch.measured_losses() if loss["kind"] == "locust master"), None)
        if not files.exact.exists() or master is not None:
            write_json(files.generator, generator_load(cpu, names))
            why = (
                validity.describe_loss(master)
                if master
                else f"the master exited: {cluster.master.tail(3) if cluster.master else ''}"
            )
            return {"status": "failed", "reason": f"Locust left no complete results ({why})", "losses": watch.losses}
        exact = json.loads(files.exact.read_text())
        watch.account(exact, deaths)
        generator = generator_load(cpu, names, (float(exact["measure_from"]), float(exact["stopped_at"])))
        write_json(files.generator, generator)
        stalls = stall_summary(
            read_telemetry(files.telemetry), float(exact["measure_from"]), float(exact["stopped_at"])
        )
        if stalls:
            write_json(files.stalls, stalls)
        if not any(int(e.get("count", 0)) + int(e.get("failures", 0)) for e in exact.get("requests", {}).values()):
            return {"status": "failed", "reason": NOTHING_COMPLETED, "losses": watch.losses}
        lost = watch.measured_losses() + heartbeat_losses(exact, watch.losses)
        if profile is not None and profile["problem"]:
            self.console.print(f"[yellow]profile:[/] {profile['problem']}; the run goes on")
        test = exact.get("test", {})
        outcome = {
            "status": "degraded" if lost else "ok",
            "generator_saturated": generator["saturated"],
            "generator_cpu_cores": generator["cpu_cores"],
            "users_by_style": test.get("users_by_style", {}),
            "lost_workers": exact.get("lost_workers", []),
            "losses": watch.losses,
            "server_worker_deaths": deaths,
            **reported,
            "connections_per_worker": placed(placements, float(exact["measure_from"]), float(exact["stopped_at"])),
            "warmup_s": cell.warmup_s,
            "window_s": round(
                float(exact.get("measure_until") or exact["stopped_at"]) - float(exact["measure_from"]), 3
            ),
            "tail_s": cell.tail_s,
            # Empty: the test ended by another hand than its own timer (Locust's, say).
            "stopped_by": test.get("stopped_by") or "ended early, not by its window",
            "p99_intervals": exact.get("p99_intervals", {}),
            "last_check": test.get("last_check", {}),
            "stack": {"started": self.lab.started["stacks"], "clusters": self.lab.started["clusters"]},
            "drain_s": self._drain_s,
        }
        if profile is not None:
            outcome["profile"] = profile
        if lost:
            outcome["degraded_because"] = [
                validity.describe_loss(loss) if "pid" in loss else loss["words"] for loss in lost
            ]
        outcome["validity"] = validity.check({**cell.model_dump(), **outcome}, exact)
        return outcome

    def _keep_server_evidence(
        self,
        stack: Stack | ExternalTarget | None,
        files: CellDir,
        log_from: int,
        begun: float,
        telemetry_from: dict[str, int],
    ) -> str:
        """The cell's share of the server's log and telemetry, once the server holds nothing of the
        cell (drained: a server that does not drain in time is started afresh for the next cell)."""
        self._drain_s = None
        if not isinstance(stack, Stack):
            files.server_log.write_text("")
            return ""
        t0 = time.time()
        source = RunDir(self.run_dir).telemetry
        if all(m.alive() for m in stack.processes):
            if wait_for(lambda: drained(source, stack.worker_pids(), t0), DRAIN_TIMEOUT_S, 0.05, stopping.check):
                self._drain_s = round(time.time() - t0, 2)
            else:
                self.lab.drop_stack()
        server_log = stack.log("target")[log_from:]
        files.server_log.write_text(server_log)
        copy_window(source, files.telemetry, begun, time.time(), telemetry_from)
        return server_log

    def _load(
        self,
        spec: LoadSpec,
        workers: int,
        stack: Stack | ExternalTarget,
        watch: Watch,
        on_rps: Callable[[float | None], None],
        profiler: Profiler | None = None,
    ) -> tuple[LocustCluster, list[tuple[float, dict[int, int]]]]:
        """One attempt at the cell's load: one test on the lab's Locust master and workers, every
        process watched. A generator process lost before the window opens raises GeneratorLost
        (the caller starts the load again on a fresh cluster); one lost after it is recorded and
        the master told not to wait for it; a target-stack process lost at any moment fails the
        cell at once."""
        target = next((m for m in stack.processes if m.name == "target"), None)
        placements: list[tuple[float, dict[int, int]]] = []
        try:
            cluster = self.lab.generator(workers)
        except DiedWhileStarting as exc:
            kind = "locust master" if exc.managed.name == "locust-master" else "locust worker"
            raise GeneratorLost(watch.dead([exc.managed], kind)[0]) from None
        history = cluster.history

        def tick() -> None:
            for loss in watch.dead(stack.processes, "target stack"):
                raise StackError(f"the target stack died mid-cell: {validity.describe_loss(loss)}")
            watch.server_workers(target)
            for loss in watch.dead(cluster.local_workers, "locust worker"):
                if loss["phase"] in BEFORE_WINDOW:
                    raise GeneratorLost(loss)
                watch.tell_master()
            for loss in watch.dead([cluster.master] if cluster.master else [], "locust master"):
                if loss["phase"] in BEFORE_WINDOW:
                    raise GeneratorLost(loss)
            if isinstance(stack, Stack):
                placements.append((time.time(), connections_per_worker(stack)))
            w = watch.window()
            if profiler is not None and not profiler.started and w is not None and target is not None:
                now = time.time()
                if now >= float(w["measure_from"]):  # the window is open: profile the rest of it
                    workers = [p.pid for p in psutil.Process(target.proc.pid).children()]
                    profiler.start(workers, float(w["started_at"]) + float(spec.max_run_time_s or 0) - now)
            on_rps(current_rps(history))

        cluster.start_test(spec)
        cluster.wait_saved(spec, spec.max_run_time_s + SAVE_TIMEOUT_S, TICK_S, tick)  # type: ignore[operator]
        tick_losses = watch.dead([cluster.master] if cluster.master else [], "locust master")
        watch.dead(cluster.local_workers, "locust worker")  # one that died since the last tick
        for loss in tick_losses:
            if loss["phase"] in BEFORE_WINDOW:
                raise GeneratorLost(loss)
        return cluster, placements

    def _external(self) -> ExternalTarget:
        """A target running elsewhere, once it answers."""
        assert self.target_url is not None
        target = ExternalTarget(self.target_url.rstrip("/"))
        target.wait_ready()
        return target

    def _report_cell(self, cell: Cell, record: dict[str, Any], label: str) -> None:
        if record["status"] not in MEASURED:
            self.console.print(f"[red]{label}: {record['status']}[/] {record.get('reason', '')}")
            return
        exact = json.loads(RunDir(self.run_dir).cell(cell.id).exact.read_text())["requests"]
        parts = []
        for style in cell.styles:
            e = exact.get(style)
            if e:
                # A one-style cell's label names the style already: only a shared cell repeats it.
                name = f"{style} " if len(cell.styles) > 1 else ""
                bound = set(e.get("at_least") or [])
                iv = (record.get("p99_intervals") or {}).get(style) or {}
                within = f" ±{iv['half_width_rel']:.0%}" if iv.get("batches") and "99" not in bound else ""
                parts.append(
                    f"{name}p50 {'≥' if '50' in bound else ''}{e['percentiles_us']['50'] / 1000:,.1f} ms, "
                    f"p99 {'≥' if '99' in bound else ''}{e['percentiles_us']['99'] / 1000:,.1f} ms{within}, "
                    f"{e['count']:,} req"
                )
        stalls = RunDir(self.run_dir).cell(cell.id).stalls
        if stalls.is_file():
            s = json.loads(stalls.read_text())
            top = f" at {s['sites'][0]['site']}" if s["sites"] and s["blocked_share"] >= 0.01 else ""
            parts.append(f"loop blocked {s['blocked_share']:.0%}{top}")
        warn = " [yellow]generator saturated[/]" if record.get("generator_saturated") else ""
        for why in record.get("degraded_because", []):
            warn += f" [yellow]degraded: {why}[/]"
        v = record.get("validity") or {}
        if v and not v.get("valid", True):
            warn += f" [yellow]not valid: {', '.join(v.get('failed', []))}[/]"
        # Wrapped by words, not cut mid-number, in a narrow terminal.
        ended = {"precision reached": ", stopped by the precision check", "maximum window": ", longest window"}.get(
            record.get("stopped_by", ""), ""
        )
        self.console.print(
            f"{label}: {'; '.join(parts) or 'no requests'}{warn} "
            f"[dim]({record.get('window_s', 0):.0f} s window{ended}; {record['wall_s']} s)[/]",
            soft_wrap=False,
        )


@dataclass
class ExternalTarget:
    """A target stack started elsewhere (another host): measured, not managed; no server evidence."""

    target_url: str
    processes: list[Any] = field(default_factory=list)

    health: dict[str, Any] = field(default_factory=dict)

    def wait_ready(self, timeout: float = 60.0) -> None:
        if not wait_for(lambda: http_status(self.target_url + "/health") == 200, timeout, 0.2):
            raise StackError(f"the target at {self.target_url} did not answer /health within {timeout:.0f} s")
        try:
            with httpx.Client(timeout=5) as client:
                body = client.get(self.target_url + "/health").json()
            self.health = body if isinstance(body, dict) else {}
        except (httpx.HTTPError, ValueError):
            self.health = {}

    def server_shape(self) -> dict[str, Any]:
        """W, T and P as the server itself reports them (theory predicts from these, not from the
        experiment file); without them, the cell is not predicted."""
        keys = {"workers": "server_workers", "threadpool_tokens": "threadpool_tokens", "db_pool_size": "db_pool_size"}
        reported = {
            ours: self.health[theirs] for theirs, ours in keys.items() if isinstance(self.health.get(theirs), int)
        }
        if len(reported) < len(keys):
            return {"predict": False, "predict_reason": "the target's /health does not report W, T and P"}
        return {**reported, "worker_class": self.health.get("worker_class", "unknown")}

    def log(self, name: str) -> str:
        return ""


def generator_load(
    cpu: dict[str, list[tuple[float, float]]], names: dict[str, str], window: tuple[float, float] | None = None
) -> dict[str, Any]:
    """Each Locust process's CPU over the measured window (readings of the second before each
    timestamp; every reading when no window is known: with a reused cluster, earlier cells' too);
    saturated when any averaged above Locust's warning. Start-up, warm-up and the final-report wait
    are left out: they would dilute a saturated window below the threshold."""
    processes: list[dict[str, Any]] = []
    for pid, stamped in cpu.items():
        inside = [p for t, p in stamped if window is None or window[0] + 0.5 <= t <= window[1] + 0.5]
        readings = inside or [p for _, p in stamped]
        mean = sum(readings) / len(readings) if readings else 0.0
        processes.append(
            {
                "pid": int(pid),
                "name": names.get(pid, "?"),
                "mean_cpu_percent": round(mean, 1),
                "max_cpu_percent": round(max(readings, default=0.0), 1),
                "readings": len(readings),
            }
        )
    saturated = any(p["mean_cpu_percent"] > CPU_WARNING for p in processes)
    # The cores the generator took from the machine in the window, which the server then did not have.
    cores = round(sum(p["mean_cpu_percent"] for p in processes) / 100, 3)
    return {
        "threshold_percent": CPU_WARNING,
        "over": "the measured window"
        if window is not None
        else "every reading of the Locust processes (no window saved)",
        "saturated": saturated,
        "cpu_cores": cores,
        "processes": processes,
    }


def connections_per_worker(stack: Stack) -> dict[int, int]:
    """Established connections to the target's port held by each of its worker processes now:
    where the users' keep-alive connections landed (the kernel decides; the model takes it as an
    input)."""
    port = urlsplit(stack.target_url).port
    out = {}
    for pid in stack.worker_pids():
        try:
            conns = psutil.Process(pid).net_connections(kind="tcp")
        except psutil.Error:
            continue
        out[pid] = sum(1 for c in conns if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == port)
    return out


def placed(samples: list[tuple[float, dict[int, int]]], start: float, end: float) -> list[int] | None:
    """Each worker's connections, the median of the readings inside the window, largest first
    (None when no reading fell inside it or the workers changed)."""
    inside = [s for t, s in samples if start <= t <= end and s]
    if not inside or any(set(s) != set(inside[0]) for s in inside):
        return None
    return sorted((int(statistics.median(s[pid] for s in inside)) for pid in inside[0]), reverse=True)


WORKER_DEATH = re.compile(
    r"^\[(?P<at>[^\]]+)\] \[\d+\] \[\w+\] Worker \(pid:(?P<pid>\d+)\) (?P<how>was sent \w+|exited with code -?\d+)"
)


def worker_deaths(server_log: str, telemetry_dir: Path) -> list[dict[str, Any]]:
    """Server workers Gunicorn saw die mid-cell, with the requests they held when last sampled:
    the server's own record, shown beside the client's failures (a request whose connection died
    is a failure: the user classes do not resend it)."""
    deaths = []
    for line in server_log.splitlines():
        m = WORKER_DEATH.match(line)
        if not m:
            continue
        pid = int(m["pid"])
        last: dict[str, Any] = {}
        path = worker_file(telemetry_dir, pid)
        if path.exists():
            for raw in reversed(path.read_text(errors="replace").splitlines()):
                try:
                    last = json.loads(raw)
                    break
                except json.JSONDecodeError:
                    continue
        deaths.append(
            {
                "pid": pid,
                "at": m["at"],
                "how": m["how"],
                "inflight_at_last_sample": last.get("inflight"),
                "last_sample_t": last.get("t"),
            }
        )
    return deaths
