"""Whether a cell's numbers can be trusted: each rule checked from what the cell left, said in words.

A cell that breaks a rule keeps its numbers, marked: the report shows the reason next to them, the
model's fit leaves it out, and ``routebench check`` does not judge it unless asked. Rules:

- ``counts``: the exact capture's completed requests match Locust's own count (same window; Locust
  also counts what completed after the close, and open-model starts scheduled in the warm-up);
- ``littles_law``: closed model, U = X x mean latency within 20% (else requests were lost, stuck
  or outlasted the window);
- ``window``: it lasted as long as asked (at least 90%), and no request the window closed on had
  been waiting more than a tenth of it (else the latencies are too long for it: percentiles they
  reach are lower bounds);
- ``generator``: no load-generator process averaged above Locust's CPU warning, and the generator
  kept time: at most 5% of the canary's starts late (it sends on a fixed schedule in every cell, so
  its lateness is the generator's own wait for a core, which every latency it timed then carries);
- ``schedule``: open model, at most 5% of starts late, and offered = sent + unsent;
- ``failures``: at most 1% of requests failed;
- ``final_reports``: every worker's final report reached the master;
- ``workers``: no load-generator process was lost after the window opened (seen by its process
  handle, or missing from the master's heartbeat for a worker on another machine);
- ``server``: no server worker was lost after the window opened (its requests failed or were cut);
- ``warmup`` (information, never fails): warm-up samples rejected.
"""

from __future__ import annotations

import math
from typing import Any

from analysis.rundir import measured_until

COUNT_TOLERANCE = 0.01  # of the larger count, and at least 2 requests
LITTLE_TOLERANCE = 0.20
LATE_SHARE = 0.05
# More failed requests than this and a style's latency percentiles, of its successes only, no longer
# describe it: the one limit the cell rule, the SLO check, the answers and your app's verdicts share.
FAILURE_SHARE = 0.01
SHORT_WINDOW = 0.9  # a window shorter than this share of the one asked for: the test stopped early
WINDOW_FACTOR = 10  # a window this many times the longest latency lets nearly every request finish
RULES = (
    "counts",
    "littles_law",
    "window",
    "generator",
    "schedule",
    "failures",
    "final_reports",
    "workers",
    "server",
)
MEASURED_PHASES = ("window", "finishing", "final report")  # a loss before these was replaced or failed the cell


def locusts_count_range(e: dict[str, Any]) -> tuple[int, int]:
    """What Locust's own count of a style must lie within, from the exact capture's record ``e`` of
    it. Locust counts every response from the moment its stats were cleared for the window to the
    stop: besides the window's own, what was sent in the warm-up and completed in the window, and
    what was sent after the window (its tail, or while the window's requests finished); it may count
    what was still in flight at the stop (censored, or not the window's); it does not count what
    completed in the window's first moment, before its stats were cleared."""

    def n(key: str) -> int:
        return int(e.get(key, 0) or 0)

    low = n("count") + n("failures") + n("started_in_warmup") + n("after_window") - n("before_locust_reset")
    return low, low + n("inflight_at_stop") + n("inflight_after_window") + n("inflight_since_warmup")


def _rule(name: str, ok: bool, text: str) -> dict[str, Any]:
    return {"rule": name, "ok": ok, "text": text}


