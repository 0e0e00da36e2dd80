"""Evidence about a cell from outside its numbers: the server's (workers Gunicorn saw die, where
the users' connections landed) and the load generator's (its processes' CPU over the window).

Each is kept beside the cell so a reader can tell the server's limits from the harness's: a dead
worker explains failures, a saturated generator voids a latency, and the connections per worker are
an input of the model (the kernel places them, not the code).
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil

from analysis.rundir import LAB_SERVICES
from routebench.launcher import Stack
from routebench.locust_cluster import CPU_WARNING, ORCHESTRATOR
from routebench.serverside.telemetry import worker_file


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
    locust = [p for p in processes if p["name"] != ORCHESTRATOR]
    saturated = any(p["mean_cpu_percent"] > CPU_WARNING for p in locust)
    # The cores the generator took from the machine in the window, which the server then did not
    # have; routebench's own apart (it does not grow with the load: capacity's per-request cost of
    # the generator must not count it).
    cores = round(sum(p["mean_cpu_percent"] for p in locust) / 100, 3)
    ours = round(sum(p["mean_cpu_percent"] for p in processes if p["name"] == ORCHESTRATOR) / 100, 3)
    return {
        "threshold_percent": CPU_WARNING,
        "over": "the measured window"
        if window is not None
        else "every reading of the Locust processes (no window saved)",
        "saturated": saturated,
        "cpu_cores": cores,
        "orchestrator_cpu_cores": ours,
        "processes": processes,
    }


def lab_cpu_seconds(stack: Stack) -> dict[str, float]:
    """The CPU seconds each of the lab's services has used so far: the upstream service's one
    process, PostgreSQL's postmaster and its backends (a database given by DATABASE_URL is not
    ours to read)."""
    out = {}
    for m in stack.processes:
        if m.name not in LAB_SERVICES:
            continue
        try:
            root = psutil.Process(m.proc.pid)
            family = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
        total = 0.0
        for p in family:
            try:
                t = p.cpu_times()
            except psutil.Error:
                continue
            total += t.user + t.system
        out[m.name] = total
    return out


def lab_load(readings: list[tuple[float, dict[str, float]]], window: tuple[float, float]) -> dict[str, float] | None:
    """The cores each lab service took over the window: its CPU seconds between the last reading
    at or before the window opened and the first at or after it closed, over the time between them
    (readings a tick apart; None when the readings do not span the window)."""
    before = [r for r in readings if r[0] <= window[0]]
    after = [r for r in readings if r[0] >= window[1]]
    if not before or not after:
        return None
    (t0, first), (t1, last) = before[-1], after[0]
    if t1 <= t0:
        return None
    return {name: round(max(0.0, last[name] - first[name]) / (t1 - t0), 3) for name in first if name in last}


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
