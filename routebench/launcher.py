"""The one launcher: starts the whole target stack (PostgreSQL, upstream, target) and stops all of it.

The Makefile, the CLI, the runner and the tests all come through :class:`Stack`; no other place
spells a server command line. Every process runs in its own process group, is stopped by group
(so Gunicorn's workers, the process pool and PostgreSQL's backends go with it) and is told by the
kernel to stop if the launcher itself dies.
"""

from __future__ import annotations

import errno
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import httpx
import psutil

from routebench import appenv, postgres, stopping
from routebench.serverside.harness import HEALTH_PATH
from routebench.serverside.lifeline import die_with_parent
from target_app.settings import Settings

REPO = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
# The server under test gives way to the instrument: it runs at this niceness (its autogroup too,
# where the kernel groups by session), so the Locust processes, routebench itself and the lab's
# upstream and PostgreSQL get a core when they wake, and the server every cycle they leave. Without
# it, a process pool's CPU-bound children kept the Locust processes waiting for a core 0.4 s of
# every second here (their canary started half its requests late, by up to 0.7 s, and every latency
# they timed carried that wait). The clients of a real server run on other machines.
SERVER_NICE = 5


class StackError(RuntimeError):
    """A problem the user can act on, said in one line."""


def how_exited(returncode: int | None) -> str:
    """``killed by SIGKILL`` or ``exit code 1``, from a Popen return code."""
    if returncode is None:
        return "gone"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


class AppError(StackError):
    """Your own app cannot be served (it does not import, its lifespan fails, it has no route to load)."""


class DiedWhileStarting(StackError):
    """A process of the stack exited before it was ready: which, and how."""

    def __init__(self, managed: Managed) -> None:
        super().__init__(
            f"{managed.name} {how_exited(managed.proc.returncode)} while starting: {_last_line(managed.tail())}"
        )
        self.managed = managed


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def claim_port(host: str, port: int, what: str) -> int:
    """``port`` if it is free (or a free one for 0); a one-line error if it is taken."""
    if port == 0:
        return free_port(host)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise StackError(f"port {port} on {host} is already in use (wanted for the {what})") from None
            raise StackError(f"cannot listen on {host}:{port} for the {what}: {exc.strerror}") from None
    return port


def spawn(
    name: str,
    argv: list[str],
    log: Path,
    *,
    env: dict[str, str] | None = None,
    user: str | None = None,
    stop_signal: int = signal.SIGTERM,
    cwd: Path = REPO,
    nice: int = 0,
) -> Managed:
    """Start ``argv`` in a process group (and session) of its own, output to ``log``, stopped if we
    die; ``nice`` above 0 lowers its priority (:func:`give_way`)."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
            user=user,
            preexec_fn=functools.partial(_in_child, stop_signal, nice),
            cwd=cwd,
        )
    if nice:
        give_way(proc.pid, nice)
    return Managed(name, proc, log, stop_signal)


def _in_child(stop_signal: int, nice: int) -> None:
    die_with_parent(stop_signal)
    if nice:
        os.nice(nice)  # inherited by every process it forks or spawns (Gunicorn's workers, a pool's)


def give_way(pid: int, nice: int) -> bool:
    """Lower the priority of ``pid``'s autogroup (Linux groups the scheduling of a session's
    processes when sched_autogroup is on: a process's own niceness then only ranks it within its
    session). True when the kernel took it; False without autogroups (the process's own niceness,
    set at its start, is then what counts)."""
    try:
        Path(f"/proc/{pid}/autogroup").write_text(str(nice))
    except OSError:
        return False
    return True


@dataclass
class Managed:
    """One server process and its process group."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    stop_signal: int = signal.SIGTERM

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        pgid = self.proc.pid
        try:
            signal_group(pgid, self.stop_signal)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
            # Whatever is left of the group (a stuck worker, an orphaned pool process) is killed.
            if not wait_for(lambda: not _group_alive(pgid), timeout, 0.05):
                signal_group(pgid, signal.SIGKILL)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group is still running. An exited one whose parent died first is a
    zombie of PID 1 until init reaps it (the init of some machines takes a second or more): it holds
    no port, file or memory, and waiting for it only slows every stop."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    for p in psutil.process_iter():
        try:
            if os.getpgid(p.pid) == pgid and p.status() != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, psutil.Error):
            continue
    return False


