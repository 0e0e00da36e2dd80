"""Each knob's default and bounds are declared once, in Settings; the experiment file derives them."""

from __future__ import annotations

from pathlib import Path

import pytest

from routebench import experiment
from target_app.settings import Settings, bounds, default

SHARED = {
    "threadpool_tokens": "threadpool_tokens",
    "db_pool_size": "db_pool_size",
    "wait_ms": "default_wait_ms",
    "work": "default_work",
    "fanout": "default_fanout",
}


@pytest.mark.parametrize("knob, setting", SHARED.items())
def test_experiment_knobs_take_the_settings_bounds_and_defaults(knob: str, setting: str) -> None:
    assert getattr(experiment.DEFAULTS, knob) == default(setting) == Settings.model_fields[setting].default
    high = bounds(setting)["le"]
    with pytest.raises(ValueError):
        experiment.Knobs(**{knob: high + 1})
    assert getattr(experiment.Knobs(**{knob: high}), knob) == high


def test_an_experiment_asking_more_workers_than_settings_allow_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "big.toml"
    path.write_text('server_workers = [65]\n[[groups]]\nstyles = ["sleep/async-await"]\n')
    with pytest.raises(experiment.ExperimentError, match=r"server_workers: .*from 1 to 64"):
        experiment.load(str(path))
