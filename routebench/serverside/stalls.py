"""Which line of code is stalling the event loop: a watchdog beside each worker's loop.

The loop's heartbeat (:mod:`routebench.serverside.telemetry`) runs every few milliseconds. A watchdog thread
polls it every ``POLL_S``; once the loop has not turned for more than the threshold (default
20 ms), it captures the loop thread's stack (``sys._current_frames``) and again every
``RECAPTURE_S`` while the stall lasts. Each capture names a call site: the innermost frame in
application code (``path:line function``, the path relative to the app's root; library frames
below it, such as ``time.sleep`` or a driver's socket read, are folded), and the route that was
running (the request path the middleware noted for the frame it runs in). The stall's time is
split between its captures: from the stall's start (the last heartbeat) to the first capture,
then from each capture to the next, and from the last to the loop's next heartbeat.

What a stall costs to watch: one thread waking every ``POLL_S``, reading a timestamp. Stacks are
captured only during stalls. :meth:`StallDetector.drain` hands the stalls that ended since the
last call to the telemetry sampler, which writes them with its samples.
"""

from __future__ import annotations

import functools
import sys
import sysconfig
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

OUTSIDE_APP = "the event loop's own code, no application frame"
POLL_S = 0.005
RECAPTURE_S = 0.050
STACK_DEPTH = 8  # application frames kept per site, innermost first
# The app's code: what lies under these, less the libraries below. None until the app says where it
# is (use_app_root: the lab's target_app, or the harness with your app's directory); sites are shown
# relative to APP_ROOT.
APP_ROOT = Path.cwd().resolve()
APP_DIRS: tuple[Path, ...] = ()
# Never the app's, wherever the app lives: the interpreter's libraries, installed packages (a virtual
# environment inside the app's directory) and routebench itself (these instruments and the harness
# around your app), by its real path and the path it was injected at.
# Each by its real path and by the path it is reached at (a virtual environment that is a symlink
# shows its frames under the link).
_LIBRARY_KEYS = ("stdlib", "platstdlib", "purelib", "platlib")
LIBRARY_DIRS = tuple(
    {Path(sysconfig.get_paths()[k]).resolve() for k in _LIBRARY_KEYS}
    | {Path(sysconfig.get_paths()[k]).absolute() for k in _LIBRARY_KEYS}
    | {Path(__file__).resolve().parent.parent, Path(__file__).parent.parent.absolute()}
)


def use_app_root(root: Path, dirs: tuple[Path, ...] = ()) -> None:
    """The app's code is what lies under ``dirs`` (default: ``root``), less the interpreter's and
    installed libraries (a virtual environment inside it); sites are shown relative to ``root``."""
    global APP_ROOT, APP_DIRS
    APP_ROOT = root.resolve()
    APP_DIRS = tuple(d.resolve() for d in dirs) or (APP_ROOT,)
    app_frame.cache_clear()
    _shown.cache_clear()


@functools.lru_cache(maxsize=4096)
def app_frame(filename: str) -> bool:
    """Application code, not the instruments (telemetry, this module) and not a library."""
    path = Path(filename)
    return any(path.is_relative_to(d) for d in APP_DIRS) and not any(path.is_relative_to(d) for d in LIBRARY_DIRS)


@functools.lru_cache(maxsize=4096)
def _shown(filename: str) -> str:
    path = Path(filename)
    return str(path.relative_to(APP_ROOT)) if path.is_relative_to(APP_ROOT) else filename


def where(frame: FrameType, short: bool = False) -> str:
    """``target_app/routes/sleep.py:41 blocking_in_async``; ``short``: the last two path parts."""
    shown = _shown(frame.f_code.co_filename)
    if short:
        shown = "/".join(Path(shown).parts[-2:])
    return f"{shown}:{frame.f_lineno} {frame.f_code.co_name}"


@dataclass
class Capture:
    at: float  # monotonic
    site: str
    route: str | None
    stack: list[str]
    folded: int  # library frames inside the site, folded away


@dataclass
class Stall:
    started: float  # monotonic: the last heartbeat before it
    started_wall: float
    captures: list[Capture] = field(default_factory=list)


