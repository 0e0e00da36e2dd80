"""Your app's routes to load: found in its OpenAPI schema, completed by a routes file.

:func:`describe` imports the app in a child process of its own interpreter (from its directory,
with your environment), reads ``app.openapi()`` and its mounted apps' schemas and runs its lifespan
once (startup, shutdown), so an app that cannot be served is said in one line before any load
starts; nothing is served. :func:`plan` turns
the schema into routes:

- every GET route whose required path and query parameters all have an example or a default
  (the parameter's ``example``/``examples``, or its schema's ``default``/``example``/``examples``);
  optional parameters are left out (the route's own defaults apply);
- a routes file (TOML, ``--routes``) adds routes or overrides a found one, matched by method and
  path template::

      [[routes]]
      path = "/search"                 # the path template, as in the schema
      method = "GET"                   # default GET
      path_params = { item_id = 7 }
      query = { q = "shoes" }
      headers = { Authorization = "Bearer ..." }
      json = { name = "x" }            # a JSON body
      skip = true                      # leave a found route out

  and headers sent with every route (an API whose every route needs a token), also given on the
  command line (``--header 'Authorization: Bearer ...'``, which wins over the file's)::

      headers = { Authorization = "Bearer ..." }

- a route whose OpenAPI operation declares ``security`` (or under a schema that does) is left out,
  "needs auth", until its headers (or query) carry what one of its security requirements asks for:
  the ``Authorization`` header for HTTP and OAuth2 schemes, an API key's own header, query
  parameter or cookie.

Each route becomes one Locust user class whose request name is the route: its path template for GET,
``METHOD path`` otherwise (the Locust side reads the plan from the run directory:
:mod:`locustfiles.plugin.plan` owns the route record and the plan's environment variable). The
plan also lists every route left out and why, for the report. Or your own locustfile
(:func:`locustfile_plan`): each of its user classes is one route, its requests named by the class.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import quote

from locustfiles.plugin.plan import AppRoute, RoutesError, load_user_classes, merged_headers
from routebench import appenv

METHODS = ("get", "post", "put", "patch", "delete", "head", "options")
DESCRIBE_TIMEOUT_S = 90.0


def route_id(method: str, template: str) -> str:
    return template if method == "GET" else f"{method} {template}"


def class_name(method: str, template: str, taken: set[str]) -> str:
    """``/items/{item_id}`` -> ``ItemsItemId`` (``PostItems`` for POST): a Python identifier, unique."""
    words = [w for w in re.split(r"[^A-Za-z0-9]+", template) if w]
    base = "".join(w[:1].upper() + w[1:] for w in words) or "Root"
    if method != "GET":
        base = method.capitalize() + base
    if base[0].isdigit():
        base = "Route" + base
    name, n = base, 2
    while name in taken:
        name, n = f"{base}{n}", n + 1
    taken.add(name)
    return name


def _resolved(root: dict[str, Any], obj: Any) -> Any:
    """``obj`` with a local ``$ref`` (``#/components/...``) followed, a few levels deep."""
    for _ in range(8):
        ref = obj.get("$ref") if isinstance(obj, dict) else None
        if not isinstance(ref, str) or not ref.startswith("#/"):
            return obj
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part.replace("~1", "/").replace("~0", "~"), {}) if isinstance(target, dict) else {}
        # Keys beside the $ref (an example, a default) say more than the target: they win.
        siblings = {k: v for k, v in obj.items() if k != "$ref"}
        obj = {**target, **siblings} if isinstance(target, dict) else target
    return obj


def _value(param: dict[str, Any], root: dict[str, Any]) -> tuple[bool, Any]:
    """The example or default a parameter declares, if any."""
    schema = _resolved(root, param.get("schema") or {})
    if "example" in param:
        return True, param["example"]
    examples = param.get("examples")
    if isinstance(examples, dict) and examples:
        first = next(iter(examples.values()))
        if isinstance(first, dict) and "value" in first:
            return True, first["value"]
    for key in ("default", "example", "const"):
        if key in schema:
            return True, schema[key]
    if isinstance(schema.get("examples"), list) and schema["examples"]:
        return True, schema["examples"][0]
    return False, None


def _text(value: Any) -> str:
    return (
        json.dumps(value) if isinstance(value, dict) else str(value).lower() if isinstance(value, bool) else str(value)
    )


def _query_value(value: Any) -> str | list[str]:
    """A query parameter's value as sent: a list is the parameter repeated (``?id=1&id=2``)."""
    return [_text(v) for v in value] if isinstance(value, list) else _text(value)


