"""A real Locust process loads routebench's locustfile cheaply: it runs a test with every routebench
listener (a headless local runner with no users: no server, no port) and never imports pandas,
nor the runner, nor the report's libraries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from analysis.rundir import CellDir
from locustfiles.plugin.options import Options
from routebench.locust_cluster import LOCUSTFILE

HEAVY = ("pandas", "routebench", "bokeh", "scipy", "matplotlib")
# Locust's own entry point, and at exit the heavy packages this process imported (routebench's
# server side, the standard library's instruments under routebench.serverside, is not heavy).
PROGRAM = f"""
import atexit, json, sys
def heavy():
    light = {{"routebench", "routebench.serverside"}}
    names = {{m.split(".")[0] for m in sys.modules if m not in light and not m.startswith("routebench.serverside.")}}
    return sorted(names & {set(HEAVY)!r})
atexit.register(lambda: print("LOADED", json.dumps(heavy())))
from locust.main import main
main()
"""


def test_a_locust_process_runs_a_test_without_pandas(tmp_path: Path) -> None:
    options = Options(out=str(tmp_path), run_time_s=0.2, wait_ms=5, finish_s=5.0)
    argv = ["-f", str(LOCUSTFILE), "--headless", "-u", "0", "-r", "1", "--host", "http://127.0.0.1:9"]
    argv += [*options.argv(), "-t", "30s", "--only-summary", "--loglevel", "WARNING"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTEBENCH_")}
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, *argv],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = next(line for line in done.stdout.splitlines() if line.startswith("LOADED "))
    assert json.loads(loaded.removeprefix("LOADED ")) == []
    # The test ran through routebench's listeners: its own stop (not Locust's -t), then its save.
    exact = json.loads(CellDir(tmp_path).exact.read_text())
    assert exact["test"]["stopped_by"] == "run time"
    assert exact["test"]["options"]["ms"] == 5
    window = json.loads(CellDir(tmp_path).window.read_text())
    assert window["stopped_at"] is not None
    # The window ended, and its requests (none: no users) were let finish before the stop: at once,
    # well within the cap (1 s at least, no latency seen).
    finish = exact["test"]["finish"]
    assert finish["complete"] and finish["s"] < finish["cap_s"] == 1.0, finish
    assert exact["measure_from"] < exact["measure_until"] <= window["measure_until"] <= window["stopped_at"]
