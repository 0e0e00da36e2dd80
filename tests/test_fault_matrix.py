"""The fault matrix: every kind of process a cell starts, killed (SIGKILL, by pid) at each moment of
the cell, in a real run: one run per kind, one cell per moment. Each cell asserts what the run
recorded (status, reason, the loss's time and phase, sample accounting) and that its wall time
stayed within its budget; each run, that the cell after the faults ran clean and that no process
was left.

Moments: ``starting`` (as soon as the process exists: before it connects or the stack is ready),
``warm-up`` (the test has started, the window opens 2 s later), ``window`` (2.5 s into the window:
every Locust worker has sent two reports by then, they report every second).
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

WARMUP_S = 2.0
INTO_WINDOW_S = 2.5  # the "window" kill: every Locust worker has sent two reports by then (one a second)
# The window kill needs its 2.5 s in and time after; a kill before the window needs only a window
# to show the cell (or its second attempt) measured clean.
DURATION_S = {"starting": 2.0, "warm-up": 2.0, "window": 5.0}
NOTICED_S = 2.0  # the bound on noticing a death; the watch polls every TICK_S
MOMENTS = ("starting", "warm-up", "window")

# One run per process kind: a cell per moment, each on a fresh stack and Locust cluster (reuse off,
# so each moment meets processes of its own: "starting" kills one as soon as it exists), then one
# clean cell. A failed or degraded cell never holds the next one back.
EXPERIMENT = """
name = "fault-matrix"
calibrate = false
reuse = false
users = [6]
wait_ms = 50
locust_workers = 2
server_workers = [2]
{fault_groups}
[[groups]]
name = "next"
styles = ["sleep/async-await"]
warmup_s = 1
duration_s = 2
"""
FAULT_GROUP = """
[[groups]]
name = "{moment}"
styles = ["{style}"]
warmup_s = {warmup}
duration_s = {duration}
"""

STYLE = {"postgres": "db/asyncpg", "upstream": "http/async-client"}


def finder(kind: str, run_pid: int, born_after: float = 0.0) -> Callable[[], psutil.Process | None]:
    """The process of ``kind`` among the run's descendants, once it exists: one started after
    ``born_after`` (this cell's, not the last cell's, which may still be stopping)."""

    def find() -> psutil.Process | None:
        return next(iter(of_kind(kind, run_pid, born_after)), None)

    return find


def of_kind(kind: str, run_pid: int, born_after: float) -> list[psutil.Process]:
    """The run's descendants of ``kind`` started after ``born_after``."""
    found = []
    for p in descendants(run_pid):
        if _born(p) < born_after:
            continue
        # By the module run (``python -m locust ...``), never by words anywhere in the command
        # line: a child forked but not yet exec'd still carries the run's own, and this test's
        # directory name ("...gunicorn_master...") is in it.
        line, parent = cmdline(p), _ppid(p)
        module = line.split(" -m ", 1)[1].split(" ", 1)[0] if " -m " in line else ""
        is_kind = {
            "locust worker": module == "locust" and "--worker" in line,
            "locust master": module == "locust" and "--master" in line,
            "gunicorn master": module == "gunicorn" and parent == run_pid,
            "server worker": module == "gunicorn" and parent != run_pid,
            "postgres": parent == run_pid and _name(p) == "postgres" and "-D" in line,
            "upstream": module == "uvicorn" and "target_app.upstream" in line,
        }[kind]
        if is_kind:
            found.append(p)
    return found


def _name(p: psutil.Process) -> str:
    try:
        return p.name()  # the server itself, not initdb before it
    except psutil.Error:
        return ""


def _born(p: psutil.Process) -> float:
    try:
        return p.create_time()
    except psutil.Error:
        return 0.0


def _ppid(p: psutil.Process) -> int:
    try:
        return p.ppid()
    except psutil.Error:
        return -1


