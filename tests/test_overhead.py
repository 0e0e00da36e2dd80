"""The run's time accounting: the overhead ratio from run.json alone, and the ETA's range."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from routebench.bench import overhead
from routebench.progress import eta_text


def test_overhead_ratio_counts_everything_but_warm_up_and_window(tmp_path: Path) -> None:
    cells = [
        {"status": "ok", "warmup_s": 2.0, "window_s": 15.0, "wall_s": 17.5, "stack": {"started": 1, "clusters": 1}},
        {"status": "ok", "warmup_s": 2.0, "window_s": 20.0, "wall_s": 22.9, "stack": {"started": 1, "clusters": 1}},
        {"status": "failed", "wall_s": 3.0},  # measured nothing: all of its time is overhead
    ]
    meta = {"wall_s": 80.0, "calibration": {"wall_s": 30.0}, "cells": cells}
    (tmp_path / "run.json").write_text(json.dumps(meta))
    o = overhead(tmp_path)
    assert o["measuring_s"] == pytest.approx(39.0)
    assert o["overhead_ratio"] == pytest.approx((80 - 39) / 80)
    assert o["cell_overhead_median_s"] == pytest.approx(0.7) and o["cell_overhead_max_s"] == pytest.approx(0.9)
    assert (o["cells"], o["of_cells"], o["stacks"], o["clusters"]) == (2, 3, 1, 1)
    assert (o["window_min_s"], o["window_max_s"]) == (15.0, 20.0)


def test_eta_is_a_range_only_when_the_windows_can_differ() -> None:
    assert eta_text(75, 75) == "0:01:15"
    assert eta_text(75, 3725) == "0:01:15–1:02:05"
