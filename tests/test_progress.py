"""The progress line's text: elapsed and left time, and a description that leaves the bar whole."""

from __future__ import annotations

from pathlib import Path

from routebench.progress import PROGRESS_COLUMNS_WIDTH, clock, current_rps, fit


def test_clock_rounds_to_the_second_and_never_goes_negative() -> None:
    assert clock(3725.4) == "1:02:05"
    assert clock(-3) == "0:00:00"


def test_a_long_description_is_cut_to_leave_the_columns_whole() -> None:
    text = "cell 12/26 sleep/blocking-in-async+sleep/async-await U=100 W=2 1,234 req/s"
    width = PROGRESS_COLUMNS_WIDTH + 30
    cut = fit(text, width)
    assert len(cut) == 30 and cut.endswith("…") and text.startswith(cut[:-1])
    assert fit(text, 200) == text
    assert len(fit(text, 10)) == 16  # a terminal too narrow still shows something to read


def test_live_rps_is_the_last_aggregated_row_of_locusts_history(tmp_path: Path) -> None:
    history = tmp_path / "history.csv"
    history.write_text(
        "Timestamp,User Count,Type,Name,Requests/s\n"
        "1,4,GET,sleep/async-await,10.0\n1,4,,Aggregated,10.0\n"
        "2,4,GET,sleep/async-await,12.5\n2,4,,Aggregated,12.5\n"
    )
    assert current_rps(history) == 12.5
    assert current_rps(tmp_path / "not-yet-written.csv") is None
