"""A Locust process's measured window, its open-model schedule, and what its close censors: pure.

Each process opens its window on its own clock, ``warmup_s`` after it hears of the test (the master
sends a delay, never its time). In the open model each style is started R times a second in all,
on a fixed schedule: with N processes each runs R/N a second, process i offset by i/R, so arrivals
are evenly spaced; a start's latency counts from its *intended* start, so a slow server cannot hide
its queue (coordinated omission).

A request belongs to the window it *started* in, in both models: one started in the warm-up is
not measured even when it completes in the window, and one started after the window (its tail, or
the time a closed model lets the window's requests finish) is load, not measurement.

Closed model, let finish (``--rb-finish``): when the window ends, the users keep on until every
request started in it has finished (or a cap passed), so the window's latencies are
decided numbers, not lower bounds; the master then stops the test. Each process ends its window
on its own clock when the master says (``WINDOW_END_MESSAGE``) and says when its last request of
the window has finished (``FINISHED_MESSAGE``).

When the test stops, every request of the window still in flight, and in the open model every due
start not yet sent, enters the distribution as a censored sample at its elapsed time
(:func:`close`). Nothing here reads a clock or touches Locust: the caller passes the time, and
applies what is returned.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from locustfiles.plugin.options import Options

LATE_MS = 10.0  # open model: a start more than this behind its schedule counts as late
WINDOW_MESSAGE = "rb_window"  # the master to every process: a test, its delay and length (:func:`message`)
WINDOW_END_MESSAGE = "rb_window_end"  # the master to every process: the window ends now, its requests finish
FINISHED_MESSAGE = "rb_finished"  # a process to the master: no request of the window is in flight here
INTENDED = "rb_intended"  # open model: a request's intended start, in its Locust request context
STARTED = "rb_started"  # closed model: when the user sent it, in its Locust request context
# A closed model's window's requests are let finish for at most this many times the longest latency
# seen in the window (at least FINISH_FLOOR_S), and at most --rb-finish.
FINISH_FACTOR = 3.0
FINISH_FLOOR_S = 1.0


@dataclass(frozen=True)
class Timetable:
    """Starts at ``first``, then ``rate`` a second, evenly spaced."""

    first: float
    rate: float

    def at(self, ticket: int) -> float:
        return self.first + ticket / self.rate

    def before(self, t: float) -> int:
        """How many starts fall before ``t``, by the same arithmetic as ``at`` (an estimate,
        corrected for rounding at an exact boundary)."""
        k = max(0, math.ceil((t - self.first) * self.rate))
        while k > 0 and self.at(k - 1) >= t:
            k -= 1
        while self.at(k) < t:
            k += 1
        return k


@dataclass
class Window:
    """This process's measured window, on its own clock."""

    test: int = 0  # the master's test number: reports from another test are not merged
    schedule_from: float | None = None  # open model: when this process's schedule starts
    measure_from: float | None = None
    # With a tail (open model) or let finish (closed): the starts in [measure_from, measure_until) are
    # measured; the load goes on until the stop, so each of them finishes or outlasts the tail or
    # the finishing time (None: the window lasts until the stop).
    measure_until: float | None = None
    finished: bool = False  # closed model: this process said none of the window's requests is in flight
    closed_at: float | None = None
    rate: float = 0.0  # open model: starts per second per style, in this process
    offset: float = 0.0  # open model: this process's first start after schedule_from
    final: bool = False  # a worker sent its final report for this test
    locust_reset: bool = False  # Locust's own stats were cleared for the window (a timer, run a moment late)

    def measuring(self, now: float) -> bool:
        return self.measure_from is not None and self.closed_at is None and now >= self.measure_from

    @property
    def timetable(self) -> Timetable:
        """Open model: this process's share of each style's schedule."""
        assert self.schedule_from is not None and self.rate > 0
        return Timetable(self.schedule_from + self.offset, self.rate)

    def intended(self, ticket: int) -> float:
        return self.timetable.at(ticket)

    def tickets_before(self, t: float) -> int:
        return self.timetable.before(t)

    def scheduled_in(self, intended: float) -> bool:
        """Whether a start intended (open model) or sent (closed) then belongs to the window."""
        if self.measure_from is None or intended < self.measure_from:
            return False
        return self.measure_until is None or intended < self.measure_until

    def finishing(self, in_flight: Iterable[tuple[str, float]]) -> bool:
        """Closed model, after the window's end: whether any request in flight (name, sent at)
        started in the window."""
        return any(self.scheduled_in(since) for _, since in in_flight)


