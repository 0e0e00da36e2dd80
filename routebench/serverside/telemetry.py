"""Server-side evidence, sampled by every worker while it serves, from a thread of its own.

The event loop reschedules a heartbeat every ``BEAT_S``; each time it runs it notes how late it
ran. A sampler *thread* (not a task on the loop, so a blocked loop cannot thin out its own
evidence) reads every ``interval_s``: the worst lateness since its last sample, or, if the loop
has not turned since, how long it has been stuck (event-loop lag); AnyIO threadpool tokens in use,
of how many, and the tasks waiting for one; database pool connections in use and waiters; requests
in flight; requests served per path; the process's CPU seconds; the event loop's thread's own time
on a CPU and time waiting for one (the kernel's run queue: a loop descheduled by another process is
waiting, not blocked by the app); and, from :mod:`routebench.serverside.stalls`, the loop stalls that ended
since the last sample (count, blocked ms, the call sites that blocked it). Samples stay in memory for
``GET /telemetry`` and, when a directory is configured, are appended as JSON lines to
``worker-<pid>.jsonl`` there.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .stalls import StallDetector

# ASGI's callables, as Starlette spells them (the app's own Starlette is not imported here).
ASGIApp = Callable[..., Any]
Receive = Callable[[], Any]
Send = Callable[..., Any]
Scope = dict

SAMPLES_KEPT = 36_000  # an hour at the default 100 ms
FLUSH_EVERY = 2  # samples per write: a reader of the files is at most 0.2 s behind at 100 ms
BEAT_S = 0.005  # how often the loop's heartbeat asks to run


class Gauge:
    """Requests in flight on this worker, requests served per path (cumulative), and the path of
    each request running, by its middleware frame (for the stall detector's stacks)."""

    def __init__(self) -> None:
        self.count = 0
        self.served: Counter[str] = Counter()
        self.routes: dict[int, str] = {}


class InFlight:
    """Pure ASGI middleware counting HTTP requests in flight on this worker, and served per path."""

    def __init__(self, app: ASGIApp, gauge: Gauge) -> None:
        self.app = app
        self.gauge = gauge

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.gauge.count += 1
        frame = id(sys._getframe())
        self.gauge.routes[frame] = scope["path"]
        try:
            await self.app(scope, receive, send)
        finally:
            self.gauge.count -= 1
            self.gauge.served[scope["path"]] += 1
            del self.gauge.routes[frame]


class Sampler:
    def __init__(
        self,
        interval_s: float,
        inflight: Gauge,
        db_stats: Callable[[], dict[str, int | None]],
        out_dir: Path | None,
        stall_threshold_s: float = 0.0,
    ) -> None:
        self.interval_s = interval_s
        self.inflight = inflight
        self.db_stats = db_stats
        self.pid = os.getpid()
        self.samples: collections.deque[dict[str, Any]] = collections.deque(maxlen=SAMPLES_KEPT)
        self.path = worker_file(out_dir, self.pid) if out_dir is not None else None
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._limiter: Any = None
        self._schedstat: Path | None = None  # the loop thread's /proc schedstat, once the loop starts
        self._last_beat = time.monotonic()
        self._worst_late = 0.0  # the heartbeat's worst lateness since the last sample
        self.stalls = (
            StallDetector(lambda: self._last_beat, inflight.routes, stall_threshold_s) if stall_threshold_s else None
        )

    # -- on the event loop ----------------------------------------------------------------------
    def _beat(self, due: float) -> None:
        now = time.monotonic()
        self._worst_late = max(self._worst_late, now - due)
        self._last_beat = now
        if not self._stop.is_set() and self._loop is not None:
            self._loop.call_later(BEAT_S, self._beat, now + BEAT_S)

    def start(self) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._loop = asyncio.get_running_loop()
        self._limiter = thread_limiter()  # this loop's own
        self._schedstat = loop_schedstat(threading.get_native_id())
        self._last_beat = time.monotonic()
        self._loop.call_later(BEAT_S, self._beat, self._last_beat + BEAT_S)
        self._thread = threading.Thread(target=self._run, name="routebench-telemetry", daemon=True)
        self._thread.start()
        if self.stalls is not None:
            self.stalls.start()

    async def stop(self) -> None:
        self._stop.set()
        if self.stalls is not None:
            await asyncio.to_thread(self.stalls.stop)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 2 * self.interval_s + 1)
        self.flush()

    # -- on the sampler thread ------------------------------------------------------------------
    def lag_s(self) -> float:
        """The loop's lag now: its worst late heartbeat since the last sample, or the stall in
        progress if it has not turned since (a loop blocked for seconds shows seconds)."""
        stuck = time.monotonic() - self._last_beat - BEAT_S
        late, self._worst_late = self._worst_late, 0.0
        return max(0.0, late, stuck)

    def sample(self) -> dict[str, Any]:
        limiter = self._limiter
        try:
            db = self.db_stats()
        except Exception:  # a pool mid-resize: the next sample reads it
            db = {}
        for _ in range(3):
            try:
                served = dict(self.inflight.served)
                break
            except RuntimeError:  # changed size while copied: the loop served a new path
                served = {}
        return {
            "t": time.time(),
            "pid": self.pid,
            "lag_ms": round(self.lag_s() * 1000, 3),
            "threads_busy": limiter.borrowed_tokens if limiter is not None else None,
            "threads_total": int(limiter.total_tokens) if limiter is not None else None,
            "threads_waiting": tokens_waited_for(limiter),
            "inflight": self.inflight.count,
            "cpu_s": round(time.process_time(), 4),
            **read_schedstat(self._schedstat),
            "served": served,
            **db,
            **(self.stalls.drain() if self.stalls is not None else {}),
        }

    def _run(self) -> None:
        due = time.monotonic() + self.interval_s
        while not self._stop.wait(max(0.0, due - time.monotonic())):
            self.record(self.sample())
            due += self.interval_s

    def record(self, sample: dict[str, Any]) -> None:
        with self._lock:
            self.samples.append(sample)
            if self.path is not None:
                self._pending.append(sample)
                if len(self._pending) >= FLUSH_EVERY:
                    self._flush_locked()

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        if self.path is None or not self._pending:
            return
        with self.path.open("a", encoding="utf-8") as f:
            f.writelines(json.dumps(s, separators=(",", ":")) + "\n" for s in self._pending)
        self._pending.clear()

    def snapshot(self, since: float = 0.0) -> dict[str, Any]:
        with self._lock:
            samples = [s for s in self.samples if s["t"] > since]
        return {"pid": self.pid, "interval_ms": round(self.interval_s * 1000), "samples": samples}


