"""A real capacity search, end to end: Gunicorn, Locust master and workers, open-model probes.

sleep/blocking-in-async on W = 2 workers holds one event loop per worker for d = 50 ms a request,
so no more than W / d = 40 requests/s can ever be served: the search must confirm an MST at or
below that (5% over for the clock's and the schedule's slack), and well above half of it (the
loops are busy 100% of the time there only past the p99 SLO of 250 ms: five waits in the queue).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import routebench_cli, still_running

pytestmark = pytest.mark.stack

STYLE = "sleep/blocking-in-async"
CEILING_RPS = 2 / 0.050  # W / d


def experiment(tmp: Path, max_probes: int = 12) -> Path:
    path = tmp / "cap.toml"
    path.write_text(
        f"""
name = "captest"
mode = "capacity"
calibrate = false
warmup_s = 1
wait_ms = 50
server_workers = [2]
locust_workers = 2

[capacity]
slo = ["p99<250ms", "failure_rate<1%"]
start_rps = 10
max_rps = 200
tolerance = 0.25
probe_s = 2
confirm_s = 4
max_probes = {max_probes}

[[groups]]
styles = ["{STYLE}"]
"""
    )
    return path


@pytest.fixture(scope="module")
def capacity_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, subprocess.CompletedProcess[str]]:
    tmp = tmp_path_factory.mktemp("capacity")
    done = routebench_cli(
        "capacity", str(experiment(tmp)), "--results", str(tmp / "results"), "--reports", str(tmp / "reports")
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = (tmp / "results").iterdir()
    return run_dir, tmp / "reports", done


def test_the_search_confirms_an_mst_under_the_loops_ceiling(
    capacity_run: tuple[Path, Path, subprocess.CompletedProcess[str]],
) -> None:
    run_dir, _, done = capacity_run
    doc = json.loads((run_dir / "capacity.json").read_text())
    assert doc["schema"] == "routebench.capacity/1" and doc["complete"]
    (row,) = doc["styles"]
    assert row["style"] == STYLE and row["confirmed"] == 1
    assert CEILING_RPS / 2 <= row["mst_rps"] <= CEILING_RPS * 1.05, row
    assert row["predicted_mst_rps"] == pytest.approx(CEILING_RPS, rel=0.01)  # D/D/m: no queue below it
    (search,) = doc["searches"]
    probes = search["probes"]
    # Ramp up from 10/s until a probe failed, bisection, then a longer confirmation at the MST.
    assert probes[0]["offered_rps"] == 10 and probes[0]["outcome"] == "pass"
    failed = [p for p in probes if p["outcome"] == "fail"]
    assert failed and all(p["failed_rules"] and p["why"] for p in failed)
    assert all(p["offered_rps"] > row["mst_rps"] for p in failed)
    confirm = probes[-1]
    assert confirm["phase"] == "confirm" and confirm["offered_rps"] == pytest.approx(row["mst_rps"], abs=0.01)
    assert confirm["window_s"] >= 3.6
    assert search["bracket_rps"][1] / row["mst_rps"] <= 1.25
    # Each probe is a cell of the run, with its verdict.
    cells = json.loads((run_dir / "run.json").read_text())["cells"]
    assert len(cells) == len(probes) and all(c["model"] == "open" for c in cells)
    said = " ".join(done.stderr.split())
    assert f"{STYLE} ramp 10 req/s: pass" in said and "budget about" in said and "Traceback" not in said
    assert f"{STYLE}: MST" in said


def test_the_report_check_and_compare_read_the_capacity(
    capacity_run: tuple[Path, Path, subprocess.CompletedProcess[str]],
) -> None:
    run_dir, reports, _ = capacity_run
    html = (reports / run_dir.name / "index.html").read_text()
    assert 'id="capacity-table"' in html and f"<code>{STYLE}</code>" in html
    assert 'data-chart="capacity_0"' in html
    mst = json.loads((run_dir / "capacity.json").read_text())["styles"][0]["mst_rps"]
    ok = routebench_cli("check", str(run_dir), "--slo", f"{STYLE}:mst>=10")
    assert ok.returncode == 0, ok.stderr
    broken = routebench_cli("check", str(run_dir), "--slo", f"{STYLE}:mst>={mst * 2:.0f}")
    assert broken.returncode == 99 and "FAIL" in broken.stderr
    wrong = routebench_cli("check", str(run_dir), "--slo", f"{STYLE}:p99<100ms")
    assert wrong.returncode == 2 and "mst only" in wrong.stderr
    same = routebench_cli("compare", str(run_dir), str(run_dir), "--reports", str(reports))
    assert same.returncode == 0, same.stderr
    page = (reports / f"compare-{run_dir.name}-vs-{run_dir.name}.html").read_text()
    assert "inconclusive" in page and STYLE in page


def test_ctrl_c_keeps_the_probes_and_the_best_rate_as_a_lower_bound(tmp_path: Path) -> None:
    results = tmp_path / "results"
    with subprocess.Popen(
        [sys.executable, "-m", "routebench.cli", "capacity", str(experiment(tmp_path, 20)), "--results", str(results)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            deadline = time.monotonic() + 120
            doc: dict = {}  # type: ignore[type-arg]
            while time.monotonic() < deadline and not any(
                p["outcome"] == "pass" for s in doc.get("searches", []) for p in s["probes"]
            ):
                time.sleep(0.3)
                paths = list(results.glob("*/capacity.json"))
                try:
                    doc = json.loads(paths[0].read_text()) if paths else {}
                except json.JSONDecodeError:
                    doc = {}
            family = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
            proc.send_signal(signal.SIGINT)
            assert proc.wait(60) == 130
            err = proc.stderr.read() if proc.stderr else ""
        finally:
            if proc.poll() is None:
                proc.kill()
    assert "interrupted" in err and "lower bound" in err and "Traceback" not in err
    (run_dir,) = results.iterdir()
    doc = json.loads((run_dir / "capacity.json").read_text())
    assert not doc["complete"]
    (row,) = doc["styles"]
    passed = [p["offered_rps"] for p in doc["searches"][0]["probes"] if p["outcome"] == "pass"]
    assert row["mst_rps"] is None and row["lower_bound_rps"] == max(passed)
    assert json.loads((run_dir / "run.json").read_text())["status"] == "incomplete"
    assert still_running(family) == []