def finish_cap_s(longest_s: float, finish_s: float) -> float:
    """How long a closed model's window's requests may take to finish: FINISH_FACTOR times the
    longest latency seen in the window (``longest_s``), at least FINISH_FLOOR_S, but never more
    than ``finish_s`` (--rb-finish), which bounds both."""
    return min(finish_s, max(FINISH_FLOOR_S, FINISH_FACTOR * longest_s))


def measured_s(options: Options) -> float:
    """Open model with a tail (``--rb-tail``) at a fixed run time: how many seconds of the schedule
    the window measures, the tail's load excluded; 0: up to the stop."""
    if not (options.open_model and options.tail_s > 0 and options.precision <= 0):
        return 0.0
    return options.run_time_s - options.warmup_s - options.tail_s


def message(test: int, options: Options, processes: int, indexes: Mapping[str, int]) -> dict[str, Any]:
    """The ``rb_window`` message of a test, for every process of it (``indexes``: each worker's place
    among them): a delay and a length, never the master's clock."""
    data: dict[str, Any] = {
        "test": test,
        "warmup_s": options.warmup_s,
        "rate": options.rate if options.open_model else 0.0,
        "processes": processes,
        "indexes": dict(indexes),
    }
    if measured_s(options) > 0:
        data["measure_s"] = measured_s(options)  # a length: each process ends its own window
    return data


def opened(message: Mapping[str, Any], now: float, client_id: str = "") -> Window:
    """The window a test's ``rb_window`` message opens in this process (``client_id``: its worker id)
    at ``now``: it measures from ``warmup_s`` later; in the open model its schedule starts now, at
    this process's share of the rate, offset by its index among the test's processes."""
    processes = max(1, int(message.get("processes", 1)))
    # The master numbers the workers of this test 0..N-1 (Locust's own index keeps growing as
    # workers reconnect, so two could share an offset).
    index = int(message.get("indexes", {}).get(client_id, 0)) % processes
    rate = float(message.get("rate", 0.0))
    measure_from = now + float(message.get("warmup_s", 0.0))
    measure_s = message.get("measure_s")
    return Window(
        test=int(message["test"]),
        schedule_from=now,
        measure_from=measure_from,
        measure_until=measure_from + float(measure_s) if measure_s else None,
        rate=rate / processes,
        offset=index / rate if rate else 0.0,
    )


@dataclass
class Schedule:
    """Open model: one style's schedule in this process, for the test (and the canary's, in any
    model: its own ``timetable``)."""

    next_ticket: int = 0  # the next scheduled start a user of the style takes
    sent_in_window: int = 0  # starts of the window's schedule sent
    timetable: Timetable | None = None  # the canary's; a style's is the window's


def canary_schedule(window: Window, rate: float) -> Schedule:
    """The canary's schedule for a test: ``rate`` starts a second from the window's schedule start,
    in the one process that runs the canary's user (it has one user, in one process)."""
    assert window.schedule_from is not None
    return Schedule(timetable=Timetable(window.schedule_from, rate))


@dataclass(frozen=True)
class Admission:
    """What a completed response does to the capture: recorded at ``micros``, or counted under
    ``counter``, or neither (both empty)."""

    micros: float | None = None
    counter: str = ""