def thread_limiter() -> Any:
    """The running loop's AnyIO threadpool limiter (what Starlette's ``run_in_threadpool`` and a
    plain ``def`` route take a token from), or None where the app's Starlette predates AnyIO."""
    try:
        import anyio.to_thread
    except ImportError:
        return None
    return anyio.to_thread.current_default_thread_limiter()


def tokens_waited_for(limiter: Any) -> int | None:
    """The tasks waiting for one of an AnyIO ``limiter``'s tokens (its ``statistics().tasks_waiting``),
    None without a limiter. Read from the sampler thread: ``statistics()`` copies the limiter's
    borrowers, which the loop may change meanwhile, so a failed copy is tried again."""
    if limiter is None:
        return None
    for _ in range(3):
        try:
            return int(limiter.statistics().tasks_waiting)
        except RuntimeError:  # its borrowers changed size while copied
            continue
    return None


def loop_schedstat(tid: int) -> Path | None:
    """The kernel's scheduler statistics of thread ``tid`` of this process, when it keeps them
    (Linux with schedstats: /proc/self/task/<tid>/schedstat)."""
    path = Path(f"/proc/self/task/{tid}/schedstat")
    return path if read_schedstat(path) else None


def read_schedstat(path: Path | None) -> dict[str, float]:
    """The thread's time on a CPU and time runnable but waiting for one, in seconds since it began
    (``loop_cpu_s``, ``loop_wait_s``); empty where the kernel does not say."""
    if path is None:
        return {}
    try:
        on_cpu_ns, waiting_ns, _ = path.read_text().split()
    except (OSError, ValueError):
        return {}
    return {"loop_cpu_s": round(int(on_cpu_ns) / 1e9, 4), "loop_wait_s": round(int(waiting_ns) / 1e9, 4)}


WORKER_GLOB = "worker-*.jsonl"  # every worker's samples in a telemetry directory


def worker_file(directory: Path, pid: int) -> Path:
    """Where server worker ``pid`` writes its samples: the one spelling of the file name (every
    reader and writer of a telemetry directory asks here)."""
    return directory / f"worker-{pid}.jsonl"


def read_dir(directory: Path, since: float = 0.0) -> list[dict[str, Any]]:
    """Every sample written to ``directory`` by every worker after ``since``, oldest first (a line
    cut by a write in progress is left for the next read)."""
    samples: list[dict[str, Any]] = []
    for path in sorted(directory.glob(WORKER_GLOB)):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                sample = json.loads(line) if line.strip() else None
            except json.JSONDecodeError:
                continue
            if sample is not None and sample["t"] > since:
                samples.append(sample)
    return sorted(samples, key=lambda s: s["t"])


TAIL_BYTES = 64 * 1024  # the end of a worker's file holds its last samples
# What a request leaves held while it runs: a worker showing none of these is drained.
HELD = (
    "inflight",
    "threads_busy",
    "threads_waiting",
    "db_async_in_use",
    "db_async_waiting",
    "db_sync_in_use",
    "db_sync_waiting",
)


def sizes(source: Path) -> dict[str, int]:
    """How far each worker's file in ``source`` has been written: where a later copy may start."""
    return {p.name: p.stat().st_size for p in source.glob(WORKER_GLOB)}


def _lines_from(path: Path, offset: int) -> list[str]:
    with path.open("rb") as f:
        f.seek(offset)
        return f.read().decode("utf-8", errors="replace").splitlines()


def copy_window(source: Path, dest: Path, start: float, end: float, offsets: dict[str, int] | None = None) -> None:
    """The samples every worker wrote to ``source`` between ``start`` and ``end``, into ``dest``
    (file by file): one cell's or test's share of a stack that served several. ``offsets`` (from
    :func:`sizes` before ``start``) skips what was written earlier, so a long run's files are not
    read whole for every cell."""
    dest.mkdir(parents=True, exist_ok=True)
    for path in source.glob(WORKER_GLOB):
        kept = []
        for line in _lines_from(path, (offsets or {}).get(path.name, 0)):
            try:
                t = json.loads(line)["t"]
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
            if start <= t <= end:
                kept.append(line)
        if kept:
            (dest / path.name).write_text("\n".join(kept) + "\n", encoding="utf-8")


def drained(directory: Path, pids: list[int], after: float) -> bool:
    """Every worker in ``pids`` has written a sample taken after ``after`` that shows nothing held
    (no request in flight, no threadpool token or database connection taken or waited for)."""
    for pid in pids:
        path = worker_file(directory, pid)
        try:
            lines = _lines_from(path, max(0, path.stat().st_size - TAIL_BYTES))
        except OSError:
            return False
        last = None
        for line in reversed(lines):
            try:
                last = json.loads(line)
                break
            except json.JSONDecodeError:
                continue
        if last is None or float(last.get("t", 0)) <= after or any(last.get(k) for k in HELD):
            return False
    return True