def check(cell: dict[str, Any], exact: dict[str, Any], locust_counts: dict[str, int] | None = None) -> dict[str, Any]:
    """The ``validity`` record of one cell. ``locust_counts`` (request name -> requests) is the
    fallback for runs whose exact.json did not record Locust's own counts."""
    requests: dict[str, Any] = exact.get("requests", {})
    window = _window(exact)
    model = cell.get("model", exact.get("model", "closed"))
    users_by_style = cell.get("users_by_style") or {}
    counted = exact.get("locust_counts") or {n: {"requests": c} for n, c in (locust_counts or {}).items()}
    rules: list[dict[str, Any]] = []
    notes: list[str] = []
    asked = cell.get("duration_s")
    if window is not None and isinstance(asked, (int, float)) and window < SHORT_WINDOW * asked:
        rules.append(
            _rule(
                "window", False, f"the window lasted {window:,.1f} s, not the {asked:g} s asked: the test stopped early"
            )
        )

    for style in cell.get("styles", []):
        e = requests.get(style)
        if e is None:
            rules.append(_rule("counts", False, f"{style}: no request completed in the window"))
            continue
        completed = int(e.get("count", 0)) + int(e.get("failures", 0))
        low, high = locusts_count_range(e)
        theirs = counted.get(style, {}).get("requests")
        slack = max(2, COUNT_TOLERANCE * max(high, theirs or 0))
        if theirs is not None and not low - slack <= theirs <= high + slack:
            rules.append(
                _rule(
                    "counts",
                    False,
                    f"{style}: exact count {completed:,} but Locust counted {theirs:,} (expected "
                    f"{low:,}..{high:,}): they disagree",
                )
            )
        users = users_by_style.get(style)
        mean_us = e.get("completed_mean_us", e.get("mean_us"))
        if model == "closed" and window and users and mean_us and completed:
            # U = X (R + Z): each user is either waiting for a response or thinking between tasks
            # (your locustfile's wait_time; Z per request is the think time asked in the window over
            # its requests). routebench's own users never think.
            x = completed / window
            think_s = int(e.get("think_us", 0)) / 1e6 / completed
            little = x * (mean_us / 1e6 + think_s)
            if abs(1 - little / users) > LITTLE_TOLERANCE:
                thinking = f" + {think_s:,.3f} s thinking" if think_s else ""
                stuck = int(e.get("inflight_since_warmup", 0))
                held = (
                    f"; {stuck:,} of its users held a request sent in the warm-up through the whole window "
                    f"(over {window:,.0f} s each, unfinished at the stop, not in the window's latency)"
                    if stuck
                    else ""
                )
                rules.append(
                    _rule(
                        "littles_law",
                        False,
                        f"{style}: Little's law does not close: {users:g} users, but throughput x (mean latency"
                        f"{' + think time' if think_s else ''}) = {x:,.1f}/s x ({mean_us / 1e6:,.3f} s{thinking}) "
                        f"= {little:,.1f}{held}",
                    )
                )
        longest = (e.get("censored_max_us") or 0) / 1e6
        # With a tail (a capacity probe) every unfinished request of the window waited the SLO's
        # limit: it is a known break of it, not a percentile left undecided.
        if window and longest * WINDOW_FACTOR > window and not cell.get("tail_s"):
            need = max(1, math.ceil(WINDOW_FACTOR * longest))
            bounds = ", ".join(f"p{p}" for p in e.get("at_least") or [])
            rules.append(
                _rule(
                    "window",
                    False,
                    f"{style}: {e.get('censored', 0):,} requests were unfinished when the {window:,.0f} s window "
                    f"closed, after up to {longest:,.1f} s{f' ({bounds} only lower bounds)' if bounds else ''}; "
                    f"a window of about {need:,} s ({WINDOW_FACTOR}x that) would measure them",
                )
            )
        if model == "open" and "offered" in e:  # runs from before the open-model counts have none
            sent, offered, unsent = int(e.get("sent", 0)), int(e.get("offered", 0)), int(e.get("unsent_at_stop", 0))
            late = int(e.get("late_starts", 0))
            rate = cell.get("arrival_rate")
            if (
                window
                and isinstance(rate, (int, float))
                and rate > 0
                and abs(offered - rate * window) > 2 + 0.03 * rate * window
            ):
                rules.append(
                    _rule(
                        "schedule",
                        False,
                        f"{style}: the schedule offered {offered:,} starts in {window:,.1f} s "
                        f"({offered / window:,.1f}/s), not the {rate:g}/s asked (a generator process with no "
                        "user of this style offers none: give it at least as many users as generator processes)",
                    )
                )
            if offered != sent + unsent:
                rules.append(
                    _rule("schedule", False, f"{style}: offered {offered:,} but sent {sent:,} + unsent {unsent:,}")
                )
            if sent and late / sent > LATE_SHARE:
                rules.append(
                    _rule(
                        "schedule",
                        False,
                        f"{style}: {late:,} of {sent:,} starts ({late / sent:.0%}) began more than "
                        f"{exact.get('late_ms', 10):g} ms late (worst {e.get('max_start_lag_us', 0) / 1000:,.0f} ms): "
                        "the generator did not keep the schedule (too few users, or too little CPU)",
                    )
                )
        failures = int(e.get("failures", 0))
        if completed and failures / completed > FAILURE_SHARE:
            rules.append(
                _rule(
                    "failures",
                    False,
                    f"{style}: {failures:,} of {completed:,} requests failed ({failures / completed:.1%})",
                )
            )
        if e.get("warmup_rejected"):
            notes.append(f"{style}: {int(e['warmup_rejected']):,} warm-up samples rejected")
        if e.get("inflight_since_warmup"):
            notes.append(
                f"{style}: {int(e['inflight_since_warmup']):,} requests sent in the warm-up were still unfinished at "
                "the stop (not the window's: not in its latency)"
            )
    finish = (exact.get("test") or {}).get("finish") or {}
    if finish and not finish.get("complete"):
        notes.append(
            f"the window's requests were let finish for {float(finish.get('s') or 0):,.1f} s (cap "
            f"{float(finish.get('cap_s') or 0):,.1f} s) and not every process said its were done (the cap passed, or "
            "a process holding some was lost): those unfinished are counted at their elapsed time, as lower bounds"
        )

    if cell.get("generator_saturated"):
        rules.append(_rule("generator", False, "a load-generator process averaged above Locust's CPU warning"))
    canary = exact.get("canary") or {}
    sent, late = int(canary.get("sent", 0)), int(canary.get("late_starts", 0))
    if sent and late / sent > LATE_SHARE:
        rules.append(
            _rule(
                "generator",
                False,
                f"the load generator did not keep time: the canary's fixed schedule started {late:,} of {sent:,} "
                f"requests ({late / sent:.0%}) more than {exact.get('late_ms', 10):g} ms late (worst "
                f"{canary.get('max_start_lag_us', 0) / 1000:,.0f} ms), so the latencies it timed carry its own wait "
                "for a core",
            )
        )
    finals = exact.get("final_reports") or {}
    if finals.get("missing"):
        dead = set(finals.get("dead") or [])
        named = [f"{w} (its process died)" if w in dead else w for w in finals["missing"]]
        rules.append(_rule("final_reports", False, f"final report never arrived from {', '.join(named)}"))
    losses = [x for x in cell.get("losses") or [] if x.get("phase") in MEASURED_PHASES]
    generators = [x for x in losses if x.get("kind") == "locust worker"]
    seen = {x.get("client_id") for x in generators}
    # Workers on other machines: only the master's heartbeat knows them.
    heartbeat = [w for w in cell.get("lost_workers") or exact.get("lost_workers") or [] if w.get("id") not in seen]
    if generators or heartbeat:
        said = [describe_loss(x) for x in generators] + [
            f"{w.get('id')} (missing from the master's heartbeat, "
            f"{int(w.get('samples_received', 0)):,} samples received)"
            for w in heartbeat
        ]
        rules.append(_rule("workers", False, f"load-generator process lost: {'; '.join(said)}"))
    servers = [x for x in losses if x.get("kind") == "server worker"]
    if servers:
        rules.append(_rule("server", False, f"server worker lost: {'; '.join(describe_loss(x) for x in servers)}"))
    failed = [r for r in rules if not r["ok"]]
    return {
        "valid": not failed,
        "failed": sorted({r["rule"] for r in failed}),
        "reasons": [r["text"] for r in failed],
        "broken": [{"rule": r["rule"], "text": r["text"]} for r in failed],
        "notes": notes,
    }


PHASE_WORDS = {
    "starting": "before the test started",
    "warm-up": "in the warm-up",
    "window": "in the measured window",
    "finishing": "while the window's last requests finished",
    "final report": "while the final reports came in",
    "session": "in the web-UI session",
}


def describe_loss(loss: dict[str, Any]) -> str:
    """One lost process in words (a ``losses`` entry of cell.json, see routebench.watch):
    ``locust-worker-2 (pid 4711) killed by SIGKILL at +5.2 s, in the measured window, 812 samples
    delivered``."""
    phase = str(loss.get("phase"))
    text = (
        f"{loss.get('process')} (pid {loss.get('pid')}) {loss.get('how')} "
        f"at +{float(loss.get('at_s', 0)):.1f} s, {PHASE_WORDS.get(phase, phase)}"
    )
    if loss.get("samples_delivered") is not None:
        text += f", {int(loss['samples_delivered']):,} samples delivered"
    return text


def _window(exact: dict[str, Any]) -> float | None:
    start, stop = exact.get("measure_from"), measured_until(exact)
    if isinstance(start, (int, float)) and isinstance(stop, (int, float)) and stop > start:
        return float(stop - start)
    return None
