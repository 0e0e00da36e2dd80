"""The cell's evidence from outside its numbers, as pure functions: Gunicorn's log of a worker's
death, where the users' connections landed, and the load generator's CPU over the window."""

from __future__ import annotations

import json
from pathlib import Path

from routebench.evidence import generator_load, lab_load, placed, worker_deaths
from routebench.locust_cluster import CPU_WARNING, ORCHESTRATOR
from routebench.serverside.telemetry import worker_file

GUNICORN_LOG = """\
[2026-11-25 17:58:50 +0000] [100] [INFO] Booting worker with pid: 4242
[2026-11-25 17:58:53 +0000] [100] [ERROR] Worker (pid:4242) was sent SIGKILL! Perhaps out of memory?
[2026-11-25 17:58:54 +0000] [100] [WARNING] Worker (pid:4343) exited with code 3
[2026-11-25 17:58:55 +0000] [4444] [INFO] Worker exiting (pid: 4444)
"""


def test_a_worker_death_in_gunicorns_log_is_named_with_the_requests_it_last_held(tmp_path: Path) -> None:
    samples = [{"t": 10.0, "inflight": 2}, {"t": 10.1, "inflight": 7}]
    # The worker died mid-write: its last line is half a sample, the one before it counts.
    text = "".join(json.dumps(s) + "\n" for s in samples) + '{"t": 10.2, "infl'
    worker_file(tmp_path, 4242).write_text(text)
    deaths = worker_deaths(GUNICORN_LOG, tmp_path)
    assert deaths == [
        {
            "pid": 4242,
            "at": "2026-11-25 17:58:53 +0000",
            "how": "was sent SIGKILL",
            "inflight_at_last_sample": 7,
            "last_sample_t": 10.1,
        },
        # No telemetry of its own (killed before its first sample): what it held is unknown.
        {
            "pid": 4343,
            "at": "2026-11-25 17:58:54 +0000",
            "how": "exited with code 3",
            "inflight_at_last_sample": None,
            "last_sample_t": None,
        },
    ]


def test_a_graceful_worker_exit_is_no_death() -> None:
    assert worker_deaths(GUNICORN_LOG.splitlines()[-1], Path("/nonexistent")) == []


def test_connections_per_worker_are_the_medians_inside_the_window_largest_first() -> None:
    samples = [
        (0.5, {1: 9, 2: 9}),  # before the window: not counted
        (1.0, {1: 3, 2: 5}),
        (2.0, {1: 4, 2: 6}),
        (3.0, {1: 4, 2: 7}),
        (3.5, {}),  # a reading that found no worker says nothing
        (9.0, {1: 0, 2: 0}),  # after it
    ]
    assert placed(samples, 1.0, 3.5) == [6, 4]


def test_no_placement_when_no_reading_fell_inside_or_the_workers_changed() -> None:
    assert placed([(0.5, {1: 3})], 1.0, 2.0) is None
    assert placed([(1.0, {1: 3, 2: 3}), (1.5, {1: 3, 3: 3})], 1.0, 2.0) is None  # worker 2 replaced


def test_the_generator_is_saturated_when_one_process_averaged_over_locusts_warning_in_the_window() -> None:
    busy, idle = CPU_WARNING + 5, 10.0
    # Readings stamped at the end of the second they cover: the window (10, 12) takes 10.5 to 12.5.
    cpu = {"1": [(9.0, 0.0), (11.0, busy), (12.0, busy), (20.0, 0.0)], "2": [(11.0, idle), (12.0, idle)]}
    load = generator_load(cpu, {"1": "locust-worker-1"}, (10.0, 12.0))
    assert load["saturated"] and load["over"] == "the measured window"
    first, second = load["processes"]
    assert (first["name"], first["mean_cpu_percent"], first["readings"]) == ("locust-worker-1", busy, 2)
    assert second["name"] == "?"
    assert load["cpu_cores"] == round((busy + idle) / 100, 3)
    # Without a window every reading counts, and the idle start and end dilute the busy seconds.
    assert not generator_load(cpu, {})["saturated"]


def test_the_labs_cores_are_read_between_the_readings_that_span_the_window() -> None:
    # CPU seconds so far, read a second apart: the upstream used 0.5 s a second, PostgreSQL 0.2.
    readings = [(float(t), {"upstream": 0.5 * t, "postgres": 0.2 * t}) for t in range(0, 30)]
    assert lab_load(readings, (10.5, 20.5)) == {"upstream": 0.5, "postgres": 0.2}
    # A service missing from a reading (a database given by DATABASE_URL is not ours) is left out.
    partial = [(t, {"upstream": v["upstream"]} if t > 5 else v) for t, v in readings]
    assert lab_load(partial, (10.5, 20.5)) == {"upstream": 0.5}
    # Readings that do not span the window give nothing, rather than a guess.
    assert lab_load(readings[12:], (10.5, 20.5)) is None
    assert lab_load(readings[:15], (10.5, 20.5)) is None


def test_routebenchs_own_cpu_is_kept_apart_from_the_generators() -> None:
    """routebench's process is read with the Locust processes, but its cores are its own figure: it
    never makes the generator saturated, and capacity's per-request cost of the generator leaves it out."""
    cpu = {"1": [(11.0, 20.0), (12.0, 20.0)], "2": [(11.0, CPU_WARNING + 5), (12.0, CPU_WARNING + 5)]}
    load = generator_load(cpu, {"1": "locust-worker-1", "2": ORCHESTRATOR}, (10.0, 12.0))
    assert not load["saturated"]
    assert load["cpu_cores"] == 0.2 and load["orchestrator_cpu_cores"] == round((CPU_WARNING + 5) / 100, 3)
