"""The Locust user classes: one ``FastHttpUser`` per route style of the catalogue, or, with your app,
one per route of its plan, or your own locustfile's classes, each wrapped.

The request name is the style id (your route: its path, ``METHOD path`` beyond GET); each task is
tagged with its family (``app`` for your routes). Closed model (default): users with no think time,
each sends its next request when the last answers. Open model: a user takes the style's next
scheduled start (locustfiles.plugin.window), sleeps until it and sends, so the latency counts from
the intended start. Every request in flight is known, so the window's close can censor it.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any, ClassVar

import gevent
from gevent.pool import Pool
from locust import FastHttpUser, constant, tag, task

from locustfiles.plugin.measure import say_if_finished
from locustfiles.plugin.plan import AppRoute, load_user_classes, routes_of
from locustfiles.plugin.state import ProcessState
from locustfiles.plugin.window import INTENDED, LATE_MS, STARTED, canary_schedule
from target_app import catalogue
from target_app.catalogue import CANARY, CANARY_CLASS

IDLE_S = 0.05  # open model: how long a user waits for a window with a schedule
# The canary's keys in the in-flight and waiting records: negative, so never a style user's id().
_CANARY_KEYS = itertools.count(-1, -1)


class StyleUser(FastHttpUser):
    """Hits one route style (or one route of your app). Subclasses are made by :func:`user_classes`."""

    abstract = True
    wait_time = constant(0)
    style: catalogue.RouteStyle | AppRoute
    process: ClassVar[ProcessState]

    def on_stop(self) -> None:
        # Killed at the test's stop: its keep-alive connection closes now, so the next test on the
        # same server starts from no connection of this one's (the server would keep it 75 s).
        self.client.client.close()

    def query(self) -> dict[str, int]:
        return {p: v for p, v in self.process.options.work_sizes().items() if p in self.style.params}

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
        process = self.process
        if process.options.open_model:
            self._hit_on_schedule()
            return
        sent = time.time()
        process.in_flight[id(self)] = (self.style.id, sent)
        try:
            self.send({STARTED: sent})
        finally:
            process.in_flight.pop(id(self), None)
            say_if_finished(process, process.environment)

    def _hit_on_schedule(self) -> None:
        process, style = self.process, self.style.id
        window = process.window
        if not window.rate or window.schedule_from is None or window.closed_at is not None:
            gevent.sleep(IDLE_S)
            return
        schedule = process.schedule(style)
        intended = window.intended(schedule.next_ticket)
        schedule.next_ticket += 1
        process.waiting[id(self)] = (style, intended)
        try:
            gevent.sleep(max(0.0, intended - time.time()))
        finally:
            process.waiting.pop(id(self), None)
        window = process.window  # as it stands after the sleep
        if window.closed_at is not None:
            return  # the window closed while this start waited: counted unsent at the close
        began = time.time()
        if window.scheduled_in(intended):
            process.schedule(style).sent_in_window += 1
            lag_us = (began - intended) * 1_000_000
            process.capture.start_lag(style, lag_us)
            if lag_us > LATE_MS * 1000:
                process.capture.count(style, "late_starts")
        process.in_flight[id(self)] = (style, intended)
        try:
            self.send({INTENDED: intended})
        finally:
            process.in_flight.pop(id(self), None)


class CanaryBase(FastHttpUser):
    """The canary (catalogue.CANARY): one user, in one process, that starts a request of the canary
    route on its own fixed schedule and does not wait for the answer to start the next (each is
    sent from a greenlet of its own), so a held event loop delays its requests, never its starts.
    Made per process by :func:`canary_user`."""

    abstract = True
    fixed_count = 1  # one more user than the cell's: the runner asks Locust for it
    wait_time = constant(0)
    concurrency = 100  # connections the canary may hold at once: its starts never wait for one
    process: ClassVar[ProcessState]

    def on_start(self) -> None:
        self.sending = Pool()

    def on_stop(self) -> None:
        self.sending.kill(block=False)
        self.client.client.close()

    @task
    def tick(self) -> None:
        process = self.process
        window, options = process.window, process.options
        path = options.canary
        if not path or options.canary_rate <= 0 or window.schedule_from is None or window.closed_at is not None:
            gevent.sleep(IDLE_S)
            return
        # Made here, not when the window opens: a worker may hear of a test's options (Locust's spawn
        # message) after its window opened.
        schedule = process.schedules.get(CANARY)
        if schedule is None:
            schedule = process.schedules[CANARY] = canary_schedule(window, options.canary_rate)
            assert schedule.timetable is not None
            # From now: a canary that Locust moved here mid-test does not fire the starts it missed
            # at once (its record then lacks them, and the analysis sets it aside: summary.canary).
            schedule.next_ticket = schedule.timetable.before(time.time())
        assert schedule.timetable is not None
        intended = schedule.timetable.at(schedule.next_ticket)
        schedule.next_ticket += 1
        key = next(_CANARY_KEYS)  # one per start: this user has many in flight
        process.waiting[key] = (CANARY, intended)
        try:
            gevent.sleep(max(0.0, intended - time.time()))
        finally:
            process.waiting.pop(key, None)
        if process.window is not window or window.closed_at is not None:
            return  # the window closed while this start waited: counted unsent at the close
        if window.scheduled_in(intended):
            schedule.sent_in_window += 1
            lag_us = (time.time() - intended) * 1_000_000
            process.capture.start_lag(CANARY, lag_us)
            if lag_us > LATE_MS * 1000:
                process.capture.count(CANARY, "late_starts")
        process.in_flight[key] = (CANARY, intended)
        self.sending.spawn(self._send, path, key, intended)

    def _send(self, path: str, key: int, intended: float) -> None:
        try:
            self.client.get(path, name=CANARY, context={INTENDED: intended})
        finally:
            self.process.in_flight.pop(key, None)
            say_if_finished(self.process, self.process.environment)


def canary_user(process: ProcessState) -> type[CanaryBase]:
    return type(CANARY_CLASS, (CanaryBase,), {"process": process, "abstract": False, "__module__": __name__})


def style_user(style: catalogue.RouteStyle | AppRoute, process: ProcessState) -> type[StyleUser]:
    """The user class of one route style, or of one route of your app."""

    def run(self: StyleUser) -> None:
        self.hit()

    run.__name__ = style.id
    family = style.family if isinstance(style, catalogue.RouteStyle) else "app"
    return type(
        style.class_name,
        (StyleUser,),
        {
            "style": style,
            "process": process,
            "tasks": [tag(family)(task(run))],
            "__module__": __name__,
            "__doc__": f"{style.id}: {style.description}",
        },
    )


def yours(their: type[Any], name: str, process: ProcessState) -> type[Any]:
    """One of your locustfile's user classes, as it is, except that every request it sends is named
    by the class (one "route" of the probe, whatever its URLs) and is known to be in flight (a
    request the window closes on is kept as unfinished, as ours are), and the think time its users
    ask for (its ``wait_time``) is summed over the window."""

    def on_start(self: Any) -> None:
        sent = self.client.request

        def request(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            kwargs["name"] = name
            began = time.time()
            kwargs["context"] = {**(kwargs.get("context") or {}), STARTED: began}
            process.in_flight[id(self)] = (name, began)
            try:
                return sent(method, url, *args, **kwargs)
            finally:
                process.in_flight.pop(id(self), None)
                say_if_finished(process, process.environment)

        self.client.request = request
        their.on_start(self)

    attrs: dict[str, Any] = {"on_start": on_start, "__module__": __name__, "abstract": False}
    their_wait = getattr(their, "wait_time", None)
    if their_wait is not None:

        def wait_time(self: Any) -> float:
            # The think time each user asks for between its tasks, summed over the window: Little's
            # law for users who think is U = X (R + Z) (analysis.validity).
            seconds = float(their_wait(self))
            window = process.window
            if window.closed_at is None and window.scheduled_in(time.time()):  # the window's, not after it
                process.capture.count(name, "think_us", int(seconds * 1_000_000))
            return seconds

        attrs["wait_time"] = wait_time
    return type(name, (their,), attrs)


def user_classes(plan: dict[str, Any] | None, process: ProcessState) -> dict[str, type[Any]]:
    """The user classes by request name: your app's (the plan, locustfiles.plugin.plan), one per route,
    or your own locustfile's; else one per style of the catalogue."""
    if plan and plan.get("locustfile"):
        theirs = load_user_classes(Path(plan["locustfile"]))
        return {name: yours(cls, name, process) for name, cls in theirs.items()}
    styles: list[catalogue.RouteStyle | AppRoute] = [*routes_of(plan)] if plan else [*catalogue.STYLES]
    return {s.id: style_user(s, process) for s in styles}
