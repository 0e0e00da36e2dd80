"""Locust user classes for routebench: one ``FastHttpUser`` per route style of the catalogue.

Run it through ``routebench run`` / ``make ui``, or by hand::

    locust -f locustfiles/routebench.py --host http://127.0.0.1:8000 --class-picker

The request name is the style id; each task is tagged with its family. Two load models:

- closed (default): users with no think time, each sends its next request when the last answers;
- open (``--rb-model open --rb-rate R``): each style is started R times a second in all, on a fixed
  schedule, and latency counts from each request's *intended* start, so a slow server cannot hide
  its queue (coordinated omission). A start more than ``LATE_MS`` behind schedule counts as late.

Exact latencies go to :mod:`locustfiles.capture`; the measured window opens ``--rb-warmup``
seconds after the test starts, when Locust's own stats are reset too.
"""

from __future__ import annotations

import atexit
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import gevent
from locust import FastHttpUser, constant, events, tag, task
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for ``locust -f`` from a clone

from locustfiles.capture import Capture  # noqa: E402
from locustfiles.names import user_class_name  # noqa: E402
from target_app import catalogue  # noqa: E402

LATE_MS = 10.0
WATCH_INTERVAL_S = 0.5
capture = Capture()
lost_workers: list[dict[str, Any]] = []  # master: workers that went missing mid-run, and when
# When load starts, when measuring starts (after warm-up), and the open model's rate per process.
window: dict[str, float | None] = {"schedule_from": None, "measure_from": None, "rate_per_process": None}


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    parser.add_argument("--rb-ms", type=int, default=None, help="wait per request in ms (server default if unset)")
    parser.add_argument("--rb-work", type=int, default=None, help="CPU work in loop iterations (cpu family)")
    parser.add_argument("--rb-k", type=int, default=None, help="fan-out width (fanout family)")
    parser.add_argument("--rb-model", choices=["closed", "open"], default="closed", help="load model")
    parser.add_argument("--rb-rate", type=float, default=10.0, help="open model: requests/s per style, in all")
    parser.add_argument("--rb-warmup", type=float, default=0.0, help="seconds excluded before measuring")
    parser.add_argument("--rb-out", default="", help="directory for exact histograms (master)", include_in_web_ui=False)
    parser.add_argument("--rb-no-capture", action="store_true", default=False, include_in_web_ui=False,
                        help="record no exact histograms (to measure what the capture costs)")


class StyleUser(FastHttpUser):
    """Hits one route style. Subclasses are generated from the catalogue below."""

    abstract = True
    wait_time = constant(0)
    style: catalogue.RouteStyle
    _next_ticket = 0  # open model: this process's next scheduled start, per class

    def query(self) -> dict[str, int]:
        opts = self.environment.parsed_options
        values = {"ms": getattr(opts, "rb_ms", None), "work": getattr(opts, "rb_work", None),
                  "k": getattr(opts, "rb_k", None)}
        return {p: v for p, v in values.items() if p in self.style.params and v is not None}

    def hit(self) -> None:
        opts = self.environment.parsed_options
        if getattr(opts, "rb_model", "closed") == "open":
            self._hit_on_schedule()
        else:
            self.client.get(self.style.path, params=self.query(), name=self.style.id)

    def _hit_on_schedule(self) -> None:
        rate, start, measure_from = window["rate_per_process"], window["schedule_from"], window["measure_from"]
        if not rate or start is None or measure_from is None:
            gevent.sleep(0.05)
            return
        cls = type(self)
        intended = start + cls._next_ticket / rate
        cls._next_ticket += 1
        gevent.sleep(max(0.0, intended - time.time()))
        began = time.time()
        self.client.get(self.style.path, params=self.query(), name=self.style.id)
        if intended >= measure_from:
            capture.record(self.style.id, int((time.time() - intended) * 1_000_000))
            if (began - intended) * 1000 > LATE_MS:
                capture.late(self.style.id)


def _make_user(style: catalogue.RouteStyle) -> type[StyleUser]:
    def run(self: StyleUser) -> None:
        self.hit()

    run.__name__ = style.id
    return type(user_class_name(style.id), (StyleUser,), {
        "style": style,
        "tasks": [tag(style.family)(task(run))],
        "__module__": __name__,
        "__doc__": f"{style.id}: {style.description}",
    })


USER_CLASSES: dict[str, type[StyleUser]] = {s.id: _make_user(s) for s in catalogue.STYLES}
globals().update({cls.__name__: cls for cls in USER_CLASSES.values()})


