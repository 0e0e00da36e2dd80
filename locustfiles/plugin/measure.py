"""What a Locust process with users does for each test: open its window, record each response,
censor what the close catches in flight, and send its histograms to the master.

The master never sends its clock: each process opens its own window ``warmup_s`` after it hears of
the test (``rb_window``), resets Locust's stats there, and closes it when the test stops. Exact
latencies go to locustfiles.capture; what counts is decided in locustfiles.plugin.window. A worker
then sends a final report, marked so, for the master to know when every report is in.
"""

from __future__ import annotations

import time
from typing import Any

import gevent
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from locustfiles.plugin.state import ProcessState
from locustfiles.plugin.window import FINISHED_MESSAGE, INTENDED, STARTED, admit, close, opened
from target_app.catalogue import CANARY, CANARY_CLASS

CAPTURE_KEY = "rb_capture"  # a worker report's histograms, in Locust's report data


def open_window(process: ProcessState, environment: Environment, message: dict[str, Any]) -> None:
    """A new test: this process's window opens ``warmup_s`` after now, on its own clock, and each
    style starts a fresh schedule; Locust's own stats are cleared when the window opens."""
    now = time.time()
    window = process.window = opened(message, now, getattr(environment.runner, "client_id", ""))
    process.in_flight.clear()
    process.waiting.clear()
    process.schedules.clear()
    process.capture.reset()
    test, measure_from = window.test, window.measure_from
    assert measure_from is not None
    if isinstance(environment.runner, MasterRunner):
        # The master's stats hold only what workers report, and Locust cleared them as the test
        # started; it merges a worker's stats only once that worker cleared its own for the window
        # (lifecycle.on_worker_report). Clearing them here too would drop reports already in.
        window.locust_reset = True

        def window_starts() -> None:
            # Locust's req/s divide by the time since its stats started: the window's, not the test's.
            if process.window.test == test and environment.runner is not None:
                environment.runner.stats.total.start_time = measure_from

        gevent.spawn_later(max(0.0, measure_from - time.time()), window_starts)
        return

    def reset() -> None:
        if process.window.test != test:
            return
        early = measure_from - time.time()
        if early > 0:  # a timer may fire a moment early: Locust would count warm-up responses
            gevent.spawn_later(early, reset)
            return
        clear_locusts_stats(process, environment)

    # The first response at or past the window's start clears them too (on_request): a timer can
    # run late on a busy machine, a response cannot come before its own listener.
    gevent.spawn_later(max(0.0, measure_from - time.time()), reset)


def clear_locusts_stats(process: ProcessState, environment: Environment | None) -> None:
    """Warm-up is over: Locust's own numbers start from here, like ours (ours never held any).
    Once per window."""
    if process.window.locust_reset or environment is None or environment.runner is None:
        return
    environment.runner.stats.reset_all()
    process.window.locust_reset = True


def on_request(
    process: ProcessState,
    name: str,
    response_time: float,
    exception: Any,
    context: dict[str, Any] | None = None,
    start_time: float | None = None,
    **_: Any,
) -> None:
    """Locust's ``request``: a response of one of our classes, recorded if its window says so."""
    now = time.time()
    window = process.window
    if not window.locust_reset and window.measure_from is not None and window.closed_at is None:
        if now >= window.measure_from:
            # Before Locust's own listener logs this response (ours was registered first): it and
            # every later one are in Locust's count, none of the warm-up's. Any response: Locust's
            # count covers the window whether or not the capture records it.
            clear_locusts_stats(process, process.environment)
    options = process.options
    if options.no_capture or (name not in process.user_classes and name != CANARY):
        return
    context = context or {}
    # The latency clock's start: the open model's intended start (the canary's in either model); the
    # closed model's send (ours, as the in-flight record has it; Locust's own a moment later for a
    # request not sent by our users).
    open_model = options.open_model or name == CANARY
    started = context.get(INTENDED) if open_model else context.get(STARTED, start_time)
    admission = admit(window, now, response_time, started, open_model)
    if admission.counter:
        process.capture.count(name, admission.counter)
    if admission.micros is None:
        return
    if not process.window.locust_reset:
        # Recorded here, then cleared from Locust's stats by the reset still to run: the
        # cross-check of the two counts allows for exactly these.
        process.capture.count(name, "before_locust_reset")
    process.capture.record(name, admission.micros, now, kind="failed" if exception else "ok")


