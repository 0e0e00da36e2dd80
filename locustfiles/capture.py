"""Exact latency capture: an HDR histogram per request name in every Locust process.

Locust rounds response times before its percentiles (to 10 ms between 100 ms and 1 s) and its
workers ship only the rounded counts. Here every response time is recorded in microseconds into
an HdrHistogram (3 significant digits), shipped to the master in each worker report and merged
there without loss: merging HDR histograms adds their bucket counts.

Beside the whole-window histogram, each response also lands in a histogram of the second it
completed in (2 significant digits: percentiles within 1%, at a seventh of the memory), so the
report's timelines are exact per second instead of Locust's rolling 10-second window.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from routebench.rundir import CellDir, write_json
from target_app.catalogue import hdr_file

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour
SIGNIFICANT_DIGITS = 3
SECOND_DIGITS = 2
PERCENTILES = (50, 90, 95, 99, 99.9)
TIMELINE_PERCENTILES = (50, 95, 99)


def new_histogram(digits: int = SIGNIFICANT_DIGITS) -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, digits)


class Capture:
    """Histograms of one process (a worker's since its last report, or the master's merged total)."""

    def __init__(self) -> None:
        self.histograms: dict[str, HdrHistogram] = {}
        self.seconds: dict[tuple[str, int], HdrHistogram] = {}  # (name, epoch second of completion)
        self.late_starts: Counter[str] = Counter()
        self.samples_by_worker: Counter[str] = Counter()

    def record(self, name: str, micros: int, now: float | None = None) -> None:
        value = max(LOWEST_US, min(int(micros), HIGHEST_US))
        h = self.histograms.get(name)
        if h is None:
            h = self.histograms[name] = new_histogram()
        h.record_value(value)
        key = (name, int(time.time() if now is None else now))
        sh = self.seconds.get(key)
        if sh is None:
            sh = self.seconds[key] = new_histogram(SECOND_DIGITS)
        sh.record_value(value)

    def late(self, name: str) -> None:
        self.late_starts[name] += 1

    def take(self) -> dict[str, Any]:
        """Everything recorded since the last take, encoded for a worker report; then start afresh."""
        payload = {
            "histograms": {n: h.encode() for n, h in self.histograms.items() if h.get_total_count()},
            "seconds": [[n, t, h.encode()] for (n, t), h in self.seconds.items() if h.get_total_count()],
            "late_starts": dict(self.late_starts),
        }
        self.reset()
        return payload

    def merge(self, payload: dict[str, Any], source: str = "") -> None:
        """Add one worker's report; count its samples per worker (Locust's client id names the host)."""
        for name, encoded in payload.get("histograms", {}).items():
            h = self.histograms.get(name)
            if h is None:
                h = self.histograms[name] = new_histogram()
            before = h.get_total_count()
            h.decode_and_add(encoded)
            self.samples_by_worker[source] += h.get_total_count() - before
        for name, second, encoded in payload.get("seconds", []):
            key = (name, int(second))
            sh = self.seconds.get(key)
            if sh is None:
                sh = self.seconds[key] = new_histogram(SECOND_DIGITS)
            sh.decode_and_add(encoded)
        self.late_starts.update(payload.get("late_starts", {}))

    def reset(self) -> None:
        self.histograms.clear()
        self.seconds.clear()
        self.late_starts.clear()
        self.samples_by_worker.clear()

    def summary(self) -> dict[str, dict[str, Any]]:
        out = {}
        for name, h in sorted(self.histograms.items()):
            out[name] = {
                "count": h.get_total_count(),
                "min_us": h.get_min_value(),
                "max_us": h.get_max_value(),
                "mean_us": round(h.get_mean_value(), 1),
                "percentiles_us": {str(p): h.get_value_at_percentile(p) for p in PERCENTILES},
                "late_starts": self.late_starts.get(name, 0),
            }
        return out

    def timeline(self, start: float, end: float) -> dict[str, list[list[int]]]:
        """Per name, one row per whole second inside [start, end): [epoch second, responses
        completed in it, p50, p95, p99 in microseconds]. Part-covered seconds at either end are left
        out (their responses are in the window's totals), so a row's count is a true rate."""
        out: dict[str, list[list[int]]] = {}
        for (name, second), h in sorted(self.seconds.items(), key=lambda kv: kv[0][1]):
            if second < start or second + 1 > end or not h.get_total_count():
                continue
            out.setdefault(name, []).append(
                [second, h.get_total_count(), *(h.get_value_at_percentile(p) for p in TIMELINE_PERCENTILES)]
            )
        return out

    def save(self, directory: Path, extra: dict[str, Any], window: tuple[float, float] | None = None) -> None:
        cell = CellDir(directory)
        cell.hdr_dir.mkdir(parents=True, exist_ok=True)
        for name, h in self.histograms.items():
            (cell.hdr_dir / hdr_file(name)).write_bytes(h.encode())
        body = {**extra, "samples_by_worker": dict(self.samples_by_worker), "requests": self.summary()}
        if window is not None:
            body["timeline"] = self.timeline(*window)
        write_json(cell.exact, body)


def load_histogram(path: Path) -> HdrHistogram:
    return HdrHistogram.decode(path.read_bytes())
