"""routebench's ``--rb-*`` options (locustfiles.plugin.options): one typed object gives Locust's
arguments, the master's command line and each driven test's web form, and each comes back whole;
the web form's check refuses what the target would reject."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import pytest

from locustfiles.plugin.options import DEFAULT, Options, Reader, add_arguments, check_form
from routebench.locust_cluster import ORCHESTRATOR, LoadSpec, LocustCluster

EVERY_OPTION_SET = Options(
    wait_ms=0,
    work=250_000,
    fanout=4,
    model="open",
    rate=12.5,
    warmup_s=2.0,
    tail_s=1.5,
    run_time_s=30.0,
    out="/tmp/run/001-cell",
    driven=True,
    precision=0.05,
    max_run_time_s=90.0,
    default_classes=("SleepAsyncAwait", "SleepSyncDef"),
    retry_lost=True,
    no_capture=True,
)


class LocustLikeParser(argparse.ArgumentParser):
    """argparse with the one keyword Locust's parser adds (whether the web UI shows the option)."""

    def __init__(self) -> None:
        self.in_web_ui: list[str] = []
        super().__init__(add_help=False)

    def add_argument(self, *args: Any, include_in_web_ui: bool = True, **kwargs: Any) -> Any:
        action = super().add_argument(*args, **kwargs)
        if include_in_web_ui:
            self.in_web_ui.append(action.dest)
        return action


def parser() -> LocustLikeParser:
    p = LocustLikeParser()
    add_arguments(p)
    return p


def posted(namespace: argparse.Namespace, form: dict[str, Any]) -> argparse.Namespace:
    """What Locust's ``POST /swarm`` does with a form's fields that are options: each option keeps
    its type (locust/web.py: a bool is "true", anything else is converted by the current value's type)."""
    values = vars(namespace)
    for key, value in form.items():
        if key in values:
            current = values[key]
            values[key] = value == "true" if isinstance(current, bool) else type(current)(value)
    return namespace


def test_the_defaults_need_no_command_line_and_parse_as_the_defaults() -> None:
    assert DEFAULT.argv() == []
    assert Options.read(parser().parse_args([])) == DEFAULT
    assert Options.read(None) == DEFAULT


def test_every_option_survives_the_command_line() -> None:
    argv = EVERY_OPTION_SET.argv()
    assert Options.read(parser().parse_args(argv)) == EVERY_OPTION_SET
    # The names people type (README, deploy recipes, their scripts): renaming one breaks them.
    assert [a for a in argv if a.startswith("-")] == [
        "--rb-ms", "--rb-work", "--rb-k", "--rb-model", "--rb-rate", "--rb-warmup", "--rb-tail", "--rb-run-time",
        "--rb-out", "--rb-driven", "--rb-precision", "--rb-max-run-time", "--rb-default-classes", "--rb-retry-lost",
        "--rb-no-capture",
    ]  # fmt: skip


def test_the_web_ui_shows_only_the_work_sizes_and_the_load_model() -> None:
    assert parser().in_web_ui == ["rb_ms", "rb_work", "rb_k", "rb_model", "rb_rate", "rb_warmup"]


def test_a_tests_form_sets_its_own_options_and_leaves_the_masters() -> None:
    master = Options(driven=True, out="/tmp/run/generator-1", default_classes=("A",))
    test = Options(
        wait_ms=50, model="open", rate=40.0, warmup_s=1.0, out="/tmp/run/002-cell", run_time_s=20.0, tail_s=0.5
    )
    namespace = posted(parser().parse_args(master.argv()), test.form())
    got = Options.read(namespace)
    assert got == Options(**{**vars(test), "driven": True, "default_classes": ("A",)})
    # An emptied work size goes back to the server's default, not to an error.
    again = Options.read(posted(namespace, Options(wait_ms=None).form()))
    assert again.wait_ms is None and again.work_sizes() == {}


def test_work_sizes_are_the_targets_query_parameters() -> None:
    assert Options(wait_ms=0, fanout=3).work_sizes() == {"ms": 0, "k": 3}
    with pytest.raises(ValueError, match="--rb-ms 'ten'"):
        Options.read(argparse.Namespace(rb_ms="ten"))


def test_precision_settings_are_windows_without_the_warm_up() -> None:
    assert Options(run_time_s=30.0).precision_settings() == {}
    assert Options(precision=0.05, run_time_s=32.0, max_run_time_s=122.0, warmup_s=2.0).precision_settings() == {
        "precision_target": 0.05,
        "min_window_s": 30.0,
        "max_window_s": 120.0,
    }


