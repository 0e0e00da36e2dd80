"""Every process a cell starts, watched by its handle: a death is noticed within a tick and
recorded once, with when (seconds into the cell, and the cell's phase), how (exit code or signal)
and, for a load generator, the samples it had delivered.

Locust's own heartbeat notices a lost worker only after about 3 s and never one that dies before
it connects; Gunicorn replaces a dead worker and says so only in its log. The runner does not wait
for either: it polls the processes it started (and the Gunicorn master's children) every tick.

Phases, from the Locust master's ``window.json`` (written when the test starts, again when it
stops) and the cell's longest run time: ``starting`` (before the test started: connecting,
spawning), ``warm-up``, ``window`` (measured), ``final report`` (after the stop, while the final
reports come in); in a web-UI session, where tests come and go, ``session``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from analysis.rundir import CellDir, write_json
from analysis.validity import describe_loss
from routebench.launcher import Managed, how_exited

PHASES = ("starting", "warm-up", "window", "finishing", "final report")
BEFORE_WINDOW = ("starting", "warm-up")
TICK_S = 0.5  # a death is recorded at most this long after it happened (plus one poll)


def _gunicorns_time(stamp: str) -> float | None:
    """Gunicorn's log time, ``2026-11-25 17:58:53 +0000``, as epoch seconds."""
    try:
        return datetime.strptime(stamp.strip(), "%Y-%m-%d %H:%M:%S %z").timestamp()
    except ValueError:
        return None


def _gunicorns_words(how: str) -> str:
    """Gunicorn's ``was sent SIGKILL`` / ``exited with code 1`` in :func:`how_exited`'s words."""
    if how.startswith("was sent "):
        return "killed by " + how.removeprefix("was sent ")
    return how.replace("exited with code", "exit code")


class GeneratorLost(Exception):
    """A load-generator process died before the window opened: the cell's load is started again."""

    def __init__(self, loss: dict[str, Any]) -> None:
        super().__init__(describe_loss(loss))
        self.loss = loss


