"""Your own ASGI app, served with routebench's evidence around it and no change to its code.

The launcher runs Gunicorn (or Uvicorn) on ``routebench.serverside.harness:app``, with your app's
own interpreter and ``ROUTEBENCH_APP`` set to ``module:attribute``; each worker imports your app
from ``ROUTEBENCH_APP_DIR`` (its working directory) and wraps it in two pure ASGI layers:

- the telemetry middleware (:class:`routebench.serverside.telemetry.InFlight`): requests in flight, served
  per path, and the frame each request runs in, for the stall detector's call sites;
- :class:`Harness`: your app's own lifespan runs as it would under Uvicorn (its scope and state
  pass through); once it says ``startup.complete``, the worker sets T threadpool tokens on its
  loop, starts the telemetry sampler and the loop-stall watchdog, and marks itself ready. A
  lifespan that fails is written down (``failed-<pid>``) for the launcher to say in one line.
  ``GET /__routebench/health`` is answered here, so your app needs no health route of its own.

Call sites are named in your code: the stall detector counts frames under the app's directory
(less installed libraries) as the app's (:func:`routebench.serverside.stalls.use_app_root`).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from . import stalls
from .settings import ServerSettings
from .telemetry import ASGIApp, Gauge, InFlight, Receive, Sampler, Scope, Send, thread_limiter

Message = dict

HEALTH_PATH = "/__routebench/health"


def failure_marker(state_dir: Path, pid: int) -> Path:
    """Where a worker whose app did not start says why (read by routebench.launcher)."""
    return state_dir / f"failed-{pid}"


def last_line(text: str) -> str:
    """The last non-empty line of a traceback: the exception and its message."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[-1] if lines else "(no message)"


class Harness:
    """Your app, its lifespan watched and the health route answered; everything else passes through."""

    def __init__(self, app: ASGIApp, settings: ServerSettings, gauge: Gauge) -> None:
        self.app = app
        self.settings = settings
        self.gauge = gauge
        self.sampler: Sampler | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
        elif scope["type"] == "http" and scope["path"] == HEALTH_PATH:
            await self._health(send)
        else:
            await self.app(scope, receive, send)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        asked = started = failed = False

        async def watched_receive() -> Message:
            nonlocal asked
            message = await receive()
            asked = asked or message["type"] == "lifespan.startup"
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started, failed
            kind = message["type"]
            if kind == "lifespan.startup.complete":
                started = True
                self._start()
            elif kind == "lifespan.startup.failed":
                failed = True
                self._failed(message.get("message", ""))
            elif kind in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await self._stop()
            await send(message)

        try:
            await self.app(scope, watched_receive, watched_send)
        except Exception as exc:
            if started or failed:
                raise
            if asked:  # its startup raised without saying so: a failed startup all the same
                text = f"{type(exc).__name__}: {exc}"
                self._failed(text)
                await send({"type": "lifespan.startup.failed", "message": text})
                return
            # An app without lifespan support raises at once: served without one, as Uvicorn would.
            await receive()
            self._start()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await self._stop()
            await send({"type": "lifespan.shutdown.complete"})

    def _start(self) -> None:
        s = self.settings
        set_threadpool_tokens(s.threadpool_tokens)
        self.sampler = Sampler(
            s.telemetry_interval_ms / 1000, self.gauge, dict, s.telemetry_dir, s.stall_threshold_ms / 1000
        )
        self.sampler.start()
        if s.state_dir is not None:
            s.state_dir.mkdir(parents=True, exist_ok=True)
            (s.state_dir / f"ready-{os.getpid()}").write_text(str(os.getpid()))

    def _failed(self, text: str) -> None:
        if self.settings.state_dir is not None:
            self.settings.state_dir.mkdir(parents=True, exist_ok=True)
            failure_marker(self.settings.state_dir, os.getpid()).write_text(last_line(text))

    async def _stop(self) -> None:
        if self.sampler is not None:
            await self.sampler.stop()
            self.sampler = None
        if self.settings.state_dir is not None:
            (self.settings.state_dir / f"ready-{os.getpid()}").unlink(missing_ok=True)

    async def _health(self, send: Send) -> None:
        body = json.dumps(
            {
                "status": "ok",
                "pid": os.getpid(),
                "app": self.settings.app,
                "workers": self.settings.workers,
                "worker_class": self.settings.worker_class,
                "threadpool_tokens": threadpool_tokens(),
            }
        ).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})


def set_threadpool_tokens(tokens: int) -> None:
    """T tokens for the running loop's threadpool: AnyIO's limiter (Starlette 0.15 and later), else
    the loop's default executor (older Starlette ran a plain ``def`` route there)."""
    limiter = thread_limiter()
    if limiter is not None:
        limiter.total_tokens = tokens
        return
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=tokens))


def threadpool_tokens() -> int | None:
    limiter = thread_limiter()
    return int(limiter.total_tokens) if limiter is not None else None


def load_app(spec: str, app_dir: Path) -> Any:
    """``module:attribute`` imported from ``app_dir`` by Uvicorn's own importer (the app's Uvicorn,
    which serves it either way)."""
    from uvicorn.importer import import_from_string

    root = str(app_dir.resolve())
    if root not in sys.path:
        sys.path.insert(0, root)
    return import_from_string(spec)


def create_app(settings: ServerSettings | None = None) -> ASGIApp:
    settings = settings or ServerSettings.from_env()
    if not settings.app:
        raise RuntimeError("routebench.serverside.harness serves your app: ROUTEBENCH_APP is not set")
    app_dir = (settings.app_dir or Path.cwd()).resolve()
    stalls.use_app_root(app_dir)
    gauge = Gauge()
    return InFlight(Harness(load_app(settings.app, app_dir), settings, gauge), gauge=gauge)


def __getattr__(name: str) -> ASGIApp:
    # ``routebench.serverside.harness:app`` for Gunicorn/Uvicorn, built on first access from the environment.
    if name == "app":
        globals()["app"] = create_app()
        return globals()["app"]
    raise AttributeError(name)
