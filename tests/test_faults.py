"""Faults survived, nothing lost: real runs with real processes killed under them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import pytest

from locustfiles.capture import load_histogram
from target_app import catalogue
from tests.conftest import still_running

pytestmark = pytest.mark.stack  # starts the real stack or Locust: left out by -m 'not stack'


def write_experiment(path: Path, body: str) -> Path:
    path.write_text(body)
    return path


def start_run(experiment: Path, results: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "routebench.cli",
            "run",
            str(experiment),
            "--results",
            str(results),
            "--reports",
            str(results / "reports"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def wait_for(predicate, timeout: float = 60.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def cmdline(p: psutil.Process) -> str:
    try:
        return " ".join(p.cmdline())
    except psutil.Error:
        return ""


def run_json(results: Path) -> dict:  # type: ignore[type-arg]
    (path,) = results.glob("*/run.json")
    return json.loads(path.read_text())


ONE_CELL = """
name = "fault"
calibrate = false
duration_s = 14
warmup_s = 2
users = [10]
wait_ms = 50
locust_workers = 2
[[groups]]
styles = ["sleep/async-await"]
"""


def test_killed_locust_worker_and_gunicorn_worker(tmp_path: Path) -> None:
    """One cell, two faults: a Locust worker SIGKILLed, then a Gunicorn worker. The cell completes,
    the lost Locust worker is reported with the samples the master had from it, Gunicorn replaces
    its worker and the requests that died with it are counted as failures."""
    exp = write_experiment(tmp_path / "fault.toml", ONE_CELL)
    with start_run(exp, tmp_path) as proc:
        try:

            def cluster() -> list[psutil.Process] | None:
                procs = descendants(proc.pid)
                workers = [p for p in procs if "--worker" in cmdline(p)]
                gunicorn = [p for p in procs if "gunicorn" in cmdline(p)]
                return procs if len(workers) == 2 and len(gunicorn) >= 3 else None

            procs = wait_for(cluster, what="the Locust cluster and Gunicorn workers")
            # Locust's history over every test of the run's Locust cluster (a cell's own is written at its save).
            history = lambda: list(tmp_path.glob("*/generator-1/locust_stats_history.csv"))  # noqa: E731
            wait_for(lambda: history() and _measured(history()[0]), what="requests in the measured window")
            # Every listener of the run binds 127.0.0.1.
            listening = [c for p in procs for c in _connections(p) if c.status == "LISTEN"]
            assert listening and {c.laddr.ip for c in listening} == {"127.0.0.1"}, listening

            victim = next(p for p in procs if "--worker" in cmdline(p))
            victim.send_signal(signal.SIGKILL)
            gunicorn_master = next(p for p in procs if "gunicorn" in cmdline(p) and p.ppid() == proc.pid)
            time.sleep(1)

            # The worker holding the most client connections, once its own last written sample shows
            # requests in flight on it (its samples are written every 0.2 s: the one the death record
            # reads must be such a one).
            def busy_worker() -> psutil.Process | None:
                w = max(
                    gunicorn_master.children(), key=lambda w: sum(c.status == "ESTABLISHED" for c in _connections(w))
                )
                last = _last_sample(tmp_path, w.pid)
                return w if last is not None and last.get("inflight", 0) > 0 else None

            gunicorn_worker = wait_for(busy_worker, what="a server worker with requests in flight")
            gunicorn_worker.send_signal(signal.SIGKILL)
            killed_server_worker = gunicorn_worker.pid
            assert proc.wait(120) == 0, proc.stderr.read() if proc.stderr else ""
        finally:
            if proc.poll() is None:
                proc.kill()
    meta = run_json(tmp_path)
    cell = meta["cells"][0]
    # Both losses came after the window opened: the cell keeps its numbers, degraded, both named.
    assert cell["status"] == "degraded"
    assert [x["kind"] for x in cell["losses"]] == ["locust worker", "server worker"]
    assert len(cell["degraded_because"]) == 2
    assert len(cell["lost_workers"]) == 1  # the master's heartbeat saw the same worker go
    lost = cell["lost_workers"][0]
    assert cell["losses"][0]["client_id"] == lost["id"]
    cell_dir = next(tmp_path.glob("*/run.json")).parent / cell["dir"]
    exact = json.loads((cell_dir / "exact.json").read_text())
    assert lost["samples_received"] > 0
    assert exact["samples_by_worker"][lost["id"]] >= lost["samples_received"]  # kept, not dropped
    assert len(exact["samples_by_worker"]) == 2
    hist = load_histogram(cell_dir / "hdr" / catalogue.hdr_file("sleep/async-await"))
    # Both workers' samples merged without loss: the successes' histogram and the failures add up
    # to what each worker delivered.
    style = exact["requests"]["sleep/async-await"]
    assert hist.get_total_count() + style["failures"] == sum(exact["samples_by_worker"].values())
    assert "workers" in cell["validity"]["failed"]  # a lost generator worker makes the cell invalid
    # Gunicorn replaced its worker: a third worker wrote telemetry; the dead one's requests failed.
    assert len(list((cell_dir / "telemetry").glob("worker-*.jsonl"))) >= 3
    # The dead server worker's requests, on both sides: the server's last sample held some, and
    # with the silent resend off the client counted them as failures (connection closed).
    (death,) = cell["server_worker_deaths"]
    assert death["pid"] == killed_server_worker and "SIGKILL" in death["how"]
    assert death["inflight_at_last_sample"] > 0
    assert style["failures"] > 0
    assert {"workers", "server"} <= set(cell["validity"]["failed"])
    stats = pd.read_csv(cell_dir / "locust_stats.csv").set_index("Name")
    assert stats.loc["sleep/async-await", "Request Count"] > 500  # and it kept serving
    report = (tmp_path / "reports" / meta["run_id"] / "index.html").read_text()
    assert lost["id"] in report and f"Server worker <code>{killed_server_worker}</code>" in report


def _last_sample(results: Path, pid: int) -> dict[str, Any] | None:
    """The last sample server worker ``pid`` wrote to the run's telemetry, if any."""
    for path in results.glob(f"*/telemetry/worker-{pid}.jsonl"):
        for line in reversed(path.read_text(errors="replace").splitlines()):
            try:
                return dict(json.loads(line))
            except json.JSONDecodeError:
                continue
    return None


