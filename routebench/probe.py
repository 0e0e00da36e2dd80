"""One capacity probe: the open-model cell that tries a style at one rate, and its verdict.

Pure: the capacity run (routebench.capacity_run) measures the probe as a cell of the run; the rules
a measured probe must pass are analysis.capacity.judge's. Here, what the probe's cell is (users
enough for the rate, a tail of load after the window) and what a probe that measured nothing means.
"""

from __future__ import annotations

import math
from typing import Any

from analysis import capacity
from analysis.rundir import MEASURED, CellRecord
from routebench.experiment import CapacitySearch, Cell
from routebench.measure import NOTHING_COMPLETED
from target_app import catalogue

# Users enough for the rate at the SLO's latency, this many times over (an open model short of
# users starts late: the schedule rule then fails the probe, not the server).
USERS_HEADROOM = 2.0
MIN_USER_LATENCY_MS = 100.0
MAX_USERS = 10_000


def tail_s(slos: list[dict[str, Any]]) -> float:
    """A probe's tail: the SLOs' longest latency limit (analysis.capacity.tail_ms)."""
    return capacity.tail_ms(slos) / 1000


def probe_cell(
    base: Cell, rate: float, phase: str, index: int, cfg: CapacitySearch, slos: list[dict[str, Any]], processes: int
) -> Cell:
    """The ``index``-th cell of the run: a probe of ``base``'s style at ``rate``, an open-model cell
    with users enough for the rate at the SLO's latency (twice that, and two per generator process
    of the ``processes`` at least)."""
    limit_ms = capacity.latency_limit_ms(slos)
    users = min(MAX_USERS, math.ceil(rate * max(limit_ms, MIN_USER_LATENCY_MS) / 1000 * USERS_HEADROOM) + 2 * processes)
    window = cfg.confirm_s if phase == "confirm" else cfg.probe_s
    return base.model_copy(
        update={
            "index": index,
            "id": catalogue.slug(
                f"{index:03d}-{base.styles[0]}-w{base.server_workers}-r{base.repeat}-{phase}-{rate:g}rps"
            ),
            "model": "open",
            "arrival_rate": rate,
            "users": users,
            "duration_s": window,
            "precision": 0.0,
            "max_duration_s": None,
            # The load goes on for the SLO's latency after the window: each of its requests then
            # finished, or is known to have broken the limit.
            "tail_s": tail_s(slos),
        }
    )


def judge_probe(
    probe: Cell, record: CellRecord, exact: dict[str, Any] | None, slos: list[dict[str, Any]]
) -> dict[str, Any]:
    """A probe's verdict (analysis.capacity.judge; ``exact``: its exact.json, None when it measured
    nothing). A probe that measured nothing is the server's failure when no request finished
    (overload), else the harness's (run once more); a degraded one (a generator process lost) is the
    harness's too, unless a server rule broke."""
    if record.status not in MEASURED or exact is None:
        reason = record.reason or ""
        overloaded = reason == NOTHING_COMPLETED
        return {
            "passed": False,
            "failed": ["data" if overloaded else "cell"],
            "why": [f"the probe {record.status}: {reason}".strip()],
            "retry": "" if overloaded else "the probe could not be measured",
            "offered_rps": probe.arrival_rate,
        }
    verdict = capacity.judge({**probe.model_dump(), **record.to_json()}, exact, probe.styles[0], slos)
    if record.status == "degraded":
        verdict.update(passed=False, failed=[*verdict["failed"], "degraded"])
        verdict["why"] = [*verdict["why"], *((record.outcome and record.outcome.degraded_because) or [])]
        if not set(verdict["failed"]) & capacity.SERVER_RULES:
            verdict["retry"] = f"only the measurement's own rules failed ({', '.join(verdict['failed'])})"
    return verdict