def admit(window: Window, now: float, response_ms: float, started: float | None, open_model: bool) -> Admission:
    """A response that completed ``now``, whose latency clock started at ``started`` (the open
    model's intended start; the closed model's send, None: ``response_ms`` before now). Only the
    window's starts are recorded: one started in the warm-up is counted (as rejected if it completed
    then too, so a report taken before the window opened cannot carry it into it), one started after
    the window is load, and nothing is recorded after the test's stop (what was then in flight was
    censored at the stop). In the open model the latency runs from the intended start."""
    if window.closed_at is not None or window.measure_from is None:
        return Admission()
    if open_model and started is None:
        return Admission()
    since = started if started is not None else now - response_ms / 1000
    if since < window.measure_from:
        # Started in the warm-up: not the window's (Locust counts it if it completes after the window
        # opened; the cross-check needs both numbers).
        return Admission(counter="warmup_rejected" if now < window.measure_from else "started_in_warmup")
    if window.measure_until is not None and since >= window.measure_until:
        return Admission(counter="after_window")  # started after the window: load, not measured
    if open_model:
        return Admission(micros=(now - since) * 1_000_000)  # coordinated omission counted
    return Admission(micros=response_ms * 1000)


@dataclass
class Closing:
    """What the close of a window puts in the capture: censored samples (name, elapsed µs) and
    counters (name, counter, n), in order (a zero count still names the style)."""

    censored: list[tuple[str, float]] = field(default_factory=list)
    counts: list[tuple[str, str, int]] = field(default_factory=list)


def close(
    window: Window,
    now: float,
    open_model: bool,
    in_flight: Iterable[tuple[str, float]],
    waiting: Iterable[tuple[str, float]] = (),
    schedules: Mapping[str, Schedule] | None = None,
) -> Closing:
    """The load stops ``now``: each request in flight (name, when its latency clock started) is
    censored at its elapsed time; in the open model, each due start of the window's schedule not
    sent, whether a user holds it (``waiting``: name, intended start) or no user took it yet, of the
    styles this process runs (``schedules``). A schedule with a timetable of its own (the canary's)
    is an open model's in either model."""
    out = Closing()
    assert window.measure_from is not None
    begin = window.measure_from
    # Only starts in the window belong to it (``since``: the intended start, or the send); with a
    # tail, or let finish, the window ended before now, and each of its starts still out has waited it.
    end = min(now, window.measure_until or now)
    for name, since in in_flight:
        if since >= end:
            out.counts.append((name, "inflight_after_window", 1))  # a tail's start: Locust may still count it
        elif since >= begin:
            out.censored.append((name, (now - since) * 1_000_000))
            out.counts.append((name, "inflight_at_stop", 1))
        else:
            out.counts.append((name, "inflight_since_warmup", 1))  # not the window's, and not done
    held = list(waiting)
    for style, schedule in (schedules or {}).items():
        timetable = schedule.timetable
        if timetable is None:
            if not open_model or not window.rate:
                continue
            timetable = window.timetable
        unsent = [t for n, t in held if n == style and begin <= t < end]
        ticket = schedule.next_ticket
        while timetable.at(ticket) < end:
            if timetable.at(ticket) >= begin:
                unsent.append(timetable.at(ticket))
            ticket += 1
        # Offered: the schedule's starts in [measure_from, end). Users take tickets ahead of time
        # (and sleep until them), so the ticket counter can run past now: count by time instead.
        offered = timetable.before(end) - timetable.before(begin)
        out.censored += [(style, (now - t) * 1_000_000) for t in unsent]
        out.counts += [
            (style, "offered", offered),
            (style, "sent", schedule.sent_in_window),
            (style, "unsent_at_stop", len(unsent)),
        ]
    return out


def counts_for_locust(payload: dict[str, Any] | None, test: int | None) -> bool:
    """Whether a worker report's share of Locust's own stats belongs to test number ``test``: only
    when the worker had cleared its stats for this test's window when it took the report. Before
    that, the report carries warm-up requests (however late the worker's clearing timer fired on a
    busy machine), and a report of another test carries that test's. The exact capture records
    nothing before the window either, and counts what it recorded in the window before the clearing
    (``before_locust_reset``), so the two counts cover the same requests."""
    if payload is None:
        return True  # not a worker of ours: nothing to say about its stats
    return test is not None and payload.get("test") == test and bool(payload.get("locust_reset"))
