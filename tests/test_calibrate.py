"""The CPU calibration against a real stack: what a request of each style costs the server."""

from __future__ import annotations

from pathlib import Path

import pytest

from routebench import calibrate
from routebench.experiment import Experiment, expand
from routebench.launcher import Stack
from target_app.settings import Settings
from target_app.work import burn

pytestmark = pytest.mark.stack

WORK = 100_000


def test_the_probe_measures_what_a_request_costs(tmp_path: Path) -> None:
    exp = Experiment.model_validate(
        {
            "name": "calibrate",
            "work": WORK,
            "groups": [
                {"styles": ["cpu/sync-def", "sleep/async-await"]},
                {"styles": ["sleep/async-await"], "users": [20]},  # the same style again: no second probe
            ],
        }
    )
    # The same loop's CPU time on this machine moves with what runs beside it (a busy SMT sibling,
    # the clock's frequency, a hypervisor): measured here around the probe, it gives a range, not a
    # point (five runs of it measured 3.2 to 5.6 ms in one minute on an idle AMD EPYC of this kind).
    loops_s = [burn(WORK) / 1000 for _ in range(20)]
    with Stack(Settings(host="127.0.0.1", workers=2, database_url=None), with_db=False) as stack:
        result = calibrate.calibrate(expand(exp), stack)
    loops_s += [burn(WORK) / 1000 for _ in range(20)]
    probes = {p["style"]: p for p in result["probes"]}
    assert set(probes) == {"cpu/sync-def", "sleep/async-await"}  # one probe per style and work size
    cpu, light = probes["cpu/sync-def"], probes["sleep/async-await"]
    assert cpu["requests"] >= calibrate.MIN_REQUESTS and light["requests"] >= calibrate.MIN_REQUESTS
    # The cpu route's cost is its loop: the loop timed here, plus the framework's small share. Both
    # are CPU time on this machine (the server's read from the kernel, in 10 ms ticks over at least
    # 200 requests), so the server's mean lies within the loop's range, less the ticks' error, and
    # at most the framework's share above it.
    assert 0.8 * min(loops_s) < cpu["cpu_s_per_request"] < 1.6 * max(loops_s) + 0.002
    # A request that only waits costs a small fraction of that, but not nothing.
    assert 0 < light["cpu_s_per_request"] < 0.5 * cpu["cpu_s_per_request"]
