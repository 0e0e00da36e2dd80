"""A complete run directory shaped like ``experiments/full.toml``, written without generating any load.

:func:`build_run` expands the experiment exactly as the runner does (``routebench.experiment.expand``):
every style at 10, 50 and 100 users with 3 repeats, the neighbour group at 20 and 100 users, the
open-model group, plus, by default, the sleep family again on W=4 workers (a second server shape for
one family). Each cell gets what ``analysis.load.load_run`` reads, at the paths ``RunDir`` / ``CellDir``
give and the telemetry file the server's own sampler names: ``cell.json``, ``exact.json`` (with a
per-second timeline), Locust's four CSVs, ``generator.json`` and the server telemetry.

The numbers come from a toy of the brief's table (each style's concurrency limit and hold time,
a CPU cap), with a little noise per repeat: plausible, different per style, shape and repeat, and
independent of the model the analysis itself evaluates.
"""

from __future__ import annotations

import csv
import math
import random
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analysis.rundir import CellDir, RunDir, RunState, write_json
from routebench.experiment import Cell, Experiment, expand, resolve_path, to_toml
from routebench.serverside import telemetry
from target_app import catalogue

# A second server shape for one family, as a full run swept over W would have.
SECOND_SHAPE: list[dict[str, Any]] = [{"styles": ["sleep"], "server_workers": [4]}]
START = 1_800_000_000.0
CORES = 2
CPU_CAP_RPS = 2_000.0  # what the toy server completes at most, whatever the style
CPU_S = 0.004  # c: CPU seconds per request of the cpu family
GAP_S = 5.0  # between cells
STATS_HEADER = [
    "Type",
    "Name",
    "Request Count",
    "Failure Count",
    "Median Response Time",
    "Average Response Time",
    "Min Response Time",
    "Max Response Time",
    "Average Content Size",
    "Requests/s",
    "Failures/s",
    "50%",
    "66%",
    "75%",
    "80%",
    "90%",
    "95%",
    "98%",
    "99%",
    "99.9%",
    "99.99%",
    "100%",
]
HISTORY_HEADER = [
    "Timestamp",
    "User Count",
    "Type",
    "Name",
    "Requests/s",
    "Failures/s",
    *STATS_HEADER[11:],
    "Total Request Count",
    "Total Failure Count",
    "Total Median Response Time",
    "Total Average Response Time",
    "Total Min Response Time",
    "Total Max Response Time",
    "Total Average Content Size",
]


def full_experiment(extra_groups: list[dict[str, Any]] | None = None) -> Experiment:
    """``experiments/full.toml`` as shipped, plus ``extra_groups`` (default: sleep on W=4)."""
    data = tomllib.loads(resolve_path("full").read_text(encoding="utf-8"))
    data["groups"] = [*data["groups"], *(SECOND_SHAPE if extra_groups is None else extra_groups)]
    return Experiment.model_validate(data)


@dataclass(frozen=True)
class Measured:
    rps: float
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    p999_ms: float
    min_ms: float


def _limit_and_hold(style: str, cell: Cell) -> tuple[float, float]:
    """(requests that can be served at once, seconds each holds its place) in the brief's table."""
    key = catalogue.BY_ID[style].prediction
    d, w, t, p, k = cell.wait_ms / 1000, cell.server_workers, cell.threadpool_tokens, cell.db_pool_size, cell.fanout
    if key in ("cpu", "process-pool"):
        return min(w, CORES), CPU_S
    if key == "fanout-sequential":
        return math.inf, k * d
    limits = {
        "blocking": w,
        "db-blocking": w,
        "threadpool": w * t,
        "db-async-pool": w * p,
        "db-threadpool": w * min(t, p),
    }
    return limits.get(key, math.inf), d


