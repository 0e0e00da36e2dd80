"""The run's routes plan as a Locust process reads it: your app's routes, or your own locustfile.

routebench.routes writes the plan (``routes.json``) from your app's OpenAPI schema and a routes
file, and names its path in ``ROUTEBENCH_ROUTES`` for the Locust processes it starts; here is the
reading side: the route record, the plan's routes, and your locustfile's user classes. It lives on
the Locust side (below routebench) so a Locust process needs nothing of the runner.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROUTES_ENV = "ROUTEBENCH_ROUTES"  # the plan's file, for the Locust processes
# The headers sent with every route (a token, say), as JSON: handed to the Locust processes in their
# environment, never written to the run directory.
HEADERS_ENV = "ROUTEBENCH_HEADERS"


class RoutesError(ValueError):
    """Routes that cannot be loaded, said in one line."""


@dataclass(frozen=True)
class AppRoute:
    """One route of your app as a Locust user sends it."""

    id: str  # the request name: "/items/{item_id}", or "POST /items"
    method: str
    template: str  # the path as the schema names it
    path: str  # with its path parameters filled in: what is sent
    query: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    json: Any = None
    source: str = "openapi"  # or "routes file"
    class_name: str = ""
    params: tuple[str, ...] = ()  # no routebench work-size parameter applies (the catalogue's do)

    @property
    def description(self) -> str:
        return f"{self.method} {self.path}" + (
            f"?{'&'.join(f'{k}={v}' for k, v in self.query.items())}" if self.query else ""
        )


def merged_headers(*layers: Mapping[str, str]) -> dict[str, str]:
    """Header layers merged by name whatever its case (HTTP's names are case-insensitive), a later
    layer's value winning."""
    out: dict[str, tuple[str, str]] = {}
    for layer in layers:
        for name, value in layer.items():
            out[name.lower()] = (name, value)
    return dict(out.values())


def routes_of(plan_doc: dict[str, Any], environ: Mapping[str, str] = os.environ) -> list[AppRoute]:
    """The plan's routes as sent: each with the headers for every route (``ROUTEBENCH_HEADERS``)
    under its own."""
    every = json.loads(environ.get(HEADERS_ENV) or "{}")
    return [
        AppRoute(**{**r, "params": tuple(r.get("params", ())), "headers": merged_headers(every, r.get("headers", {}))})
        for r in plan_doc.get("routes", [])
    ]


def read_plan(environ: Mapping[str, str] = os.environ) -> dict[str, Any] | None:
    """The plan this process was started with (``ROUTEBENCH_ROUTES``), or None: the catalogue's styles."""
    path = environ.get(ROUTES_ENV)
    return json.loads(Path(path).read_text()) if path else None


def load_user_classes(path: Path) -> dict[str, Any]:
    """Your locustfile's user classes (not abstract, with tasks), by name, in the order it defines
    them: imported here as Locust would (in a Locust process, or the child of
    routebench.routes.locustfile_plan)."""
    import importlib.util

    from locust import User  # here, not above: the runner imports this module and must not load gevent

    spec = importlib.util.spec_from_file_location("routebench_your_locustfile", path)
    if spec is None or spec.loader is None:
        raise RoutesError(f"--locustfile {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.resolve().parent))
    spec.loader.exec_module(module)
    return {
        name: cls
        for name, cls in vars(module).items()
        if isinstance(cls, type)
        and issubclass(cls, User)
        and cls.__module__ == module.__name__
        and not cls.__dict__.get("abstract", False)
        and getattr(cls, "tasks", None)
    }
