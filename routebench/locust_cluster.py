"""A Locust master and its workers as real processes: the load side of a cell, and of ``make ui``.

The master is started with the options a cell needs; local workers connect to it over ZeroMQ on
127.0.0.1. With ``external_workers`` the master binds where the user says and waits for workers
started on other machines with :meth:`LocustCluster.worker_command`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from routebench import stopping
from routebench.launcher import REPO, Managed, StackError, StartedAndStopped, claim_port, http_status, spawn, wait_for
from routebench.rundir import CellDir

LOCUSTFILE = REPO / "locustfiles" / "route_styles.py"
CPU_WARNING = 90.0  # Locust warns above this per generator process


def default_worker_count() -> int:
    # Two at least (the distributed path is what we measure); one per two cores beyond that,
    # leaving the rest of the machine to the server under test.
    return max(2, (os.cpu_count() or 2) // 2)


RUN_TIME_BACKSTOP_S = 20  # past the locustfile's own stop and its wait for final reports


def worker_argv(master_host: str, master_port: int, locustfile: Path = LOCUSTFILE) -> list[str]:
    """The one Locust worker command line: local workers, ``routebench worker`` and the deploy
    recipes (which call ``routebench worker``) all come here."""
    return [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(locustfile),
        "--worker",
        "--master-host",
        master_host,
        "--master-port",
        str(master_port),
        "--loglevel",
        "WARNING",
    ]


@dataclass
class LoadSpec:
    target_url: str
    user_classes: list[str]
    users: int
    out_dir: Path
    run_time_s: float | None = None  # None: run until stopped (web UI)
    warmup_s: float = 0.0
    model: str = "closed"
    arrival_rate: float = 10.0
    wait_ms: int | None = None
    work: int | None = None
    fanout: int | None = None
    default_classes: list[str] = field(default_factory=list)  # web UI: ticked when the form opens
    locustfile: Path = LOCUSTFILE  # another one only in tests that add a user class to ours


@dataclass
class LocustCluster(StartedAndStopped):
    spec: LoadSpec
    workers: int
    bind_host: str = "127.0.0.1"
    master_port: int = 0
    web_port: int | None = None  # None: headless
    external_workers: int = 0
    expect_timeout_s: float = 60.0
    extra_args: list[str] = field(default_factory=list)
    master: Managed | None = field(default=None, init=False)
    local_workers: list[Managed] = field(default_factory=list, init=False)
    cpu: dict[int, list[float]] = field(default_factory=dict, init=False)
    cpu_at: dict[int, list[float]] = field(default_factory=dict, init=False)  # when each reading was taken
    _probes: dict[int, psutil.Process] = field(default_factory=dict, init=False)

    def master_argv(self) -> list[str]:
        s = self.spec
        argv = [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(s.locustfile),
            "--master",
            "--master-bind-host",
            self.bind_host,
            "--master-bind-port",
            str(self.master_port),
            "--expect-workers",
            str(self.workers + self.external_workers),
            "--host",
            s.target_url,
            "-u",
            str(s.users),
            "-r",
            str(s.users),
            "--csv",
            str(CellDir(s.out_dir).locust_prefix),
            "--csv-full-history",
            "--rb-out",
            str(s.out_dir),
            "--rb-warmup",
            str(s.warmup_s),
            "--rb-model",
            s.model,
            "--rb-rate",
            str(s.arrival_rate),
            "--loglevel",
            "WARNING",
            "--stop-timeout",
            "0",
        ]
        for flag, value in (("--rb-ms", s.wait_ms), ("--rb-work", s.work), ("--rb-k", s.fanout)):
            if value is not None:
                argv += [flag, str(value)]
        if self.web_port is None:
            argv += ["--headless", "--only-summary", "--expect-workers-max-wait", str(int(self.expect_timeout_s))]
            if s.run_time_s is not None:
                # The locustfile stops the test itself, collects every worker's final report and
                # quits; Locust's own run time is only a backstop (it quits without waiting).
                argv += ["--rb-run-time", f"{s.run_time_s:g}", "-t", f"{s.run_time_s + RUN_TIME_BACKSTOP_S:g}s"]
        else:
            argv += ["--web-host", self.bind_host, "--web-port", str(self.web_port), "--class-picker"]
            if s.default_classes:
                argv += ["--rb-default-classes", ",".join(s.default_classes)]
        return argv + self.extra_args + s.user_classes

    def worker_command(self, master_host: str | None = None) -> list[str]:
        """What to run on another machine (a checkout with the project installed) to join."""
        return [
            "routebench",
            "worker",
            "--master-host",
            master_host or self.bind_host,
            "--master-port",
            str(self.master_port),
        ]

    def start(self) -> LocustCluster:
        self.spec.out_dir.mkdir(parents=True, exist_ok=True)
        self.master_port = claim_port(self.bind_host, self.master_port, "Locust master")
        if self.web_port is not None:
            self.web_port = claim_port(self.bind_host, self.web_port, "Locust web UI")
        self.master = self._spawn("locust-master", self.master_argv())
        local_host = "127.0.0.1" if self.bind_host in ("0.0.0.0", "::") else self.bind_host
        for i in range(self.workers):
            argv = worker_argv(local_host, self.master_port, self.spec.locustfile)
            self.local_workers.append(self._spawn(f"locust-worker-{i + 1}", argv))
        return self

    def _spawn(self, name: str, argv: list[str]) -> Managed:
        return spawn(name, argv, CellDir(self.spec.out_dir).log(name))

    def wait_web_ui(self, timeout: float = 30.0) -> str:
        """The web UI's URL, once it answers."""
        assert self.master is not None and self.web_port is not None
        url = f"http://{self.bind_host}:{self.web_port}"
        master = self.master

        def master_alive() -> None:
            if not master.alive():
                raise StackError(f"Locust master exited while starting: {master.tail(3)}")

        # 302: to its login page
        if wait_for(lambda: http_status(url) in (200, 302), timeout, 0.1, master_alive):
            return url
        raise StackError(f"Locust web UI did not answer on {url} within {timeout:.0f} s")

    def processes(self) -> list[Managed]:
        return [m for m in [self.master, *self.local_workers] if m is not None]

    def sample_cpu(self) -> None:
        """One CPU reading per generator process (percent of one core since the last reading)."""
        for m in self.processes():
            pid = m.proc.pid
            try:
                if pid not in self._probes:
                    self._probes[pid] = psutil.Process(pid)
                    self._probes[pid].cpu_percent(None)  # the first call only sets the baseline
                    self.cpu[pid] = []
                    self.cpu_at[pid] = []
                else:
                    self.cpu[pid].append(self._probes[pid].cpu_percent(None))
                    self.cpu_at[pid].append(time.time())
            except psutil.Error:
                continue

    def wait(self, timeout: float, tick: float = 1.0, on_tick: object = None) -> int:
        """Wait for the master to finish by itself; return its exit code."""
        assert self.master is not None
        deadline = time.monotonic() + timeout
        while self.master.alive():
            stopping.check()
            if time.monotonic() > deadline:
                raise StackError(f"Locust master still running {timeout:.0f} s after the cell should have ended")
            self.sample_cpu()
            if callable(on_tick):
                on_tick()
            time.sleep(tick)
        return int(self.master.proc.returncode)

    def stop(self) -> None:
        # The master first, gently, so it collects the workers' final reports and saves them.
        if self.master is not None and self.master.alive():
            self.master.proc.send_signal(signal.SIGTERM)
            try:
                self.master.proc.wait(15)
            except subprocess.TimeoutExpired:
                pass
        for m in self.processes():
            m.stop(timeout=5)
