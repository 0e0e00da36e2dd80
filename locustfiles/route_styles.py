"""Locust user classes for routebench: one ``FastHttpUser`` per route style of the catalogue, or,
with your app (``ROUTEBENCH_ROUTES``: the run's ``routes.json``, routebench.routes), one per route.

Run it through ``routebench run`` / ``make ui``, or by hand::

    locust -f locustfiles/route_styles.py --host http://127.0.0.1:8000 --class-picker

The request name is the style id (your route: its path, ``METHOD path`` beyond GET); each task is
tagged with its family (``app`` for your routes). Two load models:

- closed (default): users with no think time, each sends its next request when the last answers;
- open (``--rb-model open --rb-rate R``): each style is started R times a second in all, on a fixed
  schedule, and latency counts from each request's *intended* start, so a slow server cannot hide
  its queue (coordinated omission). With N generator processes each runs R/N a second, process i
  offset by i/R, so arrivals are evenly spaced. A start more than ``LATE_MS`` behind schedule counts
  as late.

Exact latencies go to :mod:`locustfiles.capture`. The master never sends its clock: each process
opens its own window ``--rb-warmup`` seconds after it hears of the test (its own clock), resets
Locust's stats there, and closes it when the test stops. Requests the window closes on are kept as
censored samples at their elapsed time; each worker then sends a final report, and the master
saves the test once every worker's final report is in (or says whose is missing).

Lost requests are failures: geventhttpclient silently resends an idempotent request whose
connection died (a server worker killed under it), which would turn a lost request into a slow
one; that resend is off unless ``--rb-retry-lost``. Each worker tells the master its pid, the master
writes ``window.json`` when a test's window is set, and reads ``dead_workers.json`` (pids the
runner saw die), so its wait for final reports never waits for a process known to be dead.
"""

from __future__ import annotations

import atexit
import contextlib
import csv
import json
import math
import os
import secrets
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gevent
import geventhttpclient.client
import locust.runners
from locust import FastHttpUser, constant, events, tag, task
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for ``locust -f`` from a clone

from analysis import precision  # noqa: E402
from analysis.rundir import CellDir, RunDir, write_json  # noqa: E402
from locustfiles.capture import Capture  # noqa: E402
from routebench.routes import ROUTES_ENV, AppRoute, load_user_classes, routes_of  # noqa: E402
from target_app import catalogue, stalls  # noqa: E402
from target_app.telemetry import read_dir  # noqa: E402

LATE_MS = 10.0
WATCH_INTERVAL_S = 0.5
FINAL_WAIT_S = 5.0  # how long the master waits for the workers' final reports after a stop
PRECISION_CHECK_S = 1.0  # how often a precision-driven test asks whether its p99s are precise yet
# Workers report every second (Locust's default is 3): a precision-driven test sees its data sooner,
# and the live tab is fresher. A second is complete at the master once every worker reported after it.
locust.runners.WORKER_REPORT_INTERVAL = 1.0
REPORT_LAG_S = 2 * locust.runners.WORKER_REPORT_INTERVAL  # no worker reports known: wait this long
SEAL_AFTER_S = 30.0  # a second this old gets no more reports: the master keeps it encoded
REPORT_MARGIN_S = 0.01  # a response is stamped a moment before it is recorded
capture = Capture()
lost_workers: list[dict[str, Any]] = []  # master: workers that went missing mid-run, and when
worker_pids: dict[str, int] = {}  # master: each worker's process id, as it said when it connected


@dataclass
class Window:
    """This process's measured window, on its own clock."""

    test: int = 0  # the master's test number: reports from another test are not merged
    schedule_from: float | None = None  # open model: when this process's schedule starts
    measure_from: float | None = None
    # Open model with a tail: the schedule's starts in [measure_from, measure_until) are measured;
    # the load goes on until the stop, so each of them finishes or outlasts the tail (None: the stop).
    measure_until: float | None = None
    closed_at: float | None = None
    rate: float = 0.0  # open model: starts per second per style, in this process
    offset: float = 0.0  # open model: this process's first start after schedule_from
    final: bool = False  # a worker sent its final report for this test
    locust_reset: bool = False  # Locust's own stats were cleared for the window (a timer, run a moment late)

    def measuring(self, now: float) -> bool:
        return self.measure_from is not None and self.closed_at is None and now >= self.measure_from

    def intended(self, ticket: int) -> float:
        assert self.schedule_from is not None and self.rate > 0
        return self.schedule_from + self.offset + ticket / self.rate

    def tickets_before(self, t: float) -> int:
        """How many scheduled starts fall before ``t``, by the same arithmetic as ``intended``
        (an estimate, corrected for rounding at an exact boundary)."""
        assert self.schedule_from is not None and self.rate > 0
        k = max(0, math.ceil((t - self.schedule_from - self.offset) * self.rate))
        while k > 0 and self.intended(k - 1) >= t:
            k -= 1
        while self.intended(k) < t:
            k += 1
        return k


