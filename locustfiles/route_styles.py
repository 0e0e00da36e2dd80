"""Locust user classes for routebench: one ``FastHttpUser`` per route style of the catalogue.

Run it through ``routebench run`` / ``make ui``, or by hand::

    locust -f locustfiles/route_styles.py --host http://127.0.0.1:8000 --class-picker

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
import csv
import os
import secrets
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gevent
from locust import FastHttpUser, constant, events, tag, task
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for ``locust -f`` from a clone

from locustfiles.capture import Capture  # noqa: E402
from routebench.rundir import CellDir, RunDir  # noqa: E402
from target_app import catalogue  # noqa: E402

LATE_MS = 10.0
WATCH_INTERVAL_S = 0.5
capture = Capture()
lost_workers: list[dict[str, Any]] = []  # master: workers that went missing mid-run, and when
# When load starts, when measuring starts (after warm-up), and the open model's rate per process.
window: dict[str, float | None] = {"schedule_from": None, "measure_from": None, "rate_per_process": None}


# The work-size fields travel as text: Locust's web UI posts every field as a string and converts
# it to the option's type, so an int option would turn an emptied field into a crash. Empty means
# "the server's default"; anything else is checked against the target's bounds before load starts.
WORK_OPTIONS = {"rb_ms": "ms", "rb_work": "work", "rb_k": "k"}


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    parser.add_argument("--rb-ms", default="", help="wait per request d in ms (empty: the server's default)")
    parser.add_argument("--rb-work", default="", help="CPU work in loop iterations, cpu family (empty: server default)")
    parser.add_argument("--rb-k", default="", help="fan-out width k, fanout family (empty: server default)")
    parser.add_argument("--rb-model", choices=["closed", "open"], default="closed", help="load model")
    parser.add_argument("--rb-rate", type=float, default=10.0, help="open model: requests/s per style, in all")
    parser.add_argument("--rb-warmup", type=float, default=0.0, help="seconds excluded before measuring")
    parser.add_argument("--rb-out", default="", help="directory for exact histograms (master)", include_in_web_ui=False)
    parser.add_argument(
        "--rb-default-classes",
        default="",
        include_in_web_ui=False,
        help="web UI: comma-separated user classes ticked when the form opens",
    )
    parser.add_argument(
        "--rb-no-capture",
        action="store_true",
        default=False,
        include_in_web_ui=False,
        help="record no exact histograms (to measure what the capture costs)",
    )


def work_sizes(opts: Any) -> dict[str, int]:
    """The per-request work sizes the options ask for, as query parameters (empty ones left out)."""
    out = {}
    for option, param in WORK_OPTIONS.items():
        raw = str(getattr(opts, option, "") or "").strip()
        if raw:
            out[param] = int(raw)
    return out


def check_form(form: Any) -> str | None:
    """Why the web UI's start form would make the target reject every request, or None."""
    from target_app.params import PARAMS

    for option, param in WORK_OPTIONS.items():
        raw = str(form.get(option, "")).strip()
        if not raw:
            continue
        spec = PARAMS[param]
        if not raw.lstrip("-").isdigit() or not spec.low <= int(raw) <= spec.high:
            return f"{option} = {raw!r}: must be {spec.describe()}, or empty for the server's default"
    for option in ("rb_rate", "rb_warmup"):
        if option not in form:
            continue  # not posted: the option keeps its value
        raw = str(form[option]).strip()
        try:
            value = float(raw)
        except ValueError:
            return f"{option} = {raw!r}: must be a number"
        if not 0 <= value < 1e6 or (option == "rb_rate" and value == 0):
            return f"{option} = {raw!r}: out of range"
    return None


class StyleUser(FastHttpUser):
    """Hits one route style. Subclasses are generated from the catalogue below."""

    abstract = True
    wait_time = constant(0)
    style: catalogue.RouteStyle
    _next_ticket = 0  # open model: this process's next scheduled start, per class

    def query(self) -> dict[str, int]:
        return {p: v for p, v in work_sizes(self.environment.parsed_options).items() if p in self.style.params}

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
    return type(
        style.class_name,
        (StyleUser,),
        {
            "style": style,
            "tasks": [tag(style.family)(task(run))],
            "__module__": __name__,
            "__doc__": f"{style.id}: {style.description}",
        },
    )


USER_CLASSES: dict[str, type[StyleUser]] = {s.id: _make_user(s) for s in catalogue.STYLES}
globals().update({cls.__name__: cls for cls in USER_CLASSES.values()})


