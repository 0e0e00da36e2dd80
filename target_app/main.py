"""The target app: gathers one router per family from the catalogue, plus /styles, /health and
/telemetry. Served by :mod:`routebench.launcher`; ``app`` reads its settings from the environment."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, FastAPI, Query
from fastapi.responses import JSONResponse

from routebench.serverside import stalls
from routebench.serverside.telemetry import Gauge, InFlight, Sampler, read_dir
from target_app import catalogue, errors
from target_app.resources import Resources
from target_app.routes import cpu, db, fanout, http, sleep
from target_app.settings import Settings

HERE = Path(__file__).resolve().parent

FAMILY_MODULES: dict[str, ModuleType] = {"sleep": sleep, "cpu": cpu, "fanout": fanout, "http": http, "db": db}


def family_router(name: str, handlers: dict[str, Callable[..., Any]]) -> APIRouter:
    styles = catalogue.family(name)
    missing = {s.style for s in styles} ^ set(handlers)
    if missing:
        raise RuntimeError(f"family {name!r}: catalogue and handlers disagree on {sorted(missing)}")
    router = APIRouter(prefix=f"/{name}", tags=[name])
    for style in styles:
        router.add_api_route(
            f"/{style.style}",
            handlers[style.style],
            methods=["GET"],
            name=style.id,
            summary=style.description,
        )
    return router


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    inflight = Gauge()
    # The lab's code is this package: a stall's site reads target_app/routes/sleep.py:20.
    stalls.use_app_root(HERE.parent, (HERE,))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The limiter belongs to this worker's running loop: set T here, not at import.
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.threadpool_tokens
        res = Resources(settings)
        await res.open()
        app.state.resources = res
        sampler = Sampler(
            settings.telemetry_interval_ms / 1000,
            inflight,
            res.db.stats,
            settings.telemetry_dir,
            settings.stall_threshold_ms / 1000,
        )
        sampler.start()
        app.state.sampler = sampler
        marker = settings.state_dir / f"ready-{os.getpid()}" if settings.state_dir else None
        if marker is not None:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(str(os.getpid()))
        try:
            yield
        finally:
            await sampler.stop()
            await res.close()
            if marker is not None:
                marker.unlink(missing_ok=True)

    app = FastAPI(title="routebench target", lifespan=lifespan)
    app.state.settings = settings
    errors.install(app)
    for name in catalogue.FAMILIES:
        app.include_router(family_router(name, FAMILY_MODULES[name].HANDLERS))

    @app.get("/styles", tags=["meta"])
    async def styles() -> list[dict[str, object]]:
        return [s.as_dict() for s in catalogue.STYLES]

    @app.get(catalogue.CANARY_PATH, tags=["meta"])
    async def canary() -> dict[str, str]:
        """The rest of the app: answers at once, on the worker's event loop (catalogue.CANARY)."""
        return {"status": "ok"}

    @app.get("/health", tags=["meta"])
    async def health() -> JSONResponse:
        res: Resources = app.state.resources
        body: dict[str, object] = {
            "status": "ok",
            "pid": os.getpid(),
            # What theory needs to predict for this server, read from the server itself.
            "workers": settings.workers,
            "worker_class": settings.worker_class,
            "threadpool_tokens": int(anyio.to_thread.current_default_thread_limiter().total_tokens),
            "db_pool_size": settings.db_pool_size,
            "upstream": settings.upstream_url or "disabled",
        }
        if settings.database_url is None:
            body["db"] = "disabled"
            return JSONResponse(body)
        if res.db.error is None:
            try:
                async with res.db.acquire() as conn:
                    await conn.fetchval("SELECT 1")
                body["db"] = "ok"
                return JSONResponse(body)
            except Exception as exc:  # any failure here is what health must report
                res_error = f"{type(exc).__name__}: {exc}"
        else:
            res_error = res.db.error
        body.update(status="unavailable", db=res_error)
        return JSONResponse(body, status_code=503)

    @app.get("/telemetry", tags=["meta"])
    async def telemetry(
        since: Annotated[float, Query(ge=0)] = 0.0, workers: Literal["this", "all"] = "this"
    ) -> dict[str, object]:
        """This worker's samples after ``since``; ``workers=all``: every worker's, from the
        telemetry directory (flushed about once a second), when one is configured."""
        if workers == "all" and settings.telemetry_dir is not None:
            samples = await asyncio.to_thread(read_dir, settings.telemetry_dir, since)
            return {"pid": os.getpid(), "workers": "all", "samples": samples}
        return app.state.sampler.snapshot(since)

    # Outermost, so it counts every request the worker holds.
    app.add_middleware(InFlight, gauge=inflight)
    return app


def __getattr__(name: str) -> FastAPI:
    # ``target_app.main:app`` for Gunicorn/Uvicorn, built on first access from the environment.
    if name == "app":
        globals()["app"] = create_app()
        return globals()["app"]
    raise AttributeError(name)
