"""routebench in Locust's web UI: a sensible start form, its values checked before any load, and the
"routebench" tab of live rows (exact percentiles beside the server's evidence).

Locust's own extension points only: an extra tab and its table's columns, and rows added to the
stats response the page polls every couple of seconds. A driven master's page is never watched, so
its polls stay cheap and the target unasked.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

from locust.env import Environment

from analysis.rundir import RunDir
from locustfiles.plugin.options import STATE_PATH, check_form
from locustfiles.plugin.save import save_test
from locustfiles.plugin.state import ProcessState
from routebench.serverside import stalls
from routebench.serverside.telemetry import read_dir

LIVE_S = 10.0  # the routebench tab's server evidence covers the last this many seconds
LIVE_COLUMNS = [
    {"key": "style", "title": "style"},
    {"key": "rps", "title": "req/s (Locust, current)"},
    {"key": "p50", "title": "p50 ms (exact, successes this test)"},
    {"key": "p95", "title": "p95 ms (exact)"},
    {"key": "p99", "title": "p99 ms (exact)"},
    {"key": "blocked", "title": f"loop blocked, last {LIVE_S:g} s"},
    {"key": "site", "title": "top blocking call site"},
    {"key": "lag", "title": f"worst loop lag ms, last {LIVE_S:g} s (server)"},
    {"key": "tokens", "title": "threadpool tokens in use, most (server)"},
]


def live_rows(process: ProcessState, environment: Environment) -> list[dict[str, str]]:
    """One row per style of the current test: exact percentiles from the histograms merged from
    every worker (wherever it runs), Locust's current req/s, and the server's evidence over the
    last ``LIVE_S`` seconds from its ``/telemetry?workers=all``: the share of the time its loops
    were stalled by this style's requests and where, its worst lag and most tokens in use."""
    runner = environment.runner
    capture = process.capture
    rps = {name: e.current_rps for (name, _m), e in runner.stats.entries.items()} if runner is not None else {}
    now = time.time()
    test = process.test
    since = max(now - LIVE_S, test.started_at if test is not None else 0.0)  # never the previous test's
    samples = server_samples(process, environment, since)
    covered_ms = stalls.covered_s(samples, since, now) * 1000
    lag = max((float(s.get("lag_ms") or 0) for s in samples), default=None)
    tokens = max((int(s.get("threads_busy") or 0) for s in samples), default=None)
    rows = []
    for style in sorted(set(capture.histograms["ok"]) | set(rps)):
        if style not in process.user_classes:
            continue
        h = capture.histograms["ok"].get(style)
        counted = h is not None and h.get_total_count() > 0
        path = getattr(getattr(process.user_classes[style], "style", None), "path", None)
        sites: dict[str, float] = {}
        for s in samples:
            for site, info in (s.get("sites") or {}).items():
                if info.get("route") == path:
                    sites[site] = sites.get(site, 0.0) + float(info.get("ms", 0))
        # This style's share of the stalls (by the route running), of the clipped stall time.
        total_sites = sum(float(i.get("ms", 0)) for s in samples for i in (s.get("sites") or {}).values())
        clipped = stalls.clipped_ms(samples, since, now)
        blocked = clipped * sum(sites.values()) / total_sites / covered_ms if total_sites and covered_ms else 0.0
        rows.append(
            {
                "style": style,
                "rps": f"{rps.get(style, 0.0):,.1f}",
                **{f"p{q}": f"{h.get_value_at_percentile(q) / 1000:,.1f}" if counted else "" for q in (50, 95, 99)},  # type: ignore[union-attr]
                "blocked": f"{blocked:.0%}" if samples else "no server evidence",
                "site": max(sites, key=lambda k: sites[k]) if sites else "",
                "lag": f"{lag:,.1f}" if lag is not None else "",
                "tokens": str(tokens) if tokens is not None else "",
            }
        )
    return rows


def server_samples(process: ProcessState, environment: Environment, since: float) -> list[dict[str, Any]]:
    """Every server worker's telemetry after ``since``: from the telemetry directory beside the
    master's output when the stack writes there (``make ui``: read here, so a blocked server
    need not answer), else from the target's ``/telemetry?workers=all``; none if neither says."""
    out = process.options.out
    directory = RunDir(Path(out)).telemetry if out else None
    if directory is not None and directory.is_dir():
        return read_dir(directory, since)
    host = environment.host or ""
    try:
        with urllib.request.urlopen(f"{host.rstrip('/')}/telemetry?workers=all&since={since}", timeout=1.5) as r:
            body = json.loads(r.read())
    except (OSError, ValueError):
        return []
    samples = body.get("samples") if isinstance(body, dict) else None
    return samples if isinstance(samples, list) else []


def extend(process: ProcessState, environment: Environment) -> None:
    """The start form as it comes must run: a sensible set of classes ticked, and values the
    target would reject refused with the reason before any load is sent; and the routebench tab."""
    from flask import jsonify, request

    web_ui = environment.web_ui
    assert web_ui is not None and web_ui.app is not None
    app = web_ui.app
    ticked = process.options.default_classes
    if ticked:
        # The form's checkboxes start from ``available_user_classes``; its rows list ``users``, so
        # narrowing the first ticks a default set while every class stays listed.
        fill = web_ui.update_template_args

        def update_template_args() -> None:
            fill()
            listed = web_ui.template_args.get("available_user_classes") or []
            web_ui.template_args["available_user_classes"] = [c for c in listed if c in ticked]

        web_ui.update_template_args = update_template_args  # type: ignore[method-assign]

    web_ui.template_args["extended_tabs"] = [{"title": "routebench", "key": "routebench"}]
    web_ui.template_args["extended_tables"] = [{"key": "routebench", "structure": LIVE_COLUMNS}]

    @app.route(STATE_PATH)
    @web_ui.auth_required_if_enabled
    def _runner_state() -> Any:
        runner = environment.runner
        clients = getattr(runner, "clients", {})
        return jsonify(
            {
                "state": runner.state if runner is not None else None,
                "workers": [{"id": w.id, "state": w.state} for w in clients.values()],
            }
        )

    @app.after_request
    def _routebench_tab(response: Any) -> Any:
        if process.driven or not request.path.endswith("/stats/requests") or response.status_code != 200:
            return response
        if not response.is_json:
            return response
        body = response.get_json()
        body["extended_stats"] = [{"key": "routebench", "data": live_rows(process, environment)}]
        response.set_data(json.dumps(body))
        return response

    @app.before_request
    def _check_swarm() -> Any:
        if request.method != "POST" or not request.path.endswith("/swarm"):
            return None
        problem = check_form(request.form)
        if problem:
            return jsonify({"success": False, "message": problem, "host": environment.host})
        test = process.test
        runner = environment.runner
        if (
            test is not None
            and test.stopped_at is None
            and runner is not None
            and runner.state in ("spawning", "running")
        ):
            test.warnings.append(
                f"edited while running, {time.time() - test.started_at:.0f} s in: "
                "its users or work sizes changed, so its numbers mix two settings"
            )
        # Starting clears Locust's stats: the stopped test is saved first if its wait is not over.
        if test is not None and test.out and test.stopped_at is not None and not test.saved:
            test.warnings.append(
                f"saved {time.time() - test.stopped_at:.1f} s after its stop, when the "
                "next test started: workers' final reports may be missing"
            )
            save_test(process, environment, test)
        return None