@events.request.add_listener
def _on_request(name: str, response_time: float, exception: Any, **_: Any) -> None:
    # Like Locust's own stats: every response that completes in the window (the reset at
    # ``measure_from`` clears both), failures included, so the two can be compared.
    # Warm-up samples are never recorded: a report taken before this process's reset would
    # otherwise carry them into the window.
    if window["measure_from"] is None or time.time() < window["measure_from"]:
        return
    opts = getattr(_env, "parsed_options", None)
    if getattr(opts, "rb_model", "closed") == "open" or getattr(opts, "rb_no_capture", False):
        return  # open model: recorded from the intended start in _hit_on_schedule
    capture.record(name, int(response_time * 1000))


_env: Environment | None = None


def _open_window(environment: Environment, data: dict[str, float]) -> None:
    window.update(data)
    for cls in USER_CLASSES.values():
        cls._next_ticket = 0  # a new test, a new schedule
    measure_from = data["measure_from"]

    def reset() -> None:
        # Warm-up is over: Locust's own numbers start from here, like ours.
        if environment.runner is not None:
            environment.runner.stats.reset_all()
        capture.reset()

    gevent.spawn_later(max(0.0, measure_from - time.time()), reset)


@dataclass
class Test:
    """One test the master ran: a headless cell, or one Start..Stop of a web-UI session."""

    number: int
    started_at: float
    measure_from: float
    options: dict[str, Any]
    stopped_at: float | None = None
    saved: bool = False
    warnings: list[str] = field(default_factory=list)  # what makes this test's numbers less clean


tests: list[Test] = []  # master only
REPORT_WAIT_S = 3.0 + 1.0  # a worker's last report comes within one report interval (3 s) of its stop


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    global _env
    _env = environment
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        runner.register_message("rb_window", lambda environment, msg: _open_window(environment, msg.data))
        return
    opts = environment.parsed_options
    if environment.web_ui is not None:
        _extend_web_ui(environment)
        if getattr(opts, "web_login", False):
            from target_app.settings import Settings

            secret = Settings().ui_password
            if secret is None:
                raise SystemExit("--web-login needs ROUTEBENCH_UI_PASSWORD")
            _require_login(environment, secret.get_secret_value())
    out = getattr(opts, "rb_out", "")
    if out:
        # Locust fires ``quitting`` before the workers' final reports arrive; save after them.
        atexit.register(_save_last, environment, Path(out))


def _extend_web_ui(environment: Environment) -> None:
    """The start form as it comes must run: a sensible set of classes ticked, and values the
    target would reject refused with the reason before any load is sent."""
    from flask import jsonify, request

    web_ui = environment.web_ui
    assert web_ui is not None and web_ui.app is not None
    app = web_ui.app
    ticked = [c for c in str(getattr(environment.parsed_options, "rb_default_classes", "")).split(",") if c]
    if ticked:
        # The form's checkboxes start from ``available_user_classes``; its rows list ``users``, so
        # narrowing the first ticks a default set while every class stays listed.
        fill = web_ui.update_template_args

        def update_template_args() -> None:
            fill()
            listed = web_ui.template_args.get("available_user_classes") or []
            web_ui.template_args["available_user_classes"] = [c for c in listed if c in ticked]

        web_ui.update_template_args = update_template_args  # type: ignore[method-assign]

    @app.before_request
    def _check_swarm() -> Any:
        if request.method != "POST" or not request.path.endswith("/swarm"):
            return None
        problem = check_form(request.form)
        if problem:
            return jsonify({"success": False, "message": problem, "host": environment.host})
        if (
            tests
            and tests[-1].stopped_at is None
            and environment.runner is not None
            and environment.runner.state in ("spawning", "running")
        ):
            tests[-1].warnings.append(
                f"edited while running, {time.time() - tests[-1].started_at:.0f} s in: "
                "its users or work sizes changed, so its numbers mix two settings"
            )
        # Starting clears Locust's stats: the stopped test is saved first if its wait is not over.
        out = getattr(environment.parsed_options, "rb_out", "")
        if out and tests and tests[-1].stopped_at is not None and not tests[-1].saved:
            tests[-1].warnings.append(
                f"saved {time.time() - tests[-1].stopped_at:.1f} s after its stop, when the "
                f"next test started: up to {REPORT_WAIT_S - 1:.0f} s of worker reports may be missing"
            )
            _save_test(environment, Path(out), tests[-1])
        return None


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
    # Locust's login page reads "title" though its AuthArgs type does not declare it.
    web_ui.auth_args = {"username_password_callback": "/rb_login", "title": "routebench"}  # type: ignore[typeddict-unknown-key]
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
    lost_workers.clear()  # each test names its own
    tests.append(
        Test(
            len(tests) + 1,
            now,
            data["measure_from"],
            {
                **work_sizes(opts),
                "model": getattr(opts, "rb_model", "closed"),
                "arrival_rate": float(getattr(opts, "rb_rate", 0.0) or 0.0),
                "warmup_s": float(getattr(opts, "rb_warmup", 0.0) or 0.0),
            },
        )
    )
    _open_window(environment, data)
    if isinstance(runner, MasterRunner):
        runner.send_message("rb_window", data)
        gevent.spawn(_watch_workers, runner)