window = Window()
# Requests this process has in flight (sent, not yet answered) and open-model starts it has taken
# but not yet sent, by user: (request name, when its latency clock started).
in_flight: dict[int, tuple[str, float]] = {}
waiting: dict[int, tuple[str, float]] = {}


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
    parser.add_argument(
        "--rb-tail",
        type=float,
        default=0.0,
        include_in_web_ui=False,
        help="open model, fixed run time: the last seconds of the run keep the load on but measure no new start, "
        "so every start of the window finished or outlasted them when the test stops",
    )
    parser.add_argument(
        "--rb-run-time",
        type=float,
        default=0.0,
        include_in_web_ui=False,
        help="headless: stop after this many seconds, collect every worker's final report, save, quit",
    )
    parser.add_argument("--rb-out", default="", help="directory for exact histograms (master)", include_in_web_ui=False)
    parser.add_argument(
        "--rb-driven",
        action="store_true",
        default=False,
        include_in_web_ui=False,
        help="a program drives this master's tests through its web API (POST /swarm per test): each test "
        "saves to its own --rb-out and stops itself after --rb-run-time",
    )
    parser.add_argument(
        "--rb-precision",
        type=float,
        default=0.0,
        include_in_web_ui=False,
        help="stop a test once every style's p99 is known to within this relative half width (95%% interval), "
        "after --rb-run-time and before --rb-max-run-time (0: fixed run time)",
    )
    parser.add_argument(
        "--rb-max-run-time",
        type=float,
        default=0.0,
        include_in_web_ui=False,
        help="with --rb-precision: stop here whether or not the p99s are precise",
    )
    parser.add_argument(
        "--rb-default-classes",
        default="",
        include_in_web_ui=False,
        help="web UI: comma-separated user classes ticked when the form opens",
    )
    parser.add_argument(
        "--rb-retry-lost",
        action="store_true",
        default=False,
        include_in_web_ui=False,
        help="let geventhttpclient resend an idempotent request whose connection died (off: it fails, with its reason)",
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
    """Hits one route style (or one route of your app). Subclasses are generated below."""

    abstract = True
    wait_time = constant(0)
    style: catalogue.RouteStyle | AppRoute
    _next_ticket = 0  # open model: this process's next scheduled start, per class
    _sent_in_window = 0  # open model: starts of this class sent inside the window

    def on_stop(self) -> None:
        # Killed at the test's stop: its keep-alive connection closes now, so the next test on the
        # same server starts from no connection of this one's (the server would keep it 75 s).
        self.client.client.close()

    def query(self) -> dict[str, int]:
        return {p: v for p, v in work_sizes(self.environment.parsed_options).items() if p in self.style.params}

    def send(self, context: dict[str, Any] | None = None) -> None:
        """One request of this class: a style's GET with its work sizes, or your route as planned."""
        extra: dict[str, Any] = {"context": context} if context else {}
        route = self.style
        if isinstance(route, AppRoute):
            if route.json is not None:
                extra["json"] = route.json
            self.client.request(
                route.method,
                route.path,
                name=route.id,
                params=route.query or None,
                headers=route.headers or None,
                **extra,
            )
        else:
            self.client.get(route.path, params=self.query(), name=route.id, **extra)

    def hit(self) -> None:
        opts = self.environment.parsed_options
        if getattr(opts, "rb_model", "closed") == "open":
            self._hit_on_schedule()
            return
        in_flight[id(self)] = (self.style.id, time.time())
        try:
            self.send()
        finally:
            in_flight.pop(id(self), None)

    def _hit_on_schedule(self) -> None:
        if not window.rate or window.schedule_from is None or window.closed_at is not None:
            gevent.sleep(0.05)
            return
        cls = type(self)
        intended = window.intended(cls._next_ticket)
        cls._next_ticket += 1
        waiting[id(self)] = (self.style.id, intended)
        try:
            gevent.sleep(max(0.0, intended - time.time()))
        finally:
            waiting.pop(id(self), None)
        if window.closed_at is not None:
            return  # the window closed while this start waited: counted unsent at the close
        began = time.time()
        counted = window.measure_from is not None and intended >= window.measure_from
        counted = counted and (window.measure_until is None or intended < window.measure_until)
        if counted:
            cls._sent_in_window += 1
            lag_us = (began - intended) * 1_000_000
            capture.start_lag(self.style.id, lag_us)
            if lag_us > LATE_MS * 1000:
                capture.count(self.style.id, "late_starts")
        in_flight[id(self)] = (self.style.id, intended)
        try:
            self.send({"rb_intended": intended})
        finally:
            in_flight.pop(id(self), None)


def _make_user(style: catalogue.RouteStyle | AppRoute) -> type[StyleUser]:
    def run(self: StyleUser) -> None:
        self.hit()

    run.__name__ = style.id
    family = style.family if isinstance(style, catalogue.RouteStyle) else "app"
    return type(
        style.class_name,
        (StyleUser,),
        {
            "style": style,
            "tasks": [tag(family)(task(run))],
            "__module__": __name__,
            "__doc__": f"{style.id}: {style.description}",
        },
    )


def _yours(their: type[Any], name: str) -> type[Any]:
    """One of your locustfile's user classes, as it is, except that every request it sends is named
    by the class (one "route" of the probe, whatever its URLs) and is known to be in flight (a
    request the window closes on is kept as unfinished, as ours are)."""

    def on_start(self: Any) -> None:
        sent = self.client.request

        def request(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            kwargs["name"] = name
            in_flight[id(self)] = (name, time.time())
            try:
                return sent(method, url, *args, **kwargs)
            finally:
                in_flight.pop(id(self), None)

        self.client.request = request
        their.on_start(self)

    return type(name, (their,), {"on_start": on_start, "__module__": __name__, "abstract": False})


# Your app (routebench.routes: the plan's file in ROUTEBENCH_ROUTES): one class per route, or your
# own locustfile's classes; else one class per style of the catalogue.
_plan = json.loads(Path(os.environ[ROUTES_ENV]).read_text()) if os.environ.get(ROUTES_ENV) else None
STYLES: list[catalogue.RouteStyle | AppRoute] = (
    list(routes_of(_plan)) if _plan and not _plan.get("locustfile") else [] if _plan else list(catalogue.STYLES)
)
USER_CLASSES: dict[str, type[Any]] = {s.id: _make_user(s) for s in STYLES}
if _plan and _plan.get("locustfile"):
    USER_CLASSES = {name: _yours(cls, name) for name, cls in load_user_classes(Path(_plan["locustfile"])).items()}
globals().update({cls.__name__: cls for cls in USER_CLASSES.values()})


@events.request.add_listener
def _on_request(
    name: str, response_time: float, exception: Any, context: dict[str, Any] | None = None, **_: Any
) -> None:
    # Every response that completes in this process's window, failures in their own histogram.
    # Warm-up samples are never recorded (counted as rejected), so a report taken before the
    # window opened cannot carry them into it; nothing is recorded after the close (the
    # requests then in flight were recorded as censored at the close).
    opts = getattr(_env, "parsed_options", None)
    if getattr(opts, "rb_no_capture", False) or name not in USER_CLASSES:
        return
    now = time.time()
    intended = (context or {}).get("rb_intended")
    if getattr(opts, "rb_model", "closed") == "open":
        if intended is None:
            return
        if window.closed_at is not None or window.measure_from is None:
            return
        if intended < window.measure_from:
            # Scheduled in the warm-up: not part of the window's schedule (Locust counts it if it
            # completes after the window opened; the cross-check needs both numbers).
            capture.count(name, "warmup_rejected" if now < window.measure_from else "started_in_warmup")
            return
        if window.measure_until is not None and intended >= window.measure_until:
            capture.count(name, "after_window")  # started in the tail: load, not measured
            return
        micros = (now - intended) * 1_000_000  # from the intended start: coordinated omission counted
    else:
        if not window.measuring(now):
            if window.closed_at is None and window.measure_from is not None:
                capture.count(name, "warmup_rejected")
            return
        micros = response_time * 1000
    if not window.locust_reset:
        # Recorded here, then cleared from Locust's stats by the reset still to run: the
        # cross-check of the two counts allows for exactly these.
        capture.count(name, "before_locust_reset")
    capture.record(name, micros, now, kind="failed" if exception else "ok")


def close_window(environment: Environment) -> None:
    """The load stops now: every request this process has in flight, and in the open model every
    due start it has not sent, enters the distribution as a censored sample at its elapsed time."""
    if window.measure_from is None or window.closed_at is not None:
        return
    now = window.closed_at = time.time()
    opts = environment.parsed_options
    if getattr(opts, "rb_no_capture", False):
        return
    open_model = getattr(opts, "rb_model", "closed") == "open"
    # Open model: only starts scheduled in the window belong to it (``since`` is the intended start);
    # with a tail, the window ended before now and each of its starts still out has waited the tail.
    end = min(now, window.measure_until or now)
    for name, since in list(in_flight.values()):
        if open_model and since >= end:
            capture.count(name, "inflight_after_window")  # a tail's start: Locust may still count it
            continue
        if not open_model or window.measure_from <= since < end:
            capture.record(name, (now - since) * 1_000_000, now, kind="censored")
            capture.count(name, "inflight_at_stop")
    if not open_model or not window.rate:
        return
    running = getattr(environment.runner, "user_classes_count", {}) or {}
    for style, cls in USER_CLASSES.items():
        if not running.get(cls.__name__):
            continue  # no user of this class here: this process offered none of its starts
        unsent = [t for n, t in waiting.values() if n == style and window.measure_from <= t < end]
        ticket = cls._next_ticket
        while window.intended(ticket) < end:
            if window.intended(ticket) >= window.measure_from:
                unsent.append(window.intended(ticket))
            ticket += 1
        # Offered: the schedule's starts in [measure_from, end). Users take tickets ahead of time
        # (and sleep until them), so the ticket counter can run past now: count by time instead.
        offered = window.tickets_before(end) - window.tickets_before(window.measure_from)
        for t in unsent:
            capture.record(style, (now - t) * 1_000_000, now, kind="censored")
        capture.count(style, "offered", offered)
        capture.count(style, "sent", cls._sent_in_window)
        capture.count(style, "unsent_at_stop", len(unsent))


_env: Environment | None = None


def _open_window(environment: Environment, data: dict[str, Any]) -> None:
    """A new test: this process's window opens ``warmup_s`` after now, on its own clock, and each
    user class starts a fresh schedule (process i of N offset by i/R)."""
    now = time.time()
    runner = environment.runner
    processes = max(1, int(data.get("processes", 1)))
    # The master numbers the workers of this test 0..N-1 (Locust's own index keeps growing as
    # workers reconnect, so two could share an offset).
    index = int(data.get("indexes", {}).get(getattr(runner, "client_id", ""), 0)) % processes
    rate = float(data.get("rate", 0.0))
    global window
    measure_from = now + float(data.get("warmup_s", 0.0))
    window = Window(
        test=int(data["test"]),
        schedule_from=now,
        measure_from=measure_from,
        measure_until=measure_from + float(data["measure_s"]) if data.get("measure_s") else None,
        rate=rate / processes,
        offset=index / rate if rate else 0.0,
    )
    in_flight.clear()
    waiting.clear()
    capture.reset()
    for cls in USER_CLASSES.values():
        cls._next_ticket = 0
        cls._sent_in_window = 0
    test = window.test

    def reset() -> None:
        # Warm-up is over: Locust's own numbers start from here, like ours (ours never held any).
        if window.test != test or environment.runner is None:
            return
        early = measure_from - time.time()
        if early > 0:  # a timer may fire a moment early: Locust would count warm-up responses
            gevent.spawn_later(early, reset)
            return
        environment.runner.stats.reset_all()
        window.locust_reset = True

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
    workers_at_stop: list[str] = field(default_factory=list)  # whose final report the master expects
    final_reports: list[str] = field(default_factory=list)  # whose final report arrived

    dead: list[str] = field(default_factory=list)  # workers whose process the runner saw die
    out: str = ""  # where this test's files go (--rb-out when it started)
    reported_at: dict[str, float] = field(default_factory=dict)  # when each worker took its last report
    workers_at_start: list[str] = field(default_factory=list)  # those told of the test (rb_window)
    stopped_by: str = ""  # "run time", "precision reached", "maximum window", or empty (stopped by hand)
    measure_until: float | None = None  # with a tail (--rb-tail): the window ends here, the test later
    # A precision-driven test's last check: the seconds it covered (up to ``until``) and the p99
    # intervals it saw. The final intervals, over the whole window, can be wider.
    last_check: dict[str, Any] = field(default_factory=dict)

    def finals_in(self) -> bool:
        """Every final report that can still come is in: a dead process sends none."""
        if self.workers_at_stop and not set(self.workers_at_stop) <= set(self.final_reports):
            self.dead = known_dead()
        return set(self.workers_at_stop) <= set(self.final_reports) | set(self.dead)


tests: list[Test] = []  # master only


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    global _env
    _env = environment
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        runner.register_message("rb_window", lambda environment, msg: _open_window(environment, msg.data))
        runner.send_message("rb_hello", {"pid": os.getpid()})
        # After Locust's own stats listener (the runner registered it before this event fired).
        environment.events.report_to_master.add_listener(_keep_warmup_out_of_locusts_stats)
        return
    if isinstance(runner, MasterRunner):
        runner.register_message("rb_hello", _on_hello)
    opts = environment.parsed_options
    if environment.web_ui is not None:
        _extend_web_ui(environment)
        if getattr(opts, "web_login", False):
            from target_app.settings import Settings

            secret = Settings().ui_password
            if secret is None:
                raise SystemExit("--web-login needs ROUTEBENCH_UI_PASSWORD")
            _require_login(environment, secret.get_secret_value())
    if getattr(opts, "rb_out", ""):
        # Locust fires ``quitting`` before the workers' final reports arrive; save after them.
        atexit.register(_save_last, environment)


LIVE_S = 10.0  # the routebench tab's server evidence covers the last this many seconds
LIVE_COLUMNS = [
    {"key": "style", "title": "style"},
    {"key": "rps", "title": "req/s (Locust, current)"},
    {"key": "p50", "title": "p50 ms (exact, successes this test)"},
    {"key": "p95", "title": "p95 ms (exact)"},
    {"key": "p99", "title": "p99 ms (exact)"},
    {"key": "blocked", "title": f"loop blocked, last {LIVE_S:g} s"},
    {"key": "site", "title": "top blocking call site"},
    {"key": "lag", "title": f"worst loop lag ms, last {LIVE_S:g} s (server)"},
    {"key": "tokens", "title": "threadpool tokens in use, most (server)"},
]


def live_rows(environment: Environment) -> list[dict[str, str]]:
    """One row per style of the current test: exact percentiles from the histograms merged from
    every worker (wherever it runs), Locust's current req/s, and the server's evidence over the
    last ``LIVE_S`` seconds from its ``/telemetry?workers=all``: the share of the time its loops
    were stalled by this style's requests and where, its worst lag and most tokens in use."""
    runner = environment.runner
    rps = {name: e.current_rps for (name, _m), e in runner.stats.entries.items()} if runner is not None else {}
    now = time.time()
    since = max(now - LIVE_S, tests[-1].started_at if tests else 0.0)  # never the previous test's
    samples = _server_samples(environment, since)
    covered_ms = stalls.covered_s(samples, since, now) * 1000
    lag = max((float(s.get("lag_ms") or 0) for s in samples), default=None)
    tokens = max((int(s.get("threads_busy") or 0) for s in samples), default=None)
    rows = []
    for style in sorted(set(capture.histograms["ok"]) | set(rps)):
        if style not in USER_CLASSES:
            continue
        h = capture.histograms["ok"].get(style)
        counted = h is not None and h.get_total_count() > 0
        sites: dict[str, float] = {}
        for s in samples:
            for site, info in (s.get("sites") or {}).items():
                if info.get("route") == getattr(getattr(USER_CLASSES[style], "style", None), "path", None):
                    sites[site] = sites.get(site, 0.0) + float(info.get("ms", 0))
        # This style's share of the stalls (by the route running), of the clipped stall time.
        total_sites = sum(float(i.get("ms", 0)) for s in samples for i in (s.get("sites") or {}).values())
        clipped = stalls.clipped_ms(samples, since, now)
        blocked = clipped * sum(sites.values()) / total_sites / covered_ms if total_sites and covered_ms else 0.0
        rows.append(
            {
                "style": style,
                "rps": f"{rps.get(style, 0.0):,.1f}",
                **{f"p{q}": f"{h.get_value_at_percentile(q) / 1000:,.1f}" if counted else "" for q in (50, 95, 99)},  # type: ignore[union-attr]
                "blocked": f"{blocked:.0%}" if samples else "no server evidence",
                "site": max(sites, key=lambda k: sites[k]) if sites else "",
                "lag": f"{lag:,.1f}" if lag is not None else "",
                "tokens": str(tokens) if tokens is not None else "",
            }
        )
    return rows


def _server_samples(environment: Environment, since: float) -> list[dict[str, Any]]:
    """Every server worker's telemetry after ``since``: from the telemetry directory beside the
    master's output when the stack writes there (``make ui``: read here, so a blocked server
    need not answer), else from the target's ``/telemetry?workers=all``; none if neither says."""
    import urllib.request

    out = str(getattr(environment.parsed_options, "rb_out", "") or "")
    directory = RunDir(Path(out)).telemetry if out else None
    if directory is not None and directory.is_dir():
        return read_dir(directory, since)
    host = environment.host or ""
    try:
        with urllib.request.urlopen(f"{host.rstrip('/')}/telemetry?workers=all&since={since}", timeout=1.5) as r:
            body = json.loads(r.read())
    except (OSError, ValueError):
        return []
    samples = body.get("samples") if isinstance(body, dict) else None
    return samples if isinstance(samples, list) else []


def _on_hello(environment: Environment, msg: Any) -> None:
    worker_pids[msg.node_id] = int(msg.data["pid"])


def known_dead() -> list[str]:
    """The workers whose process the runner saw die: pids in ``--rb-out``'s ``dead_workers.json``."""
    out = str(getattr(_env.parsed_options, "rb_out", "") or "") if _env is not None else ""
    path = CellDir(Path(out)).dead_workers if out else None
    if path is None or not path.is_file():
        return []
    try:
        pids = {int(p) for p in json.loads(path.read_text())}
    except (OSError, ValueError, TypeError):
        return []
    return sorted(cid for cid, pid in worker_pids.items() if pid in pids)


def _no_silent_resend(method: str) -> bool:
    """geventhttpclient's test for resending a request whose connection died (GET: yes), unless
    ``--rb-retry-lost``: a lost request is then a failure with its reason, not a slow success."""
    opts = _env.parsed_options if _env is not None else None
    return bool(getattr(opts, "rb_retry_lost", False)) and _may_resend(method)


_may_resend = geventhttpclient.client._may_retry_after_send_error
geventhttpclient.client._may_retry_after_send_error = _no_silent_resend


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

    # The "routebench" tab: Locust's own extension points (an extra tab, its table's columns, and
    # rows added to the stats response the page polls every couple of seconds).
    web_ui.template_args["extended_tabs"] = [{"title": "routebench", "key": "routebench"}]
    web_ui.template_args["extended_tables"] = [{"key": "routebench", "structure": LIVE_COLUMNS}]

    @app.after_request
    def _routebench_tab(response: Any) -> Any:
        # No one watches a driven master's page: its stats polls stay cheap and the target unasked.
        if driven(environment) or not request.path.endswith("/stats/requests") or response.status_code != 200:
            return response
        if not response.is_json:
            return response
        body = response.get_json()
        body["extended_stats"] = [{"key": "routebench", "data": live_rows(environment)}]
        response.set_data(json.dumps(body))
        return response

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
        if tests and tests[-1].out and tests[-1].stopped_at is not None and not tests[-1].saved:
            tests[-1].warnings.append(
                f"saved {time.time() - tests[-1].stopped_at:.1f} s after its stop, when the "
                "next test started: workers' final reports may be missing"
            )
            _save_test(environment, tests[-1])
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
    warmup = float(getattr(opts, "rb_warmup", 0.0) or 0.0)
    # A relative delay, never this host's clock: each process opens its window on receipt.
    number = len(tests) + 1
    indexes = (
        {c.id: i for i, c in enumerate(sorted(runner.clients.all, key=lambda c: c.id))}
        if isinstance(runner, MasterRunner)
        else {}
    )
    open_model = getattr(opts, "rb_model", "closed") == "open"
    data = {
        "test": number,
        "warmup_s": warmup,
        "rate": float(getattr(opts, "rb_rate", 0.0) or 0.0) if open_model else 0.0,
        "processes": max(1, runner.worker_count) if isinstance(runner, MasterRunner) else 1,
        "indexes": indexes,
    }
    tail, run_time = float(getattr(opts, "rb_tail", 0.0) or 0.0), float(getattr(opts, "rb_run_time", 0.0) or 0.0)
    measure_s = run_time - warmup - tail if open_model and tail > 0 and not precision_options(opts) else 0.0
    if measure_s > 0:
        data["measure_s"] = measure_s  # a length: each process ends its own window
    lost_workers.clear()  # each test names its own
    tests.append(
        Test(
            number,
            now,
            now + warmup,
            {
                **work_sizes(opts),
                "model": getattr(opts, "rb_model", "closed"),
                "arrival_rate": float(getattr(opts, "rb_rate", 0.0) or 0.0),
                "warmup_s": warmup,
                **precision_options(opts),
            },
            out=str(getattr(opts, "rb_out", "") or ""),
            workers_at_start=[str(w) for w in indexes],
            measure_until=now + warmup + measure_s if measure_s > 0 else None,
        )
    )
    _open_window(environment, data)
    out = tests[-1].out
    if out and (driven(environment) or not in_session(environment)):
        # For the runner: whether a generator process it saw die was lost before the window or in it.
        write_json(CellDir(Path(out)).window, {"test": number, "started_at": now, "measure_from": now + warmup})
    if isinstance(runner, MasterRunner):
        runner.send_message("rb_window", data)
        gevent.spawn(_watch_workers, runner, number)
    if run_time > 0 and (driven(environment) or not in_session(environment)):
        gevent.spawn(_stop_when_done, environment, tests[-1])


def precision_options(opts: Any) -> dict[str, float]:
    """A precision-driven test's target and windows (seconds of measuring, warm-up excluded), or nothing."""
    target = float(getattr(opts, "rb_precision", 0.0) or 0.0)
    if target <= 0:
        return {}
    warmup = float(getattr(opts, "rb_warmup", 0.0) or 0.0)
    return {
        "precision_target": target,
        "min_window_s": float(getattr(opts, "rb_run_time", 0.0) or 0.0) - warmup,
        "max_window_s": float(getattr(opts, "rb_max_run_time", 0.0) or 0.0) - warmup,
    }


def window_seconds(test: Test, until: float) -> dict[str, list[tuple[int, Any]]]:
    """Each style's per-second histograms (merged from every worker) of the window's whole seconds
    up to ``until``."""
    by_style: dict[str, list[tuple[int, Any]]] = {}
    for (name, second), h in capture.per_second():
        if test.measure_from <= second and second + 1 <= until:
            by_style.setdefault(name, []).append((second, h))
    return by_style


def complete_until(environment: Environment, test: Test) -> float:
    """Up to when every worker's responses have reached the master: the earliest of the moments
    their last reports were taken (each carries everything its worker recorded before it, on its
    own clock), a moment's margin off. A worker slow to report (a starved process) holds the check
    back instead of thinning its seconds. Workers on other hosts are taken to keep this host's time."""
    runner = environment.runner
    # Those told of the test and still heard from: one gone missing cannot hold the check back.
    present = {c.id for c in runner.clients.all if c.state != "missing"} if isinstance(runner, MasterRunner) else set()
    workers = [w for w in test.workers_at_start if w in present]
    if not workers:
        return time.time() - REPORT_LAG_S
    if any(w not in test.reported_at for w in workers):
        return test.measure_from
    return min(test.reported_at[w] for w in workers) - REPORT_MARGIN_S


def p99_intervals(test: Test, until: float, points: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Each style's p99 with its interval (analysis.precision) over the window up to ``until``,
    centred on ``points`` where given. An interval that cannot be computed says why: it never
    costs the test its save."""
    out = {}
    for name, seconds in window_seconds(test, until).items():
        try:
            out[name] = precision.quantile_interval(seconds, point=(points or {}).get(name))
        except Exception as exc:  # noqa: BLE001 (kept in the results, in words)
            out[name] = {"q": 99.0, "batches": 0, "reason": f"the interval could not be computed: {exc!r}"}
    return out


def _stop_when_done(environment: Environment, test: Test) -> None:
    """A driven test stops itself: after its run time, or, precision-driven, once every style's p99
    is precise enough (checked each second from the minimum window on, over the seconds every
    worker has reported) or at the maximum window, whichever comes first."""
    runner = environment.runner
    assert runner is not None
    opts = environment.parsed_options
    target = float(test.options.get("precision_target", 0.0))
    gevent.sleep(max(0.0, test.started_at + float(getattr(opts, "rb_run_time", 0.0)) - time.time()))
    if target > 0:
        deadline = test.measure_from + float(test.options["max_window_s"])
        while time.time() < deadline and tests and tests[-1] is test and test.stopped_at is None:
            until = complete_until(environment, test)
            intervals = p99_intervals(test, until)
            test.last_check = {"until": until, "intervals": intervals}
            if intervals and all(precision.precise_enough(i, target) for i in intervals.values()):
                test.stopped_by = "precision reached"
                break
            gevent.sleep(min(PRECISION_CHECK_S, max(0.0, deadline - time.time())))
        if not test.stopped_by and time.time() >= deadline:
            test.stopped_by = "maximum window"
    else:
        test.stopped_by = "run time"
    if tests and tests[-1] is test and test.stopped_at is None:
        if isinstance(runner, MasterRunner) and driven(environment):
            _stop_without_waiting(runner)
        else:
            runner.stop()
    if not in_session(environment):
        _save_quit(environment, test)


def _stop_without_waiting(runner: MasterRunner) -> None:
    """Locust's own stop, less its wait: the master sends each worker "stop" and then polls, once a
    second, until none has users, and only then ends the test (``test_stop``). A driven master
    does not wait: the test is saved once every worker's final report is in, and the runner starts
    the next test once Locust's state says every worker stopped (``stopped``), so a test never
    begins while the last one's stop is still counting its users down."""
    from locust.rpc import Message

    for client in runner.clients.all:
        runner.server.send_to_client(Message("stop", None, client.id))
    runner.stop(send_stop_to_client=False)


def _save_quit(environment: Environment, test: Test) -> None:
    """Headless end of a cell, once the load is stopped: wait for every worker's final report, save,
    quit. (Locust's own ``--run-time`` would quit at once and drop reports that come later.)"""
    runner = environment.runner
    assert runner is not None
    deadline = time.time() + FINAL_WAIT_S
    while isinstance(runner, MasterRunner) and not test.finals_in() and time.time() < deadline:
        gevent.sleep(0.05)
    if test.out and not test.saved:
        _save_test(environment, test)
    runner.quit()


@events.test_stopping.add_listener
def _on_test_stopping(environment: Environment, **_: Any) -> None:
    # The load ends now; Locust's test_stop comes only once every worker has counted its users
    # down (polled once a second), which would stretch the window past the load.
    runner = environment.runner
    if not isinstance(runner, MasterRunner):
        close_window(environment)  # a process with users: censor what is still in flight
    if isinstance(runner, WorkerRunner) or not tests or tests[-1].stopped_at is not None:
        return
    test = tests[-1]
    test.stopped_at = time.time()
    if isinstance(runner, MasterRunner):
        test.workers_at_stop = [c.id for c in runner.clients.all if c.state != "missing"]
    if test.out and in_session(environment):
        gevent.spawn(_save_after_final_reports, environment, test)
    if test.out and (driven(environment) or not in_session(environment)):
        # For the runner: a precision-driven window ends when it stops, not at a known time.
        write_json(
            CellDir(Path(test.out)).window,
            {
                "test": test.number,
                "started_at": test.started_at,
                "measure_from": test.measure_from,
                "stopped_at": test.stopped_at,
            },
        )


@events.test_stop.add_listener
def _on_test_stop(environment: Environment, **_: Any) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        # Users are stopped: everything this process measured (ours and Locust's stats) goes to
        # the master now, marked final, instead of waiting up to 3 s for the next periodic report.
        window.final = True
        runner._send_stats()


def _save_after_final_reports(environment: Environment, test: Test) -> None:
    """A session's test is saved once every worker's final report is in (each sends it when its
    users have stopped), not when Locust's master notices they stopped (it polls once a second)."""
    gevent.sleep(0.05)  # let the workers hear of the stop first
    deadline = time.time() + FINAL_WAIT_S
    while not test.finals_in() and time.time() < deadline:
        gevent.sleep(0.02)
    if not test.saved:
        _save_test(environment, test)


def _watch_workers(runner: MasterRunner, test: int) -> None:
    """Note each worker that goes missing (Locust stops hearing its heartbeat) or is dropped during
    test number ``test``. What it reported before stays merged: nothing the master received is lost."""
    seen: set[str] = set()
    noted: set[str] = set()
    while True:
        if not tests or tests[-1].number != test:
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
                lost_workers.append(
                    {
                        "id": cid,
                        "pid": worker_pids.get(cid),
                        "lost_at": time.time(),
                        "samples_received": capture.samples_by_worker.get(cid, 0),
                    }
                )
        seen.update(present)
        gevent.sleep(WATCH_INTERVAL_S)


@events.report_to_master.add_listener
def _on_report_to_master(client_id: str, data: dict[str, Any]) -> None:
    # Tagged with the test it was recorded in, so a report that arrives late (after the next
    # test of a web-UI session began) is not counted in the wrong test.
    data["rb_capture"] = {**capture.take(), "test": window.test, "final": window.final, "taken_at": time.time()}


def _keep_warmup_out_of_locusts_stats(client_id: str, data: dict[str, Any]) -> None:
    """A worker's report sent before its own window opened carries warm-up requests in Locust's
    stats. The master reset its stats at its own window's start, a moment earlier (it sent the
    delay first), so such a report can land after that reset and be counted in the window.
    Sent empty instead: Locust's counts then cover the window, as the exact ones do."""
    if window.measure_from is None or window.closed_at is not None or time.time() >= window.measure_from:
        return
    from locust.stats import StatsEntry

    runner = _env.runner if _env is not None else None
    if runner is None:
        return
    data["stats"] = []
    data["stats_total"] = StatsEntry(runner.stats, "Aggregated", None).serialize()  # type: ignore[arg-type]
    data["errors"] = {}


@events.worker_report.add_listener
def _on_worker_report(client_id: str, data: dict[str, Any]) -> None:
    payload = data.get("rb_capture")
    if not payload or not tests or payload.get("test") != tests[-1].number or tests[-1].saved:
        return
    capture.merge(payload, source=client_id)
    capture.seal(time.time() - SEAL_AFTER_S)
    tests[-1].reported_at[client_id] = float(payload.get("taken_at") or 0.0)
    if payload.get("final") and client_id not in tests[-1].final_reports:
        tests[-1].final_reports.append(client_id)  # (a worker told to quit after its stop reports again)


def users_by_style(runner: Any) -> dict[str, int]:
    """Users each style ran with at the end of the test, from the workers' own counts."""
    counts = getattr(runner, "final_user_classes_count", None) or getattr(runner, "target_user_classes_count", {})
    by_class = {cls.__name__: style for style, cls in USER_CLASSES.items()}
    return {by_class[name]: int(n) for name, n in counts.items() if name in by_class and n}


def locust_counts(runner: Any) -> dict[str, dict[str, int]]:
    """Locust's request and failure counts per name, as its stats stand now."""
    if runner is None:
        return {}
    return {
        name: {"requests": int(e.num_requests), "failures": int(e.num_failures)}
        for (name, _method), e in runner.stats.entries.items()
    }


def driven(environment: Environment) -> bool:
    """A session whose tests a program starts through the web API (``routebench run``)."""
    return bool(getattr(environment.parsed_options, "rb_driven", False))


def in_session(environment: Environment) -> bool:
    """A web-UI session (many tests, each saved as it ends), not a headless cell."""
    return environment.web_ui is not None and not getattr(environment.parsed_options, "headless", True)


def _save_last(environment: Environment) -> None:
    if tests and tests[-1].out and not tests[-1].saved:
        _save_test(environment, tests[-1])


def _save_test(environment: Environment, test: Test) -> None:
    """The test's exact histograms, per-second timeline and p99 intervals. Headless or driven, its
    ``--rb-out`` is the cell's directory; in a web-UI session each test gets ``<rb-out>/ui-NNN``;
    in a session (driven or not) Locust's CSVs for the test go beside them."""
    test.saved = True
    runner = environment.runner
    ended = test.stopped_at or time.time()
    session = in_session(environment)
    out = Path(test.out)
    directory = RunDir(out).ui_test(test.number).path if session and not driven(environment) else out
    directory.mkdir(parents=True, exist_ok=True)
    workers: list[dict[str, Any]] = []
    if isinstance(runner, MasterRunner):
        workers = [{"id": c.id, "state": c.state} for c in runner.clients.all]
    missing = [w for w in test.workers_at_stop if w not in test.final_reports]
    test.dead = known_dead()
    if session:
        _save_locust_csvs(environment, directory, test)
    points = {name: e["percentiles_us"].get("99") for name, e in capture.summary().items()}
    # exact.json last: a driven test is saved once it exists.
    capture.save(
        directory,
        {
            "measure_from": test.measure_from,
            "measure_until": test.measure_until,
            "stopped_at": ended,
            "saved_at": time.time(),
            "model": test.options["model"],
            "late_ms": LATE_MS,
            "test": {**asdict(test), "users_by_style": users_by_style(runner)},
            "workers": workers,
            "lost_workers": lost_workers,
            "final_reports": {
                "expected": test.workers_at_stop,
                "received": test.final_reports,
                "missing": missing,
                "dead": [w for w in test.dead if w in missing],  # none can come: the process died
            },
            "worker_pids": worker_pids,
            # Locust's own counts once the final reports are in, to cross-check the exact ones.
            "locust_counts": locust_counts(runner),
            "master_pid": os.getpid(),
            "p99_intervals": p99_intervals(test, ended, points),
        },
        window=(test.measure_from, test.measure_until or ended),  # a tail's seconds hold only late finishers
    )


def _save_locust_csvs(environment: Environment, directory: Path, test: Test) -> None:
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
    prefix = str(getattr(environment.parsed_options, "csv_prefix", "") or "")
    from locust.stats import StatsCSVFileWriter

    session_writer = getattr(environment.web_ui, "stats_csv_writer", None)
    if isinstance(session_writer, StatsCSVFileWriter):
        with contextlib.suppress(ValueError):  # closed: Locust is quitting, its rows are written
            session_writer.stats_history_flush()  # the rows up to now (Locust flushes every few seconds)
    history = Path(f"{prefix}_stats_history.csv") if prefix else directory / "none"
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
