"""A Locust master and its workers as real processes: the load side of the cells, and of ``make ui``.

Local workers connect to the master over ZeroMQ on 127.0.0.1. With ``external_workers`` the master
binds where the user says and waits for workers started on other machines with
:meth:`LocustCluster.worker_command`.

Three ways to run it: headless (one test from the command line, then the master quits), the web
UI (``make ui``: a person starts tests), and driven (``routebench run``): the web UI on 127.0.0.1,
where the runner starts one test per cell with ``POST /swarm`` (Locust's own API), so one master
and its workers serve every cell of a run. Each test's options travel in the form; the locustfile
stops the test itself and saves it in the cell's directory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx
import psutil

from analysis.rundir import CellDir
from locustfiles.plugin.options import DEFAULT, STATE_PATH, Options
from locustfiles.plugin.plan import ROUTES_ENV
from routebench import stopping
from routebench.launcher import (
    REPO,
    DiedWhileStarting,
    Managed,
    StackError,
    StartedAndStopped,
    claim_port,
    http_status,
    spawn,
    wait_for,
)
from target_app.catalogue import CANARY_CLASS

LOCUSTFILE = REPO / "locustfiles" / "route_styles.py"
CPU_WARNING = 90.0  # Locust warns above this per generator process
ORCHESTRATOR = "routebench"  # this process, in the load side's CPU readings


def default_worker_count() -> int:
    # Two at least (the distributed path is what we measure); one per two cores beyond that,
    # leaving the rest of the machine to the server under test.
    return max(2, (os.cpu_count() or 2) // 2)


SAVED_POLL_S = 0.02  # how often the runner looks for a driven test's saved results
IDLE = ("ready", "stopped")  # Locust runner states in which a driven master takes a new test
STOPPED_TIMEOUT_S = 70.0  # Locust's own bound on its workers' stop (its stop timeout, 0 here, + 60 s)
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
    model: str = DEFAULT.model
    arrival_rate: float = DEFAULT.rate
    wait_ms: int | None = None
    work: int | None = None
    fanout: int | None = None
    default_classes: list[str] = field(default_factory=list)  # web UI: ticked when the form opens
    locustfile: Path = LOCUSTFILE  # another one only in tests that add a user class to ours
    precision: float = 0.0  # driven: stop once every p99 is known to within this (0: fixed run time)
    max_run_time_s: float | None = None  # driven, with precision: stop here at the latest
    tail_s: float = 0.0  # open model: the run's last seconds load without measuring (--rb-tail)
    finish_s: float = 0.0  # closed model: the longest the load goes on for the window's requests (--rb-finish)
    routes_file: Path | None = None  # your app's routes (routebench.routes): one user class each
    canary: str = ""  # the canary's URL or path (catalogue.CANARY): one more user, of its own class; "": none
    canary_rate: float = 0.0

    def options(self) -> Options:
        """routebench's options for this load (locustfiles.plugin.options: their one spelling)."""
        run_time = self.run_time_s or 0.0
        return Options(
            wait_ms=self.wait_ms,
            work=self.work,
            fanout=self.fanout,
            model=self.model,
            rate=self.arrival_rate,
            warmup_s=self.warmup_s,
            tail_s=self.tail_s,
            finish_s=self.finish_s,
            run_time_s=run_time,
            out=str(self.out_dir),
            precision=self.precision,
            max_run_time_s=self.max_run_time_s or run_time,
            default_classes=tuple(self.default_classes),
            canary=self.canary,
            canary_rate=self.canary_rate,
        )

    def form(self) -> dict[str, str | list[str]]:
        """One driven test as Locust's ``POST /swarm`` form: Locust's fields and our options (the
        web UI sets any option it is sent, keeping its type)."""
        assert self.run_time_s is not None
        # The canary's user is one more than the test's: Locust counts it among the users.
        users = self.users + (1 if self.canary else 0)
        return {
            "user_count": str(users),
            "spawn_rate": str(users),
            "host": self.target_url,
            "user_classes": self.user_classes + ([CANARY_CLASS] if self.canary else []),
            **self.options().form(),
        }