@dataclass
class Watch:
    """The processes of one cell: the target stack's, the Gunicorn master's workers, Locust's."""

    cell_dir: Path
    run_time_s: float | None  # warm-up + longest window from the test's start; None: a web-UI session
    started: float = field(default_factory=time.time)
    losses: list[dict[str, Any]] = field(default_factory=list)
    _recorded: set[int] = field(default_factory=set)
    _server_workers: dict[int, psutil.Process] = field(default_factory=dict)
    _window: dict[str, Any] | None = None

    def phase(self, at: float) -> str:
        if self.run_time_s is None:
            return "session"
        w = self.window()
        if w is None or at < float(w["started_at"]):
            return "starting"
        if at < float(w["measure_from"]):
            return "warm-up"
        if "stopped_at" not in w:
            self._window = None  # read again: the master adds when the test stopped
            w = self.window() or w
        end = float(w["stopped_at"]) if "stopped_at" in w else float(w["started_at"]) + self.run_time_s
        if w.get("measure_until") and float(w["measure_until"]) <= at < end:
            return "finishing"  # the window is over, its last requests not yet (closed model)
        return "window" if at < end else "final report"

    def new_attempt(self) -> None:
        """The cell's load starts again: the next test's window is not the last one's, and the
        abandoned attempt's processes are gone (their pids may come back for new ones)."""
        self._window = None
        self._recorded -= {x["pid"] for x in self.losses if x["kind"] in ("locust worker", "locust master")}

    def window(self) -> dict[str, Any] | None:
        """The test's start and measure_from, once the Locust master wrote them."""
        if self._window is None:
            try:
                self._window = json.loads(CellDir(self.cell_dir).window.read_text())
            except (OSError, ValueError):
                return None
        return self._window

    def record(self, process: str, kind: str, pid: int, how: str, at: float | None = None) -> dict[str, Any]:
        at = time.time() if at is None else at
        loss = {
            "process": process,
            "kind": kind,
            "pid": pid,
            "how": how,
            "at": round(at, 3),
            "at_s": round(at - self.started, 2),
            "phase": self.phase(at),
        }
        self._recorded.add(pid)
        self.losses.append(loss)
        return loss

    def dead(self, managed: list[Managed], kind: str) -> list[dict[str, Any]]:
        """Processes of ``managed`` that died since the last poll, recorded. A clean exit after the
        test stopped is how a Locust worker ends (its master told it to quit; exit code 1 when it
        logged an exception), not a loss: after the stop only a signal counts."""
        out = []
        for m in managed:
            if m.proc.pid in self._recorded or m.alive():
                continue
            if m.proc.returncode is not None and m.proc.returncode >= 0 and self.phase(time.time()) == "final report":
                self._recorded.add(m.proc.pid)
                continue
            out.append(self.record(m.name, kind, m.proc.pid, how_exited(m.proc.returncode)))
        return out

    def server_workers(self, target: Managed | None) -> list[dict[str, Any]]:
        """Gunicorn workers (children of the target process) that vanished since the last poll."""
        if target is None or not target.alive():
            return []
        try:
            current = {p.pid: p for p in psutil.Process(target.proc.pid).children()}
        except psutil.Error:
            return []
        gone = [pid for pid in self._server_workers if pid not in current and pid not in self._recorded]
        self._server_workers.update(current)
        return [self.record("server worker", "server worker", pid, "gone") for pid in gone]

    def tell_master(self) -> None:
        """The Locust master stops waiting for final reports from processes known to be dead."""
        pids = [loss["pid"] for loss in self.losses if loss["kind"] == "locust worker"]
        write_json(CellDir(self.cell_dir).dead_workers, pids)

    def account(self, exact: dict[str, Any], server_deaths: list[dict[str, Any]]) -> None:
        """Once the test is saved: each lost generator's delivered samples (from the master's
        merge, by the pid the worker announced), and how each server worker died (Gunicorn's log)."""
        by_pid = {int(pid): cid for cid, pid in (exact.get("worker_pids") or {}).items()}
        samples = exact.get("samples_by_worker") or {}
        how = {int(d["pid"]): _gunicorns_words(str(d["how"])) for d in server_deaths}
        for loss in self.losses:
            if loss["kind"] == "locust worker" and loss["pid"] in by_pid:
                loss["client_id"] = by_pid[loss["pid"]]
                loss["samples_delivered"] = int(samples.get(by_pid[loss["pid"]], 0))
            if loss["kind"] == "server worker" and loss["pid"] in how:
                loss["how"] = how[loss["pid"]]
        # A worker lost after its final report arrived took nothing with it.
        received = set((exact.get("final_reports") or {}).get("received") or [])
        self.losses[:] = [
            x for x in self.losses if not (x["phase"] == "final report" and x.get("client_id") in received)
        ]
        # A server worker born and killed between two polls: only Gunicorn's log saw it (to the second).
        seen = {x["pid"] for x in self.losses}
        for d in server_deaths:
            if int(d["pid"]) not in seen and (at := _gunicorns_time(str(d.get("at", "")))) is not None:
                if at >= self.started:
                    loss = self.record("server worker", "server worker", int(d["pid"]), how[int(d["pid"])], at)
                    loss["at_from"] = "Gunicorn's log, to the second"

    def measured_losses(self) -> list[dict[str, Any]]:
        """Losses after the window opened: the cell keeps its numbers, degraded."""
        return [loss for loss in self.losses if loss["phase"] not in BEFORE_WINDOW]


def heartbeat_losses(exact: dict[str, Any], watched: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Workers only the master's heartbeat saw go (on another machine: no process handle here),
    after the test started; in words."""
    known = {x.get("client_id") for x in watched}
    started = float((exact.get("test") or {}).get("started_at") or exact.get("measure_from") or 0)
    return [
        {
            "words": f"Locust worker {w['id']} missing from the master's heartbeat at "
            f"+{float(w['lost_at']) - started:.1f} s of the test, "
            f"{int(w.get('samples_received', 0)):,} samples received"
        }
        for w in exact.get("lost_workers") or []
        if w.get("id") not in known and float(w.get("lost_at", 0)) >= started
    ]
