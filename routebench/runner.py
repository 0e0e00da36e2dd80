"""``routebench run``: the experiment, cell by cell, into ``results/<run-id>/``.

The run's phases, in order: run.json's header written at once (so an interrupted run is always
marked as such), the calibration (routebench.calibrate), then the matrix (routebench.matrix) or,
for a capacity run, the searches (routebench.capacity_run); each cell measured by routebench.cell
on the lab's stack and Locust cluster (routebench.lab). run.json (analysis.rundir.RunState) is
rewritten after every cell, and says at the end how the run ended.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from analysis.rundir import CellRecord, RunDir, RunState, write_json
from routebench import calibrate, metadata
from routebench.capacity_run import CapacityRun, print_budget, save_capacity
from routebench.context import RunContext
from routebench.experiment import Experiment, expand, reproduce
from routebench.lab import Lab
from routebench.launcher import AppError
from routebench.matrix import run_matrix
from target_app import catalogue
from target_app.settings import Settings

RESULTS_DIR = Path("results")


def new_run_id(name: str) -> str:
    return f"{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}-{name}"


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
        self.state: RunState | None = None  # run.json, once the run has started

    @property
    def capacity(self) -> bool:
        return self.experiment.mode == "capacity"

    def run(self) -> Path:
        self.run_dir.mkdir(parents=True, exist_ok=False)
        started = time.monotonic()
        files = RunDir(self.run_dir)
        if self.app_routes is not None:
            write_json(files.routes, self.app_routes)
        lab = Lab(
            self.run_dir,
            reuse=self.experiment.reuse,
            master_host=self.master_host,
            master_port=self.master_port,
            external_workers=self.external_workers,
            on_worker_command=self.on_worker_command,
            routes_file=files.routes if self.app_routes is not None else None,
        )
        self.state = state = RunState(
            metadata.header(self.run_id, self.experiment.model_dump(exclude_none=True), self.base_settings),
            # A capacity run's cells are its probes, added as the searches decide them.
            cells=[] if self.capacity else [CellRecord(c.model_dump()) for c in self.cells],
        )
        ctx = RunContext(
            self.experiment,
            self.base_settings,
            self.run_dir,
            state,
            lab,
            self.console,
            self.cells,
            self.classes,
            target_url=self.target_url,
            external_workers=self.external_workers,
        )
        try:
            ctx.save()  # first, so an interrupted run is always marked as such
            app = self.app_routes.get("app") if self.app_routes is not None else None
            state.header.reproduce = reproduce(self.source or self.experiment.name, self.experiment, self.run_dir, app)
            metadata.stamp(state.header, self.base_settings)
            state.header.app_environment = app.get("environment") if app else None
            if self.capacity:
                print_budget(ctx)
            state.calibration = calibrate.for_run(ctx)
            ctx.save()
            if self.capacity:
                CapacityRun(ctx).run()
            else:
                run_matrix(ctx)
        except KeyboardInterrupt:
            self._finish(ctx, "incomplete", time.monotonic() - started)
            raise
        except AppError as exc:  # said in one line by the CLI; the run directory says it too
            state.reason = str(exc)
            self._finish(ctx, "failed", time.monotonic() - started)
            raise
        finally:
            lab.close()
        self._finish(ctx, "complete", time.monotonic() - started)
        return self.run_dir

    def _finish(self, ctx: RunContext, status: str, wall_s: float) -> None:
        ctx.state.end(status, time.time(), wall_s)
        ctx.save()
        if self.capacity and ctx.state.capacity is not None:
            save_capacity(ctx, complete=status == "complete")
