"""Exact latency capture: HDR histograms per request name in every Locust process.

Locust rounds response times before its percentiles (to 10 ms between 100 ms and 1 s) and its
workers ship only the rounded counts. Here every response time is recorded in microseconds into
an HdrHistogram (3 significant digits), shipped to the master in each worker report and merged
there without loss: merging HDR histograms adds their bucket counts.

Three histograms per name, kept apart:

- ``ok``: successful responses completed in the window;
- ``failed``: failed ones (a fast 503 must not make a p99 look good);
- ``censored``: requests the window closed on (still in flight, or, in the open model, not yet
  sent), each at its elapsed time so far: its latency is *at least* that.

A percentile is taken over ``ok`` and ``censored`` together; when censored samples reach it, it is
a lower bound and says so (``at_least``). Beside the window's histograms, each successful response
also lands in a histogram of the second it completed in (3 significant digits, like the window's),
so the report's timelines are exact per second and the p99's interval (analysis.precision) is
made at the resolution of the p99 itself.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from analysis.rundir import CellDir, write_json
from target_app.catalogue import CANARY, hdr_file

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour
SIGNIFICANT_DIGITS = 3
SECOND_DIGITS = 3  # the p99 interval is made from these (analysis.precision): as fine as the window's
PERCENTILES = (50, 90, 95, 99, 99.9)
TIMELINE_PERCENTILES = (50, 95, 99)
KINDS = ("ok", "failed", "censored")
# Per-name counters a worker adds up and the master sums: see Capture.count.
COUNTERS = (
    "late_starts",  # open model: sent more than LATE_MS after the intended start
    "warmup_rejected",  # completed before this process's window opened: never recorded
    "inflight_at_stop",  # the test stopped while these requests of the window were in flight (censored)
    "inflight_since_warmup",  # in flight at the stop, started in the warm-up: not the window's, not done
    "before_locust_reset",  # recorded in the window before Locust's own stats were cleared for it
    "after_window",  # with a tail or let finish: completed, started after the window (load, not measured)
    "inflight_after_window",  # with a tail or let finish: started after the window, in flight at the stop
    "started_in_warmup",  # completed in the window, started (scheduled) before it: not recorded
    "think_us",  # your locustfile's users: the think time they asked for in the window (wait_time), in µs
    "offered",  # open model: intended starts inside the window
    "sent",  # open model: of those, sent before the window closed
    "unsent_at_stop",  # open model: due but not sent when the window closed (censored)
)


def new_histogram(digits: int = SIGNIFICANT_DIGITS) -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, digits)


def clamp(micros: float) -> int:
    return max(LOWEST_US, min(int(micros), HIGHEST_US))


class Capture:
    """Histograms of one process (a worker's since its last report, or the master's merged total)."""

    def __init__(self) -> None:
        self.histograms: dict[str, dict[str, HdrHistogram]] = {k: {} for k in KINDS}
        self.seconds: dict[tuple[str, int], HdrHistogram] = {}  # (name, epoch second of completion)
        # Seconds no report will add to any more, kept encoded (a few hundred bytes, not the 190 KB
        # of a 3-digit histogram): a long test's master holds one per style per second.
        self.sealed: dict[tuple[str, int], str] = {}
        self.counts: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.max_start_lag_us: Counter[str] = Counter()
        self.samples_by_worker: Counter[str] = Counter()

    def _histogram(self, kind: str, name: str) -> HdrHistogram:
        h = self.histograms[kind].get(name)
        if h is None:
            h = self.histograms[kind][name] = new_histogram()
        return h

    def record(self, name: str, micros: float, now: float | None = None, kind: str = "ok") -> None:
        value = clamp(micros)
        self._histogram(kind, name).record_value(value)
        if kind != "ok":
            return
        key = (name, int(time.time() if now is None else now))
        sh = self.seconds.get(key)
        if sh is None:
            sh = self.seconds[key] = new_histogram(SECOND_DIGITS)
        sh.record_value(value)

    def count(self, name: str, counter: str, n: int = 1) -> None:
        self.counts[name][counter] += n

    def start_lag(self, name: str, micros: float) -> None:
        self.max_start_lag_us[name] = max(self.max_start_lag_us[name], int(micros))

    def take(self) -> dict[str, Any]:
        """Everything recorded since the last take, encoded for a worker report; then start afresh."""
        payload = {
            "histograms": {
                kind: {n: h.encode() for n, h in hs.items() if h.get_total_count()}
                for kind, hs in self.histograms.items()
            },
            "seconds": [[n, t, h.encode()] for (n, t), h in self.seconds.items() if h.get_total_count()],
            "counts": {n: dict(c) for n, c in self.counts.items()},
            "max_start_lag_us": dict(self.max_start_lag_us),
        }
        self.reset()
        return payload

    def merge(self, payload: dict[str, Any], source: str = "") -> None:
        """Add one worker's report; count its samples per worker (Locust's client id names the host)."""
        for kind, encoded_by_name in payload.get("histograms", {}).items():
            if kind not in self.histograms:
                continue
            for name, encoded in encoded_by_name.items():
                h = self._histogram(kind, name)
                before = h.get_total_count()
                h.decode_and_add(encoded)
                if kind != "censored" and name != CANARY:  # the test's samples: the canary is not its
                    self.samples_by_worker[source] += h.get_total_count() - before
        for name, second, encoded in payload.get("seconds", []):
            key = (name, int(second))
            sh = self.seconds.get(key)
            if sh is None:
                sealed = self.sealed.pop(key, None)
                sh = self.seconds[key] = HdrHistogram.decode(sealed) if sealed else new_histogram(SECOND_DIGITS)
            sh.decode_and_add(encoded)
        for name, counters in payload.get("counts", {}).items():
            self.counts[name].update(counters)
        for name, lag in payload.get("max_start_lag_us", {}).items():
            self.start_lag(name, lag)

    def reset(self) -> None:
        for hs in self.histograms.values():
            hs.clear()
        self.seconds.clear()
        self.sealed.clear()
        self.counts.clear()
        self.max_start_lag_us.clear()
        self.samples_by_worker.clear()

    def seal(self, before: float) -> None:
        """Encode the per-second histograms of the seconds that ended before ``before`` (a late
        report for one opens it again)."""
        for key in [k for k in self.seconds if k[1] + 1 <= before]:
            self.sealed[key] = self.seconds.pop(key).encode()

    def per_second(self) -> list[tuple[tuple[str, int], HdrHistogram]]:
        """Every (name, second) with its histogram, sealed or not, in time order."""
        out = [*self.seconds.items(), *((k, HdrHistogram.decode(e)) for k, e in self.sealed.items())]
        return sorted(out, key=lambda kv: kv[0][1])

    def longest_us(self) -> int:
        """The longest latency of the test's requests recorded (successes and failures; the canary's
        are not the test's), 0 before any."""
        return max(
            (h.get_max_value() for k in ("ok", "failed") for n, h in self.histograms[k].items() if n != CANARY),
            default=0,
        )

    def names(self) -> list[str]:
        return sorted({n for hs in self.histograms.values() for n in hs} | set(self.counts))

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per name: counts, the distribution of successes with the censored samples (lower bounds
        where they reach), the failures' own percentiles, and the counters."""
        out = {}
        for name in self.names():
            ok = self.histograms["ok"].get(name) or new_histogram()
            failed = self.histograms["failed"].get(name) or new_histogram()
            censored = self.histograms["censored"].get(name) or new_histogram()
            dist, worst = new_histogram(), new_histogram()  # censored at their elapsed time / at infinity
            dist.add(ok)
            dist.add(censored)
            worst.add(ok)
            if censored.get_total_count():
                worst.record_value(HIGHEST_US, censored.get_total_count())
            n_ok, n_failed, n_censored = ok.get_total_count(), failed.get_total_count(), censored.get_total_count()
            percentiles = (
                {str(p): dist.get_value_at_percentile(p) for p in PERCENTILES} if dist.get_total_count() else {}
            )
            # A censored request's latency is at least its elapsed time. A percentile is exact
            # when placing the censored ones at infinity instead moves it by less than the
            # histogram's own resolution; otherwise its true value is at least the one shown.
            completed = n_ok + n_failed
            mean = (ok.get_mean_value() * n_ok + failed.get_mean_value() * n_failed) / completed if completed else None
            counts = self.counts.get(name, Counter())
            # Every start of the window: successes and failures at their latency, the unfinished at
            # their elapsed time, so a timeout is slow too (an SLO judges what the users met).
            starts, starts_worst = new_histogram(), new_histogram()
            for h in (ok, failed):
                starts.add(h)
                starts_worst.add(h)
            starts.add(censored)
            if n_censored:
                starts_worst.record_value(HIGHEST_US, n_censored)
            every = {str(p): starts.get_value_at_percentile(p) for p in PERCENTILES} if starts.get_total_count() else {}
            out[name] = {
                "count": n_ok,
                "failures": n_failed,
                "censored": n_censored,
                "min_us": ok.get_min_value() if n_ok else None,
                "max_us": dist.get_max_value() if dist.get_total_count() else None,
                "mean_us": round(ok.get_mean_value(), 1) if n_ok else None,
                "completed_mean_us": round(mean, 1) if mean is not None else None,
                "percentiles_us": percentiles,
                "at_least": [p for p, v in percentiles.items() if worst.get_value_at_percentile(float(p)) > v * 1.01],
                "censored_max_us": censored.get_max_value() if n_censored else None,
                "every_start_percentiles_us": every,
                "every_start_at_least": [
                    p for p, v in every.items() if starts_worst.get_value_at_percentile(float(p)) > v * 1.01
                ],
                "failure_percentiles_us": (
                    {str(p): failed.get_value_at_percentile(p) for p in PERCENTILES} if n_failed else {}
                ),
                "max_start_lag_us": self.max_start_lag_us.get(name, 0),
                **{c: int(counts.get(c, 0)) for c in COUNTERS},
            }
        return out

    def timeline(self, start: float, end: float) -> dict[str, list[list[int]]]:
        """Per name, one row per whole second inside [start, end): [epoch second, responses
        completed in it, p50, p95, p99 in microseconds]. Part-covered seconds at either end are left
        out (their responses are in the window's totals), so a row's count is a true rate."""
        out: dict[str, list[list[int]]] = {}
        for (name, second), h in self.per_second():
            if second < start or second + 1 > end or not h.get_total_count():
                continue
            out.setdefault(name, []).append(
                [second, h.get_total_count(), *(h.get_value_at_percentile(p) for p in TIMELINE_PERCENTILES)]
            )
        return out

    def save(self, directory: Path, extra: dict[str, Any], window: tuple[float, float] | None = None) -> None:
        cell = CellDir(directory)
        cell.hdr_dir.mkdir(parents=True, exist_ok=True)
        for name, h in self.histograms["ok"].items():
            (cell.hdr_dir / hdr_file(name)).write_bytes(h.encode())
        requests = self.summary()
        body = {**extra, "samples_by_worker": dict(self.samples_by_worker), "requests": requests}
        if window is not None:
            body["timeline"] = self.timeline(*window)
        # The canary is the rest of the app, not a style of the test: kept apart, with its timeline.
        canary = requests.pop(CANARY, None)
        if canary is not None:
            body["canary"] = {**canary, "timeline": body.get("timeline", {}).pop(CANARY, [])}
        write_json(cell.exact, body)


def load_histogram(path: Path) -> HdrHistogram:
    return HdrHistogram.decode(path.read_bytes())
