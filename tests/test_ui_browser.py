"""``make ui`` as a person meets it: Locust's web UI in a real Chromium, the form left as it comes,
Start, Stop, then the session's report."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from target_app import catalogue
from tests.conftest import needs_chromium, routebench_cli, ui_command

pytestmark = [needs_chromium, pytest.mark.stack]


@pytest.fixture
def ui_session(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    with subprocess.Popen(
        ui_command(tmp_path / "results", "--workers", "2", "--web-port", "0"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            url = proc.stdout.readline().strip() if proc.stdout else ""
            assert url.startswith("http://127.0.0.1:"), proc.stderr.read() if proc.stderr else ""
            yield proc, url, tmp_path
        finally:
            if proc.poll() is None:
                proc.kill()


def requests_so_far(url: str) -> dict[str, Any]:
    return httpx.get(url + "/stats/requests").json()


def test_the_form_as_it_comes_runs_without_failures_and_the_session_reports(
    browser: Any, ui_session: tuple[subprocess.Popen[str], str, Path]
) -> None:
    proc, url, tmp = ui_session
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(url)
    page.wait_for_selector("input[name=userCount]")
    # The sleep family is ticked, nothing else; the work sizes are the headless default's.
    rows = page.evaluate("""[...document.querySelectorAll('tbody tr')].map(r =>
        [r.innerText.trim().split('\\n')[0], r.querySelector('input[type=checkbox]').checked])""")
    listed = {name for name, _ in rows}
    assert {s.class_name for s in catalogue.STYLES} <= listed
    assert {name for name, ticked in rows if ticked} == {s.class_name for s in catalogue.family("sleep")}
    page.get_by_text("Custom parameters").click()
    assert page.input_value("input[name=rbMs]") == "50"

    # A value the target would reject is refused in the UI, with the reason, before any load.
    page.fill("input[name=rbMs]", "-5")
    page.get_by_role("button", name="Start").click()
    alert = page.wait_for_selector("[role=alert]")
    assert "rb_ms" in alert.inner_text() and "0 to 10000" in alert.inner_text()
    assert requests_so_far(url)["state"] == "ready"

    # An emptied field means the server's default, never an empty value on the wire.
    page.fill("input[name=rbMs]", "")
    page.get_by_role("button", name="Start").click()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and requests_so_far(url)["stats"][-1]["num_requests"] < 200:
        time.sleep(0.5)

    # The routebench tab, live: every running style's exact percentiles, and what blocks the loop.
    page.get_by_role("tab", name="routebench").click()
    read_tab = """() => {
        const table = [...document.querySelectorAll('table')]
            .find(t => t.innerText.includes('top blocking call site'));
        return table ? [...table.querySelectorAll('tbody tr')]
            .map(r => [...r.querySelectorAll('td')].map(c => c.innerText.trim())) : [];
    }"""
    page.wait_for_function(f"({read_tab})().filter(r => r[5] && r[5].endsWith('%')).length >= 4", timeout=20_000)
    tab = {row[0]: row for row in page.evaluate(f"({read_tab})()")}
    assert set(tab) == {s.id for s in catalogue.family("sleep")}
    for row in tab.values():
        rps, p50, p95, p99 = (float(v.replace(",", "")) for v in row[1:5])
        assert rps >= 0 and 0 < p50 <= p95 <= p99, row  # current req/s: a slow style may have none this second
        assert "." in row[2], row  # exact, not Locust's whole milliseconds
    # The loops are stalled by time.sleep in blocking_in_async's route: the tab names the line, and
    # the whole server's worst lag shows it (the same on every row: the styles share the workers).
    # Its 10 users always have a request on the 2 loops, each holding one for d = 50 ms: the loops
    # are stalled most of the time (20% is far below), and a loop held for 50 ms lags at least
    # about that (20 ms is far below too).
    blocking = tab["sleep/blocking-in-async"]
    blocked = int(blocking[5].rstrip("%"))
    assert blocked >= 20 and blocking[6].startswith("target_app/routes/sleep.py:")
    assert blocking[6].endswith(" blocking_in_async") and float(blocking[7].replace(",", "")) > 20
    # async-await's requests only await. A stall is charged to the route running when it was
    # caught, so a loop the OS kept off a busy CPU while an async-await request was on it is
    # charged to it ("1%" on a busy machine): its share stays a small fraction of blocking's, and
    # whatever it has is never the blocking route's line.
    awaiting = tab["sleep/async-await"]
    assert int(awaiting[5].rstrip("%")) <= blocked / 4, (awaiting, blocking)
    assert awaiting[6] != blocking[6] and not awaiting[6].endswith(" blocking_in_async"), awaiting
    page.get_by_role("button", name="Stop").click()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and requests_so_far(url)["state"] != "stopped":
        time.sleep(0.5)
    stats = requests_so_far(url)
    total = stats["stats"][-1]
    assert total["num_requests"] >= 200 and total["num_failures"] == 0, stats["errors"]
    time.sleep(5)  # the workers' last reports (one report interval) reach the master
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 0

    (run_dir,) = (tmp / "results").iterdir()
    meta = json.loads((run_dir / "run.json").read_text())
    (cell,) = meta["cells"]
    assert cell["status"] == "ok" and cell["users"] == 40 and cell["wait_ms"] == 50
    assert cell["users_by_style"] == {s.id: 10 for s in catalogue.family("sleep")}
    assert set(cell["styles"]) == {s.id for s in catalogue.family("sleep")}

    published = routebench_cli("report", str(run_dir), "--reports", str(tmp / "reports"))
    assert published.returncode == 0, published.stderr
    assert "Warning" not in published.stderr and "Traceback" not in published.stderr
    report = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    report.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
    report.goto((tmp / "reports" / run_dir.name / "index.html").resolve().as_uri())
    report.wait_for_function("window.Bokeh !== undefined && Object.keys(Bokeh.index).length > 0", timeout=15_000)
    decided = report.evaluate("[...document.querySelectorAll('#decision tr[data-style]')].map(r => r.dataset.style)")
    assert set(decided) == {s.id for s in catalogue.family("sleep")}
    predicted = report.evaluate("""[...document.querySelectorAll('#decision tr[data-style]')]
        .map(r => r.querySelectorAll('td')[3].innerText)""")
    assert all(p not in ("", "–") for p in predicted), predicted
    assert "make loadtest PROFILE=" in report.inner_text("#reproduce")
    assert problems == []