@dataclass
class StallDetector:
    """One per worker. ``last_beat`` returns the loop's last heartbeat (monotonic seconds);
    ``routes`` maps ``id(frame)`` of a running request's middleware frame to its path."""

    last_beat: Callable[[], float]
    routes: dict[int, str]
    threshold_s: float = 0.020
    loop_thread: int | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _done: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self.loop_thread = threading.get_ident()  # called on the loop's thread
        self._thread = threading.Thread(target=self._run, name="routebench-stalls", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1.0)

    def drain(self) -> dict[str, Any]:
        """The stalls that ended since the last call, summed per call site: ``stalls`` (count),
        ``blocked_ms`` and ``sites`` {site: {ms, n, route, stack, folded}} (the stack in every sample
        that reports the site: a slice of the samples, one cell's of a stack that served several,
        has every stack it needs)."""
        with self._lock:
            done, self._done = self._done, []
        sites: dict[str, dict[str, Any]] = {}
        for stall in done:
            for site, info in stall["sites"].items():
                s = sites.setdefault(site, {"ms": 0.0, "n": 0, "route": info["route"]})
                s["ms"] += info["ms"]
                s["n"] += 1
                s["stack"], s["folded"] = info["stack"], info["folded"]
        for s in sites.values():
            s["ms"] = round(s["ms"], 3)
        return {
            "stalls": len(done),
            "blocked_ms": round(sum(x["ms"] for x in done), 3),
            "spans": [[round(x["t"], 3), round(x["ms"], 1)] for x in done],  # each stall: start, ms
            "sites": sites,
        }

    # -- on the watchdog thread ---------------------------------------------------------------------
    def _run(self) -> None:
        stall: Stall | None = None
        while not self._stop.wait(POLL_S):
            try:
                stall = self._tick(stall)
            except Exception:  # never let one odd stack end the watch: this stall is dropped
                stall = None

    def _tick(self, stall: Stall | None) -> Stall | None:
        """One poll: close the stall if the loop turned, open one or capture again if it has not."""
        beat, now = self.last_beat(), time.monotonic()
        if stall is not None and beat > stall.started:
            self._finish(stall, beat)  # the loop turned again
            stall = None
        if now - beat <= self.threshold_s:
            return stall
        if stall is None:
            stall = Stall(beat, time.time() - (now - beat))
        if not stall.captures or now - stall.captures[-1].at >= RECAPTURE_S:
            capture = self._capture(now)
            if capture is not None:
                stall.captures.append(capture)
        return stall

    def _capture(self, now: float) -> Capture | None:
        frame = sys._current_frames().get(self.loop_thread or 0)
        if frame is None:
            return None
        frames: list[FrameType] = []
        f: FrameType | None = frame
        while f is not None:
            frames.append(f)
            f = f.f_back
        app = [i for i, fr in enumerate(frames) if app_frame(fr.f_code.co_filename)]
        route = next((r for fr in frames if (r := self.routes.get(id(fr))) is not None), None)
        # No application frame: the loop was held up in its own code (uvloop's is C: the only
        # Python frame is asyncio's runner), typically waiting for the GIL other threads hold.
        if app and app[0] > 0 and frames[app[0]].f_code.co_name == "__call__":
            app = []  # an ASGI middleware's pass-through over framework code: not the app's own line
        site = where(frames[app[0]]) if app else f"{OUTSIDE_APP} ({where(frames[0], short=True)})"
        top = app[0] if app else 0
        return Capture(
            at=now,
            site=site,
            route=route,
            stack=[where(frames[i]) for i in app[:STACK_DEPTH]] or [where(frames[0])],
            folded=top,
        )

    def _finish(self, stall: Stall, ended: float) -> None:
        sites: dict[str, dict[str, Any]] = {}
        marks = [stall.started] + [c.at for c in stall.captures[1:]] + [ended]
        for capture, begin, end in zip(stall.captures, marks, marks[1:]):
            s = sites.setdefault(
                capture.site,
                {"ms": 0.0, "route": capture.route, "stack": capture.stack, "folded": capture.folded},
            )
            s["ms"] += max(0.0, end - begin) * 1000
        record = {"t": stall.started_wall, "ms": (ended - stall.started) * 1000, "sites": sites}
        with self._lock:
            self._done.append(record)


def covered_s(samples: list[dict[str, Any]], since: float, until: float) -> float:
    """The time the workers' samples cover in [since, until], summed over workers: each from its
    first sample (less one interval: a sample speaks for the time before it) to its last."""
    by_pid: dict[Any, list[float]] = {}
    for s in samples:
        by_pid.setdefault(s.get("pid"), []).append(float(s["t"]))
    total = 0.0
    for times in by_pid.values():
        times.sort()
        step = (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else 0.1
        total += max(0.0, min(times[-1], until) - max(times[0] - step, since))
    return total


def clipped_ms(samples: list[dict[str, Any]], since: float, until: float) -> float:
    """The stalls' time inside [since, until], each stall's span clipped to it."""
    return sum(
        max(0.0, min(t + ms / 1000, until) - max(t, since)) * 1000 for s in samples for t, ms in s.get("spans") or []
    )
