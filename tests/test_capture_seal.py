"""The master's per-second histograms: sealed (encoded) once no report adds to them, without loss."""

from __future__ import annotations

import numpy as np

from locustfiles.capture import Capture


def test_sealed_seconds_keep_every_sample_and_take_late_reports() -> None:
    rng = np.random.default_rng(5)
    worker, master, reference = Capture(), Capture(), Capture()
    for second in range(1000, 1040):
        for v in rng.lognormal(np.log(50_000), 0.3, 200):
            worker.record("s", v, now=second + 0.5)
            reference.record("s", v, now=second + 0.5)
        master.merge(worker.take(), source="w1")
        master.seal(before=second - 5)  # all but the last few seconds encoded
    late = Capture()
    late.record("s", 70_000, now=1001.5)  # a late report for a sealed second opens it again
    master.merge(late.take(), source="w2")
    reference.record("s", 70_000, now=1001.5)

    assert len(master.sealed) > 30 and ("s", 1001) not in master.sealed
    assert master.timeline(1000, 1040) == reference.timeline(1000, 1040)
    got = {k: h.get_total_count() for k, h in master.per_second()}
    assert got == {k: h.get_total_count() for k, h in reference.seconds.items()}
    # Sealed: a few hundred bytes each instead of a 3-digit histogram's counters.
    assert max(len(e) for e in master.sealed.values()) < 4_000
