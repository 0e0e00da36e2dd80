"""The fault matrix: every kind of process a cell starts, killed (SIGKILL, by pid) at each moment of
the cell, in a real run. Each case asserts what the run recorded (status, reason, the loss's time
and phase, sample accounting), that the cell's wall time stayed within its budget, that the next
cell ran clean, and that no process was left.

Moments: ``starting`` (as soon as the process exists: before it connects or the stack is ready),
``warm-up`` (the test has started, the window opens 3 s later), ``window`` (3.5 s into the window:
every Locust worker has sent several reports by then, they report every second).
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from routebench.measure import GENERATOR_ATTEMPTS
from routebench.progress import CELL_OVERHEAD_S, STACK_START_S
from routebench.watch import TICK_S
from tests.conftest import still_running
from tests.test_faults import cmdline, descendants, start_run, wait_for, write_experiment

pytestmark = [pytest.mark.stack, pytest.mark.faults]

WARMUP_S, DURATION_S = 3.0, 6.0
NOTICED_S = 2.0  # the bound on noticing a death; the watch polls every TICK_S

EXPERIMENT = """
name = "fault-matrix"
calibrate = false
users = [6]
wait_ms = 50
locust_workers = 2
server_workers = [2]
[[groups]]
name = "fault"
styles = ["{style}"]
warmup_s = {warmup}
duration_s = {duration}
[[groups]]
name = "next"
styles = ["sleep/async-await"]
warmup_s = 1
duration_s = 2
"""

STYLE = {"postgres": "db/asyncpg", "upstream": "http/async-client"}


def finder(kind: str, run_pid: int) -> Callable[[], psutil.Process | None]:
    """The process of ``kind`` among the run's descendants, once it exists."""

    def find() -> psutil.Process | None:
        for p in descendants(run_pid):
            # By the module run (``python -m locust ...``), never by words anywhere in the command
            # line: a child forked but not yet exec'd still carries the run's own, and this test's
            # directory name ("...gunicorn_master...") is in it.
            line, parent = cmdline(p), _ppid(p)
            module = line.split(" -m ", 1)[1].split(" ", 1)[0] if " -m " in line else ""
            if kind == "locust worker" and module == "locust" and "--worker" in line:
                return p
            if kind == "locust master" and module == "locust" and "--master" in line:
                return p
            if kind == "gunicorn master" and module == "gunicorn" and parent == run_pid:
                return p
            if kind == "server worker" and module == "gunicorn" and parent != run_pid:
                return p
            if kind == "postgres" and parent == run_pid and _name(p) == "postgres" and "-D" in line:
                return p
            if kind == "upstream" and module == "uvicorn" and "target_app.upstream" in line:
                return p
        return None

    return find


def _name(p: psutil.Process) -> str:
    try:
        return p.name()  # the server itself, not initdb before it
    except psutil.Error:
        return ""


def _ppid(p: psutil.Process) -> int:
    try:
        return p.ppid()
    except psutil.Error:
        return -1


def _window(results: Path) -> dict[str, Any] | None:
    for path in results.glob("*/001-*/window.json"):
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None
    return None


def kill_at(kind: str, moment: str, run_pid: int, results: Path) -> float:
    """Kill the first process of ``kind`` in the first cell at ``moment``; the kill's time."""
    find = finder(kind, run_pid)
    wait_for(lambda: list(results.glob("*/001-*")), 60, "the first cell")
    if moment == "warm-up":
        wait_for(lambda: _window(results), 60, "the test's start")
    elif moment == "window":
        w = wait_for(lambda: _window(results), 60, "the test's start")
        time.sleep(max(0.0, float(w["measure_from"]) + 3.5 - time.time()))
    victim = wait_for(find, 60, kind)
    victim.send_signal(signal.SIGKILL)
    return time.time()


# What each fault must leave: the first cell's status, and words its reason or degradation names.
CASES = [
    ("locust worker", "starting", "ok", None),
    ("locust worker", "warm-up", "ok", None),
    ("locust worker", "window", "degraded", "locust-worker-"),
    ("locust master", "starting", "ok", None),
    ("locust master", "warm-up", "ok", None),
    ("locust master", "window", "failed", "locust-master"),
    ("server worker", "starting", "ok", None),
    ("server worker", "warm-up", "ok", None),
    ("server worker", "window", "degraded", "server worker"),
    ("gunicorn master", "starting", "failed", "target"),
    ("gunicorn master", "warm-up", "failed", "target"),
    ("gunicorn master", "window", "failed", "target"),
    ("postgres", "starting", "failed", "postgres"),
    ("postgres", "warm-up", "failed", "postgres"),
    ("postgres", "window", "failed", "postgres"),
    ("upstream", "starting", "failed", "upstream"),
    ("upstream", "warm-up", "failed", "upstream"),
    ("upstream", "window", "failed", "upstream"),
]


