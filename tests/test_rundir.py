"""The run directory has one owner: analysis/rundir.py spells its file names; nothing else does."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from analysis import rundir
from analysis.load import BadInput, load_run
from tests.conftest import FIXTURE_RUN

ROOT = Path(__file__).resolve().parent.parent
NAMES = re.compile(
    r"""["'](run\.json|cell\.json|exact\.json|generator\.json|server\.log|experiment\.toml|summary\.(csv|md)|hdr|"""
    r"""telemetry|locust_(stats|stats_history|failures|exceptions)\.csv)["']"""
)


def test_no_module_but_the_owner_spells_a_run_file_name() -> None:
    offenders = []
    for package in ("routebench", "analysis", "locustfiles"):
        for path in (ROOT / package).rglob("*.py"):
            if path.name == "rundir.py":
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if NAMES.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_run_json_carries_the_schema_version(tmp_path: Path) -> None:
    run = rundir.RunDir(tmp_path)
    run.write_state({"run_id": "x", "cells": []})
    assert json.loads(run.run_json.read_text())["schema_version"] == rundir.SCHEMA_VERSION
    assert not list(tmp_path.glob("*.tmp"))  # written whole, then renamed


def test_a_run_from_a_newer_routebench_is_one_clear_line(run_copy: Path) -> None:
    meta = json.loads((run_copy / "run.json").read_text())
    meta["schema_version"] = rundir.SCHEMA_VERSION + 1
    (run_copy / "run.json").write_text(json.dumps(meta))
    with pytest.raises(BadInput, match="newer routebench"):
        load_run(run_copy)


def test_the_committed_run_reads_through_the_owner() -> None:
    run = load_run(FIXTURE_RUN)
    first = rundir.RunDir(FIXTURE_RUN).cell(run.cells[0]["dir"])
    for path in (first.exact, first.stats, first.history, first.failures, first.exceptions, first.hdr_dir):
        assert path.exists(), path


def test_an_abandoned_attempt_is_set_aside_and_the_servers_telemetry_stays(tmp_path: Path) -> None:
    cell = tmp_path / "001-cell"
    (cell / "telemetry").mkdir(parents=True)
    (cell / "telemetry" / "worker-1.jsonl").write_text("{}\n")
    files = rundir.CellDir(cell)
    files.exact.write_text("{}")
    files.log("locust-master").write_text("first attempt")
    rundir.set_aside(cell, 1)
    files.log("locust-master").write_text("second attempt")
    rundir.set_aside(cell, 2)
    assert sorted(p.name for p in cell.iterdir()) == ["attempt-1", "attempt-2", "telemetry"]
    assert (cell / "attempt-1" / "exact.json").is_file()
    assert (cell / "attempt-2" / "locust-master.log").read_text() == "second attempt"
