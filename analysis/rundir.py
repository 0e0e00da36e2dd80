"""The run directory, ``results/<run-id>/``: the one place that knows its layout.

Every writer (the runner, the web-UI session, the Locust master's capture, the benchmarks) and the
one reader (the analysis' load stage) take their paths from here, and JSON records are written
whole or not at all. ``run.json`` carries ``schema_version``: a change of layout or of a record's
meaning raises it. Standard library only, so a Locust process can import it cheaply.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
UI_TEST_PREFIX = "ui-"
# A cell's status: ok, degraded (measured, but a process was lost after the window opened: its
# numbers stay, with the loss named), failed, skipped, interrupted, not run.
MEASURED = ("ok", "degraded")
ATTEMPT_PREFIX = "attempt-"


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

    def write_state(self, state: dict[str, Any]) -> None:
        write_json(self.run_json, {**state, "schema_version": SCHEMA_VERSION})
