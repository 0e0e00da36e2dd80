"""The exact capture against a real stack and a real Locust master with two workers: warm-up
samples never reach the window, and the exact counts agree with Locust's own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis import validity
from analysis.rundir import CellDir
from routebench.launcher import Stack
from routebench.locust_cluster import LoadSpec, LocustCluster
from target_app.settings import Settings

pytestmark = pytest.mark.stack

BURST_LOCUSTFILE = Path(__file__).parent / "locustfiles" / "warmup_burst.py"


def test_a_burst_sent_only_in_warm_up_never_appears(tmp_path: Path) -> None:
    settings = Settings(host="127.0.0.1", workers=2)
    with Stack(settings, with_db=False) as stack:
        spec = LoadSpec(
            target_url=stack.target_url,
            user_classes=["SleepAsyncAwait", "WarmupBurst"],
            users=8,
            out_dir=tmp_path,
            run_time_s=5.0,
            warmup_s=2.0,
            wait_ms=50,
            locustfile=BURST_LOCUSTFILE,
        )
        with LocustCluster(spec, 2) as cluster:
            assert cluster.wait(timeout=60) == 0, cluster.master.tail(20) if cluster.master else ""
    exact = json.loads(CellDir(tmp_path).exact.read_text())
    burst = exact["requests"]["sleep/sync-def"]
    # The burst was sent (each worker saw its answers arrive in warm-up and rejected them): its 4
    # users have about 1.6 s of the warm-up for 50 ms requests, about 120 of them ...
    assert burst["warmup_rejected"] > 10
    # ... and none of it is in the window. (Locust's own count can carry a warm-up report that
    # reached the master after its reset: the reason for this capture and its cross-check.)
    assert burst["count"] == burst["failures"] == burst["censored"] == 0
    steady = exact["requests"]["sleep/async-await"]
    # Its 4 users, each a 50 ms wait, over the 3 s window: at most 240 (a closed-model user sends
    # its next request when the last answers). 100 allows each request 75 ms of overhead beyond
    # its wait; the point is that the window holds the steady style's responses.
    assert steady["count"] > 100 and steady["warmup_rejected"] > 0
    # Every worker's final report arrived, and the exact count agrees with Locust's.
    assert exact["final_reports"]["missing"] == [] and len(exact["final_reports"]["received"]) == 2
    completed = steady["count"] + steady["failures"]
    theirs = exact["locust_counts"]["sleep/async-await"]["requests"]
    # Less the responses recorded in the moment before Locust's stats were cleared for the window
    # (its reset is a timer that can fire a moment late: analysis.validity allows for them too).
    early = steady.get("before_locust_reset", 0)
    assert completed - early <= theirs <= completed + steady["inflight_at_stop"] + 2
    cell = {"styles": ["sleep/async-await"], "model": "closed", "users_by_style": {"sleep/async-await": 4}}
    assert "counts" not in validity.check(cell, exact)["failed"]
