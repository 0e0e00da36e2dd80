"""The bottleneck rules: what the server's evidence must show before a limit is named (the event
loop blocked, the threadpool or the connection pool exhausted, the CPU run out), with their
thresholds. Two readers name limits and both decide with these: the report's "Why" per route style
(analysis.report.why_text) and your app's verdicts (analysis.findings.decide). Each gathers its own
evidence and words its own sentence; what counts as blocked, exhausted or saturated is decided
here, once. Both name the threadpool only with every token taken and requests waiting for one
(where the telemetry records those), and the pool before it (threads waiting for a connection hold
their tokens); a verdict also asks that the tokens served near their pace (tokens_limit): the
route styles the Why reads are the lab's own, with no lock behind their tokens.

The readers once kept a copy each and the copies had drifted (the Why: a resource exhausted 20% of
the window, the CPU busy at 80% of the cores; the verdicts: 25% and 70%). The verdicts' values are
kept: they are the ones the end-to-end test of the sample app holds with (tests/test_your_app.py:
cpu-bound, threadpool-bound, and fine under the machine's cap), and a verdict names the route's own
code, so a false claim costs more than a missed one.

(The model's own bottleneck, analysis.theory.BOTTLENECK_UTILISATION, names the busiest station of
a prediction: a noiseless number, and a different question.)
"""

from __future__ import annotations

import math
from typing import Any

from analysis import theory

# The loops stalled a fifth of the window: every request that arrives during a stall waits for it,
# so at least a fifth of the requests carry a stall in their latency, from the p80 on.
BLOCKED_SHARE = 0.20
# A resource (every threadpool token, every pooled connection) taken in a quarter of the server's
# samples or more: requests queue for it across the window, not in a burst at its start.
EXHAUSTED_SHARE = 0.25
# The workers' CPU counts as run out at 70% of the cores they could use: the figure is an average
# over a window that opens and closes with idle edges, and the Gunicorn master, the telemetry and
# the kernel take their part of the same cores, so a CPU that capped the throughput never reads 100%.
CPU_SATURATED = 0.70
# The threadpool's tokens are the limit when they serve requests near the pace they serve one
# alone. Little's law for the tokens: B tokens in use on average (summed over the workers; W x T when
# every one is taken) each holding a request s1 seconds, s1 a request's latency alone, serve B / s1
# requests a second (``tokens_pace``). Behind a lock held for the whole request the tokens are all
# taken too (the threads waiting on it hold theirs), but each worker serves one request at a time:
# 1/T of that pace (1/8 in the sample shop, 1/40 at the default T); behind a lock held for a share f
# of each request, 1/(f T) of it; behind a pool of P connections, P/T. Tokens that are the limit
# serve nearly all of it (the sample shop's plain def route, T = 8: over 90% in runs here); three
# quarters leaves them room to lose pace to a busy CPU (T threads share a worker's GIL) and tells a
# whole-request lock from the tokens for any T of 2 or more. A lock held for a short share of the
# request (f T under 4/3) may still read as the tokens: both limits then bind nearly together.
TOKENS_PACE_SHARE = 0.75
# The lab's upstream service is one process: past this share of a core it set the pace of the calls
# made to it, not the route style that made them (Locust's own warning for its processes is the same).
LAB_PROCESS_BUSY = 0.90


def _share(value: Any) -> float | None:
    """A share as a float, None when it was not measured (None or NaN)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value):
        return float(value)
    return None


def lab_limit(row: Any) -> str:
    """What of the lab's own (not the server under test) was the limit in a row's cell, in words, or
    '': its upstream service's one process used LAB_PROCESS_BUSY of a core or more."""
    upstream = _share(row.get("upstream_cpu_cores"))
    if upstream is not None and upstream >= LAB_PROCESS_BUSY:
        return f"the lab's upstream service, one process, used {upstream:.2f} of a core"
    return ""


def loop_blocked(blocked_share: Any) -> bool:
    """The event loops were stalled BLOCKED_SHARE of the window or more."""
    share = _share(blocked_share)
    return share is not None and share >= BLOCKED_SHARE


def blocked_in_own_code(blocked_share: Any, own_code_share: Any) -> bool:
    """The loops were blocked (loop_blocked), mostly (half of the stalled time or more) at call sites
    in the application's own code: its line holds the loop, not the loop's own code or a library."""
    own = _share(own_code_share)
    return loop_blocked(blocked_share) and (own or 0.0) >= float(blocked_share) / 2


def exhausted(share: Any) -> bool:
    """A resource was all taken (every token, every connection) in EXHAUSTED_SHARE or more of the
    server's samples."""
    value = _share(share)
    return value is not None and value >= EXHAUSTED_SHARE


def usable_cores(workers: int, cell: dict[str, Any], machine_cores: float) -> float:
    """The cores the server's workers can use in ``cell``: one per worker (Python holds its GIL), no
    more than the machine has less what the load generator used (analysis.theory.cores_available)."""
    return min(float(workers), theory.cores_available(cell, machine_cores))


def cpu_saturated(cores_used: float, cores_usable: float) -> bool:
    """The workers' CPU ran out: they used CPU_SATURATED of the cores they could, or more."""
    return cores_used >= CPU_SATURATED * cores_usable


def tokens_pace(tokens_in_use: float, alone_ms: float) -> float:
    """Requests a second that ``tokens_in_use`` threadpool tokens serve when each holds one request
    at a time for ``alone_ms`` (a request's latency alone)."""
    return tokens_in_use / (alone_ms / 1000)


def tokens_limit(rps: float, tokens_in_use: float, alone_ms: float) -> bool:
    """The tokens are what held the throughput: ``rps`` reached TOKENS_PACE_SHARE of tokens_pace."""
    return rps >= TOKENS_PACE_SHARE * tokens_pace(tokens_in_use, alone_ms)
