"""Where the server's CPU went: py-spy's collapsed stacks summed over workers, each sample put in
the category of the frame it was running in, and the flame graph drawn from them."""

from __future__ import annotations

from pathlib import Path

from analysis import charts, profiles
from analysis.rundir import profile_file

SITE = "/venv/lib/python3.11/site-packages"
ROUTE = "cpu_async (/repo/target_app/routes/cpu.py:30)"
LOOP = "spin (/repo/target_app/work.py:12)"
STARLETTE = f"__call__ ({SITE}/starlette/routing.py:700)"
ASYNCIO = "_run_once (/usr/lib/python3.11/asyncio/base_events.py:1922)"
SAMPLER = "_run (/repo/routebench/serverside/telemetry.py:150)"


def write(directory: Path) -> None:
    directory.mkdir()
    profile_file(directory, 1).write_text(f"{ASYNCIO};{STARLETTE};{ROUTE};{LOOP} 60\n{ASYNCIO};{STARLETTE} 20\n")
    profile_file(directory, 2).write_text(f"{ASYNCIO};{STARLETTE};{ROUTE};{LOOP} 40\n{ASYNCIO} 15\n{SAMPLER} 5\n")


def test_samples_are_summed_over_workers_and_counted_where_they_ran(tmp_path: Path) -> None:
    write(tmp_path / "profile")
    stacks = profiles.read(tmp_path / "profile")
    assert sum(stacks.values()) == 140 and stacks[(ASYNCIO, STARLETTE, ROUTE, LOOP)] == 100
    went = profiles.where_cpu_went(stacks)
    assert went["samples"] == 140
    assert went["shares"]["server code"] == 100 / 140
    assert went["shares"]["framework"] == 20 / 140
    assert went["shares"]["I/O libraries"] == 15 / 140
    assert went["shares"]["routebench instruments"] == 5 / 140
    line = profiles.summary_line(went, 100, 2)
    assert line.startswith("where the server's CPU went: 71% server code, 14% framework, 11% I/O libraries, 4% ")
    assert "(140 samples at 100 Hz over 2 workers" in line


def test_the_flame_graph_draws_each_frame_as_wide_as_its_samples(tmp_path: Path) -> None:
    write(tmp_path / "profile")
    fig = charts.flame_graph("001-cell", profiles.read(tmp_path / "profile"))
    assert fig is not None
    data = fig.renderers[0].data_source.data
    widths = {f: r - left for f, left, r in zip(data["frame"], data["left"], data["right"], strict=True)}
    assert widths[ASYNCIO] == 135 and widths[STARLETTE] == 120 and widths[LOOP] == 100 and widths[SAMPLER] == 5
    # Children sit inside their parent.
    at = {f: (left, r) for f, left, r in zip(data["frame"], data["left"], data["right"], strict=True)}
    assert at[STARLETTE][0] >= at[ASYNCIO][0] and at[STARLETTE][1] <= at[ASYNCIO][1]
    assert charts.flame_graph("empty", profiles.read(tmp_path / "nowhere")) is None