@events.request.add_listener
def _on_request(name: str, response_time: float, exception: Any, **_: Any) -> None:
    # Like Locust's own stats: every response that completes in the window (the reset at
    # ``measure_from`` clears both), failures included, so the two can be compared.
    if window["measure_from"] is None:
        return
    opts = getattr(_env, "parsed_options", None)
    if getattr(opts, "rb_model", "closed") == "open" or getattr(opts, "rb_no_capture", False):
        return  # open model: recorded from the intended start in _hit_on_schedule
    capture.record(name, int(response_time * 1000))


_env: Environment | None = None


def _open_window(environment: Environment, data: dict[str, float]) -> None:
    window.update(data)
    measure_from = data["measure_from"]

    def reset() -> None:
        # Warm-up is over: Locust's own numbers start from here, like ours.
        if environment.runner is not None:
            environment.runner.stats.reset_all()
        capture.reset()

    gevent.spawn_later(max(0.0, measure_from - time.time()), reset)


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    global _env
    _env = environment
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        runner.register_message("rb_window", lambda environment, msg: _open_window(environment, msg.data))
    else:
        if environment.web_ui is not None and getattr(environment.parsed_options, "web_login", False):
            from target_app.settings import Settings

            secret = Settings().ui_password
            if secret is None:
                raise SystemExit("--web-login needs ROUTEBENCH_UI_PASSWORD")
            _require_login(environment, secret.get_secret_value())
        out = getattr(environment.parsed_options, "rb_out", "")
        if out:
            # Locust fires ``quitting`` before the workers' final reports arrive; save after them.
            atexit.register(_save, environment, Path(out))


class _UiUser:
    """The one web-UI user, for Flask-Login."""

    is_authenticated = is_active = True
    is_anonymous = False

    def __init__(self, name: str) -> None:
        self.name = name

    def get_id(self) -> str:
        return self.name


def _require_login(environment: Environment, password: str) -> None:
    """Locust's --web-login with a password check (ROUTEBENCH_UI_PASSWORD, any user name)."""
    import hmac

    from flask import Blueprint, redirect, request, session, url_for
    from flask_login import login_user

    web_ui = environment.web_ui
    assert web_ui is not None and web_ui.app is not None
    web_ui.app.secret_key = secrets.token_hex(32)  # sessions live as long as this master
    web_ui.login_manager.user_loader(_UiUser)
    web_ui.auth_args = {"username_password_callback": "/rb_login", "title": "routebench"}
    auth = Blueprint("rb_auth", __name__)

    @auth.route("/rb_login", methods=["POST"])
    def rb_login() -> Any:
        given = request.form.get("password", "")
        if hmac.compare_digest(given.encode(), password.encode()):
            login_user(_UiUser(request.form.get("username") or "user"))
            session.pop("auth_error", None)
            return redirect(url_for("locust.index"))
        session["auth_error"] = "Wrong password"
        return redirect(url_for("locust.login"))

    web_ui.app.register_blueprint(auth)


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_: Any) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        return
    opts = environment.parsed_options
    now = time.time()
    processes = max(1, runner.worker_count) if isinstance(runner, MasterRunner) else 1
    data = {
        "schedule_from": now,
        "measure_from": now + float(getattr(opts, "rb_warmup", 0.0) or 0.0),
        "rate_per_process": float(getattr(opts, "rb_rate", 0.0) or 0.0) / processes,
    }
    _open_window(environment, data)
    if isinstance(runner, MasterRunner):
        runner.send_message("rb_window", data)
        gevent.spawn(_watch_workers, runner)


def _watch_workers(runner: MasterRunner) -> None:
    """Note each worker that goes missing (Locust stops hearing its heartbeat) or is dropped.
    What it reported before stays merged: nothing the master received is lost."""
    seen: set[str] = set()
    noted: set[str] = set()
    while True:
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
                lost_workers.append({"id": cid, "lost_at": time.time(),
                                     "samples_received": capture.samples_by_worker.get(cid, 0)})
        seen.update(present)
        gevent.sleep(WATCH_INTERVAL_S)


@events.report_to_master.add_listener
def _on_report_to_master(client_id: str, data: dict[str, Any]) -> None:
    data["rb_capture"] = capture.take()


@events.worker_report.add_listener
def _on_worker_report(client_id: str, data: dict[str, Any]) -> None:
    if "rb_capture" in data:
        capture.merge(data["rb_capture"], source=client_id)


def _save(environment: Environment, out: Path) -> None:
    runner = environment.runner
    workers: list[dict[str, Any]] = []
    if isinstance(runner, MasterRunner):
        workers = [{"id": c.id, "state": c.state} for c in runner.clients.all]
    out.mkdir(parents=True, exist_ok=True)
    capture.save(out, {
        "measure_from": window["measure_from"],
        "saved_at": time.time(),
        "model": getattr(environment.parsed_options, "rb_model", "closed"),
        "late_ms": LATE_MS,
        "workers": workers,
        "lost_workers": lost_workers,
        "master_pid": os.getpid(),
    })