@dataclass
class LocustCluster(StartedAndStopped):
    spec: LoadSpec
    workers: int
    bind_host: str = "127.0.0.1"
    master_port: int = 0
    web_port: int | None = None  # None: headless
    driven: bool = False  # the runner starts each test through the web UI's API (bound to 127.0.0.1)
    external_workers: int = 0
    expect_timeout_s: float = 60.0
    extra_args: list[str] = field(default_factory=list)
    master: Managed | None = field(default=None, init=False)
    local_workers: list[Managed] = field(default_factory=list, init=False)
    cpu: dict[int, list[float]] = field(default_factory=dict, init=False)
    cpu_at: dict[int, list[float]] = field(default_factory=dict, init=False)  # when each reading was taken
    _probes: dict[int, psutil.Process] = field(default_factory=dict, init=False)
    _seen: str = field(default="its web API did not answer", init=False)

    def master_options(self) -> Options:
        """routebench's options on the master's command line. Headless: the test's own. Driven: the
        session's, each test's own come in its form. Web UI: the session's, and the classes ticked."""
        test = self.spec.options()
        session = replace(
            test, run_time_s=0.0, tail_s=0.0, finish_s=0.0, precision=0.0, max_run_time_s=0.0, default_classes=()
        )
        if self.driven:
            return replace(session, driven=True)
        if self.web_port is not None:
            return replace(session, default_classes=test.default_classes)
        if self.spec.run_time_s is None:
            return session
        return replace(session, run_time_s=test.run_time_s, tail_s=test.tail_s, finish_s=test.finish_s)

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
            *self.master_options().argv(),
            "--loglevel",
            "WARNING",
            "--stop-timeout",
            "0",
        ]
        if self.driven:
            argv += ["--web-host", "127.0.0.1", "--web-port", str(self.web_port), "--class-picker"]
            return argv + self.extra_args
        if self.web_port is None:
            argv += ["--headless", "--only-summary", "--expect-workers-max-wait", str(int(self.expect_timeout_s))]
            if s.run_time_s is not None:
                # The locustfile stops the test itself (--rb-run-time), collects every worker's final
                # report and quits; Locust's own run time is only a backstop (it quits without waiting).
                argv += ["-t", f"{s.run_time_s + s.finish_s + RUN_TIME_BACKSTOP_S:g}s"]
        else:
            argv += ["--web-host", self.bind_host, "--web-port", str(self.web_port), "--class-picker"]
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
        if self.driven:
            self.web_port = claim_port("127.0.0.1", self.web_port or 0, "Locust web API")
        elif self.web_port is not None:
            self.web_port = claim_port(self.bind_host, self.web_port, "Locust web UI")
        self.master = self._spawn("locust-master", self.master_argv())
        local_host = "127.0.0.1" if self.bind_host in ("0.0.0.0", "::") else self.bind_host
        for i in range(self.workers):
            argv = worker_argv(local_host, self.master_port, self.spec.locustfile)
            self.local_workers.append(self._spawn(f"locust-worker-{i + 1}", argv))
        return self

    def _spawn(self, name: str, argv: list[str]) -> Managed:
        env = {k: v for k, v in os.environ.items() if k != ROUTES_ENV}
        if self.spec.routes_file is not None:
            env[ROUTES_ENV] = str(self.spec.routes_file.resolve())
        return spawn(name, argv, CellDir(self.spec.out_dir).log(name), env=env)

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

    # -- driven --------------------------------------------------------------------------------
    @property
    def history(self) -> Path:
        """Locust's stats history CSV (every test of a driven cluster)."""
        return CellDir(self.spec.out_dir).history

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def wait_workers(self, timeout: float) -> None:
        """Until the master's web API answers and every worker it expects has connected (each
        ready for a test), the master and local workers alive the while."""
        assert self.master is not None
        want = self.workers + self.external_workers

        def connected() -> bool:
            try:
                body = httpx.get(f"{self.api}{STATE_PATH}", timeout=2).json()
            except (httpx.HTTPError, ValueError):
                return False
            workers = body.get("workers") or []
            return len([w for w in workers if w.get("state") in ("ready", "stopped")]) >= want

        def alive() -> None:
            for m in self.processes():
                if not m.alive():
                    raise DiedWhileStarting(m)

        if not wait_for(connected, timeout, 0.1, alive):
            raise StackError(f"{want} Locust worker(s) did not connect to the master within {timeout:.0f} s")

    def idle(self) -> bool:
        """The master takes a new test: its last one stopped and every worker it expects says it is
        ready again (Locust's state turns "stopped" once the workers stopped their users, a moment
        before each tells it is ready)."""
        try:
            body = httpx.get(f"{self.api}{STATE_PATH}", timeout=2).json()
        except (httpx.HTTPError, ValueError):
            return False
        ready = [w for w in body.get("workers") or [] if w.get("state") == "ready"]
        want = self.workers + self.external_workers
        self._seen = f"Locust's state {body.get('state')!r}, {len(ready)} of {want} workers ready"
        return body.get("state") in IDLE and len(ready) >= want

    def start_test(self, spec: LoadSpec) -> None:
        """One test, as its form says, once the last one has stopped on every worker; the
        locustfile stops and saves it."""
        assert self.master is not None
        master = self.master

        def alive() -> None:
            if not master.alive():
                raise StackError(f"the Locust master exited: {master.tail(3)}")

        if not wait_for(self.idle, STOPPED_TIMEOUT_S, 0.02, alive):
            raise StackError(
                f"the Locust master was not ready for a test within {STOPPED_TIMEOUT_S:.0f} s ({self._seen})"
            )
        try:
            r = httpx.post(f"{self.api}/swarm", data=spec.form(), timeout=10)
            body = r.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise StackError(f"the Locust master did not start the test: {exc}") from None
        if not body.get("success"):
            raise StackError(f"the Locust master refused the test: {body.get('message')}")

    def wait_saved(self, spec: LoadSpec, timeout: float, tick: float, on_tick: object = None) -> bool:
        """Until the test is saved in its directory (``exact.json``, written last) or the master
        exits; True when saved."""
        assert self.master is not None
        saved = CellDir(spec.out_dir).exact
        deadline = time.monotonic() + timeout
        next_tick = 0.0
        while not saved.exists():
            stopping.check()
            if not self.master.alive():
                return saved.exists()
            now = time.monotonic()
            if now > deadline:
                raise StackError(f"the Locust master had not saved the test {timeout:.0f} s after it should have ended")
            if now >= next_tick:
                next_tick = now + tick
                self.sample_cpu()
                if callable(on_tick):
                    on_tick()
            time.sleep(SAVED_POLL_S)
        return True

    def processes(self) -> list[Managed]:
        return [m for m in [self.master, *self.local_workers] if m is not None]

    def cpu_names(self) -> dict[str, str]:
        """The processes :meth:`sample_cpu` reads, by pid: Locust's, and routebench's own (it drives
        the test and polls the server, and takes its share of the machine's cores too)."""
        return {**{str(m.proc.pid): m.name for m in self.processes()}, str(os.getpid()): ORCHESTRATOR}

    def sample_cpu(self) -> None:
        """One CPU reading per load-side process (percent of one core since the last reading)."""
        for pid in map(int, self.cpu_names()):
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
