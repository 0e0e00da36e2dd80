"""A process's window, its open-model schedule, and what the close censors (locustfiles.plugin.window),
on made-up clocks: no Locust, no sleeps."""

from __future__ import annotations

import pytest

from locustfiles.plugin.options import Options
from locustfiles.plugin.window import (
    FINISH_FACTOR,
    FINISH_FLOOR_S,
    Admission,
    Schedule,
    Timetable,
    Window,
    admit,
    canary_schedule,
    close,
    counts_for_locust,
    finish_cap_s,
    measured_s,
    message,
    opened,
)


def schedule(rate: float, offset: float = 0.0, start: float = 1000.0) -> Window:
    return Window(test=1, schedule_from=start, measure_from=start, rate=rate, offset=offset)


def test_intended_starts_are_evenly_spaced_from_the_offset() -> None:
    w = schedule(rate=4.0, offset=0.125)
    assert [w.intended(k) for k in range(4)] == [1000.125, 1000.375, 1000.625, 1000.875]


@pytest.mark.parametrize("rate, offset", [(4.0, 0.125), (3.0, 0.0), (10 / 3, 0.1), (0.3, 1 / 7), (997.0, 0.0)])
def test_tickets_before_counts_starts_strictly_before_t_even_at_a_rounded_boundary(rate: float, offset: float) -> None:
    w = schedule(rate, offset)
    for k in range(0, 2000, 7):
        t = w.intended(k)
        # A start at exactly t is not before t; a moment later it is: the same arithmetic as intended().
        assert w.tickets_before(t) == k
        assert w.tickets_before(t + 1e-6 / rate) == k + 1
    assert w.tickets_before(w.schedule_from - 5) == 0  # before the schedule: none, never negative


def test_the_processes_of_a_test_interleave_into_one_even_schedule() -> None:
    options = Options(model="open", rate=10.0, warmup_s=2.0)
    data = message(7, options, processes=2, indexes={"w-a": 0, "w-b": 1})
    a, b = opened(data, now=500.0, client_id="w-a"), opened(data, now=500.0, client_id="w-b")
    assert (a.test, a.rate, b.rate, a.measure_from) == (7, 5.0, 5.0, 502.0)
    starts = sorted([a.intended(k) for k in range(50)] + [b.intended(k) for k in range(50)])
    gaps = [y - x for x, y in zip(starts, starts[1:], strict=False)]
    assert gaps == pytest.approx([0.1] * 99)
    # A worker the master did not number (it joined late) takes the first place, not a new one.
    assert opened(data, now=500.0, client_id="w-late").offset == 0.0


def test_a_closed_model_message_has_no_schedule() -> None:
    data = message(1, Options(model="closed", rate=10.0, warmup_s=1.0), processes=3, indexes={})
    w = opened(data, now=10.0)
    assert (w.rate, w.schedule_from, w.measure_from, w.measure_until) == (0.0, 10.0, 11.0, None)


@pytest.mark.parametrize(
    "options, seconds",
    [
        (Options(model="open", tail_s=5.0, run_time_s=30.0, warmup_s=5.0), 20.0),
        (Options(model="open", tail_s=0.0, run_time_s=30.0, warmup_s=5.0), 0.0),  # no tail: to the stop
        (Options(model="closed", tail_s=5.0, run_time_s=30.0, warmup_s=5.0), 0.0),  # closed: no schedule
        (Options(model="open", tail_s=5.0, run_time_s=30.0, warmup_s=5.0, precision=0.05), 0.0),  # ends at a check
    ],
)
def test_a_tail_ends_the_measured_schedule_before_the_stop(options: Options, seconds: float) -> None:
    assert measured_s(options) == seconds
    w = opened(message(1, options, 1, {}), now=100.0)
    assert w.measure_until == (105.0 + seconds if seconds else None)