def _measured(history_csv: Path) -> bool:
    """Locust's history shows three rows with requests in them (each worker reports every second,
    Locust writes a row a second and flushes every 5 s), so both workers have shipped samples from
    the measured window."""
    try:
        rows = pd.read_csv(history_csv)
    except (pd.errors.EmptyDataError, OSError, KeyError):
        return False
    totals = rows[rows["Name"] == "Aggregated"]["Total Request Count"]
    return totals[totals > 0].nunique() >= 3


def _connections(p: psutil.Process) -> list:  # type: ignore[type-arg]
    try:
        return p.net_connections("inet")
    except psutil.Error:
        return []


TWO_CELLS = """
name = "two"
calibrate = false
duration_s = 5
warmup_s = 1
users = [5]
locust_workers = 2
[[groups]]
styles = ["sleep/async-await", "sleep/sync-def"]
"""


def test_unreachable_postgres_skips_db_cells(tmp_path: Path) -> None:
    exp = write_experiment(tmp_path / "db.toml", TWO_CELLS.replace('"sleep/sync-def"', '"db/asyncpg"'))
    with start_run(exp, tmp_path, env={"DATABASE_URL": "postgresql://postgres@127.0.0.1:9/postgres"}) as proc:
        assert proc.wait(120) == 0
        err = proc.stderr.read() if proc.stderr else ""
    cells = run_json(tmp_path)["cells"]
    assert [c["status"] for c in cells] == ["ok", "skipped"]
    assert "PostgreSQL unreachable at DATABASE_URL" in cells[1]["reason"]
    assert "skipped" in err


@pytest.mark.parametrize("after_s", [0.8, 3.0, 8.0])
def test_sigterm_at_any_moment_keeps_finished_cells_and_no_process(tmp_path: Path, after_s: float) -> None:
    exp = write_experiment(tmp_path / "two.toml", TWO_CELLS)
    with start_run(exp, tmp_path) as proc:
        try:
            time.sleep(after_s)
            family = [p.pid for p in descendants(proc.pid)]
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(60)
            err = proc.stderr.read() if proc.stderr else ""
        finally:
            if proc.poll() is None:
                proc.kill()
    runs = list(tmp_path.glob("*/run.json"))
    if code == -signal.SIGTERM:
        # Still importing: Python's default action ended it before anything was started or written.
        assert not runs and not family
    else:
        assert code == 130 and "Traceback" not in err
    if runs:  # a signal before the run directory existed leaves nothing at all
        meta = json.loads(runs[0].read_text())
        assert meta["status"] == "incomplete"
        assert not [c for c in meta["cells"] if c["status"] in ("running", "pending")]
        for c in meta["cells"]:
            if c["status"] == "ok":
                assert (runs[0].parent / c["dir"] / "exact.json").is_file()
    assert still_running(family, grace_s=10) == []
