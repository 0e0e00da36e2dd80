"""Server-side evidence, sampled by every worker while it serves.

A periodic timer on the worker's own event loop measures how late it fires (event-loop lag): a
route that blocks the loop for d makes the timer late by about d. Beside it: AnyIO threadpool
tokens in use, database pool connections in use and waiters, requests in flight. Samples stay in
memory for ``GET /telemetry`` and, when a directory is configured, are appended as JSON lines to
``worker-<pid>.jsonl`` there.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio.to_thread
from starlette.types import ASGIApp, Receive, Scope, Send

SAMPLES_KEPT = 36_000  # an hour at the default 100 ms
FLUSH_EVERY = 10


class Gauge:
    def __init__(self) -> None:
        self.count = 0


class InFlight:
    """Pure ASGI middleware counting HTTP requests in flight on this worker."""

    def __init__(self, app: ASGIApp, gauge: Gauge) -> None:
        self.app = app
        self.gauge = gauge

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.gauge.count += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.gauge.count -= 1


class Sampler:
    def __init__(
        self,
        interval_s: float,
        inflight: Gauge,
        db_stats: Callable[[], dict[str, int | None]],
        out_dir: Path | None,
    ) -> None:
        self.interval_s = interval_s
        self.inflight = inflight
        self.db_stats = db_stats
        self.pid = os.getpid()
        self.samples: collections.deque[dict[str, Any]] = collections.deque(maxlen=SAMPLES_KEPT)
        self.path = out_dir / f"worker-{self.pid}.jsonl" if out_dir is not None else None
        self._pending: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None

    def sample(self, lag_s: float) -> dict[str, Any]:
        limiter = anyio.to_thread.current_default_thread_limiter()
        return {
            "t": time.time(),
            "pid": self.pid,
            "lag_ms": round(lag_s * 1000, 3),
            "threads_busy": limiter.borrowed_tokens,
            "threads_total": int(limiter.total_tokens),
            "inflight": self.inflight.count,
            **self.db_stats(),
        }

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + self.interval_s
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            now = loop.time()
            self.record(self.sample(now - due))
            due = now + self.interval_s

    def record(self, sample: dict[str, Any]) -> None:
        self.samples.append(sample)
        if self.path is not None:
            self._pending.append(sample)
            if len(self._pending) >= FLUSH_EVERY:
                self.flush()

    def flush(self) -> None:
        if self.path is None or not self._pending:
            return
        # A few hundred bytes appended to the page cache: cheap enough for the loop.
        with self.path.open("a", encoding="utf-8") as f:
            f.writelines(json.dumps(s, separators=(",", ":")) + "\n" for s in self._pending)
        self._pending.clear()

    def start(self) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self.flush()

    def snapshot(self, since: float = 0.0) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "interval_ms": round(self.interval_s * 1000),
            "samples": [s for s in self.samples if s["t"] > since],
        }


def read_dir(directory: Path) -> list[dict[str, Any]]:
    """Every sample written to ``directory`` by every worker, oldest first."""
    samples: list[dict[str, Any]] = []
    for path in sorted(directory.glob("worker-*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                samples.append(json.loads(line))
    return sorted(samples, key=lambda s: s["t"])
