"""The run directory has one owner: analysis/rundir.py spells its file names; nothing else does.
Its typed records write run.json and cell.json as the runner's dicts did, and read any run back."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from analysis import rundir
from analysis.load import BadInput, load_run
from routebench.serverside.telemetry import worker_file
from tests.conftest import FIXTURE_RUN

ROOT = Path(__file__).resolve().parent.parent
NAMES = re.compile(
    r"""["'](run\.json|cell\.json|exact\.json|generator\.json|server\.log|experiment\.toml|summary\.(csv|md)|hdr|"""
    r"""telemetry|locust_(stats|stats_history|failures|exceptions)\.csv|"""
    r"""(capacity|routes|findings|stalls|window|dead_workers)\.json)["']"""
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
    run.write_state(rundir.RunState(rundir.RunHeader(run_id="x", experiment={"name": "x"})))
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


def test_the_committed_run_json_reads_into_records_and_back_unchanged(tmp_path: Path) -> None:
    on_disk = json.loads((FIXTURE_RUN / "run.json").read_text())
    state = rundir.RunState.from_json(on_disk)
    assert state.header.run_id == "fixture-run" and state.status == "complete"
    assert state.header.machine == {**on_disk["machine"]} and state.wall_s == on_disk["wall_s"]
    first = state.cells[0]
    assert (first.id, first.status, first.dir) == (on_disk["cells"][0]["id"], "ok", on_disk["cells"][0]["dir"])
    # A key this routebench no longer writes rides along with the cell's settings.
    assert first.cell["locust_exit_code"] == 0 and first.outcome is not None
    assert first.outcome.users_by_style == {"sleep/async-await": 4} and first.outcome.window_s is None
    rundir.RunDir(tmp_path).write_state(state)
    assert json.loads((tmp_path / "run.json").read_text()) == {**on_disk, "schema_version": rundir.SCHEMA_VERSION}


def test_each_committed_cell_json_reads_into_a_record_and_back_unchanged() -> None:
    for path in sorted(FIXTURE_RUN.glob("*/cell.json")):
        data = json.loads(path.read_text())
        assert rundir.CellRecord.from_json(data).to_json() == data, path.parent.name


CELL = {"index": 1, "id": "001-sleep_async-await-u4-w2-r1", "styles": ["sleep/async-await"], "warmup_s": 1.0}
CELL.update({"threadpool_tokens": 40, "db_pool_size": 10, "worker_class": "uvicorn-worker", "tail_s": 0.0})


def old_runner_state() -> dict[str, Any]:
    """run.json as the runner built it before the records, dict operation by dict operation: one
    cell measured, one skipped, one that failed, one interrupted, one never run."""
    cells = [{**CELL, "index": i, "id": f"00{i}-c"} for i in range(1, 6)]
    state: dict[str, Any] = {
        "run_id": "r",
        "status": "running",
        "started_at": 1.0,
        "experiment": {"name": "x"},
        "settings": {"workers": 2},
        "database": "embedded",
        "cells": [{**c, "status": "pending"} for c in cells],
    }
    state["reproduce"] = {"command": "make loadtest PROFILE=x", "toml": ""}
    state.update({"versions": {"python": "3.11"}, "machine": {"cpu_count": 2}, "git": {"commit": None}})
    state["calibration"] = {"method": "m", "probes": []}
    ok, skipped, failed, interrupted = state["cells"][:4]
    ok.update(status="running", started_at=2.0, dir="001-c")
    outcome = {
        "status": "ok",
        "generator_saturated": False,
        "generator_cpu_cores": 0.4,
        "users_by_style": {"sleep/async-await": 4},
        "lost_workers": [],
        "losses": [],
        "server_worker_deaths": [],
        "connections_per_worker": None,
        "warmup_s": 1.0,
        "window_s": 3.02,
        "tail_s": 0.0,
        "stopped_by": "run time",
        "p99_intervals": {},
        "last_check": {},
        "stack": {"started": 1, "clusters": 1},
        "drain_s": None,
    }
    outcome["validity"] = {"valid": True}
    ok.update(outcome, ended_at=9.0, wall_s=7.0)
    skipped.update(status="skipped", reason="PostgreSQL unreachable")
    failed.update(status="running", started_at=10.0, dir="003-c")
    failed.update({"status": "failed", "reason": "the stack died", "losses": [{"pid": 7}]}, ended_at=11.0, wall_s=1.0)
    interrupted.update(status="running", started_at=12.0, dir="004-c")
    interrupted.update(status="interrupted", ended_at=13.0)
    state.update(status="incomplete", ended_at=14.0, wall_s=13.0)
    state["cells"][4]["status"] = "not run"
    return state


def new_runner_state() -> rundir.RunState:
    """The same run through the records, as the runner now goes."""
    cells = [{**CELL, "index": i, "id": f"00{i}-c"} for i in range(1, 6)]
    head = rundir.RunHeader(
        run_id="r", experiment={"name": "x"}, started_at=1.0, settings={"workers": 2}, database="embedded"
    )
    state = rundir.RunState(head, cells=[rundir.CellRecord(c) for c in cells])
    head.reproduce = {"command": "make loadtest PROFILE=x", "toml": ""}
    head.versions, head.machine, head.git = {"python": "3.11"}, {"cpu_count": 2}, {"commit": None}
    state.calibration = {"method": "m", "probes": []}
    ok, skipped, failed, interrupted, _ = state.cells
    ok.status, ok.started_at, ok.dir = "running", 2.0, "001-c"
    outcome = rundir.CellOutcome(
        "ok",
        generator_saturated=False,
        generator_cpu_cores=0.4,
        users_by_style={"sleep/async-await": 4},
        lost_workers=[],
        losses=[],
        server_worker_deaths=[],
        window_s=3.02,
        stopped_by="run time",
        p99_intervals={},
        last_check={},
        stack={"started": 1, "clusters": 1},
    )
    outcome.validity = {"valid": True}
    ok.settle(outcome)
    ok.ended_at, ok.wall_s = 9.0, 7.0
    skipped.settle(rundir.CellOutcome("skipped", reason="PostgreSQL unreachable"))
    failed.status, failed.started_at, failed.dir = "running", 10.0, "003-c"
    failed.settle(rundir.CellOutcome("failed", reason="the stack died", losses=[{"pid": 7}]))
    failed.ended_at, failed.wall_s = 11.0, 1.0
    interrupted.status, interrupted.started_at, interrupted.dir = "running", 12.0, "004-c"
    interrupted.status, interrupted.ended_at = "interrupted", 13.0
    state.end("incomplete", 14.0, 13.0)
    return state


def test_the_records_write_what_the_runners_dicts_wrote_key_for_key_in_order(tmp_path: Path) -> None:
    rundir.RunDir(tmp_path).write_state(new_runner_state())
    written = json.loads((tmp_path / "run.json").read_text())
    old = {**old_runner_state(), "schema_version": rundir.SCHEMA_VERSION}
    assert written == old
    assert list(written) == list(old)
    for new_cell, old_cell in zip(written["cells"], old["cells"], strict=True):
        assert list(new_cell) == list(old_cell)


def test_a_measured_cell_says_null_where_nothing_was_seen_and_a_failed_one_says_nothing() -> None:
    measured = rundir.CellOutcome("ok", window_s=3.0).to_json()
    assert measured["connections_per_worker"] is None and measured["drain_s"] is None
    assert rundir.CellOutcome("failed", reason="r").to_json() == {"status": "failed", "reason": "r"}


def test_a_capacity_probe_on_an_external_target_writes_its_verdict_and_the_servers_own_shape(tmp_path: Path) -> None:
    cell = {**CELL, "model": "open", "tail_s": 0.25}
    record = rundir.CellRecord(cell, search=1, phase="ramp")
    record.status, record.started_at, record.dir = "running", 2.0, cell["id"]
    shape = {"server_workers": 4, "threadpool_tokens": 8, "db_pool_size": 3, "worker_class": "unknown"}
    outcome = rundir.CellOutcome(
        "degraded", server_shape=shape, window_s=4.0, profile={"problem": ""}, degraded_because=["a worker lost"]
    )
    record.settle(outcome)
    record.ended_at, record.wall_s, record.probe = 9.0, 7.0, {"passed": False}
    old = {**cell, "status": "pending", "search": 1, "phase": "ramp"}
    old.update(status="running", started_at=2.0, dir=cell["id"])
    old.update({"status": "degraded", **shape, "connections_per_worker": None, "window_s": 4.0, "drain_s": None})
    old.update(profile={"problem": ""}, degraded_because=["a worker lost"], ended_at=9.0, wall_s=7.0)
    old["probe"] = {"passed": False}
    rundir.CellDir(tmp_path).write_record(record)
    written = json.loads((tmp_path / "cell.json").read_text())
    assert written == old and list(written) == list(old)
    # The server's T replaced the experiment's: read back, it is the cell's.
    assert rundir.CellRecord.from_json(written).cell["threadpool_tokens"] == 8
    assert rundir.CellRecord.from_json(written).to_json() == written


def test_a_record_read_back_is_the_record_written() -> None:
    state = new_runner_state()
    assert rundir.RunState.from_json(state.to_json()) == state


def test_the_end_of_a_run_marks_the_running_cell_interrupted_and_the_pending_not_run() -> None:
    state = rundir.RunState(rundir.RunHeader(run_id="r", experiment={}))
    state.cells = [rundir.CellRecord({"id": "a"}, status="running"), rundir.CellRecord({"id": "b"})]
    state.cells.append(rundir.CellRecord({"id": "c"}, status="ok"))
    state.end("incomplete", 5.0, 4.26)
    assert [c.status for c in state.cells] == ["interrupted", "not run", "ok"]
    assert (state.status, state.ended_at, state.wall_s) == ("incomplete", 5.0, 4.3)


def test_keys_a_newer_or_other_writer_added_to_run_json_are_kept() -> None:
    data = {"run_id": "r", "status": "complete", "experiment": {}, "cells": [], "note": "hand-added"}
    assert rundir.RunState.from_json(data).to_json() == data


# A server worker's own files, by pid, and each one's owner: py-spy's stacks are the run directory's,
# the telemetry's samples are written inside the server (below analysis, so it owns their name).
WORKER_FILES = re.compile(r"worker-(\{[^}]*\}|\*)\.(txt|jsonl)")
WORKER_FILE_OWNERS = {Path("analysis/rundir.py"), Path("routebench/serverside/telemetry.py")}


def test_no_module_but_its_owner_spells_a_worker_file_name() -> None:
    offenders = []
    for package in ("routebench", "analysis", "locustfiles", "target_app"):
        for path in (ROOT / package).rglob("*.py"):
            if path.relative_to(ROOT) in WORKER_FILE_OWNERS:
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if WORKER_FILES.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_a_profile_written_where_the_owner_says_is_read_by_its_glob(tmp_path: Path) -> None:
    written = rundir.profile_file(tmp_path, 4711)
    written.write_text("main (app.py:1) 3\n")
    worker_file(tmp_path, 4711).write_text("{}\n")  # the worker's telemetry beside it is not a profile
    assert list(tmp_path.glob(rundir.PROFILE_GLOB)) == [written]
