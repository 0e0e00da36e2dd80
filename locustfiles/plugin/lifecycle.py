"""The master's tests, from start to stop: open every process's window, watch the workers, stop a
driven test when it is done, and save it once every worker's final report is in.

A headless cell: one test; the locustfile stops it (``--rb-run-time``), waits for the final reports,
saves and quits (Locust's own ``--run-time`` would quit at once and drop reports that come later).
A driven master (``--rb-driven``): one test per ``POST /swarm``, each stopping and saving itself in
its own ``--rb-out``. A web-UI session: a person starts and stops; each test is saved as it ends.
The master writes ``window.json`` when a test's window is set and when it stops, for the runner.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import gevent
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner
from locust.stats import StatsEntry

from analysis.rundir import CellDir, write_json
from locustfiles.plugin import stop
from locustfiles.plugin.measure import CAPTURE_KEY, end_window, open_window
from locustfiles.plugin.record import Test
from locustfiles.plugin.save import save_test
from locustfiles.plugin.state import ProcessState
from locustfiles.plugin.window import (
    WINDOW_END_MESSAGE,
    WINDOW_MESSAGE,
    counts_for_locust,
    finish_cap_s,
    measured_s,
    message,
)

WATCH_INTERVAL_S = 0.5
FINISH_POLL_S = 0.01
FINAL_WAIT_S = 5.0  # how long the master waits for the workers' final reports after a stop
SEAL_AFTER_S = 30.0  # a second this old gets no more reports: the master keeps it encoded


def on_test_start(process: ProcessState, environment: Environment) -> None:
    """Locust's ``test_start`` on the master (or a local runner): a new test, its window in every
    process ``warmup_s`` from now, each process on its own clock."""
    runner = environment.runner
    if runner is None or isinstance(runner, WorkerRunner):
        return
    options = process.options
    now = time.time()
    number = len(process.tests) + 1
    indexes: dict[str, int] = {}
    processes = 1
    if isinstance(runner, MasterRunner):
        indexes = {c.id: i for i, c in enumerate(sorted(runner.clients.all, key=lambda c: c.id))}
        processes = max(1, runner.worker_count)
    data = message(number, options, processes, indexes)
    measure_s = measured_s(options)
    process.lost_workers.clear()  # each test names its own
    test = Test(
        number,
        now,
        now + options.warmup_s,
        {
            **options.work_sizes(),
            "model": options.model,
            "arrival_rate": options.rate,
            "warmup_s": options.warmup_s,
            **options.precision_settings(),
        },
        out=options.out,
        workers_at_start=[str(w) for w in indexes],
        measure_until=now + options.warmup_s + measure_s if measure_s > 0 else None,
    )
    process.tests.append(test)
    open_window(process, environment, data)
    for_runner = process.driven or not process.in_session
    if for_runner:
        # For the runner: whether a generator process it saw die was lost before the window or in it.
        write_window(test)
    if isinstance(runner, MasterRunner):
        runner.send_message(WINDOW_MESSAGE, data)
        gevent.spawn(watch_workers, process, runner, number)
    if options.run_time_s > 0 and for_runner:
        gevent.spawn(stop_when_done, process, environment, test)


def write_window(test: Test) -> None:
    """``window.json`` for the runner, as the test stands: its start, when it measures from, and once
    known when its window ended (``measure_until``) and when it stopped."""
    if not test.out:
        return
    known = {"measure_until": test.measure_until, "stopped_at": test.stopped_at}
    write_json(
        CellDir(Path(test.out)).window,
        {
            "test": test.number,
            "started_at": test.started_at,
            "measure_from": test.measure_from,
            **{k: v for k, v in known.items() if v is not None},
        },
    )


def stop_when_done(process: ProcessState, environment: Environment, test: Test) -> None:
    """A driven or headless test stops itself: after its run time, or, precision-driven, once every
    style's p99 is precise enough (checked each second from the minimum window on, over the seconds
    every worker has reported) or at the maximum window, whichever comes first (stop.verdict)."""
    runner = environment.runner
    assert runner is not None
    target = float(test.options.get("precision_target", 0.0))
    gevent.sleep(max(0.0, test.started_at + process.options.run_time_s - time.time()))
    if target > 0:
        deadline = test.measure_from + float(test.options["max_window_s"])
        while process.test is test and test.stopped_at is None:
            now = time.time()
            intervals: dict[str, dict[str, Any]] = {}
            if now < deadline:
                until = complete_until(environment, test)
                intervals = stop.p99_intervals(process.capture.per_second(), test.measure_from, until)
                test.last_check = {"until": until, "intervals": intervals}
            test.stopped_by = stop.verdict(intervals, target, now, deadline)
            if test.stopped_by:
                break
            gevent.sleep(min(stop.CHECK_S, max(0.0, deadline - time.time())))
        if not test.stopped_by and time.time() >= deadline:
            test.stopped_by = stop.MAXIMUM_WINDOW  # stopped by another hand, its longest window reached
    else:
        test.stopped_by = stop.RUN_TIME
    if (
        process.test is test
        and test.stopped_at is None
        and process.options.finish_s > 0
        and not process.options.open_model
    ):
        let_finish(process, environment, test)
    if process.test is test and test.stopped_at is None:
        if isinstance(runner, MasterRunner) and process.driven:
            stop_without_waiting(runner)
        else:
            runner.stop()
    if not process.in_session:
        save_quit(process, environment, test)


def let_finish(process: ProcessState, environment: Environment, test: Test) -> None:
    """Closed model: the window ends now; the users go on until every process says its requests of
    the window have finished, or the cap (window.finish_cap_s) passed. The test stops after."""
    runner = environment.runner
    assert runner is not None
    now = test.measure_until = time.time()
    longest_s = process.capture.longest_us() / 1e6
    cap = finish_cap_s(longest_s, process.options.finish_s)
    if process.driven or not process.in_session:
        write_window(test)
    # A length, never the master's clock: each process ends its window that long after it opened it.
    message = {"test": test.number, "measure_s": now - test.measure_from}
    if isinstance(runner, MasterRunner):
        runner.send_message(WINDOW_END_MESSAGE, message)
    else:
        end_window(process, environment, message)  # a local runner's own users

    def done(present_only: bool = True) -> bool:
        if not isinstance(runner, MasterRunner):
            return process.window.finished
        present = {c.id for c in runner.clients.all if c.state != "missing"}
        return all(w in test.finished for w in test.workers_at_start if w in present or not present_only)

    while not done() and time.time() < now + cap and process.test is test and test.stopped_at is None:
        gevent.sleep(FINISH_POLL_S)
    # Complete: every process told of the test said so (one lost meanwhile took its requests along).
    test.finish = {"cap_s": round(cap, 3), "s": round(time.time() - now, 3), "complete": done(present_only=False)}


def on_finished(process: ProcessState, msg: Any) -> None:
    """A worker's ``rb_finished``: none of its requests of the window is in flight any more."""
    test = process.test
    if test is not None and msg.data.get("test") == test.number and msg.node_id not in test.finished:
        test.finished.append(msg.node_id)


