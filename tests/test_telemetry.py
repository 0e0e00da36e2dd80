"""The telemetry's clocks and counts, read from what they count. The loop thread's scheduler clocks:
its time on a CPU, read from the kernel, is the same clock as the thread's own CPU time, and its
time waiting for a CPU grows only while it is runnable and another thread holds the core. The
threadpool's waiters: the tasks an AnyIO limiter keeps waiting for a token."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from typing import Any

import anyio.to_thread
import pytest

from routebench.serverside.telemetry import Gauge, Sampler, loop_schedstat, read_schedstat

needs_schedstat = pytest.mark.skipif(
    not sys.platform.startswith("linux") or loop_schedstat(threading.get_native_id()) is None,
    reason="the kernel keeps no scheduler statistics here (Linux with schedstats)",
)

SPIN_S = 0.05  # of this thread's CPU time


def spin(cpu_s: float) -> None:
    until = time.thread_time() + cpu_s
    while time.thread_time() < until:
        pass


@needs_schedstat
def test_the_loops_time_on_a_cpu_is_its_threads_cpu_time() -> None:
    path = loop_schedstat(threading.get_native_id())
    before, cpu_before = read_schedstat(path), time.thread_time()
    spin(SPIN_S)
    after, cpu_after = read_schedstat(path), time.thread_time()
    # Both are the kernel's sum of this thread's run time (CLOCK_THREAD_CPUTIME_ID reads the same
    # counter). The file shows the sum as of the scheduler's last update of a running thread, at
    # most a tick behind (10 ms at the lowest rate a kernel ticks, 100 Hz), at each of two reads.
    assert after["loop_cpu_s"] - before["loop_cpu_s"] == pytest.approx(cpu_after - cpu_before, abs=0.021)
    assert after["loop_wait_s"] >= before["loop_wait_s"] >= 0


@needs_schedstat
def test_a_thread_kept_off_the_cores_is_seen_waiting() -> None:
    """This thread and two spinning processes pinned to one core: whatever the CPU, this thread is
    runnable and waiting while they hold it."""
    core = min(os.sched_getaffinity(0))
    path = loop_schedstat(threading.get_native_id())
    pin = f"import os; os.sched_setaffinity(0, {{{core}}}); print('pinned', flush=True)\nwhile True: pass"
    allowed = os.sched_getaffinity(0)
    rivals = [subprocess.Popen([sys.executable, "-c", pin], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        for rival in rivals:
            assert rival.stdout is not None and rival.stdout.readline().strip() == "pinned"
        os.sched_setaffinity(0, {core})  # pid 0: the calling thread only
        before = read_schedstat(path)
        spin(SPIN_S)
        after = read_schedstat(path)
    finally:
        os.sched_setaffinity(0, allowed)
        for rival in rivals:
            rival.kill()
            rival.communicate()
    # Three runnable tasks on one core: a fair scheduler gives this thread a third of it, so it waits
    # about twice its SPIN_S of CPU. Half of SPIN_S allows for a tick's lag at each read (above).
    assert after["loop_wait_s"] - before["loop_wait_s"] > SPIN_S / 2


def test_the_tasks_waiting_for_a_threadpool_token_are_sampled() -> None:
    """The loop's threadpool cut to one token, held by a thread: a second call into the threadpool
    waits for it, and the sampler (read as its thread reads it) counts one task waiting; none once
    the token is free."""

    async def serve() -> tuple[dict[str, Any], dict[str, Any]]:
        sampler = Sampler(60.0, Gauge(), dict, None)  # samples only when asked, here
        sampler.start()
        anyio.to_thread.current_default_thread_limiter().total_tokens = 1
        started, release = threading.Event(), threading.Event()

        def hold() -> None:
            started.set()
            release.wait(10)

        try:
            holder = asyncio.ensure_future(anyio.to_thread.run_sync(hold))
            while not started.is_set():
                await asyncio.sleep(0.001)
            waiter = asyncio.ensure_future(anyio.to_thread.run_sync(time.sleep, 0))
            await asyncio.sleep(0.01)  # the waiter's task runs up to the limiter and waits there
            held = await asyncio.to_thread(sampler.sample)
            release.set()
            await asyncio.gather(holder, waiter)
            free = await asyncio.to_thread(sampler.sample)
        finally:
            release.set()
            await sampler.stop()
        return held, free

    held, free = asyncio.run(serve())
    assert (held["threads_busy"], held["threads_total"], held["threads_waiting"]) == (1, 1, 1)
    assert (free["threads_busy"], free["threads_waiting"]) == (0, 0)
