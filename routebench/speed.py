"""The machine's speed as it runs: a fixed pure-Python loop timed on this process's CPU clock.

A virtual machine of one kind is not one speed. Here the same loop took 6.2 to 6.4 ms a run in one
minute and 6.5 to 8.9 ms in another, with no other load of ours running (the kernel counted next to
no steal time, so the cause is outside what this VM sees: presumably the host's other tenants on
its shared caches and memory). The calibration measures each style's CPU per request once, before the cells;
a cell minutes later may run on a machine a fifth slower or faster. So routebench times this
reference during the calibration and through every cell's window, and the model scales the
calibration's CPU per request by the ratio (analysis.theory.speed_ratio). The loop runs on the CPU
clock of the calling thread (``time.thread_time``): waiting for a core does not count, only how fast
the core runs Python when it has one. About 2 ms of CPU each reading. Both are read under load (the
calibration's busy probes, a cell's window): in cells that leave the machine nearly idle the reading
came out up to 1.9x slower; those cells are wait-bound, and their CPU term hardly counts.
"""

from __future__ import annotations

import statistics

from target_app.work import burn

REFERENCE_WORK = 20_000  # iterations of target_app.work.burn: about 0.65 ms here
READING_RUNS = 3  # the fastest of these is a reading (a run interrupted by the kernel's tick is not)


def reading() -> float:
    """One reading: the CPU milliseconds the reference loop took, the fastest of READING_RUNS."""
    return min(burn(REFERENCE_WORK) for _ in range(READING_RUNS))


def typical(readings: list[float]) -> float | None:
    """The readings' median (None without any)."""
    return round(statistics.median(readings), 4) if readings else None