def test_closed_model_records_the_requests_started_in_the_window() -> None:
    w = Window(test=1, schedule_from=100.0, measure_from=102.0)
    assert admit(w, 101.0, 40.0, None, open_model=False) == Admission(counter="warmup_rejected")
    # Completed in the window, sent in the warm-up (40 ms before 102.0 s): the warm-up's request.
    assert admit(w, 102.0, 40.0, None, open_model=False) == Admission(counter="started_in_warmup")
    assert admit(w, 102.05, 40.0, started=102.01, open_model=False) == Admission(micros=40_000.0)
    # Its latency is Locust's (the send's own clock): the start only says which window it is of.
    assert admit(w, 103.0, 40.0, started=102.5, open_model=False) == Admission(micros=40_000.0)
    w.closed_at = 110.0
    assert admit(w, 110.5, 40.0, None, open_model=False) == Admission()  # censored at the close instead
    assert admit(Window(), 5.0, 40.0, None, open_model=False) == Admission()  # no test yet


def test_a_closed_model_lets_the_windows_last_requests_finish_and_records_only_those() -> None:
    w = Window(test=1, schedule_from=100.0, measure_from=102.0, measure_until=110.0)
    assert admit(w, 112.0, 2500.0, started=109.5, open_model=False) == Admission(micros=2_500_000.0)
    assert admit(w, 110.2, 40.0, started=110.1, open_model=False) == Admission(counter="after_window")
    assert w.finishing([("a", 109.9), ("a", 110.5)]) and not w.finishing([("a", 110.5), ("b", 101.0)])
    # The test stops at 115: the window's request still out is censored at its 5.1 s so far; the
    # load after the window is load; the warm-up's is counted, not the window's.
    out = close(w, 115.0, False, in_flight=[("a", 109.9), ("a", 110.5), ("b", 101.0)])
    assert out.censored == [("a", pytest.approx(5_100_000.0))]
    assert out.counts == [
        ("a", "inflight_at_stop", 1),
        ("a", "inflight_after_window", 1),
        ("b", "inflight_since_warmup", 1),
    ]


@pytest.mark.parametrize(
    ("longest_s", "finish_s", "cap_s"),
    [(0.03, 10.0, FINISH_FLOOR_S), (2.0, 10.0, FINISH_FACTOR * 2.0), (5.0, 10.0, 10.0), (0.03, 0.5, 0.5)],
)
def test_the_window_s_requests_finish_within_a_multiple_of_the_longest_latency_and_the_cap(
    longest_s: float, finish_s: float, cap_s: float
) -> None:
    assert finish_cap_s(longest_s, finish_s) == pytest.approx(cap_s)


def test_open_model_counts_latency_from_the_intended_start() -> None:
    w = Window(test=1, schedule_from=100.0, measure_from=102.0, measure_until=110.0, rate=1.0)
    # Sent late behind a queue: 5 ms on the wire, but 2 s after its intended start.
    assert admit(w, 105.0, 5.0, started=103.0, open_model=True) == Admission(micros=pytest.approx(2_000_000.0))
    assert admit(w, 101.0, 5.0, started=100.5, open_model=True) == Admission(counter="warmup_rejected")
    assert admit(w, 102.5, 5.0, started=101.5, open_model=True) == Admission(counter="started_in_warmup")
    assert admit(w, 111.0, 5.0, started=110.0, open_model=True) == Admission(counter="after_window")
    assert admit(w, 105.0, 5.0, started=None, open_model=True) == Admission()  # not one of the schedule's
    assert w.scheduled_in(102.0) and w.scheduled_in(109.9) and not w.scheduled_in(110.0)


def test_closing_a_closed_model_window_censors_its_requests_in_flight() -> None:
    w = Window(test=1, schedule_from=100.0, measure_from=102.0)
    out = close(w, 120.0, False, in_flight=[("a", 119.5), ("b", 90.0), ("b", 103.0)], waiting=[("a", 119.0)])
    assert out.censored == [("a", pytest.approx(500_000.0)), ("b", pytest.approx(17_000_000.0))]
    assert out.counts == [("a", "inflight_at_stop", 1), ("b", "inflight_since_warmup", 1), ("b", "inflight_at_stop", 1)]