class StartedAndStopped:
    """``with`` for anything with start() and stop(): a start that fails stops what it began."""

    def start(self) -> object:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class Stack(StartedAndStopped):
    """The target stack: embedded PostgreSQL (unless DATABASE_URL), upstream service, target app.

    Use as a context manager; ``start()`` returns once every part answers its health check.
    """

    settings: Settings
    telemetry_dir: Path | None = None
    with_db: bool = True
    with_upstream: bool = True  # (your own app, settings.app: neither; its DATABASE_URL is its own)
    with_target: bool = True  # off: the database alone (routebench --postgres, for your app)
    keep_logs: bool = False
    work_dir: Path = field(init=False)
    processes: list[Managed] = field(default_factory=list, init=False)
    target_url: str = field(default="", init=False)
    canary_url: str = field(default="", init=False)  # the canary's listener (the target's own, under Uvicorn's)
    upstream_url: str | None = field(default=None, init=False)
    database_url: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.work_dir = Path(tempfile.mkdtemp(prefix="routebench-stack-"))
        (self.work_dir / "logs").mkdir()

    # -- life cycle -------------------------------------------------------------------------
    def start(self) -> Stack:
        s = self.settings
        if s.app:
            self.with_db = self.with_upstream = False
        host = s.host
        target_port = claim_port(host, s.port, "target app") if self.with_target else 0
        # Uvicorn's own workers listen on one address only: there the canary shares the users'.
        serves_canary = self.with_target and s.worker_class != "uvicorn"
        canary_port = claim_port(host, s.canary_port, "canary listener") if serves_canary else 0
        upstream_port = claim_port(host, s.upstream_port, "upstream service") if self.with_upstream else 0

        if self.with_db and s.database_url:
            self.database_url = s.database_url
        elif self.with_db and s.embedded_db:
            self.database_url = self._start_postgres(claim_port(host, s.db_port, "embedded PostgreSQL"))

        if self.with_upstream:
            # Started side by side with the target, which needs its URL but not its answer yet.
            self.upstream_url = f"http://{host}:{upstream_port}"
            self._spawn("upstream", self._upstream_argv(upstream_port), s)

        child = s.model_copy(
            update={
                "port": target_port,
                "canary_port": canary_port,
                "upstream_url": self.upstream_url,
                # Your app's is its own (or routebench's embedded one, --postgres), passed as DATABASE_URL.
                "database_url": s.database_url if s.app else self.database_url,
                "state_dir": self.work_dir / "state",
                # Absolute: your app's server runs in its own directory, not where the run was started.
                "telemetry_dir": self.telemetry_dir.resolve() if self.telemetry_dir is not None else None,
            }
        )
        if not self.with_target:
            return self
        self.target_url = f"http://{host}:{target_port}"
        self.canary_url = f"http://{host}:{canary_port}" if canary_port else self.target_url
        self._spawn("target", self._target_argv(child), child)
        if self.upstream_url is not None:
            self._wait_http("upstream", self.upstream_url + "/health")
        self._wait_target(child)
        return self

    def stop(self) -> None:
        # Target first (it holds connections to the others), then upstream, then the database.
        for managed in reversed(self.processes):
            managed.stop()
        self.processes.clear()
        if not self.keep_logs:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    # -- the command lines, the only copies ---------------------------------------------------
    def _target_argv(self, s: Settings) -> list[str]:
        served = "routebench.serverside.harness:app" if s.app else "target_app.main:app"
        python = str(_python(s))
        if s.worker_class == "uvicorn":
            return [python, "-m", "routebench.serverside.uvicorn_main", served]
        return [python, "-m", "gunicorn", "-c", "python:routebench.serverside.gunicorn_conf", served]

    def _upstream_argv(self, port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "target_app.upstream:app",
            "--host",
            self.settings.host,
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            "--backlog",
            "4096",
        ]

    def _start_postgres(self, port: int) -> str:
        base = self.work_dir / "pg"
        try:
            argv, user, _ = postgres.prepare(base)
        except (subprocess.CalledProcessError, RuntimeError, OSError) as exc:
            raise StackError(f"embedded PostgreSQL failed to initialise: {exc}") from None
        # Room for every worker's two pools and the health checks.
        max_conn = max(100, self.settings.workers * self.settings.db_pool_size * 2 + 20)
        argv += postgres.server_args(self.settings.host, port, base, max_conn)
        self._spawn("postgres", argv, self.settings, user=user, stop_signal=signal.SIGINT)
        url = f"postgresql://postgres@{self.settings.host}:{port}/postgres"
        self._wait_until("postgres", lambda: _pg_ready(url))
        return url

    # -- helpers -------------------------------------------------------------------------------
    def _spawn(
        self, name: str, argv: list[str], s: Settings, user: str | None = None, stop_signal: int = signal.SIGTERM
    ) -> Managed:
        log = self.work_dir / "logs" / f"{name}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTEBENCH_")}
        env.update(s.to_env())
        cwd = REPO
        if name == "target" and s.app:
            cwd = s.app_dir or Path.cwd()  # your app's environment is its own, DATABASE_URL too
            env = appenv.environ(_python(s), env)
            if s.database_url:  # routebench's embedded PostgreSQL for your app (--postgres)
                env["DATABASE_URL"] = s.database_url
        else:
            env.pop("DATABASE_URL", None)  # the child reads ROUTEBENCH_DATABASE_URL, resolved here
        nice = SERVER_NICE if name == "target" else 0
        managed = spawn(name, argv, log, env=env, user=user, stop_signal=stop_signal, cwd=cwd, nice=nice)
        self.processes.append(managed)
        return managed

    def _all_alive(self) -> None:
        """Every process started so far is alive: one that died while a later one started (the
        database under the app, say) is named, not the symptom the later one shows."""
        for m in self.processes:
            if not m.alive():
                raise DiedWhileStarting(m)

    def _wait_until(
        self,
        name: str,
        ready: Callable[[], bool],
        timeout: float = READY_TIMEOUT_S,
        check: Callable[[], None] | None = None,
    ) -> None:
        managed = next(m for m in self.processes if m.name == name)
        if not wait_for(ready, timeout, 0.05, check or self._all_alive):
            raise StackError(f"{name} did not become ready in {timeout:.0f} s: {_last_line(managed.tail())}")

    def _wait_http(self, name: str, url: str) -> None:
        self._wait_until(name, lambda: http_status(url) == 200)

    def _wait_target(self, s: Settings) -> None:
        state = s.state_dir
        assert state is not None
        health = self.target_url + (HEALTH_PATH if s.app else "/health")
        last: dict[str, object] = {}

        def app_started() -> None:
            """Your app's lifespan failed in a worker (routebench.serverside.harness): said before the
            worker's exit, which would only say that it failed to boot."""
            for marker in sorted(state.glob("failed-*")) if state.exists() else ():
                raise AppError(f"your app's lifespan failed at startup: {marker.read_text(errors='replace')}")
            self._all_alive()

        def ready() -> bool:
            workers_up = len(list(state.glob("ready-*"))) if state.exists() else 0
            if workers_up < s.workers:
                return False
            try:
                r = httpx.get(health, timeout=2)
            except httpx.HTTPError:
                return False
            last.update(r.json())
            if r.status_code == 503 and last.get("db") not in (None, "ok", "disabled"):
                self._all_alive()  # the database itself died: say so
                raise StackError(f"target app cannot use the database: {last['db']}")
            return r.status_code == 200

        self._wait_until("target", ready, check=app_started if s.app else None)

    def worker_pids(self) -> list[int]:
        """The target's worker processes: those that finished start-up and are still alive."""
        state = self.work_dir / "state"
        pids = (int(p.name.removeprefix("ready-")) for p in state.glob("ready-*")) if state.exists() else ()
        return sorted(pid for pid in pids if psutil.pid_exists(pid))

    def all_pids(self) -> list[int]:
        """Every process of the stack, for checking that none is left behind."""
        pids = []
        for managed in self.processes:
            try:
                parent = psutil.Process(managed.proc.pid)
                pids += [parent.pid, *(c.pid for c in parent.children(recursive=True))]
            except psutil.NoSuchProcess:
                continue
        return pids

    def log(self, name: str) -> str:
        """What one of the stack's processes has written so far."""
        managed = next((m for m in self.processes if m.name == name), None)
        if managed is None:
            return ""
        try:
            return managed.log.read_text(errors="replace")
        except OSError:
            return ""

    def describe(self) -> dict[str, str | None]:
        return {"target": self.target_url, "upstream": self.upstream_url, "database": self.database_url}


def _python(s: Settings) -> Path:
    """The interpreter that serves the target: your app's own (routebench.appenv), else routebench's."""
    return s.app_python if s.app and s.app_python else Path(sys.executable)


def http_status(url: str) -> int | None:
    """The status ``url`` answers with, or None when nothing answers."""
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return None


def _pg_ready(url: str) -> bool:
    return postgres.probe(url, 2) is None


def wait_for(
    ready: Callable[[], bool], timeout: float, interval: float, check: Callable[[], None] | None = None
) -> bool:
    """Poll ``ready`` until it holds (True) or ``timeout`` passes (False); ``check`` may raise to
    stop early (a process that died while we waited for it). A wait with a ``check`` is part of a
    start, so a stop the user asked for ends it too; the waits of a stop have none."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check is not None:
            stopping.check()
            check()
        if ready():
            return True
        time.sleep(interval)
    return False


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else "(no output)"
