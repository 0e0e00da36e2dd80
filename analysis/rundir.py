"""The run directory, ``results/<run-id>/``: the one place that knows its layout.

Every writer (the runner, the web-UI session, the Locust master's capture, the benchmarks) and the
one reader (the analysis' load stage) take their paths from here, and JSON records are written
whole or not at all. ``run.json`` carries ``schema_version``: a change of layout or of a record's
meaning raises it. Standard library only, so a Locust process can import it cheaply.

``run.json`` and ``cell.json`` are written from typed records (:class:`RunState`, its
:class:`RunHeader` and a :class:`CellRecord` per cell, whose :class:`CellOutcome` is what measuring
the cell came to): ``to_json`` gives the keys the analysis reads, ``from_json`` reads any run.json
this or an earlier routebench wrote, and the two round-trip.

    results/<run-id>/
      run.json                 metadata and every cell's state (schema_version)
      experiment.toml          the experiment as run ("Reproduce" runs it again)
      summary.csv, summary.md  the terminal's table, as files
      capacity.json            a capacity run's searches, probes and MSTs (analysis.capacity)
      routes.json              your app's routes: loaded and left out (routebench.routes)
      findings.json            your app's routes: a verdict each, with its evidence (analysis.findings)
      telemetry/               the server's samples (every stack of the run, every test of a
                               web-UI session), before they are split by cell
      generator-N/             the run's Nth Locust cluster: its processes' logs, Locust's CSVs
      <cell>/                  one per cell (``ui-NNN`` in a web-UI session)
        cell.json, exact.json, hdr/<style>.hdr, generator.json, server.log,
        locust_stats.csv, locust_stats_history.csv, locust_failures.csv, locust_exceptions.csv,
        window.json, telemetry/worker-<pid>.jsonl (its slice of the run's)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
UI_TEST_PREFIX = "ui-"
# A cell's status: ok, degraded (measured, but a process was lost after the window opened: its
# numbers stay, with the loss named), failed, skipped, interrupted, not run.
MEASURED = ("ok", "degraded")
ATTEMPT_PREFIX = "attempt-"
PROFILE_GLOB = "worker-*.txt"  # every server worker's py-spy stacks in a cell's profile/ (CellDir.profile)


def profile_file(profile_dir: Path, pid: int) -> Path:
    """One server worker's py-spy stacks in a cell's ``profile/``: written by routebench.profiler,
    read by analysis.profiles."""
    return profile_dir / f"worker-{pid}.txt"


def write_text(path: Path, text: str) -> None:
    """Write-then-rename, so a reader never sees half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, default=str))


@dataclass(frozen=True)
class CellDir:
    path: Path

    @property
    def cell_json(self) -> Path:
        return self.path / "cell.json"

    @property
    def exact(self) -> Path:
        return self.path / "exact.json"

    @property
    def hdr_dir(self) -> Path:
        return self.path / "hdr"

    @property
    def generator(self) -> Path:
        return self.path / "generator.json"

    @property
    def server_log(self) -> Path:
        return self.path / "server.log"

    @property
    def telemetry(self) -> Path:
        return self.path / "telemetry"

    @property
    def locust_prefix(self) -> Path:
        """What Locust's ``--csv`` takes: it adds ``_stats.csv``, ``_stats_history.csv`` ..."""
        return self.path / "locust"

    @property
    def stats(self) -> Path:
        return self.path / "locust_stats.csv"

    @property
    def history(self) -> Path:
        return self.path / "locust_stats_history.csv"

    @property
    def failures(self) -> Path:
        return self.path / "locust_failures.csv"

    @property
    def exceptions(self) -> Path:
        return self.path / "locust_exceptions.csv"

    @property
    def stalls(self) -> Path:
        """What stalled the server's event loops in the window (analysis.timeseries.stall_summary)."""
        return self.path / "stalls.json"

    @property
    def profile(self) -> Path:
        """py-spy's collapsed stacks per server worker, ``worker-<pid>.txt`` (routebench.profiler)."""
        return self.path / "profile"

    @property
    def window(self) -> Path:
        """Written by the Locust master when a headless or driven test starts (its start and
        measure_from) and again when it stops (stopped_at)."""
        return self.path / "window.json"

    @property
    def dead_workers(self) -> Path:
        """Written by the runner: pids of the cell's generator processes it saw die."""
        return self.path / "dead_workers.json"

    def locust_csv(self, kind: str) -> Path:
        """``stats``, ``failures`` or ``exceptions``: Locust's CSV of that kind."""
        return self.path / f"locust_{kind}.csv"

    def log(self, process: str) -> Path:
        return self.path / f"{process}.log"

    def write_record(self, record: CellRecord) -> None:
        """``cell.json``: the cell's entry of run.json, on its own beside its files."""
        write_json(self.cell_json, record.to_json())


