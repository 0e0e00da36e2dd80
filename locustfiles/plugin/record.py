"""The master's record of one test, and whose final reports it still waits for.

A test is a headless cell, a driven cell (one ``POST /swarm`` of ``routebench run``), or one
Start..Stop of a web-UI session. Its record goes into ``exact.json`` whole (``test``).

Each worker sends a final report once its users have stopped; the master saves the test once all
are in, never waiting for a process the runner saw die: the runner writes their pids in
``dead_workers.json`` beside the test's files, and each worker told the master its pid
(``rb_hello``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analysis.rundir import CellDir

HELLO_MESSAGE = "rb_hello"  # a worker to the master: its pid


@dataclass
class Test:
    """One test the master ran: a headless cell, or one Start..Stop of a web-UI session."""

    number: int
    started_at: float
    measure_from: float
    options: dict[str, Any]
    stopped_at: float | None = None
    saved: bool = False
    warnings: list[str] = field(default_factory=list)  # what makes this test's numbers less clean
    workers_at_stop: list[str] = field(default_factory=list)  # whose final report the master expects
    final_reports: list[str] = field(default_factory=list)  # whose final report arrived

    dead: list[str] = field(default_factory=list)  # workers whose process the runner saw die
    out: str = ""  # where this test's files go (--rb-out when it started)
    reported_at: dict[str, float] = field(default_factory=dict)  # when each worker took its last report
    workers_at_start: list[str] = field(default_factory=list)  # those told of the test (rb_window)
    stopped_by: str = ""  # "run time", "precision reached", "maximum window", or empty (stopped by hand)
    measure_until: float | None = None  # with a tail (--rb-tail) or let finish: the window ends here, the test later
    finished: list[str] = field(default_factory=list)  # closed model: the workers whose window's requests are done
    # Closed model, let finish: how long it might have taken (cap_s), how long it did (s), whether
    # every process's requests of the window finished (complete).
    finish: dict[str, Any] = field(default_factory=dict)
    # A precision-driven test's last check: the seconds it covered (up to ``until``) and the p99
    # intervals it saw. The final intervals, over the whole window, can be wider.
    last_check: dict[str, Any] = field(default_factory=dict)

    def finals_in(self, worker_pids: Mapping[str, int]) -> bool:
        """Every final report that can still come is in: a dead process sends none."""
        if self.workers_at_stop and not set(self.workers_at_stop) <= set(self.final_reports):
            self.dead = known_dead(self.out, worker_pids)
        return set(self.workers_at_stop) <= set(self.final_reports) | set(self.dead)

    def missing_finals(self) -> list[str]:
        return [w for w in self.workers_at_stop if w not in self.final_reports]


def known_dead(out: str, worker_pids: Mapping[str, int]) -> list[str]:
    """The workers whose process the runner saw die: pids in ``out``'s ``dead_workers.json``, by the
    worker ids that said them."""
    path = CellDir(Path(out)).dead_workers if out else None
    if path is None or not path.is_file():
        return []
    try:
        pids = {int(p) for p in json.loads(path.read_text())}
    except (OSError, ValueError, TypeError):
        return []
    return sorted(cid for cid, pid in worker_pids.items() if pid in pids)
