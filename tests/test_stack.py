"""Against the real stack: Gunicorn with two UvicornWorkers, the upstream service, PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import psutil
import pytest

from routebench.launcher import SERVER_NICE, Stack
from routebench.serverside.telemetry import read_dir
from target_app import catalogue
from tests.conftest import WAIT_MS, burst, stack_settings, still_running

pytestmark = pytest.mark.stack  # starts the real stack or Locust: left out by -m 'not stack'

D = WAIT_MS / 1000
N = 20
W = 2


def max_lag(telemetry_dir: Path, start: float, end: float) -> float:
    lags = [s["lag_ms"] for s in read_dir(telemetry_dir) if start <= s["t"] <= end]
    assert lags, "no telemetry samples in the window"
    return max(lags)


def written_past(telemetry_dir: Path, t: float, pids: list[int], deadline_s: float = 10.0) -> None:
    """Wait until every one of ``pids`` has written a sample taken after ``t`` (the samplers write
    every other sample: 40 ms apart here, later on a busy machine), at most ``deadline_s``."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline and not set(pids) <= {s["pid"] for s in read_dir(telemetry_dir, t)}:
        time.sleep(0.02)


def test_both_workers_serve(stack: Stack) -> None:
    assert len(stack.worker_pids()) == W
    pids = {httpx.get(stack.target_url + "/health").json()["pid"] for _ in range(40)}
    assert pids <= set(stack.worker_pids())


def test_blocking_in_async_queues_per_worker_and_lags_the_loop(stack: Stack, telemetry_dir: Path) -> None:
    params = {"ms": WAIT_MS}
    t0 = time.time()
    async_wall, ok = asyncio.run(burst(stack.target_url, "/sleep/async-await", N, params))
    t1 = time.time()
    written_past(telemetry_dir, t1 + 0.1, stack.worker_pids())
    t2 = time.time()
    blocking_wall, blocked = asyncio.run(burst(stack.target_url, "/sleep/blocking-in-async", N, params))
    t3 = time.time()
    written_past(telemetry_dir, t3 + 0.3, stack.worker_pids())
    assert all(r.status_code == 200 for r in ok + blocked)
    print(
        f"burst {N} x {WAIT_MS} ms, W={W}: async-await {async_wall:.3f} s, "
        f"blocking-in-async {blocking_wall:.3f} s (predicted {N * D / W:.3f} s)"
    )

    # N sleeps of d shared by W blocked loops cannot finish before N*d/W: the busier loop serves
    # at least N/W of them one after another, whatever the CPU (10% for how the burst splits).
    assert blocking_wall >= 0.9 * N * D / W
    # Overlapped waits: waits that each held their loop could not have finished under N*d/W (a
    # physical bound, 5x the burst's time here), so these overlapped.
    assert async_wall < N * D / W

    lag_async = max_lag(telemetry_dir, t0, t1 + 0.1)
    lag_blocking = max_lag(telemetry_dir, t2, t3 + 0.3)
    print(f"max event-loop lag: async-await {lag_async:.1f} ms, blocking-in-async {lag_blocking:.1f} ms")
    # A loop held for d = 100 ms is late by about that: the heartbeat (every 5 ms) could not run.
    # The async-await loops were never held for a wait: their lag is the CPU's alone (handling the
    # burst's requests, and a busy machine's scheduling), under the same line with 80 ms to spare.
    assert lag_blocking >= 0.8 * WAIT_MS
    assert lag_async < 0.8 * WAIT_MS


def test_every_style_answers_with_real_postgres_and_upstream(stack: Stack) -> None:
    styles = httpx.get(stack.target_url + "/styles").json()
    assert {s["id"] for s in styles} == {s.id for s in catalogue.STYLES}
    for s in styles:
        r = httpx.get(stack.target_url + s["path"], params={"ms": 20} if "ms" in s["params"] else {}, timeout=30)
        assert r.status_code == 200, (s["id"], r.text)
        assert r.json()["pid"] in stack.worker_pids()
    health = httpx.get(stack.target_url + "/health").json()
    assert health["db"] == "ok"