def measure(style: str, cell: Cell, users: float, noise: random.Random) -> Measured:
    """What the toy server does for ``style`` with ``users`` on it in ``cell`` (closed or open)."""
    limit, hold = _limit_and_hold(style, cell)
    share = 1.0
    if any(catalogue.PREDICTIONS[catalogue.BY_ID[s].prediction].blocks_loop for s in cell.styles):
        # A blocked loop serves one request per worker at a time, whatever the style waiting on it:
        # every style of the cell queues behind all the cell's users, and they share the throughput.
        limit, hold, users, share = cell.server_workers, cell.wait_ms / 1000, cell.users, 1 / len(cell.styles)
    capacity = min(CPU_CAP_RPS, limit / hold)
    if cell.model == "open":
        rps = min(cell.arrival_rate, capacity * share)
        mean = hold * (1.05 if cell.arrival_rate < 0.8 * capacity * share else 12.0)
    else:
        total = min(users / hold, capacity)
        rps, mean = total * share, max(hold, users / total)
    rps *= 1 + noise.gauss(0, 0.02)
    mean *= 1 + abs(noise.gauss(0, 0.02))
    tail = 2.5 if mean > 1.5 * hold else 1.3
    return Measured(
        rps=rps,
        mean_ms=mean * 1000,
        p50_ms=mean * 980,
        p95_ms=mean * 1000 * (1 + (tail - 1) / 2),
        p99_ms=mean * 1000 * tail,
        p999_ms=mean * 1000 * tail * 1.1,
        min_ms=hold * 900,
    )


def _stats_row(name: str, count: int, m: Measured, window: float, kind: str = "GET") -> list[Any]:
    return [kind, name, count, 0, round(m.p50_ms), m.mean_ms, m.min_ms, m.p999_ms, 28.0, count / window, 0.0]