def set_aside(cell_dir: Path, attempt: int) -> Path:
    """Move what an abandoned attempt at a cell's load left (Locust's files and logs) into
    ``attempt-N/``, so the next attempt starts clean and the evidence stays; the server's telemetry
    stays where it is (the stack runs on)."""
    aside = cell_dir / f"{ATTEMPT_PREFIX}{attempt}"
    aside.mkdir()
    for path in cell_dir.iterdir():
        if path.name != "telemetry" and not path.name.startswith(ATTEMPT_PREFIX):
            path.rename(aside / path.name)
    return aside


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def run_json(self) -> Path:
        return self.path / "run.json"

    @property
    def experiment_toml(self) -> Path:
        return self.path / "experiment.toml"

    @property
    def capacity(self) -> Path:
        return self.path / "capacity.json"

    @property
    def routes(self) -> Path:
        return self.path / "routes.json"

    @property
    def findings(self) -> Path:
        return self.path / "findings.json"

    @property
    def summary_csv(self) -> Path:
        return self.path / "summary.csv"

    @property
    def summary_md(self) -> Path:
        return self.path / "summary.md"

    @property
    def telemetry(self) -> Path:
        return self.path / "telemetry"

    @property
    def session(self) -> CellDir:
        """A web-UI session's own files (Locust's CSVs for the whole session) sit at the top."""
        return CellDir(self.path)

    def cell(self, name: str) -> CellDir:
        return CellDir(self.path / name)

    def generator(self, number: int) -> CellDir:
        """The Nth Locust cluster of a run (logs, Locust's CSVs over every test it ran)."""
        return self.cell(f"generator-{number}")

    def ui_test(self, number: int) -> CellDir:
        return self.cell(f"{UI_TEST_PREFIX}{number:03d}")

    def ui_tests(self) -> list[CellDir]:
        """The tests a web-UI session saved, in order."""
        found = (p for p in self.path.glob(f"{UI_TEST_PREFIX}*") if CellDir(p).exact.is_file())
        return [CellDir(p) for p in sorted(found)]

    def write_state(self, state: RunState) -> None:
        """``run.json``, the one writer of it (the runner, the web-UI session, the benchmarks)."""
        write_json(self.run_json, {**state.to_json(), "schema_version": SCHEMA_VERSION})


def _given(**values: Any) -> dict[str, Any]:
    """The keys whose value is known (None: the key is not written)."""
    return {k: v for k, v in values.items() if v is not None}


# Written for every measured cell, null when there is nothing to say: no reading of the workers'
# connections fell inside the window, the server was not drained (an external target, a restart).
NULL_WHEN_MEASURED = ("connections_per_worker", "drain_s")
# What an external target's /health reported (routebench's ExternalTarget.server_shape). Its W, T,
# P and worker class replace the cell's own settings of the same names, so read back they are the
# cell's: only these keys are the shape's alone.
SHAPE_ONLY_KEYS = ("predict", "predict_reason")


LAB_SERVICES = ("upstream", "postgres")  # the lab's own services beside the server under test (lab_cpu_cores)