@pytest.mark.parametrize(
    ("kind", "moment", "status", "named"), CASES, ids=[f"{k}-{m}".replace(" ", "_") for k, m, *_ in CASES]
)
def test_fault(tmp_path: Path, kind: str, moment: str, status: str, named: str | None) -> None:
    style = STYLE.get(kind, "sleep/async-await")
    exp = write_experiment(
        tmp_path / "faults.toml", EXPERIMENT.format(style=style, warmup=WARMUP_S, duration=DURATION_S)
    )
    family: set[int] = set()
    with start_run(exp, tmp_path) as proc:
        try:
            killed_at = kill_at(kind, moment, proc.pid, tmp_path)
            deadline = time.monotonic() + 120
            while proc.poll() is None and time.monotonic() < deadline:
                family.update(p.pid for p in descendants(proc.pid))
                time.sleep(0.2)
            code = proc.wait(5)
            err = proc.stderr.read() if proc.stderr else ""
        finally:
            if proc.poll() is None:
                proc.kill()
    (run_json,) = tmp_path.glob("*/run.json")
    meta = json.loads(run_json.read_text())
    first, second = meta["cells"]
    said = " ".join([first.get("reason", ""), *first.get("degraded_because", [])])
    assert first["status"] == status, (first["status"], said, err[-800:])
    # A failed cell fails the run; a degraded one is kept, its loss named, and the run succeeds.
    assert code == (1 if status == "failed" else 0), err[-800:]
    if named:
        assert named in said, said
    # The next cell starts clean, whatever happened before it.
    assert second["status"] == "ok", second
    assert still_running(sorted(family), grace_s=10) == []
    # Nothing hangs: a cell takes its own budget plus 10 s, once per attempt at its load.
    attempts = 1 + len(list((run_json.parent / first["dir"]).glob("attempt-*")))
    assert attempts <= GENERATOR_ATTEMPTS
    # (The first cell also starts the run's stack: STACK_START_S.)
    budget = attempts * (WARMUP_S + DURATION_S + CELL_OVERHEAD_S) + STACK_START_S + 10
    assert first["wall_s"] <= budget, first["wall_s"]

    losses = first.get("losses", [])
    if kind == "server worker" and moment == "starting":
        # Before the stack was ready: Gunicorn replaced it, its log says so; nothing was measured yet.
        assert any("SIGKILL" in d["how"] for d in first["server_worker_deaths"]), first["server_worker_deaths"]
        return
    recorded_as = {"gunicorn master": "target", "postgres": "postgres", "upstream": "upstream"}
    if kind in recorded_as:
        (loss,) = [x for x in losses if x["kind"] == "target stack" and x["process"] == recorded_as[kind]]
    else:
        (loss,) = [x for x in losses if x["kind"] == kind]
    assert loss["how"] == "killed by SIGKILL" or "exit" in loss["how"], loss
    # Noticed within the bound, at the right moment of the cell.
    assert killed_at - 0.5 <= loss["at"] <= killed_at + NOTICED_S + TICK_S, (loss, killed_at)
    if kind in ("locust worker", "locust master") and moment != "window":
        # Lost before the window: started again, the abandoned attempt kept aside.
        assert loss["phase"] == moment and attempts == 2
        assert first["validity"]["valid"] or "workers" not in first["validity"]["failed"]
    elif moment != "starting":
        assert loss["phase"] == moment, loss
    if status == "degraded":
        cell_dir = run_json.parent / first["dir"]
        exact = json.loads((cell_dir / "exact.json").read_text())
        failed = first["validity"]["failed"]
        if kind == "locust worker":
            # Its delivered samples are the master's merge from it, and they are kept.
            assert loss["samples_delivered"] > 0
            assert exact["samples_by_worker"][loss["client_id"]] == loss["samples_delivered"]
            assert "workers" in failed
            # The master did not wait for a final report from a process known to be dead.
            assert (
                loss["client_id"] not in exact["final_reports"]["missing"]
                or loss["client_id"] in (exact["final_reports"]["dead"])
            )
        else:
            assert loss["how"] == "killed by SIGKILL" and "server" in failed
            # With the silent resend off, the requests that died with it are failures.
            assert sum(e["failures"] for e in exact["requests"].values()) > 0
