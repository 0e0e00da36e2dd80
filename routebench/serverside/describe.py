"""What routebench reads of your app before any load, in your app's own interpreter.

``python -m routebench.serverside.describe MODULE:ATTR APP_DIR OUT`` imports the app (from APP_DIR,
as its server will), reads its OpenAPI schema with the schemas of the FastAPI applications mounted
in it (their paths under the mount's prefix), runs its lifespan once (startup, shutdown), and
writes ``{"openapi", "kind", "mounted", "lifespan_error"}`` or ``{"error"}`` as JSON to OUT (the app
may print). ``routebench.routes`` turns that into the routes to load.
"""

from __future__ import annotations

import asyncio
import json
import sys
import traceback
from pathlib import Path
from typing import Any

from .harness import last_line, load_app

LIFESPAN_TIMEOUT_S = 30.0  # the app's startup, run once before any load (a server waits as long)
METHODS = ("get", "post", "put", "patch", "delete", "head", "options")


def openapi_of(app: Any) -> dict[str, Any] | None:
    """``app.openapi()`` of the app or of the app a middleware wraps (``.app``, a few levels down)."""
    for _ in range(10):
        if callable(getattr(app, "openapi", None)):
            schema = app.openapi()
            return schema if isinstance(schema, dict) else None
        app = getattr(app, "app", None)
        if app is None:
            return None
    return None


def _routes_of(app: Any) -> list[Any]:
    """The app's routing table (a FastAPI or Starlette app, or the app a middleware wraps)."""
    for _ in range(10):
        routes = getattr(app, "routes", None)
        if isinstance(routes, list):
            return routes
        app = getattr(app, "app", None)
        if app is None:
            break
    return []


def with_mounts(app: Any, schema: dict[str, Any], prefix: str = "", depth: int = 0) -> list[str]:
    """Add to ``schema`` the paths of every FastAPI app mounted in ``app`` (``app.mount("/api", api)``),
    under the mount's prefix, each operation keeping the security its own schema asks for; the
    prefixes of the mounts added. A path the app already has keeps its own operations (Starlette
    matches the app's own routes first); a security scheme whose name the app already uses for
    another is renamed, with the requirements that name it."""
    mounted: list[str] = []
    if depth > 5:
        return mounted
    for route in _routes_of(app):
        sub = getattr(route, "app", None)
        path = getattr(route, "path", None)
        if sub is None or not isinstance(path, str) or type(route).__name__ != "Mount":
            continue
        where = prefix + path.rstrip("/")
        sub_schema = openapi_of(sub)
        if sub_schema is not None:
            _merge(schema, sub_schema, where)
            mounted.append(where or "/")
        mounted += with_mounts(sub, schema, where, depth + 1)
    return mounted


def _merge(schema: dict[str, Any], sub: dict[str, Any], where: str) -> None:
    """``sub``'s paths and components into ``schema``, its paths under ``where``."""
    components = schema.setdefault("components", {})
    theirs = (sub.get("components") or {}).get("securitySchemes") or {}
    ours = components.setdefault("securitySchemes", {})
    renamed = {name: f"{name} ({where or '/'})" for name, s in theirs.items() if name in ours and ours[name] != s}
    own_security = sub.get("security")
    for template, item in (sub.get("paths") or {}).items():
        if not isinstance(item, dict):
            continue
        for method in METHODS:
            op = item.get(method)
            if not isinstance(op, dict):
                continue
            if own_security is not None:
                op.setdefault("security", own_security)
            if isinstance(op.get("security"), list):
                op["security"] = [
                    {renamed.get(k, k): v for k, v in r.items()} if isinstance(r, dict) else r for r in op["security"]
                ]
        existing = schema.setdefault("paths", {}).setdefault(where + template, {})
        for key, value in item.items():
            existing.setdefault(key, value)
    for kind, entries in (sub.get("components") or {}).items():
        if not isinstance(entries, dict):
            continue
        into = components.setdefault(kind, {})
        for name, entry in entries.items():
            into.setdefault(renamed.get(name, name) if kind == "securitySchemes" else name, entry)


async def lifespan_error(app: Any) -> str | None:
    """Run the app's lifespan once (startup, then shutdown) as a server would: why its startup
    failed, or None (it started, or it has no lifespan)."""
    inbox: asyncio.Queue = asyncio.Queue()
    inbox.put_nowait({"type": "lifespan.startup"})
    said: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return await inbox.get()

    async def send(message: dict[str, Any]) -> None:
        said.append(message)
        if message["type"] == "lifespan.startup.complete":
            inbox.put_nowait({"type": "lifespan.shutdown"})

    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
    raised = ""
    try:
        await asyncio.wait_for(app(scope, receive, send), LIFESPAN_TIMEOUT_S)
    except asyncio.TimeoutError:
        raised = f"its startup did not finish within {LIFESPAN_TIMEOUT_S:.0f} s"
    except Exception as exc:  # noqa: BLE001 (said below, or an app without lifespan support)
        if not said:
            return None  # it raised at once: it has no lifespan, as Uvicorn would take it
        raised = f"{type(exc).__name__}: {exc}"
    kinds = [m["type"] for m in said]
    if "lifespan.startup.failed" in kinds:
        return last_line(said[kinds.index("lifespan.startup.failed")].get("message", ""))
    return None if "lifespan.startup.complete" in kinds else raised or None


def describe(app: str, app_dir: str) -> dict[str, Any]:
    try:
        loaded = load_app(app, Path(app_dir))
    except BaseException as exc:  # noqa: BLE001 (anything the app's import raises is the answer)
        said = str(exc) if type(exc).__name__ == "ImportFromStringError" else None  # uvicorn's own words
        return {"error": said or last_line("".join(traceback.format_exception_only(type(exc), exc)))}
    try:
        own = openapi_of(loaded)
        schema = own if own is not None else {"openapi": "3.0.2", "paths": {}}
        mounted = with_mounts(loaded, schema)
    except Exception as exc:  # noqa: BLE001
        return {"error": f"its OpenAPI schema could not be made: {type(exc).__name__}: {exc}"}
    return {
        "openapi": schema if own is not None or mounted else None,
        "mounted": mounted,
        "kind": f"{type(loaded).__module__}.{type(loaded).__qualname__}",
        "lifespan_error": asyncio.run(lifespan_error(loaded)),
    }


if __name__ == "__main__":
    spec, directory, out = sys.argv[1:4]
    Path(out).write_text(json.dumps(describe(spec, directory), default=str))