@dataclass
class CellOutcome:
    """What measuring one cell came to: ``ok`` or ``degraded`` (measured: a process lost after the
    window opened) with its numbers, or ``failed`` / ``skipped`` with the reason. A field left None
    is not written (a failed cell has no window)."""

    status: str
    reason: str | None = None
    generator_saturated: bool | None = None
    generator_cpu_cores: float | None = None  # cores the Locust processes took in the window
    orchestrator_cpu_cores: float | None = None  # and routebench's own process
    lab_cpu_cores: dict[str, float] | None = None  # cores the lab's upstream and PostgreSQL took in it
    reference_ms: float | None = None  # the machine's speed over the window (routebench.speed)
    users_by_style: dict[str, int] | None = None
    lost_workers: list[dict[str, Any]] | None = None  # as the Locust master's heartbeat saw them
    losses: list[dict[str, Any]] | None = None  # every process the runner saw die (routebench.watch)
    server_worker_deaths: list[dict[str, Any]] | None = None  # Gunicorn's log
    server_shape: dict[str, Any] = field(default_factory=dict)  # an external target's reported W, T, P
    connections_per_worker: list[int] | None = None  # largest first, the median over the window
    window_s: float | None = None  # the measured window's length
    stopped_by: str | None = None  # what ended the window
    p99_intervals: dict[str, Any] | None = None
    last_check: dict[str, Any] | None = None  # a precision-driven window's last check
    stack: dict[str, int] | None = None  # stacks and Locust clusters started so far in the run
    drain_s: float | None = None  # how long the server took to hold nothing of the cell
    profile: dict[str, Any] | None = None  # py-spy's, when the experiment asks for it
    degraded_because: list[str] | None = None
    validity: dict[str, Any] | None = None  # analysis.validity.check

    @property
    def measured(self) -> bool:
        return self.status in MEASURED

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "server_shape":
                out.update(value)
            elif value is not None or (f.name in NULL_WHEN_MEASURED and self.window_s is not None):
                out[f.name] = value
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CellOutcome:
        names = {f.name for f in fields(cls)} - {"server_shape"}
        return cls(
            **{k: v for k, v in data.items() if k in names},
            server_shape={k: v for k, v in data.items() if k in SHAPE_ONLY_KEYS},
        )


OUTCOME_KEYS = frozenset({f.name for f in fields(CellOutcome)} - {"status", "server_shape"} | set(SHAPE_ONLY_KEYS))


@dataclass
class CellRecord:
    """One cell's entry in run.json (and its cell.json): its settings as the experiment expanded
    them, where the run is with it, and once measured, its outcome."""

    cell: dict[str, Any]  # routebench.experiment.Cell's fields (an older run's retired keys too)
    status: str = "pending"  # then running, and the outcome's; or interrupted, not run
    search: int | None = None  # a capacity probe: the number of its search ...
    phase: str | None = None  # ... and its step (ramp, bisect, confirm)
    started_at: float | None = None
    dir: str | None = None
    outcome: CellOutcome | None = None
    ended_at: float | None = None
    wall_s: float | None = None
    probe: dict[str, Any] | None = None  # a capacity probe's verdict (analysis.capacity.judge)

    @property
    def id(self) -> str:
        return str(self.cell["id"])

    @property
    def reason(self) -> str | None:
        return self.outcome.reason if self.outcome is not None else None

    def settle(self, outcome: CellOutcome) -> None:
        """The cell's outcome, whose status becomes the cell's."""
        self.outcome, self.status = outcome, outcome.status

    def to_json(self) -> dict[str, Any]:
        # In the order a reader sees the cell go: settings, progress, outcome, end. A setting the
        # outcome restates (an external target's W, T and P) keeps its place with the new value.
        out = {**self.cell, "status": self.status}
        out.update(_given(search=self.search, phase=self.phase, started_at=self.started_at, dir=self.dir))
        if self.outcome is not None:
            out.update({k: v for k, v in self.outcome.to_json().items() if k != "status"})
        out.update(_given(ended_at=self.ended_at, wall_s=self.wall_s, probe=self.probe))
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CellRecord:
        own = {f.name for f in fields(cls)} - {"cell", "outcome"}
        outcome = {k: v for k, v in data.items() if k in OUTCOME_KEYS}
        status = str(data.get("status", "pending"))
        return cls(
            cell={k: v for k, v in data.items() if k not in own and k not in OUTCOME_KEYS},
            outcome=CellOutcome.from_json({**outcome, "status": status}) if outcome else None,
            **{k: v for k, v in data.items() if k in own},
        )


