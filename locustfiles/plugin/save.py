"""A test's files, saved by the master: its exact histograms, per-second timeline and p99 intervals
(``exact.json`` and ``hdr/``), and in a session Locust's own CSVs for the test.

Headless or driven, ``--rb-out`` is the cell's directory; in a web-UI session each test gets
``<rb-out>/ui-NNN``. ``exact.json`` is written last: a driven test counts as saved once it exists.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from locust.env import Environment
from locust.runners import MasterRunner

from analysis.rundir import CellDir, RunDir
from locustfiles.plugin.record import Test, known_dead
from locustfiles.plugin.state import ProcessState
from locustfiles.plugin.stop import p99_intervals
from locustfiles.plugin.window import LATE_MS
from target_app.catalogue import CANARY


def save_test(process: ProcessState, environment: Environment, test: Test) -> None:
    """The test's exact histograms, per-second timeline and p99 intervals, and in a session (driven
    or not) Locust's CSVs for the test beside them."""
    test.saved = True
    runner = environment.runner
    capture = process.capture
    ended = test.stopped_at or time.time()
    session = process.in_session
    out = Path(test.out)
    directory = RunDir(out).ui_test(test.number).path if session and not process.driven else out
    directory.mkdir(parents=True, exist_ok=True)
    workers: list[dict[str, Any]] = []
    if isinstance(runner, MasterRunner):
        workers = [{"id": c.id, "state": c.state} for c in runner.clients.all]
    missing = test.missing_finals()
    test.dead = known_dead(test.out, process.worker_pids)
    if session:
        save_locust_csvs(environment, directory, test)
    points = {name: e["percentiles_us"].get("99") for name, e in capture.summary().items()}
    capture.save(
        directory,
        {
            "measure_from": test.measure_from,
            "measure_until": test.measure_until,
            "stopped_at": ended,
            "saved_at": time.time(),
            "model": test.options["model"],
            "late_ms": LATE_MS,
            "test": {**asdict(test), "users_by_style": users_by_style(process, runner)},
            "workers": workers,
            "lost_workers": process.lost_workers,
            "final_reports": {
                "expected": test.workers_at_stop,
                "received": test.final_reports,
                "missing": missing,
                "dead": [w for w in test.dead if w in missing],  # none can come: the process died
            },
            "worker_pids": process.worker_pids,
            # Locust's own counts once the final reports are in, to cross-check the exact ones.
            "locust_counts": locust_counts(runner),
            "master_pid": os.getpid(),
            # Let finish, the test stops a moment after the window's last request completed: its
            # partial second holds it (often the slowest), so it is kept.
            "p99_intervals": p99_intervals(
                capture.per_second(), test.measure_from, math.ceil(ended) if test.finish else ended, points
            ),
        },
        window=(test.measure_from, test.measure_until or ended),  # a tail's seconds hold only late finishers
    )


def save_last(process: ProcessState, environment: Environment) -> None:
    """At exit: the last test, if it was not saved (Locust fires ``quitting`` before the workers'
    final reports arrive)."""
    test = process.test
    if test is not None and test.out and not test.saved:
        save_test(process, environment, test)


def users_by_style(process: ProcessState, runner: Any) -> dict[str, int]:
    """Users each style ran with at the end of the test, from the workers' own counts."""
    counts = getattr(runner, "final_user_classes_count", None) or getattr(runner, "target_user_classes_count", {})
    by_class = {cls.__name__: style for style, cls in process.user_classes.items()}
    return {by_class[name]: int(n) for name, n in counts.items() if name in by_class and n}


def locust_counts(runner: Any) -> dict[str, dict[str, int]]:
    """Locust's request and failure counts per name, as its stats stand now."""
    if runner is None:
        return {}
    return {
        name: {"requests": int(e.num_requests), "failures": int(e.num_failures)}
        for (name, _method), e in runner.stats.entries.items()
        if name != CANARY  # not the test's (exact.json keeps it apart)
    }


def save_locust_csvs(environment: Environment, directory: Path, test: Test) -> None:
    """Locust's own numbers for one test of a session: its stats as they stand (Locust clears them
    when the next test starts), and the session's history rows that fall inside this test."""
    from locust.stats import PERCENTILES_TO_REPORT, StatsCSV, StatsCSVFileWriter

    writer = StatsCSV(environment, PERCENTILES_TO_REPORT)
    for name, write in (
        ("stats", writer.requests_csv),
        ("failures", writer.failures_csv),
        ("exceptions", writer.exceptions_csv),
    ):
        with CellDir(directory).locust_csv(name).open("w", newline="") as f:
            write(csv.writer(f))
    prefix = str(getattr(environment.parsed_options, "csv_prefix", "") or "")  # Locust's own option
    session_writer = getattr(environment.web_ui, "stats_csv_writer", None)
    if isinstance(session_writer, StatsCSVFileWriter):
        with contextlib.suppress(ValueError):  # closed: Locust is quitting, its rows are written
            session_writer.stats_history_flush()  # the rows up to now (Locust flushes every few seconds)
    history = Path(f"{prefix}_stats_history.csv") if prefix else directory / "none"
    rows = list(csv.reader(history.open(newline=""))) if history.is_file() else []
    with CellDir(directory).history.open("w", newline="") as f:
        w = csv.writer(f)
        if rows:
            w.writerow(rows[0])
            at = rows[0].index("Timestamp")
            w.writerows(
                r
                for r in rows[1:]
                if r[at].isdigit() and test.measure_from <= int(r[at]) <= (test.stopped_at or time.time())
            )