def test_the_reader_reads_again_only_when_locust_changed_an_option() -> None:
    namespace = parser().parse_args(["--rb-ms", "5"])
    read = Reader()
    first = read(namespace)
    assert read(namespace) is first and first.wait_ms == 5
    posted(namespace, {"rb_ms": "7"})  # a form edited while running, or a worker's spawn message
    assert read(namespace).wait_ms == 7


@pytest.mark.parametrize(
    "form, words",
    [
        ({}, None),
        ({"rb_ms": "", "rb_work": " ", "rb_k": ""}, None),  # empty: the server's default
        ({"rb_ms": "100", "rb_work": "0", "rb_k": "1", "rb_rate": "2.5", "rb_warmup": "0"}, None),
        ({"rb_ms": "abc"}, "rb_ms = 'abc': must be an integer from 0 to 10000 milliseconds"),
        ({"rb_ms": "10001"}, "rb_ms = '10001'"),
        ({"rb_ms": "-1"}, "rb_ms = '-1'"),
        ({"rb_k": "0"}, "rb_k = '0': must be an integer from 1 to"),
        ({"rb_work": "1.5"}, "rb_work = '1.5'"),
        ({"rb_rate": "0"}, "rb_rate = '0': out of range"),
        ({"rb_rate": "fast"}, "rb_rate = 'fast': must be a number"),
        ({"rb_warmup": "-1"}, "rb_warmup = '-1': out of range"),
        ({"rb_warmup": "1e6"}, "rb_warmup = '1e6': out of range"),
    ],
)
def test_the_start_form_is_checked_before_any_load(form: dict[str, str], words: str | None) -> None:
    problem = check_form(form)
    assert problem == words if words is None else problem is not None and problem.startswith(words)


def spec(tmp_path: Path, **more: Any) -> LoadSpec:
    base: dict[str, Any] = {
        "target_url": "http://127.0.0.1:8000",
        "user_classes": ["SleepAsyncAwait"],
        "users": 8,
        "out_dir": tmp_path,
        "run_time_s": 20.0,
        "warmup_s": 2.0,
        "wait_ms": 50,
        "precision": 0.05,
        "max_run_time_s": 60.0,
    }
    return LoadSpec(**{**base, **more})


def rb_options(argv: list[str]) -> Options:
    """routebench's options in a whole Locust command line (Locust's own flags left aside)."""
    known, _ = parser().parse_known_args(argv)
    return Options.read(known)


def test_a_driven_tests_form_is_the_load_spec(tmp_path: Path) -> None:
    load = spec(tmp_path, model="open", arrival_rate=30.0, tail_s=1.0)
    form = load.form()
    assert check_form(form) is None
    assert {k: form[k] for k in ("user_count", "spawn_rate", "host", "user_classes")} == {
        "user_count": "8",
        "spawn_rate": "8",
        "host": "http://127.0.0.1:8000",
        "user_classes": ["SleepAsyncAwait"],
    }
    got = Options.read(posted(parser().parse_args([]), {k: v for k, v in form.items() if k.startswith("rb_")}))
    assert got == load.options()
    assert (got.wait_ms, got.rate, got.precision, got.max_run_time_s) == (50, 30.0, 0.05, 60.0)


def test_each_master_command_line_carries_the_options_its_mode_needs(tmp_path: Path) -> None:
    load = spec(tmp_path, default_classes=["SleepAsyncAwait"])
    driven = rb_options(LocustCluster(load, 2, driven=True).master_argv())
    # Driven: each test's own options come in its form; the command line says who drives.
    assert driven == Options(wait_ms=50, warmup_s=2.0, out=str(tmp_path), driven=True)
    headless = rb_options(LocustCluster(load, 2).master_argv())
    assert headless == Options(wait_ms=50, warmup_s=2.0, out=str(tmp_path), run_time_s=20.0)
    until_stopped = rb_options(LocustCluster(spec(tmp_path, run_time_s=None), 2).master_argv())
    assert until_stopped == Options(wait_ms=50, warmup_s=2.0, out=str(tmp_path))
    web = rb_options(LocustCluster(load, 2, web_port=8089).master_argv())
    assert web == Options(wait_ms=50, warmup_s=2.0, out=str(tmp_path), default_classes=("SleepAsyncAwait",))


def test_the_load_sides_cpu_readings_take_routebenchs_own_process_too(tmp_path: Path) -> None:
    """The cores left to the server are the machine's less the load side's: the Locust processes and
    this process, which drives the test and polls the server. Read with no Locust process started."""
    cluster = LocustCluster(spec(tmp_path), 2)
    assert cluster.cpu_names() == {str(os.getpid()): ORCHESTRATOR}
    cluster.sample_cpu()  # the first reading only sets the baseline
    sum(i * i for i in range(300_000))  # some CPU of this process between the readings
    cluster.sample_cpu()
    (readings,) = cluster.cpu.values()
    assert len(readings) == 1 and readings[0] > 0
