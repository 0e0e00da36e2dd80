"""Which Locust event each part of routebench listens to, bound to the process's one state.

:func:`install` is called by the locustfile as Locust loads it: Locust fires
``init_command_line_parser`` right after, so the listeners must be registered then. Nothing else is
done at import: Locust's report interval and geventhttpclient's resend change in listeners, once
the process is known to be a Locust process.
"""

from __future__ import annotations

import atexit
import functools
import os
from typing import Any

import locust.runners
from locust import events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from locustfiles.plugin import lifecycle, login, measure, options, resend, save, webui
from locustfiles.plugin.record import HELLO_MESSAGE
from locustfiles.plugin.state import ProcessState
from locustfiles.plugin.stop import REPORT_INTERVAL_S
from locustfiles.plugin.window import FINISHED_MESSAGE, WINDOW_END_MESSAGE, WINDOW_MESSAGE
from target_app.catalogue import CANARY_CLASS

_process: ProcessState | None = None


def install() -> ProcessState:
    """Register routebench's listeners on Locust's events, once per process, and return the state
    they share (a second locustfile importing ours gets the same one)."""
    global _process
    if _process is not None:
        return _process
    process = _process = ProcessState()

    events.init_command_line_parser.add_listener(options.add_arguments)

    @events.init.add_listener
    def _init(environment: Environment, **_: Any) -> None:
        process.environment = environment
        # A worker's stats reporter reads this at each turn of its loop; its first turn comes after
        # ``init`` (nothing yields between the runner's creation and this event).
        locust.runners.WORKER_REPORT_INTERVAL = REPORT_INTERVAL_S
        resend.install(process)
        runner = environment.runner
        if isinstance(runner, WorkerRunner):
            runner.register_message(
                WINDOW_MESSAGE, lambda environment, msg: measure.open_window(process, environment, msg.data)
            )
            runner.register_message(
                WINDOW_END_MESSAGE, lambda environment, msg: measure.end_window(process, environment, msg.data)
            )
            runner.send_message(HELLO_MESSAGE, {"pid": os.getpid()})
            return
        if not process.driven and not process.options.canary:
            # The canary runs in the tests routebench drives (or asks for); a web-UI session's picker
            # and a hand-run test offer the styles only.
            environment.user_classes = [c for c in environment.user_classes if c.__name__ != CANARY_CLASS]
            if environment.available_user_classes:
                environment.available_user_classes.pop(CANARY_CLASS, None)
        if isinstance(runner, MasterRunner):
            runner.register_message(HELLO_MESSAGE, lambda environment, msg: lifecycle.on_hello(process, msg))
            runner.register_message(FINISHED_MESSAGE, lambda environment, msg: lifecycle.on_finished(process, msg))
        if environment.web_ui is not None:
            webui.extend(process, environment)
            if getattr(environment.parsed_options, "web_login", False):  # Locust's own option
                login.require_login(environment, login.password())
        if process.options.out:
            # Locust fires ``quitting`` before the workers' final reports arrive; save after them.
            atexit.register(save.save_last, process, environment)

    events.request.add_listener(functools.partial(measure.on_request, process))

    @events.test_start.add_listener
    def _test_start(environment: Environment, **_: Any) -> None:
        lifecycle.on_test_start(process, environment)

    @events.test_stopping.add_listener
    def _test_stopping(environment: Environment, **_: Any) -> None:
        if not isinstance(environment.runner, MasterRunner):
            measure.close_window(process, environment)  # a process with users: censor what is in flight
        lifecycle.on_test_stopping(process, environment)

    @events.test_stop.add_listener
    def _test_stop(environment: Environment, **_: Any) -> None:
        if isinstance(environment.runner, WorkerRunner):
            measure.send_final_report(process, environment.runner)

    events.report_to_master.add_listener(functools.partial(measure.attach_capture, process))
    events.worker_report.add_listener(functools.partial(lifecycle.on_worker_report, process))

    return process
