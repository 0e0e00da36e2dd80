"""Loading and validating a run directory; every kind of broken file is one clear line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from analysis.load import BadInput, load_run, ok_cells
from analysis.report import analyse
from tests.conftest import FIXTURE_RUN, routebench_cli


def test_fixture_run_loads() -> None:
    run = load_run(FIXTURE_RUN)
    assert run.meta["status"] == "complete"
    assert len(ok_cells(run)) == len(run.cells) >= 10


def first_cell(run_dir: Path) -> Path:
    return run_dir / load_run(run_dir).cells[0]["dir"]


def _missing(p: Path) -> None:
    p.unlink()


def _empty(p: Path) -> None:
    p.write_text("")


def _truncated(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])


def _wrong_columns(p: Path) -> None:
    p.write_text("a,b,c\n1,2,3\n")


def _header_only(p: Path) -> None:
    p.write_text(p.read_text().splitlines()[0] + "\n")


BREAKAGES: list[tuple[str, Callable[[Path], None], str]] = [
    ("locust_stats.csv", _missing, "missing"),
    ("locust_stats.csv", _empty, "empty"),
    ("locust_stats.csv", _wrong_columns, "missing columns"),
    ("locust_stats.csv", _header_only, "no rows"),
    ("exact.json", _truncated, "not valid JSON"),
    ("exact.json", _empty, "empty"),
    ("locust_stats_history.csv", _wrong_columns, "missing columns"),
    ("locust_failures.csv", _missing, "missing"),
]


@pytest.mark.parametrize("name, breakage, words", BREAKAGES, ids=[f"{n}-{b.__name__}" for n, b, _ in BREAKAGES])
def test_broken_files_are_named_in_one_line(
    run_copy: Path, name: str, breakage: Callable[[Path], None], words: str
) -> None:
    target = first_cell(run_copy) / name
    breakage(target)
    with pytest.raises(BadInput) as err:
        analyse(run_copy)
    message = str(err.value)
    assert str(target) in message and words in message and "\n" not in message


def test_missing_or_truncated_run_json(run_copy: Path) -> None:
    _truncated(run_copy / "run.json")
    with pytest.raises(BadInput, match="run.json: not valid JSON"):
        load_run(run_copy)
    with pytest.raises(BadInput, match="no such run directory"):
        load_run(run_copy / "nope")


def test_cli_bad_input_is_one_line_and_nonzero(run_copy: Path, tmp_path: Path) -> None:
    _wrong_columns(first_cell(run_copy) / "locust_stats.csv")
    for command in (["report", str(run_copy), "--reports", str(tmp_path / "r")], ["check", str(run_copy)]):
        done = routebench_cli(*command, timeout=120)
        assert done.returncode == 2
        assert "Traceback" not in done.stderr
        errors = [line for line in done.stderr.splitlines() if "error" in line]
        assert len(errors) == 1 and "locust_stats.csv: missing columns" in errors[0]
