"""The upstream HTTP service the http and fanout families call: its own process, its own latency.

``GET /wait?ms=N`` answers after N milliseconds (default: ROUTEBENCH_UPSTREAM_LATENCY_MS).
"""

from __future__ import annotations

import asyncio

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from target_app.settings import MAX_WAIT_MS, Settings


def create_upstream(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings()

    async def wait(request: Request) -> JSONResponse:
        raw = request.query_params.get("ms")
        try:
            ms = settings.upstream_latency_ms if raw is None else int(raw)
        except ValueError:
            ms = -1
        if not 0 <= ms <= MAX_WAIT_MS:
            return JSONResponse({"detail": f"ms must be an integer from 0 to {MAX_WAIT_MS}"}, status_code=422)
        await asyncio.sleep(ms / 1000)
        return JSONResponse({"waited_ms": ms})

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/wait", wait), Route("/health", health)])


def __getattr__(name: str) -> Starlette:
    if name == "app":
        globals()["app"] = create_upstream()
        return globals()["app"]
    raise AttributeError(name)