def _started_at(results: Path, cell: int) -> float | None:
    for path in results.glob("*/run.json"):
        try:
            cells = json.loads(path.read_text())["cells"]
        except (OSError, ValueError, KeyError):
            return None
        if len(cells) >= cell and cells[cell - 1].get("started_at"):
            return float(cells[cell - 1]["started_at"])
    return None


def _window(results: Path, cell: int) -> dict[str, Any] | None:
    for path in results.glob(f"*/{cell:03d}-*/window.json"):
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None
    return None


def kill_at(kind: str, moment: str, run_pid: int, results: Path, cell: int) -> float:
    """Kill the first process of ``kind`` that cell number ``cell`` started, at ``moment``; the
    kill's time."""
    # The run records the cell's start before it starts the cell's stack and Locust cluster (reuse
    # is off): a process born before then is the last cell's, perhaps still stopping. psutil's
    # birth times count from the boot time in whole seconds: a second's margin, and the last
    # cell's processes are all older than its warm-up and window (7 s).
    started = wait_for(lambda: _started_at(results, cell), 120, f"cell {cell}")
    find = finder(kind, run_pid, born_after=started - 1.0)
    if moment == "warm-up":
        wait_for(lambda: _window(results, cell), 60, "the test's start")
    elif moment == "window":
        w = wait_for(lambda: _window(results, cell), 60, "the test's start")
        time.sleep(max(0.0, float(w["measure_from"]) + INTO_WINDOW_S - time.time()))
    if kind == "server worker" and moment == "window":
        # The one holding the most of the users' keep-alive connections: the kernel may have
        # handed all of them to the other, and a worker with none loses no request.
        find = busiest_server_worker(run_pid, started - 1.0)
    victim = wait_for(find, 60, kind)
    victim.send_signal(signal.SIGKILL)
    return time.time()


def busiest_server_worker(run_pid: int, born_after: float) -> Callable[[], psutil.Process | None]:
    """The server worker with the most open client connections (none while no worker has one)."""

    def pick() -> psutil.Process | None:
        held = {
            w: sum(c.status == "ESTABLISHED" for c in _connections(w))
            for w in of_kind("server worker", run_pid, born_after)
        }
        best = max(held, key=lambda w: held[w], default=None)
        return best if best is not None and held[best] > 0 else None

    return pick


def _connections(p: psutil.Process) -> list[Any]:
    try:
        return p.net_connections("inet")
    except psutil.Error:
        return []


# What each fault must leave: the cell's status, and words its reason or degradation names.
EXPECTED: dict[tuple[str, str], tuple[str, str | None]] = {
    ("locust worker", "starting"): ("ok", None),
    ("locust worker", "warm-up"): ("ok", None),
    ("locust worker", "window"): ("degraded", "locust-worker-"),
    ("locust master", "starting"): ("ok", None),
    ("locust master", "warm-up"): ("ok", None),
    ("locust master", "window"): ("failed", "locust-master"),
    ("server worker", "starting"): ("ok", None),
    ("server worker", "warm-up"): ("ok", None),
    ("server worker", "window"): ("degraded", "server worker"),
    ("gunicorn master", "starting"): ("failed", "target"),
    ("gunicorn master", "warm-up"): ("failed", "target"),
    ("gunicorn master", "window"): ("failed", "target"),
    ("postgres", "starting"): ("failed", "postgres"),
    ("postgres", "warm-up"): ("failed", "postgres"),
    ("postgres", "window"): ("failed", "postgres"),
    ("upstream", "starting"): ("failed", "upstream"),
    ("upstream", "warm-up"): ("failed", "upstream"),
    ("upstream", "window"): ("failed", "upstream"),
}
KINDS = sorted({kind for kind, _ in EXPECTED}, key=[k for k, _ in EXPECTED].index)


