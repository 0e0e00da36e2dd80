"""The report of a full-profile-shaped run (every style at 10/50/100 users x 3 repeats, the neighbour
group at two user counts, the open model, two server shapes) in a real headless Chromium: every chart
the report declares is drawn, and the console stays quiet."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis.report import MAX_REPORT_BYTES, analyse, build_context, publish
from target_app import catalogue
from tests.analysis.drawn import charts_drawn
from tests.analysis.synthetic import build_run
from tests.conftest import needs_chromium

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_run(tmp_path_factory.mktemp("runs"))


def test_every_declared_chart_of_a_full_run_renders_without_a_console_message(
    browser: object, full_run: Path, tmp_path: Path
) -> None:
    declared = set(build_context(analyse(full_run))["divs"])
    assert {"percentiles", "latency_users", "predicted", "neighbour"} <= declared
    index = publish(full_run, tmp_path / "reports")
    assert index.stat().st_size < MAX_REPORT_BYTES
    page = browser.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
    page.goto(index.resolve().as_uri())
    page.wait_for_function(
        "window.Bokeh !== undefined && Bokeh.documents.length > 0 && Bokeh.documents[0].is_idle", timeout=60_000
    )
    page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
    drawn = dict(charts_drawn(page))
    # The page's chart slots are exactly those the report declared.
    slots = page.evaluate("[...document.querySelectorAll('.chart')].map(c => c.dataset.chart)")
    assert sorted(slots) == sorted(declared)
    # One Bokeh root view per declared chart, each inside its own slot.
    roots = page.evaluate("""[...Bokeh.index.roots]
        .map(v => v.el.closest && v.el.closest('.chart'))
        .filter(slot => slot)
        .map(slot => slot.dataset.chart)""")
    assert sorted(roots) == sorted(declared)
    # Each slot holds a drawn canvas (Bokeh draws into canvases inside shadow roots).
    assert {name for name, ok in drawn.items() if not ok} == set()
    # The decision table names each family's baseline and has a section per sleep shape.
    families = page.evaluate("""Object.fromEntries([...document.querySelectorAll('#decision tr.family')]
        .map(r => [r.dataset.family, r.querySelector('code').innerText]))""")
    assert families == {f: catalogue.baseline(f).id for f in catalogue.FAMILIES}
    shapes = page.evaluate("[...document.querySelectorAll('#decision tr.shape')].map(r => r.dataset.shape)")
    assert len(shapes) == len(set(shapes)) == 3
    assert any("open model" in s for s in shapes) and any("W=4" in s for s in shapes)
    assert problems == []
