"""A web-UI session (``routebench ui``) as a run: each Start..Stop in the UI is one cell.

The Locust master saves every test of the session in ``ui-NNN/`` (exact histograms, per-second
timeline, Locust's CSVs, and what the test ran: users per class, work sizes, model). Here, once the
session ends, each becomes a cell record like a headless run's, the server telemetry of the session
is split by test, and the session is written as an equivalent experiment file, so its report is as
complete as a headless run's and "Reproduce" runs it headless.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from analysis.rundir import CellDir, RunDir
from routebench import experiment
from routebench.serverside.telemetry import copy_window
from target_app import catalogue
from target_app.settings import Settings


def _styles_in_order(names: set[str]) -> list[str]:
    """The catalogue's order, then your app's routes by name."""
    return sorted(names, key=lambda s: (catalogue.rank(s), s))


def _cell(index: int, test: CellDir, settings: Settings, locust_workers: int) -> dict[str, Any]:
    test_dir = test.path
    exact = json.loads(test.exact.read_text())
    record = exact["test"]
    opts = record["options"]
    by_style = record.get("users_by_style") or {}
    styles = _styles_in_order(set(by_style) | set(exact.get("requests", {})))
    ended = record.get("stopped_at") or exact.get("saved_at")
    cell = experiment.Cell(
        index=index,
        id=test_dir.name,
        group="web-ui",
        styles=styles or ["sleep/async-await"],
        users=sum(by_style.values()),
        server_workers=settings.workers,
        repeat=1,
        duration_s=round(max(0.0, ended - record["measure_from"]), 1),
        warmup_s=opts.get("warmup_s", 0.0),
        model=opts.get("model", "closed"),
        arrival_rate=opts.get("arrival_rate") or experiment.DEFAULTS.arrival_rate,
        wait_ms=opts.get("ms", settings.default_wait_ms),
        work=opts.get("work", settings.default_work),
        fanout=opts.get("k", settings.default_fanout),
        worker_class=settings.worker_class,
        threadpool_tokens=settings.threadpool_tokens,
        db_pool_size=settings.db_pool_size,
        locust_workers=locust_workers,
    )
    recorded = sum(r["count"] for r in exact.get("requests", {}).values())
    status = {"status": "ok"} if recorded and styles else {"status": "failed", "reason": "no requests were recorded"}
    return {
        **cell.model_dump(),
        "dir": test_dir.name,
        "users_by_style": by_style,
        "started_at": record["started_at"],
        "ended_at": ended,
        "lost_workers": exact.get("lost_workers", []),
        "warnings": record.get("warnings", []),
        **status,
    }


def _split_telemetry(run_dir: Path, cells: list[dict[str, Any]]) -> None:
    """Each test gets the server samples taken between its start and stop."""
    files = RunDir(run_dir)
    for cell in cells:
        copy_window(files.telemetry, files.cell(cell["dir"]).telemetry, cell["started_at"], cell["ended_at"])


def _as_experiment(cells: list[dict[str, Any]], settings: Settings) -> experiment.Experiment:
    groups = [
        experiment.Group(
            name=cell["id"],
            styles=cell["styles"],
            together=len(cell["styles"]) > 1,
            users=[max(1, cell["users"])],
            duration_s=max(1.0, cell["duration_s"]),
            warmup_s=cell["warmup_s"],
            model=cell["model"],
            arrival_rate=cell["arrival_rate"],
            wait_ms=cell["wait_ms"],
            work=cell["work"],
            fanout=cell["fanout"],
        )
        for cell in cells
        if cell["status"] == "ok"
    ]
    return experiment.Experiment(
        name="web-ui",
        description="the tests of a Locust web-UI session, as a headless experiment",
        groups=groups or [experiment.Group(styles=[catalogue.STYLES[0].id])],
        server_workers=[settings.workers],
        worker_class=settings.worker_class,
        threadpool_tokens=settings.threadpool_tokens,
        db_pool_size=settings.db_pool_size,
    )


def cells(run_dir: Path, settings: Settings, locust_workers: int) -> dict[str, Any]:
    """The run.json entries of a finished session: its cells, the experiment and how to reproduce it."""
    found = [_cell(i, test, settings, locust_workers) for i, test in enumerate(RunDir(run_dir).ui_tests(), 1)]
    _split_telemetry(run_dir, found)
    exp = _as_experiment(found, settings)
    return {
        "cells": found,
        "experiment": exp.model_dump(exclude_none=True),
        "reproduce": experiment.reproduce(str(RunDir(run_dir).experiment_toml), exp, run_dir),
    }
