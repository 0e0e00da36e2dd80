"""What every phase of one run shares: its directory and state (run.json), the lab that keeps its
stack and Locust cluster, the console, and the server settings each cell asks for.

The phases (calibration, the matrix or the capacity run, each cell) take this and nothing else from
the run, so each lives in a module of its own (routebench.runner starts them in order).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import psutil
from rich.console import Console

from analysis.rundir import CellRecord, RunDir, RunState
from routebench import postgres
from routebench.experiment import Cell, Experiment
from routebench.lab import Lab
from routebench.serverside.harness import HEALTH_PATH
from target_app import catalogue
from target_app.settings import Settings


@dataclass
class RunContext:
    experiment: Experiment
    base_settings: Settings
    run_dir: Path
    state: RunState
    lab: Lab
    console: Console
    cells: list[Cell]  # the experiment's (a capacity run: the searches' base cells)
    classes: dict[str, str]  # style or route id -> its Locust user class
    target_url: str | None = None  # a target already running elsewhere: no stack is started
    external_workers: int = 0

    @property
    def canary(self) -> str:
        """The canary's path (catalogue.CANARY): your app's is routebench's health route, answered
        inside your app's workers (routebench.serverside.harness); "" when the experiment asks for none."""
        if not self.experiment.canary_rate:
            return ""
        return HEALTH_PATH if self.base_settings.app else catalogue.CANARY_PATH

    @property
    def files(self) -> RunDir:
        return RunDir(self.run_dir)

    def save(self) -> None:
        """run.json as the state stands (after every change: an interrupted run keeps what finished)."""
        self.files.write_state(self.state)

    def record(self, cell: Cell) -> CellRecord:
        """The cell's entry in run.json (a cell's index is its place in the run, from 1)."""
        return self.state.cells[cell.index - 1]

    def settings(self, cell: Cell) -> Settings:
        """The server settings the cell asks for (the lab keeps a stack while they stay the same)."""
        return self.base_settings.model_copy(
            update={
                "workers": cell.server_workers,
                "worker_class": cell.worker_class,
                "threadpool_tokens": cell.threadpool_tokens,
                "db_pool_size": cell.db_pool_size,
            }
        )

    @functools.cached_property
    def db_problem(self) -> str | None:
        """Why the db cells cannot run (your DATABASE_URL does not answer), or None; asked once."""
        url = self.base_settings.database_url
        if not url or not any(c.needs_db for c in self.cells):
            return None
        problem = postgres.probe(url, 5)
        return f"PostgreSQL unreachable at DATABASE_URL: {problem}" if problem else None

    @property
    def with_db(self) -> bool:
        """The run's stacks have the database when any cell needs it (one stack serves them all)."""
        return any(c.needs_db for c in self.cells) and self.db_problem is None

    @property
    def cores(self) -> float:
        """The machine's cores as run.json records them (the report reads the same)."""
        machine = self.state.header.machine or {}
        return float(machine.get("cpu_count") or psutil.cpu_count() or 1)
