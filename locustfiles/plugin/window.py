"""A Locust process's measured window, its open-model schedule, and what its close censors: pure.

Each process opens its window on its own clock, ``warmup_s`` after it hears of the test (the master
sends a delay, never its time). In the open model each style is started R times a second in all,
on a fixed schedule: with N processes each runs R/N a second, process i offset by i/R, so arrivals
are evenly spaced; a start's latency counts from its *intended* start, so a slow server cannot hide
its queue (coordinated omission).

When the window closes, every request still in flight, and in the open model every due start not
yet sent, enters the distribution as a censored sample at its elapsed time (:func:`close`). Nothing
here reads a clock or touches Locust: the caller passes the time, and applies what is returned.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from locustfiles.plugin.options import Options

LATE_MS = 10.0  # open model: a start more than this behind its schedule counts as late
WINDOW_MESSAGE = "rb_window"  # the master to every process: a test, its delay and length (:func:`message`)
INTENDED = "rb_intended"  # open model: a request's intended start, in its Locust request context


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

    def scheduled_in(self, intended: float) -> bool:
        """Open model: whether a start intended then belongs to the window's schedule."""
        if self.measure_from is None or intended < self.measure_from:
            return False
        return self.measure_until is None or intended < self.measure_until


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
    """Open model: one style's schedule in this process, for the test."""

    next_ticket: int = 0  # the next scheduled start a user of the style takes
    sent_in_window: int = 0  # starts of the window's schedule sent


@dataclass(frozen=True)
class Admission:
    """What a completed response does to the capture: recorded at ``micros``, or counted under
    ``counter``, or neither (both empty)."""

    micros: float | None = None
    counter: str = ""


def admit(window: Window, now: float, response_ms: float, intended: float | None, open_model: bool) -> Admission:
    """A response that completed ``now``. Only the window's responses are recorded: warm-up ones are
    counted as rejected (so a report taken before the window opened cannot carry them into it), and
    nothing is recorded after the close (what was then in flight was censored at the close). In the
    open model the latency runs from the intended start, and only the window's schedule counts."""
    if open_model:
        if intended is None or window.closed_at is not None or window.measure_from is None:
            return Admission()
        if intended < window.measure_from:
            # Scheduled in the warm-up: not part of the window's schedule (Locust counts it if it
            # completes after the window opened; the cross-check needs both numbers).
            return Admission(counter="warmup_rejected" if now < window.measure_from else "started_in_warmup")
        if window.measure_until is not None and intended >= window.measure_until:
            return Admission(counter="after_window")  # started in the tail: load, not measured
        return Admission(micros=(now - intended) * 1_000_000)  # coordinated omission counted
    if not window.measuring(now):
        if window.closed_at is None and window.measure_from is not None:
            return Admission(counter="warmup_rejected")
        return Admission()
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
    styles this process runs (``schedules``)."""
    out = Closing()
    assert window.measure_from is not None
    begin = window.measure_from
    # Open model: only starts scheduled in the window belong to it (``since`` is the intended start);
    # with a tail, the window ended before now and each of its starts still out has waited the tail.
    end = min(now, window.measure_until or now)
    for name, since in in_flight:
        if open_model and since >= end:
            out.counts.append((name, "inflight_after_window", 1))  # a tail's start: Locust may still count it
            continue
        if not open_model or begin <= since < end:
            out.censored.append((name, (now - since) * 1_000_000))
            out.counts.append((name, "inflight_at_stop", 1))
    if not open_model or not window.rate:
        return out
    held = list(waiting)
    for style, schedule in (schedules or {}).items():
        unsent = [t for n, t in held if n == style and begin <= t < end]
        ticket = schedule.next_ticket
        while window.intended(ticket) < end:
            if window.intended(ticket) >= begin:
                unsent.append(window.intended(ticket))
            ticket += 1
        # Offered: the schedule's starts in [measure_from, end). Users take tickets ahead of time
        # (and sleep until them), so the ticket counter can run past now: count by time instead.
        offered = window.tickets_before(end) - window.tickets_before(begin)
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
