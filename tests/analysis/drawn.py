"""Whether a published report's charts are drawn, for the tests that open it in Chromium.

Bokeh draws into canvases inside shadow roots, after the page's scripts run and again when a closed
``<details>`` opens: a test waits for the drawing itself, not for a fixed time that a busy machine
may overrun.
"""

from __future__ import annotations

from typing import Any

# Each chart slot's name and whether it is drawn: a box of real height holding a canvas drawn on.
CHARTS_JS = """() => [...document.querySelectorAll('.chart')].map(chart => {
    const canvases = [];
    const walk = (root) => root.querySelectorAll('*').forEach(e => {
        if (e.tagName === 'CANVAS') canvases.push(e);
        if (e.shadowRoot) walk(e.shadowRoot);
    });
    walk(chart);
    const box = chart.getBoundingClientRect();
    return [chart.dataset.chart, box.height > 100 && canvases.some(c => c.width > 0 && c.height > 0)];
})"""


def charts_drawn(page: Any, timeout_ms: float = 30_000) -> list[tuple[str, bool]]:
    """Every chart slot of ``page`` (its name, drawn or not), once all are drawn or ``timeout_ms``
    has passed: the caller asserts on what it gets."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(f"({CHARTS_JS})().every(([name, drawn]) => drawn)", timeout=timeout_ms)
    except PlaywrightTimeout:
        pass
    return [(name, drawn) for name, drawn in page.evaluate(f"({CHARTS_JS})()")]
