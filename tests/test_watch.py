"""The watch's record of a cell's processes, without processes: phases from the master's window,
deaths only Gunicorn's log saw, and losses that took nothing with them."""

from __future__ import annotations

import json
import time
from pathlib import Path

from routebench.watch import Watch, heartbeat_losses


def watch_with_window(tmp_path: Path, started_at: float, warmup: float = 2.0, run_time: float = 8.0) -> Watch:
    (tmp_path / "window.json").write_text(
        json.dumps({"test": 1, "started_at": started_at, "measure_from": started_at + warmup})
    )
    return Watch(tmp_path, run_time, started=started_at - 3)


def test_phases_follow_the_masters_window(tmp_path: Path) -> None:
    w = watch_with_window(tmp_path, 1000.0)
    assert [w.phase(t) for t in (999.0, 1001.0, 1003.0, 1009.0)] == ["starting", "warm-up", "window", "final report"]
    assert Watch(tmp_path, None).phase(1003.0) == "session"


def test_a_server_worker_only_gunicorns_log_saw_die_is_recorded_with_its_phase(tmp_path: Path) -> None:
    started = time.time() - 20
    w = watch_with_window(tmp_path, started)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S +0000", time.gmtime(started + 5))  # in the window
    w.account({}, [{"pid": 4711, "at": stamp, "how": "was sent SIGKILL"}])
    (loss,) = w.losses
    assert loss["kind"] == "server worker" and loss["how"] == "killed by SIGKILL" and loss["phase"] == "window"
    assert w.measured_losses() == [loss]


def test_a_worker_lost_after_its_final_report_took_nothing(tmp_path: Path) -> None:
    w = watch_with_window(tmp_path, 1000.0)
    w.record("locust-worker-1", "locust worker", 11, "killed by SIGKILL", at=1009.5)
    w.account({"worker_pids": {"a": 11}, "samples_by_worker": {"a": 500}, "final_reports": {"received": ["a"]}}, [])
    assert w.losses == []


def test_only_workers_the_watch_did_not_see_come_from_the_heartbeat() -> None:
    exact = {
        "test": {"started_at": 1000.0},
        "lost_workers": [
            {"id": "local", "lost_at": 1004.0, "samples_received": 10},
            {"id": "remote", "lost_at": 1005.5, "samples_received": 812},
        ],
    }
    (said,) = heartbeat_losses(exact, [{"client_id": "local", "pid": 1}])
    assert (
        said["words"]
        == "Locust worker remote missing from the master's heartbeat at +5.5 s of the test, 812 samples received"
    )