def complete_until(environment: Environment, test: Test) -> float:
    """Up to when every worker still heard from has sent the master its responses (stop.complete_until)."""
    runner = environment.runner
    present = {c.id for c in runner.clients.all if c.state != "missing"} if isinstance(runner, MasterRunner) else set()
    workers = [w for w in test.workers_at_start if w in present]
    return stop.complete_until(workers, test.reported_at, test.measure_from, time.time())


def stop_without_waiting(runner: MasterRunner) -> None:
    """Locust's own stop, less its wait: the master sends each worker "stop" and then polls, once a
    second, until none has users, and only then ends the test (``test_stop``). A driven master
    does not wait: the test is saved once every worker's final report is in, and the runner starts
    the next test once Locust's state says every worker stopped (``stopped``), so a test never
    begins while the last one's stop is still counting its users down."""
    from locust.rpc import Message

    for client in runner.clients.all:
        runner.server.send_to_client(Message("stop", None, client.id))
    runner.stop(send_stop_to_client=False)


def save_quit(process: ProcessState, environment: Environment, test: Test) -> None:
    """Headless end of a cell, once the load is stopped: wait for every worker's final report, save,
    quit."""
    runner = environment.runner
    assert runner is not None
    deadline = time.time() + FINAL_WAIT_S
    while isinstance(runner, MasterRunner) and not test.finals_in(process.worker_pids) and time.time() < deadline:
        gevent.sleep(0.05)
    if test.out and not test.saved:
        save_test(process, environment, test)
    runner.quit()