@dataclass
class RunHeader:
    """What a reader of run.json needs before its cells: which run, the experiment as run, the
    settings, and what to reproduce it on (versions, machine, git commit: added once collected)."""

    run_id: str
    experiment: dict[str, Any]
    started_at: float | None = None
    settings: dict[str, Any] | None = None  # target_app.settings.Settings, the database URL left out
    database: str | None = None  # embedded, DATABASE_URL or your app's own
    reproduce: dict[str, str] | None = None  # the command and the experiment's TOML
    versions: dict[str, str] | None = None
    machine: dict[str, Any] | None = None
    git: dict[str, Any] | None = None
    # Your app's interpreter (routebench.appenv): its path, why it, its Python and packages, its server.
    app_environment: dict[str, Any] | None = None


@dataclass
class RunState:
    """``run.json``: the header, every cell's record, the calibration, and how the run ended.
    Rewritten after every change, so an interrupted run keeps what finished."""

    header: RunHeader
    status: str = "running"  # then complete, incomplete (interrupted) or failed
    cells: list[CellRecord] = field(default_factory=list)
    calibration: dict[str, Any] | None = None  # routebench.calibrate's
    capacity: dict[str, Any] | None = None  # a capacity run's searches as they go: {"slo", "searches"}
    reason: str | None = None  # why a failed run failed
    ended_at: float | None = None
    wall_s: float | None = None
    losses: list[dict[str, Any]] | None = None  # a web-UI session's lost processes
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know

    def end(self, status: str, ended_at: float, wall_s: float) -> None:
        """The run's end: a cell that was running is interrupted, one still pending not run."""
        for c in self.cells:
            if c.status in ("running", "pending"):
                c.status = "interrupted" if c.status == "running" else "not run"
        self.status, self.ended_at, self.wall_s = status, ended_at, round(wall_s, 1)

    def to_json(self) -> dict[str, Any]:
        h = self.header
        return {
            "run_id": h.run_id,
            "status": self.status,
            **_given(started_at=h.started_at),
            "experiment": h.experiment,
            **_given(settings=h.settings, database=h.database),
            "cells": [c.to_json() for c in self.cells],
            **_given(
                reproduce=h.reproduce,
                versions=h.versions,
                machine=h.machine,
                git=h.git,
                app_environment=h.app_environment,
                calibration=self.calibration,
                capacity=self.capacity,
                reason=self.reason,
                ended_at=self.ended_at,
                wall_s=self.wall_s,
                losses=self.losses,
            ),
            **self.extra,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunState:
        rest = {k: v for k, v in data.items() if k != "schema_version"}
        header = RunHeader(**{f.name: rest.pop(f.name) for f in fields(RunHeader) if f.name in rest})
        own = {f.name for f in fields(cls)} - {"header", "cells", "extra"}
        return cls(
            header=header,
            cells=[CellRecord.from_json(c) for c in rest.pop("cells", [])],
            **{k: rest.pop(k) for k in list(rest) if k in own},
            extra=rest,
        )


def measured_until(exact: dict[str, Any]) -> float | None:
    """When the measured window ended: its end where load followed it (an open model's tail, or the
    time a closed model let the window's requests finish), else the test's stop (None for runs
    saved before it was recorded). The server's evidence and CPU per request cover the same span."""
    stop = exact.get("measure_until") or exact.get("stopped_at")
    return float(stop) if isinstance(stop, (int, float)) else None