def test_closing_an_open_model_window_with_a_tail() -> None:
    # One start a second from 90; measured starts 100 <= t < 110; the load stops at 115.
    w = Window(test=1, schedule_from=90.0, measure_from=100.0, measure_until=110.0, rate=1.0)
    in_flight = [("s", 105.0), ("s", 112.0), ("s", 95.0)]  # in the window, in the tail, in the warm-up
    waiting = [("s", 108.0), ("s", 111.0), ("other", 104.0)]  # taken by a user, not yet sent
    schedules = {"s": Schedule(next_ticket=19, sent_in_window=7)}  # ticket 19 (109.0) not taken yet
    out = close(w, 115.0, True, in_flight, waiting, schedules)
    # In flight: censored at its elapsed time since the intended start; the tail's start is load only.
    # Unsent: the window's due starts a user holds (108) or no user took yet (109), at their wait so far.
    assert out.censored == [
        ("s", pytest.approx(10_000_000.0)),
        ("s", pytest.approx(7_000_000.0)),
        ("s", pytest.approx(6_000_000.0)),
    ]
    assert out.counts == [
        ("s", "inflight_at_stop", 1),
        ("s", "inflight_after_window", 1),
        ("s", "inflight_since_warmup", 1),  # the warm-up's: counted, not the window's
        ("s", "offered", 10),
        ("s", "sent", 7),
        ("s", "unsent_at_stop", 2),
    ]


def test_closing_an_open_model_window_without_a_tail_ends_the_schedule_at_the_stop() -> None:
    w = Window(test=1, schedule_from=0.0, measure_from=2.0, rate=2.0, offset=0.25)  # starts at .25, .75, ...
    out = close(w, 4.0, True, in_flight=[], schedules={"s": Schedule(next_ticket=7, sent_in_window=0)})
    # Due in [2, 4): 2.25 2.75 3.25 3.75; tickets 0-6 were taken (sent before), 7 (3.75) is not.
    assert out.censored == [("s", pytest.approx(250_000.0))]
    assert out.counts == [("s", "offered", 4), ("s", "sent", 0), ("s", "unsent_at_stop", 1)]
    # A style this process runs no user of offers nothing: it is left out.
    assert close(w, 4.0, True, in_flight=[], schedules={}).counts == []


def test_the_canary_keeps_its_own_schedule_and_is_censored_like_an_open_model_in_a_closed_window() -> None:
    """The canary (catalogue.CANARY) beside a closed-model cell: 4 starts a second from the window's
    schedule start, whatever the styles do; at the stop its unsent due starts and its requests in
    flight are censored at their time since the intended start, the styles' as a closed model's."""
    w = Window(test=1, schedule_from=100.0, measure_from=102.0)  # closed model: no rate of its own
    canary = canary_schedule(w, 4.0)
    assert canary.timetable == Timetable(100.0, 4.0)
    assert [canary.timetable.at(k) for k in range(3)] == [100.0, 100.25, 100.5]
    canary.next_ticket, canary.sent_in_window = 39, 28  # 109.75 not taken yet: the process was held
    in_flight = [("canary", 109.0), ("sleep/async-await", 109.5)]
    out = close(w, 110.0, False, in_flight, waiting=[("canary", 109.5)], schedules={"canary": canary})
    assert out.censored == [
        ("canary", pytest.approx(1_000_000.0)),
        ("sleep/async-await", pytest.approx(500_000.0)),
        ("canary", pytest.approx(500_000.0)),  # held by its user, not sent
        ("canary", pytest.approx(250_000.0)),  # due, not taken
    ]
    assert ("canary", "offered", 32) in out.counts and ("canary", "unsent_at_stop", 2) in out.counts
    assert ("canary", "sent", 28) in out.counts
    # A style's schedule in the same closed window offers nothing: only the canary keeps a timetable.
    assert close(w, 110.0, False, [], schedules={"s": Schedule(next_ticket=3)}).counts == []


def test_locusts_stats_of_a_report_count_only_once_its_worker_cleared_them_for_this_test() -> None:
    """The count disagreement seen on a busy machine (Locust 399 requests above the exact count):
    a worker whose clearing timer ran late sent a report after its window opened that still held
    warm-up requests. Such a report's stats are the warm-up's, whatever the clock says."""
    assert not counts_for_locust({"test": 3, "locust_reset": False}, 3)  # warm-up, or a late timer
    assert counts_for_locust({"test": 3, "locust_reset": True}, 3)
    assert not counts_for_locust({"test": 2, "locust_reset": True}, 3)  # the last test's, arriving late
    assert not counts_for_locust({"test": 3, "locust_reset": True}, None)  # no test on the master
    assert counts_for_locust(None, 3)  # a worker that is not ours: its stats as Locust has them
