"""Across real network stacks on one machine: the target, the Locust master and two worker hosts
each in a network namespace of their own (ip netns, veth pairs on a bridge), made here and removed
afterwards. Only the namespaces' own addresses are targeted."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from analysis.rundir import CellDir
from locustfiles.plugin.stop import REPORT_INTERVAL_S

pytestmark = pytest.mark.stack  # starts the real stack or Locust: left out by -m 'not stack'

ROOT = Path(__file__).resolve().parent.parent
SUBNET = "10.213.77"
HOSTS = {"target": 1, "master": 2, "w1": 3, "w2": 4}
# w2's link is cut once the window has been open this long: each worker has sent the master a few
# reports of its samples by then (they report every REPORT_INTERVAL_S).
CUT_AFTER_S = 3 * REPORT_INTERVAL_S
# Locust's master calls a worker missing after 3 heartbeats unheard (one a second, checked each
# second): the cut must leave the window that long, so that the loss lands in it.
MISSING_AFTER_S = 4
WINDOW_S = 16  # the cut at 3 s, w2 missing by 7 s: 9 s to spare for a busy machine


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


class Net:
    def __init__(self) -> None:
        self.tag = f"rb{os.getpid() % 100000}"
        self.bridge = f"{self.tag}br"
        self.made: list[str] = []

    def ns(self, host: str) -> str:
        return f"{self.tag}-{host}"

    def root_link(self, host: str) -> str:
        return f"{self.tag}{host}r"[:15]

    def addr(self, host: str) -> str:
        return f"{SUBNET}.{HOSTS[host]}"

    def up(self) -> None:
        ip("link", "add", self.bridge, "type", "bridge")
        ip("link", "set", self.bridge, "up")
        for host in HOSTS:
            ns, outside, inside = self.ns(host), self.root_link(host), f"{self.tag}{host}n"[:15]
            ip("netns", "add", ns)
            self.made.append(ns)
            ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            ip("link", "set", inside, "netns", ns)
            ip("-n", ns, "addr", "add", f"{self.addr(host)}/24", "dev", inside)
            ip("-n", ns, "link", "set", inside, "up")
            ip("-n", ns, "link", "set", "lo", "up")
            ip("link", "set", outside, "master", self.bridge)
            ip("link", "set", outside, "up")

    def down(self) -> None:
        for ns in self.made:
            ip("netns", "del", ns, check=False)
        ip("link", "del", self.bridge, check=False)

    def run_in(self, host: str, argv: list[str], **kw: object) -> subprocess.Popen[str]:
        # Its own UTS namespace too, so Locust's client id names the host.
        wrapped = [
            "unshare",
            "--uts",
            "sh",
            "-c",
            f'hostname {self.tag}-{host} && exec "$@"',
            "sh",
            "ip",
            "netns",
            "exec",
            self.ns(host),
            *argv,
        ]
        return subprocess.Popen(wrapped, cwd=ROOT, text=True, **kw)  # type: ignore[call-overload]


@pytest.fixture
def net() -> Iterator[Net]:
    n = Net()
    try:
        n.up()
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        n.down()
        reason = exc.stderr.strip() if isinstance(exc, subprocess.CalledProcessError) else str(exc)
        pytest.skip(f"cannot create network namespaces here (needs root and iproute2): {reason}")
    try:
        yield n
    finally:
        n.down()


def window_open_for(results: Path, seconds: float, deadline_s: float) -> dict[str, float] | None:
    """The cell's window (analysis.rundir.CellDir.window, written by the Locust master as the test
    starts) once it has been open for ``seconds``; None if that did not come within ``deadline_s``
    (the master, its workers and the target start on a machine that may be busy)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        cells = [CellDir(d) for run in results.glob("*") if run.is_dir() for d in run.iterdir() if d.is_dir()]
        for cell in cells:
            try:
                window: dict[str, float] = json.loads(cell.window.read_text())
            except OSError:
                continue  # not written yet (written whole: never half of it)
            if time.time() >= window["measure_from"] + seconds:
                return window
        time.sleep(0.1)
    return None


def test_workers_on_two_hosts_and_a_cut_link(net: Net, tmp_path: Path) -> None:
    procs: list[subprocess.Popen[str]] = []
    try:
        target = net.run_in(
            "target",
            [
                sys.executable,
                "-m",
                "routebench.cli",
                "serve",
                "--host",
                net.addr("target"),
                "--port",
                "8000",
                "--no-db",
                "--workers",
                "2",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        procs.append(target)
        assert target.stdout is not None
        assert target.stdout.readline().strip() == f"http://{net.addr('target')}:8000"

        exp = tmp_path / "hosts.toml"
        exp.write_text(
            f'name = "hosts"\nduration_s = {WINDOW_S}\nwarmup_s = 1\nusers = [10]\n'
            '[[groups]]\nstyles = ["sleep/async-await"]\n'
        )
        results = tmp_path / "results"
        master = net.run_in(
            "master",
            [
                sys.executable,
                "-m",
                "routebench.cli",
                "run",
                str(exp),
                "--external-workers",
                "2",
                "--master-host",
                net.addr("master"),
                "--target-url",
                f"http://{net.addr('target')}:8000",
                "--results",
                str(results),
                "--reports",
                str(tmp_path / "reports"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        procs.append(master)
        assert master.stderr is not None
        command = None
        for line in master.stderr:
            if line.strip().startswith("routebench worker"):
                command = line.split()
                break
        assert command is not None, "the master printed no worker command"
        assert command[command.index("--master-host") + 1] == net.addr("master")
        worker_argv = [sys.executable, "-m", "routebench.cli", *command[1:]]
        for host in ("w1", "w2"):
            procs.append(net.run_in(host, worker_argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

        # Both hosts report for a while, then w2's link is cut mid-cell.
        window = window_open_for(results, CUT_AFTER_S, deadline_s=120)
        assert window is not None, "the cell's window did not open within 120 s"
        cut_at = time.time()
        ip("link", "set", net.root_link("w2"), "down")
        assert master.wait(120) == 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
            for pipe in (p.stdout, p.stderr):
                if pipe is not None:
                    pipe.close()

    (run_json,) = results.glob("*/run.json")
    cell = json.loads(run_json.read_text())["cells"][0]
    # The cut fell in the window, early enough for the master to call w2 missing inside it.
    window = json.loads(CellDir(run_json.parent / cell["dir"]).window.read_text())
    assert window["measure_from"] + CUT_AFTER_S <= cut_at < window["stopped_at"] - MISSING_AFTER_S, (cut_at, window)
    # A worker on another host lost in the window: the cell keeps its numbers, degraded, and says whose.
    assert cell["status"] == "degraded"
    (said,) = cell["degraded_because"]
    assert said.startswith(f"Locust worker {net.tag}-w2_") and "missing from the master's heartbeat" in said
    exact = json.loads((run_json.parent / cell["dir"] / "exact.json").read_text())
    by_host = {re.sub(r"_[0-9a-f]+$", "", wid): n for wid, n in exact["samples_by_worker"].items()}
    print("samples by worker host:", by_host)
    assert by_host.get(f"{net.tag}-w1", 0) > 0 and by_host.get(f"{net.tag}-w2", 0) > 0
    (lost,) = cell["lost_workers"]
    assert lost["id"].startswith(f"{net.tag}-w2_") and lost["samples_received"] > 0
    assert exact["requests"]["sleep/async-await"]["count"] == sum(exact["samples_by_worker"].values())
