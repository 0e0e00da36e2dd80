"""A capacity probe as a cell, and the verdict on a probe that measured nothing; the search's
time budget. Pure: no stack, no Locust."""

from __future__ import annotations

import math

from analysis import capacity
from analysis.rundir import CellOutcome, CellRecord
from routebench.capacity_run import budget, budget_before_probes, probe_times
from routebench.experiment import CapacitySearch, Cell, Experiment, expand
from routebench.measure import NOTHING_COMPLETED
from routebench.probe import MIN_USER_LATENCY_MS, USERS_HEADROOM, judge_probe, probe_cell

SLOS = [capacity.parse_slo("p99<400ms"), capacity.parse_slo("failure_rate<1%")]


def base_cell() -> Cell:
    exp = Experiment.model_validate({"name": "p", "groups": [{"styles": ["sleep/async-await"]}], "server_workers": [3]})
    return expand(exp)[0]


def test_a_probe_is_an_open_model_cell_with_users_enough_for_its_rate_at_the_slos_latency() -> None:
    cfg = CapacitySearch(probe_s=4, confirm_s=8)
    base = base_cell()
    probe = probe_cell(base, 150.0, "ramp", 7, cfg, SLOS, processes=2)
    # Little's law: 150 req/s each in flight up to 0.4 s, twice over, and two users per process.
    assert probe.users == math.ceil(150 * 0.4 * USERS_HEADROOM) + 2 * 2
    assert (probe.model, probe.arrival_rate, probe.duration_s, probe.precision) == ("open", 150.0, 4, 0.0)
    assert probe.tail_s == 0.4  # its requests all decided against the SLO when it stops
    assert (probe.index, probe.id) == (7, "007-sleep_async-await-w3-r1-ramp-150rps")
    confirm = probe_cell(base, 150.0, "confirm", 8, cfg, SLOS, processes=2)
    assert confirm.duration_s == 8
    # A tight SLO still leaves every user room for a request's round trip.
    tight = probe_cell(base, 150.0, "ramp", 9, cfg, [capacity.parse_slo("p99<10ms")], processes=1)
    assert tight.users == math.ceil(150 * MIN_USER_LATENCY_MS / 1000 * USERS_HEADROOM) + 2


def unmeasured(reason: str) -> CellRecord:
    record = CellRecord({"id": "001-p"})
    record.settle(CellOutcome("failed", reason=reason))
    return record


def test_a_probe_in_which_no_request_finished_fails_on_the_server_and_is_not_run_again() -> None:
    probe = probe_cell(base_cell(), 500.0, "ramp", 1, CapacitySearch(), SLOS, processes=1)
    verdict = judge_probe(probe, unmeasured(NOTHING_COMPLETED), None, SLOS)
    assert not verdict["passed"] and verdict["failed"] == ["data"] and verdict["retry"] == ""
    assert verdict["offered_rps"] == 500.0


def test_a_probe_the_harness_could_not_measure_is_run_again() -> None:
    probe = probe_cell(base_cell(), 500.0, "ramp", 1, CapacitySearch(), SLOS, processes=1)
    verdict = judge_probe(probe, unmeasured("the load generator could not be started"), None, SLOS)
    assert not verdict["passed"] and verdict["failed"] == ["cell"] and verdict["retry"]
    assert verdict["why"] == ["the probe failed: the load generator could not be started"]


def test_the_budget_grows_with_the_searches_and_a_confirmation_with_its_longer_window() -> None:
    exp = Experiment.model_validate(
        {
            "name": "c",
            "mode": "capacity",
            "warmup_s": 1,
            "groups": [{"styles": ["sleep/async-await"]}],
            "capacity": {"probe_s": 4, "confirm_s": 8, "max_probes": 10, "slo": ["p99<500ms"]},
        }
    )
    probe_s, confirm_s = probe_times(exp)
    assert confirm_s - probe_s == 8 - 4  # the same warm-up, tail and overhead around a longer window
    about, most = budget(exp, 3)
    assert about < most
    # Each search adds its probes: twice the searches, twice the time after calibration.
    twice = budget(exp, 6)
    assert twice[0] - budget_before_probes(exp, 6) == 2 * (about - budget_before_probes(exp, 3))
