"""How failures answer: bad parameters a 422 naming the parameter and its range, a failing
database or upstream a prompt 503 naming the cause. Never a hung worker, never a bare 500."""

from __future__ import annotations

import aiohttp
import asyncpg
import httpx
import psycopg
import psycopg_pool
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from target_app.params import PARAMS
from target_app.resources import Unavailable


def describe_validation(exc: RequestValidationError) -> str:
    problems = []
    for err in exc.errors():
        name = str(err.get("loc", ("?",))[-1])
        spec = PARAMS.get(name)
        got = err.get("input")
        if spec is not None:
            problems.append(f"{name} must be {spec.describe()}, got {got!r}")
        else:
            problems.append(f"{name}: {err.get('msg', 'invalid')}")
    return "; ".join(problems)


async def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": describe_validation(exc), "errors": jsonable_errors(exc)}, status_code=422)


def jsonable_errors(exc: RequestValidationError) -> list[dict[str, object]]:
    return [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in exc.errors()]


def _unavailable(prefix: str):
    async def handler(_: Request, exc: Exception) -> JSONResponse:
        text = str(exc) or type(exc).__name__
        detail = text if isinstance(exc, Unavailable) else f"{prefix}: {type(exc).__name__}: {text}"
        return JSONResponse({"detail": detail}, status_code=503)

    return handler


MAX_QUERY_BYTES = 2048  # every route takes at most three short integers


class LimitQueryString:
    """Pure ASGI middleware: an oversized query string gets a 414 before any route sees it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        size = len(scope.get("query_string", b"")) if scope["type"] == "http" else 0
        if size > MAX_QUERY_BYTES:
            response = JSONResponse(
                {"detail": f"query string of {size} bytes is over the {MAX_QUERY_BYTES}-byte limit"}, status_code=414
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def install(app: FastAPI) -> None:
    app.add_middleware(LimitQueryString)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(Unavailable, _unavailable(""))
    app.add_exception_handler(httpx.HTTPError, _unavailable("upstream failed"))
    app.add_exception_handler(aiohttp.ClientError, _unavailable("upstream failed"))
    for db_error in (
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        psycopg.Error,
        psycopg_pool.PoolTimeout,
        TimeoutError,
        OSError,
    ):
        app.add_exception_handler(db_error, _unavailable("database failed"))
