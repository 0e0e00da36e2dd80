"""The published report in a real headless Chromium (Debian's, driven by Playwright)."""

from __future__ import annotations

from pathlib import Path

from analysis.load import load_run
from analysis.report import MAX_REPORT_BYTES, publish, publish_comparison
from tests.analysis.drawn import charts_drawn
from tests.conftest import FIXTURE_RUN, needs_chromium

pytestmark = needs_chromium


def open_page(browser: object, path: Path) -> tuple[object, list[str]]:
    page = browser.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    page.goto(path.resolve().as_uri())
    page.wait_for_function("window.Bokeh !== undefined && Object.keys(Bokeh.index).length > 0", timeout=15_000)
    page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
    charts_drawn(page)  # what opening them draws is done
    return page, problems


def test_report_renders_every_chart_and_lists_every_style(browser: object, tmp_path: Path) -> None:
    index = publish(FIXTURE_RUN, tmp_path / "reports")
    assert index.stat().st_size < MAX_REPORT_BYTES
    page, problems = open_page(browser, index)
    charts = charts_drawn(page)
    cells = len(load_run(FIXTURE_RUN).cells)
    assert len(charts) == 4 + cells  # four summary charts and one timeline per cell
    # Every chart has its height and holds a canvas drawn on (Bokeh's, nested in shadow roots).
    assert all(drawn for _, drawn in charts), charts
    styles = set(page.evaluate("[...document.querySelectorAll('#decision tr[data-style]')].map(r => r.dataset.style)"))
    assert styles == {s for c in load_run(FIXTURE_RUN).cells for s in c["styles"]}
    assert "FAILED" in page.inner_text("#slo") and "passed" in page.inner_text("#slo")
    assert problems == []


def test_answers_come_first_with_evidence_that_exists(browser: object, tmp_path: Path) -> None:
    index = publish(FIXTURE_RUN, tmp_path / "reports", extra_slo=["sleep/async-await:p99<100ms"])
    page, problems = open_page(browser, index)
    page.evaluate("window.scrollTo(0, 0)")
    box = page.locator("#answers").bounding_box()
    assert box is not None and 0 <= box["y"] < 900  # on the first screen, before anything else to read
    order = page.evaluate(
        "['answers', 'slo', 'decision', 'neighbour'].map(id => document.getElementById(id).getBoundingClientRect().top)"
    )
    assert order == sorted(order)
    answers = page.inner_text("#answers")
    assert "sleep at 8 users:" in answers and "never use a blocking call inside async def" in answers
    # Every evidence link lands on something in the page.
    missing = page.evaluate("""[...document.querySelectorAll('#answers a.evidence')]
        .map(a => a.getAttribute('href').slice(1)).filter(id => !document.getElementById(id))""")
    links = page.evaluate("document.querySelectorAll('#answers a.evidence').length")
    assert links > 0 and missing == []
    # The neighbour table: one row per style of the together cell, users as a share.
    cell = next(c for c in load_run(FIXTURE_RUN).cells if len(c["styles"]) > 1)
    rows = page.evaluate("""[...document.querySelectorAll('#neighbour tr[data-style]')].map(r =>
        [r.dataset.style, r.querySelector('td.users').innerText, r.querySelector('td.ratio').innerText])""")
    share = f"{cell['users'] / len(cell['styles']):g} of {cell['users']}"
    assert sorted(r[0] for r in rows) == sorted(cell["styles"]) and {r[1] for r in rows} == {share}
    assert all(r[2] not in ("", "–") for r in rows)
    # A failure the neighbour lesson expects is labelled so, in a neutral colour; others stay red.
    colours = page.evaluate("""(() => {
        const colour = sel => [...document.querySelectorAll(sel)].map(e => getComputedStyle(e).color);
        return {expected: colour('#slo .expected'), bad: colour('#slo .bad')};
    })()""")
    assert colours["expected"] and colours["bad"] and not set(colours["expected"]) & set(colours["bad"])
    assert "failed, as expected" in page.inner_text("#slo")
    assert problems == []
    listing, problems = open_index(browser, tmp_path / "reports" / "index.html")
    assert FIXTURE_RUN.name in listing and problems == []


def open_index(browser: object, path: Path) -> tuple[str, list[str]]:
    page = browser.new_page()  # type: ignore[attr-defined]
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.goto(path.resolve().as_uri())
    return page.inner_text("#runs"), problems


def test_markup_from_a_run_is_shown_as_text(browser: object, run_copy: Path, tmp_path: Path) -> None:
    hostile = '<b class="injected">bold</b><script>alert("owned")</script><img src=x onerror=alert(2)>'
    cell_dir = run_copy / load_run(run_copy).cells[0]["dir"]
    failures = cell_dir / "locust_failures.csv"
    failures.write_text(
        failures.read_text().rstrip("\n") + f'\nGET,sleep/async-await,"{hostile.replace(chr(34), chr(34) * 2)}",3\n'
    )
    index = publish(run_copy, tmp_path / "reports")
    page, problems = open_page(browser, index)
    assert page.evaluate("document.querySelectorAll('.injected').length") == 0
    assert hostile in page.inner_text("#failures")
    assert problems == []


def test_comparison_page_opens(browser: object, run_copy: Path, tmp_path: Path) -> None:
    out = publish_comparison(FIXTURE_RUN, run_copy, tmp_path / "reports")
    page = browser.new_page()  # type: ignore[attr-defined]
    page.goto(out.resolve().as_uri())
    text = page.inner_text("#comparison")
    # The same run twice, at 1 or 2 repeats a cell: every shape is tested against the noise its
    # repeated shapes show, and nothing differs.
    assert "sleep/blocking-in-async" in text and "same" in text
    assert "better" not in text and "worse" not in text
    method = page.inner_text("#method")
    assert "Welch's t-test" in method and "pooled" in method and "Benjamini-Hochberg" in method