def _locust_percentiles(m: Measured) -> list[int]:
    return [round(v) for v in (m.p50_ms, m.p50_ms, m.p50_ms, m.p50_ms, m.p95_ms, m.p95_ms, m.p99_ms)] + [
        round(m.p99_ms),
        round(m.p999_ms),
        round(m.p999_ms),
        round(m.p999_ms),
    ]


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def write_cell(files: CellDir, cell: Cell, started: float) -> dict[str, Any]:
    """Every file of one finished cell; returns its record for run.json."""
    noise = random.Random(cell.index)
    measure_from = started + cell.warmup_s
    stopped = measure_from + cell.duration_s
    shares = {s: cell.users / len(cell.styles) for s in cell.styles}
    measured = {s: measure(s, cell, shares[s], noise) for s in cell.styles}
    counts = {s: max(1, round(m.rps * cell.duration_s)) for s, m in measured.items()}
    seconds = range(math.ceil(measure_from), math.floor(stopped))
    total = sum(counts.values())
    files.path.mkdir(parents=True)
    write_json(
        files.exact,
        {
            "measure_from": measure_from,
            "stopped_at": stopped,
            "saved_at": stopped + 1,
            "model": cell.model,
            "late_ms": 10.0,
            "test": {
                "number": 1,
                "started_at": started,
                "measure_from": measure_from,
                "stopped_at": stopped,
                "saved": True,
                "users_by_style": shares,
            },
            "workers": [],
            "lost_workers": [],
            "master_pid": 1,
            "samples_by_worker": {"synthetic-1": total // 2, "synthetic-2": total - total // 2},
            "requests": {
                s: {
                    "count": counts[s],
                    "min_us": round(m.min_ms * 1000),
                    "max_us": round(m.p999_ms * 1050),
                    "mean_us": round(m.mean_ms * 1000, 1),
                    "percentiles_us": {
                        "50": round(m.p50_ms * 1000),
                        "90": round(m.p95_ms * 950),
                        "95": round(m.p95_ms * 1000),
                        "99": round(m.p99_ms * 1000),
                        "99.9": round(m.p999_ms * 1000),
                    },
                    "late_starts": 0,
                }
                for s, m in measured.items()
            },
            "timeline": {
                s: [
                    [sec, round(m.rps), round(m.p50_ms * 1000), round(m.p95_ms * 1000), round(m.p99_ms * 1000)]
                    for sec in seconds
                ]
                for s, m in measured.items()
            },
        },
    )
    window = cell.duration_s
    aggregated = Measured(*(max(getattr(m, f) for m in measured.values()) for f in Measured.__dataclass_fields__))
    _write_csv(
        files.stats,
        STATS_HEADER,
        [
            *(_stats_row(s, counts[s], m, window) + _locust_percentiles(m) for s, m in measured.items()),
            _stats_row("Aggregated", total, aggregated, window, kind="") + _locust_percentiles(aggregated),
        ],
    )
    history = []
    for sec in seconds:
        for s, m in [*measured.items(), ("Aggregated", aggregated)]:
            count = counts.get(s, total)
            history.append(
                [sec, cell.users, "" if s == "Aggregated" else "GET", s, count / window, 0.0, *_locust_percentiles(m)]
                + [count, 0, round(m.p50_ms), m.mean_ms, m.min_ms, m.p999_ms, 28.0]
            )
    _write_csv(files.history, HISTORY_HEADER, history)
    _write_csv(files.failures, ["Method", "Name", "Error", "Occurrences", "First Seen", "Last Seen"], [])
    _write_csv(files.exceptions, ["Count", "Message", "Traceback", "Nodes"], [])
    write_telemetry(files, cell, measure_from, stopped)
    write_json(files.generator, {"threshold_percent": 90.0, "saturated": False, "processes": [], "cpu_cores": 0.3})
    record = {
        **cell.model_dump(),
        "status": "ok",
        "started_at": started,
        "dir": cell.id,
        "locust_exit_code": 0,
        "generator_saturated": False,
        "generator_cpu_cores": 0.3,
        "users_by_style": shares,
        "lost_workers": [],
        "server_worker_deaths": [],
        "ended_at": stopped + 2,
        "wall_s": round(stopped + 2 - started, 1),
    }
    write_json(files.cell_json, record)
    return record


def write_telemetry(files: CellDir, cell: Cell, start: float, stop: float) -> None:
    """Two samples a second per server worker, through the server's own sampler (which names the file)."""
    files.telemetry.mkdir(parents=True, exist_ok=True)
    blocked = any(catalogue.PREDICTIONS[catalogue.BY_ID[s].prediction].blocks_loop for s in cell.styles)
    pooled = [s for s in cell.styles if catalogue.BY_ID[s].prediction in ("threadpool", "db-threadpool")]
    sampler = telemetry.Sampler(0.5, telemetry.Gauge(), dict, files.telemetry)
    for worker in range(cell.server_workers):
        t = start
        while t <= stop:
            sampler.record(
                {
                    "t": t,
                    "pid": 10_000 + worker,
                    "lag_ms": float(cell.wait_ms) if blocked else 1.0,
                    "threads_busy": min(cell.users, cell.threadpool_tokens) if pooled else 0,
                    "threads_total": cell.threadpool_tokens,
                    "inflight": cell.users // cell.server_workers,
                    "cpu_s": t - start,
                    "served": {},
                }
            )
            t += 0.5
    sampler.flush()


def build_run(root: Path, experiment: Experiment | None = None, run_id: str = "synthetic-full") -> Path:
    """``root/run_id``: a finished run of ``experiment`` (default :func:`full_experiment`)."""
    exp = experiment or full_experiment()
    cells = expand(exp)
    files = RunDir(root / run_id)
    files.path.mkdir(parents=True)
    text = to_toml(exp)
    files.experiment_toml.write_text(text, encoding="utf-8")
    started, records = START, []
    for cell in cells:
        records.append(write_cell(files.cell(cell.id), cell, started))
        started += cell.warmup_s + cell.duration_s + GAP_S
    works = sorted({c.work for c in cells})
    files.write_state(
        RunState.from_json(
            {
                "run_id": run_id,
                "status": "complete",
                "started_at": START,
                "ended_at": started,
                "wall_s": round(started - START, 1),
                "experiment": exp.model_dump(exclude_none=True),
                "settings": {"host": "127.0.0.1", "threadpool_tokens": 40, "db_pool_size": 10},
                "database": "embedded",
                "reproduce": {"command": f"make loadtest PROFILE={files.experiment_toml}", "toml": text},
                "versions": {"python": "synthetic"},
                "machine": {"cpu_model": "synthetic", "cpu_count": CORES, "platform": "synthetic"},
                "git": {"commit": None, "dirty": False},
                "calibration": {"cpu_s_per_request": {str(w): CPU_S for w in works}},
                "cells": records,
            }
        )
    )
    return files.path