def end_window(process: ProcessState, environment: Environment, message: dict[str, Any]) -> None:
    """Closed model, let finish: the master ended the test's window (``rb_window_end``). From now,
    on this process's clock, a request sent is load, not measurement; the users go on until the
    master stops the test, once every process said its window's requests are done."""
    window = process.window
    if message.get("test") != window.test or window.measure_from is None or window.measure_until is not None:
        return
    # As long as the master's window (its length, on this process's clock): the requests counted
    # are those of a window as long as the one the rates are divided by.
    window.measure_until = window.measure_from + max(0.0, float(message.get("measure_s", 0.0)))
    # This process's window may end a moment after the message (it opened a moment after the
    # master's): until then its users still send the window's requests.
    gevent.spawn_later(max(0.0, window.measure_until - time.time()), say_if_finished, process, environment)


def say_if_finished(process: ProcessState, environment: Environment | None) -> None:
    """Once, after the window's end: tell the master when no request of the window is in flight here
    (a request's own user calls this as it finishes; the window's end calls it too)."""
    window = process.window
    if window.measure_until is None or window.finished or window.closed_at is not None:
        return
    # The test's requests: the canary's are not waited for (its schedule goes on to the stop).
    test_in_flight = [(name, since) for name, since in process.in_flight.values() if name != CANARY]
    if time.time() < window.measure_until or window.finishing(test_in_flight):
        return
    window.finished = True
    runner = environment.runner if environment is not None else None
    if isinstance(runner, WorkerRunner):
        runner.send_message(FINISHED_MESSAGE, {"test": window.test})


def close_window(process: ProcessState, environment: Environment) -> None:
    """The load stops now: every request this process has in flight, and in the open model every
    due start it has not sent, enters the distribution as a censored sample at its elapsed time."""
    window = process.window
    if window.measure_from is None or window.closed_at is not None:
        return
    now = window.closed_at = time.time()
    options = process.options
    if options.no_capture:
        return
    running = getattr(environment.runner, "user_classes_count", {}) or {}
    # A style with no user here: this process offered none of its starts.
    schedules = {
        style: process.schedule(style) for style, cls in process.user_classes.items() if running.get(cls.__name__)
    }
    if CANARY in process.schedules and running.get(CANARY_CLASS):
        schedules[CANARY] = process.schedules[CANARY]
    closing = close(
        window, now, options.open_model, list(process.in_flight.values()), list(process.waiting.values()), schedules
    )
    for name, micros in closing.censored:
        process.capture.record(name, micros, now, kind="censored")
    for name, counter, n in closing.counts:
        process.capture.count(name, counter, n)


def attach_capture(process: ProcessState, client_id: str, data: dict[str, Any]) -> None:
    """Locust's ``report_to_master``: this worker's histograms since its last report go with it,
    tagged with the test they were recorded in, so a report that arrives late (after the next test
    of a web-UI session began) is not counted in the wrong test."""
    window = process.window
    data[CAPTURE_KEY] = {
        **process.capture.take(),
        "test": window.test,
        "final": window.final,
        "taken_at": time.time(),
        "locust_reset": window.locust_reset,  # whether Locust's stats in this report are the window's
    }


def send_final_report(process: ProcessState, runner: WorkerRunner) -> None:
    """A worker's users are stopped: everything it measured (ours and Locust's stats) goes to the
    master now, marked final, instead of waiting for the next periodic report."""
    process.window.final = True
    runner._send_stats()