@events.test_stopping.add_listener
def _on_test_stopping(environment: Environment, **_: Any) -> None:
    # The load ends now; Locust's test_stop comes only once every worker has counted its users
    # down (polled once a second), which would stretch the window past the load.
    if not isinstance(environment.runner, WorkerRunner) and tests and tests[-1].stopped_at is None:
        tests[-1].stopped_at = time.time()


@events.test_stop.add_listener
def _on_test_stop(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner) or not tests:
        return
    test = tests[-1]
    test.stopped_at = test.stopped_at or time.time()
    out = getattr(environment.parsed_options, "rb_out", "")
    if out and in_session(environment):

        def save_after_last_reports() -> None:
            if not test.saved:
                _save_test(environment, Path(out), test)

        gevent.spawn_later(REPORT_WAIT_S, save_after_last_reports)


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
                lost_workers.append(
                    {"id": cid, "lost_at": time.time(), "samples_received": capture.samples_by_worker.get(cid, 0)}
                )
        seen.update(present)
        gevent.sleep(WATCH_INTERVAL_S)


@events.report_to_master.add_listener
def _on_report_to_master(client_id: str, data: dict[str, Any]) -> None:
    # Tagged with the window it was recorded in, so a report that arrives late (after the next
    # test of a web-UI session began) is not counted in the wrong test.
    data["rb_capture"] = {**capture.take(), "window": window["measure_from"]}


@events.worker_report.add_listener
def _on_worker_report(client_id: str, data: dict[str, Any]) -> None:
    payload = data.get("rb_capture")
    if payload and payload.get("window") == window["measure_from"]:
        capture.merge(payload, source=client_id)


def users_by_style(runner: Any) -> dict[str, int]:
    """Users each style ran with at the end of the test, from the workers' own counts."""
    counts = getattr(runner, "final_user_classes_count", None) or getattr(runner, "target_user_classes_count", {})
    by_class = {cls.__name__: style for style, cls in USER_CLASSES.items()}
    return {by_class[name]: int(n) for name, n in counts.items() if name in by_class and n}


def in_session(environment: Environment) -> bool:
    """A web-UI session (many tests, each saved as it ends), not a headless cell."""
    return environment.web_ui is not None and not getattr(environment.parsed_options, "headless", True)


def _save_last(environment: Environment, out: Path) -> None:
    if tests and not tests[-1].saved:
        _save_test(environment, out, tests[-1])


def _save_test(environment: Environment, out: Path, test: Test) -> None:
    """The test's exact histograms and per-second timeline. Headless, ``out`` is the cell's
    directory; in a web-UI session each test gets ``out/ui-NNN`` with Locust's CSVs beside it."""
    test.saved = True
    runner = environment.runner
    ended = test.stopped_at or time.time()
    session = in_session(environment)
    directory = RunDir(out).ui_test(test.number).path if session else out
    directory.mkdir(parents=True, exist_ok=True)
    workers: list[dict[str, Any]] = []
    if isinstance(runner, MasterRunner):
        workers = [{"id": c.id, "state": c.state} for c in runner.clients.all]
    capture.save(
        directory,
        {
            "measure_from": test.measure_from,
            "stopped_at": ended,
            "saved_at": time.time(),
            "model": test.options["model"],
            "late_ms": LATE_MS,
            "test": {**asdict(test), "users_by_style": users_by_style(runner)},
            "workers": workers,
            "lost_workers": lost_workers,
            "master_pid": os.getpid(),
        },
        window=(test.measure_from, ended),
    )
    if session:
        _save_locust_csvs(environment, out, directory, test)


def _save_locust_csvs(environment: Environment, out: Path, directory: Path, test: Test) -> None:
    """Locust's own numbers for one test of a session: its stats as they stand (Locust clears them
    when the next test starts), and the session's history rows that fall inside this test."""
    from locust.stats import PERCENTILES_TO_REPORT, StatsCSV

    writer = StatsCSV(environment, PERCENTILES_TO_REPORT)
    for name, write in (
        ("stats", writer.requests_csv),
        ("failures", writer.failures_csv),
        ("exceptions", writer.exceptions_csv),
    ):
        with CellDir(directory).locust_csv(name).open("w", newline="") as f:
            write(csv.writer(f))
    history = RunDir(out).session.history
    rows = list(csv.reader(history.open(newline=""))) if history.is_file() else []
    with CellDir(directory).history.open("w", newline="") as f:
        w = csv.writer(f)
        if rows:
            w.writerow(rows[0])
            at = rows[0].index("Timestamp")
            w.writerows(
                r
                for r in rows[1:]
                if r[at].isdigit() and test.measure_from <= int(r[at]) <= (test.stopped_at or time.time())
            )