def test_db_and_fanout_are_really_waiting(stack: Stack) -> None:
    start = time.perf_counter()
    assert httpx.get(stack.target_url + "/db/asyncpg", params={"ms": 300}).status_code == 200
    assert time.perf_counter() - start >= 0.29  # pg_sleep ran on the server
    # k=8 calls of 100 ms: one after another cannot take less than 800 ms; together about 100 ms
    # plus a few ms of client work per call, far under half of that even on a busy machine.
    params = {"ms": 100, "k": 8}
    start = time.perf_counter()
    assert httpx.get(stack.target_url + "/fanout/sequential", params=params, timeout=30).status_code == 200
    sequential = time.perf_counter() - start
    start = time.perf_counter()
    assert httpx.get(stack.target_url + "/fanout/gather", params=params, timeout=30).status_code == 200
    gathered = time.perf_counter() - start
    assert sequential >= 8 * 0.1 * 0.95
    assert gathered < sequential / 2


def test_telemetry_route_reports_this_workers_samples(stack: Stack) -> None:
    body = httpx.get(stack.target_url + "/telemetry").json()
    assert body["pid"] in stack.worker_pids()
    sample = body["samples"][-1]
    assert sample["threads_total"] == 40
    assert {"lag_ms", "threads_busy", "inflight", "db_async_in_use", "db_sync_waiting"} <= set(sample)


def test_bad_parameters_get_422(stack: Stack) -> None:
    for path, params in [
        ("/sleep/sync-def", {"ms": "x"}),
        ("/db/asyncpg", {"ms": 99_999}),
        ("/fanout/gather", {"k": 0}),
    ]:
        r = httpx.get(stack.target_url + path, params=params)
        assert r.status_code == 422
        assert next(iter(params)) in r.json()["detail"]


def test_the_server_gives_way_to_the_lab_and_only_it_does(stack: Stack) -> None:
    """The server under test, its workers and a process pool's children run at SERVER_NICE (and, where
    the kernel groups sessions, so does its session's autogroup); the upstream and PostgreSQL do not."""
    assert httpx.get(stack.target_url + "/cpu/process-pool", params={"work": 1000}, timeout=30).status_code == 200
    by_name = {m.name: psutil.Process(m.proc.pid) for m in stack.processes}
    target = by_name.pop("target")
    family = [target, *target.children(recursive=True)]
    assert len(family) >= 1 + 2 * W  # the master, W workers, a pool child of each
    assert {p.nice() for p in family} == {SERVER_NICE}
    for other in by_name.values():
        assert other.nice() == 0, other.cmdline()
    autogroup = Path(f"/proc/{target.pid}/autogroup")
    if autogroup.exists():
        assert autogroup.read_text().split()[-1] == str(SERVER_NICE)
        assert Path(f"/proc/{by_name['upstream'].pid}/autogroup").read_text().split()[-1] == "0"


def test_stack_stop_leaves_no_process_behind(tmp_path: Path) -> None:
    with Stack(stack_settings(), telemetry_dir=tmp_path) as s:
        pids = s.all_pids()
        assert len(pids) >= 1 + W + 1 + 2  # gunicorn master + W workers + upstream + postgres and its helpers
        work_dir = s.work_dir
    assert still_running(pids) == []
    assert not work_dir.exists()


def test_a_blocked_loop_cannot_hide_its_evidence(stack: Stack, telemetry_dir: Path) -> None:
    """The sampler is a thread beside the loop: while a route holds the loop for a second, the
    worker still reports every interval, with the lag growing and the request in flight."""
    t0 = time.time()
    r = httpx.get(stack.target_url + "/sleep/blocking-in-async", params={"ms": 1000}, timeout=10)
    assert r.status_code == 200
    pid = r.json()["pid"]
    # The loop is held from the request's arrival (after t0; within 100 ms of it) for 1000 ms, so
    # from t0 + 0.1 to t0 + 0.9 whatever the response's way back costs the client.
    start, end = t0 + 0.1, t0 + 0.9
    written_past(telemetry_dir, end, [pid])
    during = [s for s in read_dir(telemetry_dir) if s["pid"] == pid and start <= s["t"] <= end]
    interval_s = 0.020  # tests.conftest.stack_settings
    # About (end - start) / interval samples: a sampler on the loop would have written none. Half
    # of them: the sampler thread keeps its schedule (a late sample is taken at once) unless the
    # OS keeps it off a CPU for 400 ms.
    assert len(during) >= 0.5 * (end - start) / interval_s
    # By t0 + 0.9 the loop has been held at least 800 ms: the last samples before it say so, less
    # the time since the last of them.
    assert max(s["lag_ms"] for s in during) >= 700
    assert all(s["inflight"] >= 1 for s in during)
    assert during[-1]["served"].get("/sleep/blocking-in-async", 0) == during[0]["served"].get(
        "/sleep/blocking-in-async", 0
    )  # nothing of that route finished on this worker while it was stuck