def fill(template: str, values: dict[str, Any]) -> str:
    """The path template with its parameters' values, each URL-quoted."""
    return re.sub(r"{([^}]+)}", lambda m: quote(_text(values[m[1]]), safe=""), template)


def from_openapi(schema: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The GET routes the schema lets routebench call on its own, and every other route with why not.
    Each carries what the schema gave (``path_params``, ``query``) and what it still ``needs``
    (required parameters without a value, by where they go, and ``body``), for a routes file to
    complete (:func:`plan` checks the completed route against ``needs``)."""
    found: list[dict[str, Any]] = []
    left: list[dict[str, Any]] = []
    for template, item in (schema.get("paths") or {}).items():
        common = item.get("parameters") or []
        for method in METHODS:
            op = item.get(method)
            if not isinstance(op, dict):
                continue
            verb = method.upper()
            params = {
                (p.get("in"), p.get("name")): p
                for p in (_resolved(schema, x) for x in [*common, *(op.get("parameters") or [])])
                if isinstance(p, dict) and p.get("name")
            }
            route: dict[str, Any] = {"method": verb, "path": template, "path_params": {}, "query": {}}
            needs: dict[str, list[str]] = {}
            for (where, name), p in params.items():
                if not (p.get("required") or where == "path"):
                    continue
                known, value = _value(p, schema)
                if known and where == "path" and not isinstance(value, (list, dict)):
                    route["path_params"][str(name)] = value
                elif known and where == "query":
                    route["query"][str(name)] = value
                else:
                    needs.setdefault(str(where), []).append(str(name))
            body = _resolved(schema, op.get("requestBody") or {})
            if isinstance(body, dict) and body.get("required"):
                needs["body"] = ["a JSON body"]
            route["needs"] = needs
            route["auth"] = auth_needs(op, schema)
            if verb == "GET" and not needs and not route["auth"]:
                found.append(route)
                continue
            if verb == "GET" and not needs:
                left.append({**route, "why": AUTH_WHY})
                continue
            words = [f"{where} parameter {name}" for where, names in needs.items() if where != "body" for name in names]
            words += needs.get("body", [])
            why = (
                f"needs {', '.join(words)} with no example or default: give it in a routes file"
                if verb == "GET"
                else "not a GET route: add it in a routes file" + (f" (it needs {', '.join(words)})" if words else "")
            )
            left.append({**route, "why": why})
    return found, left


AUTH_WHY = "needs auth: give a header in the routes file (headers = {...}) or with --header"


def auth_needs(op: dict[str, Any], schema: dict[str, Any]) -> list[list[list[str]]]:
    """What the operation's security asks a request to carry: one list per alternative requirement
    (any one will do), each of ``[where, name]`` pairs (all of them needed): ``["header",
    "authorization"]`` for HTTP and OAuth2 schemes, an API key's own place and name. Empty when it
    declares none, or an empty requirement (``{}``: authentication optional)."""
    requirements = op.get("security", schema.get("security"))
    if not isinstance(requirements, list) or not requirements or any(r == {} for r in requirements):
        return []
    schemes = (schema.get("components") or {}).get("securitySchemes") or {}
    out = []
    for requirement in requirements:
        if not isinstance(requirement, dict):
            continue
        pairs = []
        for name in requirement:
            scheme = _resolved(schema, schemes.get(name) or {})
            if scheme.get("type") == "apiKey" and scheme.get("in") in ("header", "query", "cookie"):
                where, key = scheme["in"], str(scheme.get("name", ""))
                pairs.append([where, key.lower() if where != "query" else key])
            else:  # http (bearer, basic), oauth2, openIdConnect, or a scheme the schema does not define
                pairs.append(["header", "authorization"])
        out.append(pairs)
    return out


def _authorised(route: dict[str, Any]) -> bool:
    """Whether the route's headers and query carry one of its security requirements whole."""
    alternatives = route.get("auth") or []
    if not alternatives:
        return True
    headers = {k.lower() for k in route.get("headers", {})}
    query = set(route.get("query", {}))

    def has(where: str, name: str) -> bool:
        return name in query if where == "query" else (name in headers if where == "header" else "cookie" in headers)

    return any(all(has(where, name) for where, name in pairs) for pairs in alternatives)


def _still_needed(route: dict[str, Any]) -> list[str]:
    """What a completed route still lacks of what the schema requires (empty: it can be sent)."""
    needs = route.get("needs", {})
    headers = {k.lower() for k in route.get("headers", {})}
    out = [f"path parameter {n}" for n in needs.get("path", []) if n not in route.get("path_params", {})]
    out += [f"query parameter {n}" for n in needs.get("query", []) if n not in route.get("query", {})]
    out += [f"header {n}" for n in needs.get("header", []) if n.lower() not in headers]
    out += [f"cookie {n}" for n in needs.get("cookie", []) if "cookie" not in headers]
    out += ["a JSON body" for _ in needs.get("body", []) if route.get("json") is None]
    return out


def read_routes_file(path: Path) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The routes file's routes, and the headers it sends with every route."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RoutesError(f"no routes file {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise RoutesError(f"{path}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RoutesError(f"{path}: cannot read: {exc}") from None
    known = {"path", "method", "path_params", "query", "headers", "json", "skip"}
    entries = data.get("routes", [])
    every = data.get("headers", {})
    if not isinstance(entries, list) or set(data) - {"routes", "headers"} or not isinstance(every, dict):
        raise RoutesError(f"{path}: expected [[routes]] tables and a headers table only")
    out = []
    for i, entry in enumerate(entries, 1):
        extra = set(entry) - known
        if extra:
            raise RoutesError(
                f"{path}: route {i}: unknown key {sorted(extra)[0]!r} (known: {', '.join(sorted(known))})"
            )
        template = entry.get("path")
        if not isinstance(template, str) or not template.startswith("/"):
            raise RoutesError(f"{path}: route {i}: path must be a string starting with /")
        method = str(entry.get("method", "GET")).upper()
        if method.lower() not in METHODS:
            raise RoutesError(f"{path}: route {i}: unknown method {method!r}")
        for key in ("path_params", "query", "headers"):
            if not isinstance(entry.get(key, {}), dict):
                raise RoutesError(f"{path}: route {i}: {key} must be a table")
        out.append({**entry, "method": method})
    return out, {str(k): str(v) for k, v in every.items()}


def parse_header(text: str) -> tuple[str, str]:
    """``'Name: value'`` from the command line (``--header``)."""
    name, colon, value = text.partition(":")
    if not colon or not name.strip() or any(c.isspace() for c in name.strip()):
        raise RoutesError(f"--header {text!r}: give it as 'Name: value'")
    return name.strip(), value.strip()


def plan(
    schema: dict[str, Any] | None, overrides: list[dict[str, Any]], headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """The routes to load and the routes left out (with why), from the schema and the routes file;
    ``headers`` go with every route (a route's own win)."""
    every = headers or {}
    found, left = from_openapi(schema or {"paths": {}})
    if every:  # a route left out only for its auth is in once the headers carry it
        authorised = [x for x in left if x.get("why") == AUTH_WHY and _authorised({**x, "headers": every})]
        found += authorised
        left = [x for x in left if x not in authorised]
    needed = sorted(
        {name.title() for x in left if x.get("why") == AUTH_WHY for w, name in x["auth"][0] if w == "header"}
    )
    by_key = {(r["method"], r["path"]): {**r, "source": "openapi"} for r in found}
    partial = {(x["method"], x["path"]): x for x in left}
    for o in overrides:
        key = (o["method"], o["path"])
        if o.get("skip"):
            by_key.pop(key, None)
            left = [x for x in left if (x["method"], x["path"]) != key]
            left.append({"method": o["method"], "path": o["path"], "why": "skipped in the routes file"})
            continue
        empty = {"method": o["method"], "path": o["path"], "path_params": {}, "query": {}, "needs": {}}
        base = by_key.get(key) or partial.get(key) or empty
        merged = {
            **base,
            "path_params": {**base.get("path_params", {}), **o.get("path_params", {})},
            "query": {**base.get("query", {}), **o.get("query", {})},
            "headers": merged_headers(
                base.get("headers", {}), {str(k): str(v) for k, v in o.get("headers", {}).items()}
            ),
            "json": o.get("json"),
            "source": "routes file" if key not in by_key else "openapi + routes file",
        }
        by_key[key] = merged
        left = [x for x in left if (x["method"], x["path"]) != key]
    taken: set[str] = set()
    routes = []
    for (method, template), r in by_key.items():
        sent = {**r, "headers": merged_headers(every, r.get("headers", {}))}  # what the route will carry
        names = set(re.findall(r"{([^}]+)}", template))
        unfilled = names - set(r.get("path_params", {}))
        lacking = [f"path parameter {n}" for n in sorted(unfilled)] + [
            x for x in _still_needed(sent) if not x.startswith("path parameter")
        ]
        if lacking:
            why = f"still needs {', '.join(lacking)}: the schema requires it; give it in the routes file"
            left.append({"method": method, "path": template, "why": why})
            continue
        if not _authorised(sent):
            left.append({"method": method, "path": template, "why": AUTH_WHY})
            continue
        path = fill(template, r["path_params"])
        routes.append(
            AppRoute(
                id=route_id(method, template),
                method=method,
                template=template,
                path=path,
                query={k: _query_value(v) for k, v in r.get("query", {}).items()},
                headers=r.get("headers", {}),
                json=r.get("json"),
                source=r["source"],
                class_name=class_name(method, template, taken),
            )
        )
    said = [{k: x[k] for k in ("method", "path", "why")} for x in left]
    # The headers for every route by name only: their values (a token) reach the Locust processes in
    # their environment (locustfiles.plugin.plan.HEADERS_ENV), never the run directory.
    return {"routes": [asdict(r) for r in routes], "left_out": said, "headers": sorted(every), "auth_needs": needed}


def describe(
    app: str, app_dir: Path, out: Path, python: Path | None = None, database_url: str | None = None
) -> dict[str, Any]:
    """Import ``app`` in a child process of the app's interpreter ``python`` (in ``app_dir``, with
    this environment; :mod:`routebench.serverside.describe`) and read its OpenAPI schema and its
    mounted applications': ``{"openapi": schema or None, "kind": its type, "mounted": prefixes}``. A
    one-line RoutesError when it does not import or its lifespan fails. ``database_url``: the app's
    DATABASE_URL, where routebench gave it one."""
    if ":" not in app or not all(app.partition(":")[::2]):
        raise RoutesError(f"--app {app!r}: give module:attribute, as for uvicorn (for example main:app)")
    if not app_dir.is_dir():
        raise RoutesError(f"--app-dir {app_dir}: no such directory")
    python = python or Path(sys.executable)
    describe_argv = [str(python), "-m", "routebench.serverside.describe", app, str(app_dir.resolve()), str(out)]
    try:
        done = appenv.run_in(python, describe_argv, app_dir, DESCRIBE_TIMEOUT_S, database_url)
    except subprocess.TimeoutExpired:
        raise RoutesError(f"importing {app} took more than {DESCRIBE_TIMEOUT_S:.0f} s") from None
    try:
        doc: dict[str, Any] = json.loads(out.read_text())
    except (OSError, ValueError):
        raise RoutesError(f"cannot import {app} from {app_dir}: {last_words(done)}") from None
    if doc.get("error"):
        raise RoutesError(f"cannot import {app} from {app_dir}: {doc['error']}")
    if doc.get("lifespan_error"):
        raise RoutesError(f"your app's lifespan failed at startup: {doc['lifespan_error']}")
    return doc


def locustfile_plan(path: Path, out: Path) -> dict[str, Any]:
    """Your own locustfile instead of routes: each of its user classes is one "route" of the probe,
    every request it sends named by the class (locustfiles.plugin.users wraps them)."""
    if not path.is_file():
        raise RoutesError(f"--locustfile {path}: no such file")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "routebench.routes", "--locustfile", str(path.resolve()), str(out)],
            capture_output=True,
            text=True,
            timeout=DESCRIBE_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
        doc = json.loads(out.read_text())
    except subprocess.TimeoutExpired:
        raise RoutesError(f"importing {path} took more than {DESCRIBE_TIMEOUT_S:.0f} s") from None
    except (OSError, ValueError):
        raise RoutesError(f"--locustfile {path}: cannot import it: {last_words(done)}") from None
    if doc.get("error"):
        raise RoutesError(f"--locustfile {path}: cannot import it: {doc['error']}")
    if not doc["classes"]:
        raise RoutesError(f"--locustfile {path}: no user class with tasks in it")
    routes = [
        AppRoute(id=name, method="", template=name, path=name, source="your locustfile", class_name=name)
        for name in doc["classes"]
    ]
    return {"routes": [asdict(r) for r in routes], "left_out": [], "locustfile": str(path.resolve())}


def last_words(done: subprocess.CompletedProcess[str]) -> str:
    tail = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
    return tail[-1] if tail else f"exit {done.returncode}"


def _classes_here(path: str, out: str) -> None:
    """The child's side of :func:`locustfile_plan`."""
    try:
        result: dict[str, Any] = {"classes": list(load_user_classes(Path(path)))}
    except BaseException as exc:  # noqa: BLE001 (anything its import raises is the answer)
        result = {"error": f"{type(exc).__name__}: {exc}"}
    Path(out).write_text(json.dumps(result))


if __name__ == "__main__":
    if sys.argv[1] == "--locustfile":
        _classes_here(sys.argv[2], sys.argv[3])
