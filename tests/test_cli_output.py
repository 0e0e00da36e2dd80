"""What the CLI prints and writes from a run: the terminal table at any width, the README's tables,
the SLO gate, and the Reproduce command. Fed the committed real run; no load."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from rich.console import Console

from analysis.load import load_run
from analysis.summary import summarise
from routebench import experiment, readme, terminal
from target_app import catalogue
from tests.conftest import FIXTURE_RUN, routebench_cli


def rendered(width: int, table: object) -> str:
    console = Console(width=width, record=True, highlight=False)
    console.begin_capture()
    terminal.print_summary_table(table, "a run: per cell", console)  # type: ignore[arg-type]
    return console.end_capture()


def every_style_table() -> object:
    """The fixture's table with its rows relabelled to every style, the longest id included."""
    table = summarise(load_run(FIXTURE_RUN))
    rows = table.iloc[[0] * len(catalogue.STYLES)].copy()
    rows["style"] = [s.id for s in catalogue.STYLES]
    rows["family"] = [s.family for s in catalogue.STYLES]
    return rows.reset_index(drop=True)


@pytest.mark.parametrize("width", [80, 100, 160])
def test_the_terminal_table_fits_and_never_cuts_a_style_id(width: int) -> None:
    text = rendered(width, every_style_table())
    assert max(len(line) for line in text.splitlines()) <= width
    for style in catalogue.STYLES:
        assert style.id in text
    assert "…" not in text


def test_a_shared_cell_shows_users_on_the_style_of_the_total() -> None:
    text = rendered(80, summarise(load_run(FIXTURE_RUN)))
    assert "4/8" in text and "of b in a cell shared" in text


def test_readme_tables_come_from_the_run_and_name_it(tmp_path: Path) -> None:
    block = readme.tables(FIXTURE_RUN)
    meta = json.loads((FIXTURE_RUN / "run.json").read_text())
    assert block.startswith(readme.BEGIN) and block.rstrip().endswith(readme.END)
    assert meta["run_id"] in block and meta["git"]["commit"][:12] in block
    assert meta["reproduce"]["command"] in block
    table = summarise(load_run(FIXTURE_RUN))
    solo = table[~table["together"]]
    for r in solo.itertuples():
        assert f"| `{r.style}` | {r.users:g} | {r.repeat} | {r.rps:,.1f} |" in block
    page = tmp_path / "README.md"
    page.write_text(f"# title\n\n{readme.BEGIN}\nold numbers\n{readme.END}\n\nafter\n")
    done = routebench_cli("readme-tables", str(FIXTURE_RUN), "--write", str(page))
    assert done.returncode == 0, done.stderr
    text = page.read_text()
    assert "old numbers" not in text and block.rstrip("\n") in text and text.endswith("after\n")


def test_readme_tables_without_markers_is_one_line(tmp_path: Path) -> None:
    page = tmp_path / "README.md"
    page.write_text("no markers here\n")
    done = routebench_cli("readme-tables", str(FIXTURE_RUN), "--write", str(page))
    assert done.returncode == 2 and "Traceback" not in done.stderr and "markers" in done.stderr


def test_the_project_readme_quotes_a_run_by_id_and_commit() -> None:
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    (block,) = readme.BLOCK.findall(text)
    assert "Run `" in block and "commit `" in block and "Reproduce: `make loadtest PROFILE=" in block
    assert readme.columns_of(block) == readme.columns_of(readme.tables(FIXTURE_RUN))


def test_expected_failures_are_shown_but_do_not_trip_the_gate(run_copy: Path) -> None:
    meta = json.loads((run_copy / "run.json").read_text())
    meta["experiment"]["slo"] = ["sleep/async-await:p99<100ms"]  # holds alone, not beside blocking-in-async
    (run_copy / "run.json").write_text(json.dumps(meta))
    done = routebench_cli("check", str(run_copy))
    assert done.returncode == 0, done.stderr
    assert "FAIL, as expected" in done.stderr and "neighbour" in done.stderr
    broken = routebench_cli("check", str(run_copy), "--slo", "sleep/blocking-in-async:p99<60ms")
    assert broken.returncode == 99 and "threshold check(s) failed" in broken.stderr
    # Only latency beside a blocking neighbour is the lesson; a throughput floor broken there counts.
    floor = routebench_cli("check", str(run_copy), "--slo", "sleep/async-await:rps>=100")
    assert floor.returncode == 99 and "FAIL sleep/async-await:rps>=100" in floor.stderr


def test_reproduce_names_a_profile_a_checkout_file_or_the_runs_own_copy(tmp_path: Path) -> None:
    smoke = experiment.load("smoke")
    assert experiment.reproduce("smoke", smoke, tmp_path)["command"] == "make loadtest PROFILE=smoke"
    # A shipped profile by name, from a run started outside the checkout: still the profile.
    with contextlib.chdir(tmp_path):
        assert experiment.reproduce("smoke", smoke, tmp_path)["command"] == "make loadtest PROFILE=smoke"
    fixture = "tests/fixtures/fixture.toml"
    assert (
        experiment.reproduce(fixture, experiment.load(fixture), tmp_path)["command"]
        == f"make loadtest PROFILE={fixture}"
    )
    elsewhere = tmp_path / "mine.toml"
    elsewhere.write_text(experiment.to_toml(smoke))
    again = experiment.reproduce(str(elsewhere), experiment.load(str(elsewhere)), tmp_path)
    copy = Path(again["command"].removeprefix("make loadtest PROFILE="))
    assert copy == (tmp_path / "experiment.toml").resolve()
    # The copy runs the same matrix as the file it came from.
    assert experiment.expand(experiment.load(str(copy))) == experiment.expand(smoke)


def test_check_refuses_to_judge_an_unfit_run(run_copy: Path) -> None:
    meta = json.loads((run_copy / "run.json").read_text())
    meta["experiment"]["slo"] = ["sleep/async-await:p99<100ms"]
    meta["status"] = "incomplete"
    meta["cells"][-1].update(status="interrupted")  # cpu/async: not under any SLO
    (run_copy / "run.json").write_text(json.dumps(meta))
    unfit = routebench_cli("check", str(run_copy))
    assert unfit.returncode == 3, unfit.stderr
    assert "cannot judge" in unfit.stderr and "010-cpu_async-u4-w2-r1 interrupted" in unfit.stderr
    # Judging what finished: the threshold holds in every solo cell of the style.
    assert routebench_cli("check", str(run_copy), "--allow-incomplete").returncode == 0

    meta["status"] = "complete"
    meta["cells"][-1].update(status="ok")
    reason = "a load-generator process averaged above Locust's CPU warning"
    meta["cells"][0]["validity"] = {"valid": False, "failed": ["generator"], "reasons": [reason], "notes": []}
    (run_copy / "run.json").write_text(json.dumps(meta))
    invalid = routebench_cli("check", str(run_copy))
    assert invalid.returncode == 3
    assert f"not judged sleep/async-await:p99<100ms 001-sleep_async-await-u4-w2-r1: invalid: {reason}" in " ".join(
        invalid.stderr.split()
    )
    assert routebench_cli("check", str(run_copy), "--include-invalid").returncode == 0
