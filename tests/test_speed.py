"""The machine-speed reference (routebench.speed): a CPU-clock reading of a fixed loop."""

from __future__ import annotations

from routebench import speed


def test_a_reading_is_the_loops_cpu_time_and_the_typical_one_their_median() -> None:
    first = speed.reading()
    # Positive and well under a second on any machine that can run the lab (0.65 ms here).
    assert 0 < first < 1000
    assert speed.typical([3.0, 1.0, 2.0, 100.0]) == 2.5
    assert speed.typical([]) is None