def on_test_stopping(process: ProcessState, environment: Environment) -> None:
    """Locust's ``test_stopping`` on the master: the test's load ends now (Locust's ``test_stop``
    comes only once every worker has counted its users down, polled once a second, which would
    stretch the window past the load)."""
    runner = environment.runner
    test = process.test
    if isinstance(runner, WorkerRunner) or test is None or test.stopped_at is not None:
        return
    test.stopped_at = time.time()
    if isinstance(runner, MasterRunner):
        test.workers_at_stop = [c.id for c in runner.clients.all if c.state != "missing"]
    if test.out and process.in_session:
        gevent.spawn(save_after_final_reports, process, environment, test)
    if process.driven or not process.in_session:
        # For the runner: a precision-driven window ends when it stops, not at a known time.
        write_window(test)


def save_after_final_reports(process: ProcessState, environment: Environment, test: Test) -> None:
    """A session's test is saved once every worker's final report is in (each sends it when its
    users have stopped), not when Locust's master notices they stopped (it polls once a second)."""
    gevent.sleep(0.05)  # let the workers hear of the stop first
    deadline = time.time() + FINAL_WAIT_S
    while not test.finals_in(process.worker_pids) and time.time() < deadline:
        gevent.sleep(0.02)
    if not test.saved:
        save_test(process, environment, test)


def watch_workers(process: ProcessState, runner: MasterRunner, number: int) -> None:
    """Note each worker that goes missing (Locust stops hearing its heartbeat) or is dropped during
    test ``number``. What it reported before stays merged: nothing the master received is lost."""
    seen: set[str] = set()
    noted: set[str] = set()
    while True:
        if process.test is None or process.test.number != number:
            return  # the next test has its own watcher
        if runner.state not in ("spawning", "running"):
            if seen:  # the test is over: workers leaving now are not lost
                return
            gevent.sleep(WATCH_INTERVAL_S)
            continue
        present = {c.id: c.state for c in runner.clients.all}
        gone = [cid for cid in seen if cid not in present]
        missing = [cid for cid, state in present.items() if state == "missing"]
        for cid in [*missing, *gone]:
            if cid not in noted:
                noted.add(cid)
                process.lost_workers.append(
                    {
                        "id": cid,
                        "pid": process.worker_pids.get(cid),
                        "lost_at": time.time(),
                        "samples_received": process.capture.samples_by_worker.get(cid, 0),
                    }
                )
        seen.update(present)
        gevent.sleep(WATCH_INTERVAL_S)


def on_worker_report(process: ProcessState, client_id: str, data: dict[str, Any]) -> None:
    """Locust's ``worker_report`` on the master: a worker's histograms merged into the test's, if
    they were recorded in it; a final one noted."""
    payload = data.get(CAPTURE_KEY)
    test = process.test
    if not counts_for_locust(payload, test.number if test is not None else None):
        # Runs before Locust's own listener (ours was registered as the locustfile loaded, Locust's
        # when the runner was made): the report's warm-up or other test's requests never reach
        # Locust's stats, which then cover the window as the exact ones do.
        runner = process.environment.runner if process.environment is not None else None
        if runner is not None:
            data["stats"], data["errors"] = [], {}
            data["stats_total"] = StatsEntry(runner.stats, "Aggregated", None).serialize()  # type: ignore[arg-type]
    if not payload or test is None or payload.get("test") != test.number or test.saved:
        return
    process.capture.merge(payload, source=client_id)
    process.capture.seal(time.time() - SEAL_AFTER_S)
    test.reported_at[client_id] = float(payload.get("taken_at") or 0.0)
    if payload.get("final") and client_id not in test.final_reports:
        test.final_reports.append(client_id)  # (a worker told to quit after its stop reports again)


def on_hello(process: ProcessState, msg: Any) -> None:
    """A worker's ``rb_hello``: its pid, to know it dead when the runner says so."""
    process.worker_pids[msg.node_id] = int(msg.data["pid"])