@pytest.mark.parametrize("kind", KINDS, ids=[k.replace(" ", "_") for k in KINDS])
def test_fault(tmp_path: Path, kind: str) -> None:
    style = STYLE.get(kind, "sleep/async-await")
    groups = "".join(
        FAULT_GROUP.format(moment=m, style=style, warmup=WARMUP_S, duration=DURATION_S[m]) for m in MOMENTS
    )
    exp = write_experiment(tmp_path / "faults.toml", EXPERIMENT.format(fault_groups=groups))
    family: set[int] = set()
    killed_at: dict[str, float] = {}
    with start_run(exp, tmp_path) as proc:
        try:
            for number, moment in enumerate(MOMENTS, 1):
                killed_at[moment] = kill_at(kind, moment, proc.pid, tmp_path, number)
                family.update(p.pid for p in descendants(proc.pid))
            deadline = time.monotonic() + 180
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
    *faulted, last = meta["cells"]
    statuses = {m: c["status"] for m, c in zip(MOMENTS, faulted, strict=True)}
    # A failed cell fails the run; a degraded one is kept, its loss named, and the run succeeds.
    assert code == (1 if "failed" in statuses.values() else 0), (statuses, err[-800:])
    # The next cell starts clean, whatever happened before it.
    assert last["status"] == "ok", last
    assert still_running(sorted(family), grace_s=10) == []
    for moment, cell in zip(MOMENTS, faulted, strict=True):
        status, named = EXPECTED[(kind, moment)]
        check_cell(run_json.parent, cell, kind, moment, status, named, killed_at[moment], err)


def check_cell(
    run_dir: Path,
    cell: dict[str, Any],
    kind: str,
    moment: str,
    status: str,
    named: str | None,
    killed_at: float,
    err: str,
) -> None:
    """What one fault left in its cell."""
    said = " ".join([cell.get("reason", ""), *cell.get("degraded_because", [])])
    assert cell["status"] == status, (moment, cell["status"], said, err[-800:])
    if named:
        assert named in said, (moment, said)
    # Nothing hangs: a cell takes its own budget plus 10 s, once per attempt at its load, and
    # starts its own stack (reuse is off).
    attempts = 1 + len(list((run_dir / cell["dir"]).glob("attempt-*")))
    assert attempts <= GENERATOR_ATTEMPTS, moment
    budget = attempts * (WARMUP_S + DURATION_S[moment] + CELL_OVERHEAD_S) + STACK_START_S + 10
    assert cell["wall_s"] <= budget, (moment, cell["wall_s"])

    losses = cell.get("losses", [])
    if kind == "server worker" and moment == "starting":
        # Before the stack was ready: Gunicorn replaced it, its log says so; nothing was measured yet.
        assert any("SIGKILL" in d["how"] for d in cell["server_worker_deaths"]), cell["server_worker_deaths"]
        return
    recorded_as = {"gunicorn master": "target", "postgres": "postgres", "upstream": "upstream"}
    if kind in recorded_as:
        (loss,) = [x for x in losses if x["kind"] == "target stack" and x["process"] == recorded_as[kind]]
    else:
        (loss,) = [x for x in losses if x["kind"] == kind]
    assert loss["how"] == "killed by SIGKILL" or "exit" in loss["how"], (moment, loss)
    # Noticed within the bound, at the right moment of the cell. A death only Gunicorn's log saw
    # (the worker came and went between two polls) is timed to the second the log prints.
    early = 1.0 if loss.get("at_from") else 0.5
    assert killed_at - early <= loss["at"] <= killed_at + NOTICED_S + TICK_S, (moment, loss, killed_at)
    if kind in ("locust worker", "locust master") and moment != "window":
        # Lost before the window: started again, the abandoned attempt kept aside.
        assert loss["phase"] == moment and attempts == 2, (moment, loss, attempts)
        assert cell["validity"]["valid"] or "workers" not in cell["validity"]["failed"]
    elif moment != "starting":
        assert loss["phase"] == moment, (moment, loss)
    if status == "degraded":
        exact = json.loads((run_dir / cell["dir"] / "exact.json").read_text())
        failed = cell["validity"]["failed"]
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
