"""Your app's routes: what the OpenAPI schema lets routebench load, what a routes file adds, and the
one-line errors of an app it cannot use (no load is sent here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from locustfiles.plugin.plan import HEADERS_ENV, merged_headers, routes_of
from routebench import routes
from routebench.routes import RoutesError

SAMPLE = Path(__file__).resolve().parent / "sample_app"


@pytest.fixture(scope="module")
def shop_schema(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The sample app's schema, read the way ``routebench run --app`` reads it (a child process)."""
    found = routes.describe("shop.main:app", SAMPLE, tmp_path_factory.mktemp("describe") / "d.json")
    assert found["kind"] == "fastapi.applications.FastAPI"
    assert isinstance(found["openapi"], dict)
    return found["openapi"]


def by_id(plan: dict[str, object]) -> dict[str, dict[str, object]]:
    return {r["id"]: r for r in plan["routes"]}  # type: ignore[index, union-attr]


def test_the_schema_gives_every_get_route_it_can_fill(shop_schema: dict[str, object]) -> None:
    plan = routes.plan(shop_schema, [])
    loaded = by_id(plan)
    assert set(loaded) == {
        "/products",
        "/products/{product_id}",
        "/prices",
        "/orders/summary",
        "/ledger",
        "/recommendations",
        "/stock",
    }
    # A required path parameter filled from its example; optional query parameters left to the app.
    assert loaded["/products/{product_id}"]["path"] == "/products/3"
    assert loaded["/prices"]["query"] == {}
    left = {(x["method"], x["path"]): x["why"] for x in plan["left_out"]}
    assert "query parameter q" in left[("GET", "/search")]
    assert "not a GET route" in left[("POST", "/cart")]
    names = [r["class_name"] for r in plan["routes"]]
    assert len(set(names)) == len(names) and all(n.isidentifier() for n in names)


def test_a_routes_file_completes_adds_and_skips(shop_schema: dict[str, object], tmp_path: Path) -> None:
    overrides, _ = routes.read_routes_file(SAMPLE / "routes.toml")
    skip = tmp_path / "skip.toml"
    skip.write_text('[[routes]]\npath = "/stock"\nskip = true\n')
    plan = routes.plan(shop_schema, overrides + routes.read_routes_file(skip)[0])
    loaded = by_id(plan)
    assert loaded["/search"]["query"] == {"q": "product 1"}
    assert loaded["POST /cart"]["method"] == "POST" and loaded["POST /cart"]["json"] == {"product_id": 3, "quantity": 2}
    assert "/stock" not in loaded
    assert {(x["method"], x["path"]) for x in plan["left_out"]} == {("GET", "/stock")}


def test_a_route_without_values_for_its_path_is_left_out() -> None:
    schema = {"paths": {"/a/{x}": {"get": {"parameters": [{"in": "path", "name": "x", "required": True}]}}}}
    assert routes.plan(schema, [])["routes"] == []
    filled = routes.plan(schema, [{"method": "GET", "path": "/a/{x}", "path_params": {"x": "a b"}}])
    assert by_id(filled)["/a/{x}"]["path"] == "/a/a%20b"


@pytest.mark.parametrize(
    "body, words",
    [
        ('[[routes]]\npath = "/a"\ncolour = "red"\n', "unknown key 'colour'"),
        ('[[routes]]\npath = "a"\n', "starting with /"),
        ('[[routes]]\npath = "/a"\nmethod = "FETCH"\n', "unknown method"),
        ('[[routes]]\npath = "/a"\nquery = "q=1"\n', "query must be a table"),
        ('[[routes]\npath = "/a"\n', "not valid TOML"),
        ('path = "/a"\n', "[[routes]] tables and a headers table only"),
    ],
)
def test_a_bad_routes_file_is_one_line(tmp_path: Path, body: str, words: str) -> None:
    path = tmp_path / "routes.toml"
    path.write_text(body)
    with pytest.raises(RoutesError, match=None) as err:
        routes.read_routes_file(path)
    assert words in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "app, words",
    [
        ("shop.nope:app", 'Could not import module "shop.nope"'),
        ("shop.main:nope", 'Attribute "nope" not found'),
        ("shop/main.py", "give module:attribute"),
        ("broken:app", "lifespan failed at startup: RuntimeError: cannot reach the inventory service"),
    ],
)
def test_an_app_that_cannot_be_used_is_one_line(tmp_path: Path, app: str, words: str) -> None:
    with pytest.raises(RoutesError) as err:
        routes.describe(app, SAMPLE, tmp_path / "d.json")
    assert words in str(err.value) and "\n" not in str(err.value)


def test_refs_lists_and_a_completed_route_keep_what_the_schema_says() -> None:
    schema = {
        "components": {
            "parameters": {"Ids": {"in": "query", "name": "ids", "required": True, "example": [1, 2]}},
            "schemas": {"Shop": {"type": "integer", "default": 7}},
        },
        "paths": {
            "/shops/{shop}/items": {
                "parameters": [
                    {"in": "path", "name": "shop", "required": True, "schema": {"$ref": "#/components/schemas/Shop"}}
                ],
                "get": {"parameters": [{"$ref": "#/components/parameters/Ids"}]},
            },
            "/shops/{shop}/orders": {
                "get": {
                    "parameters": [
                        {"in": "path", "name": "shop", "required": True, "example": 9},
                        {"in": "header", "name": "X-Token", "required": True},
                    ]
                }
            },
        },
    }
    plan = routes.plan(schema, [])
    items = by_id(plan)["/shops/{shop}/items"]
    assert items["path"] == "/shops/7/items" and items["query"] == {"ids": ["1", "2"]}  # sent as ?ids=1&ids=2
    assert [x["why"] for x in plan["left_out"]] == [
        "needs header parameter X-Token with no example or default: give it in a routes file"
    ]
    # A routes file giving only the header keeps the path value the schema had.
    done = routes.plan(schema, [{"method": "GET", "path": "/shops/{shop}/orders", "headers": {"X-Token": "t"}}])
    assert by_id(done)["/shops/{shop}/orders"]["path"] == "/shops/9/orders"
    assert by_id(done)["/shops/{shop}/orders"]["headers"] == {"X-Token": "t"}


def test_a_completed_route_must_give_what_the_schema_requires(shop_schema: dict[str, object]) -> None:
    """A routes file that names the wrong thing leaves the route out rather than load a route whose
    every request the app must refuse (a 422 would read as the route's errors)."""
    wrong = [{"method": "GET", "path": "/search", "query": {"query": "x"}}, {"method": "POST", "path": "/cart"}]
    plan = routes.plan(shop_schema, wrong)
    assert "/search" not in by_id(plan) and "POST /cart" not in by_id(plan)
    left = {(x["method"], x["path"]): x["why"] for x in plan["left_out"]}
    assert "still needs query parameter q" in left[("GET", "/search")]
    assert "still needs a JSON body" in left[("POST", "/cart")]


def test_what_a_non_get_route_and_a_ref_beside_an_example_give() -> None:
    schema = {
        "components": {"schemas": {"Colour": {"type": "string", "enum": ["red", "blue"]}}},
        "paths": {
            "/paint": {
                "get": {
                    "parameters": [
                        {
                            "in": "query",
                            "name": "c",
                            "required": True,
                            "schema": {"$ref": "#/components/schemas/Colour", "examples": ["blue"]},
                        }
                    ]
                },
                "post": {
                    "parameters": [{"in": "query", "name": "session", "required": True, "schema": {"default": "s1"}}]
                },
            }
        },
    }
    plan = routes.plan(schema, [{"method": "POST", "path": "/paint", "json": {"c": "red"}}])
    assert by_id(plan)["/paint"]["query"] == {"c": "blue"}
    assert by_id(plan)["POST /paint"]["query"] == {"session": "s1"}  # the schema's default, kept


BEARER = {"HTTPBearer": {"type": "http", "scheme": "bearer"}}
KEY = {"Key": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}


def test_a_route_that_needs_auth_is_left_out_until_a_header_carries_it(tmp_path: Path) -> None:
    """A route whose operation (or whose schema) declares security would answer 401 to every
    request: left out, "needs auth", until the routes file's or the command line's headers carry
    what one of its requirements asks for. An empty requirement makes auth optional."""
    schema = {
        "components": {"securitySchemes": {**BEARER, **KEY}},
        "paths": {
            "/me": {"get": {"security": [{"HTTPBearer": []}]}},
            "/keys": {"get": {"security": [{"Key": []}]}},
            "/either": {"get": {"security": [{"Key": []}, {"HTTPBearer": []}]}},
            "/optional": {"get": {"security": [{}, {"HTTPBearer": []}]}},
            "/open": {"get": {}},
        },
    }
    plan = routes.plan(schema, [])
    assert set(by_id(plan)) == {"/optional", "/open"}
    assert {x["path"]: x["why"] for x in plan["left_out"]} == {p: routes.AUTH_WHY for p in ("/me", "/keys", "/either")}
    assert plan["auth_needs"] == ["Authorization", "X-Api-Key"]  # each route's first requirement
    bearer = routes.plan(schema, [], {"Authorization": "Bearer t"})
    assert set(by_id(bearer)) == {"/me", "/either", "/optional", "/open"}
    assert [x["path"] for x in bearer["left_out"]] == ["/keys"]  # an API key in its own header
    # The token is kept out of the plan (routes.json): named, its value sent from the environment.
    assert by_id(bearer)["/me"]["headers"] == {} and bearer["headers"] == ["Authorization"]
    (sent,) = [r for r in routes_of(bearer, {HEADERS_ENV: '{"Authorization": "Bearer t"}'}) if r.id == "/me"]
    assert sent.headers == {"Authorization": "Bearer t"}
    # One route's own header in the routes file, the rest by a header for every route.
    path = tmp_path / "routes.toml"
    path.write_text(
        'headers = { Authorization = "Bearer f" }\n[[routes]]\npath = "/keys"\nheaders = { X-API-Key = "k" }\n'
    )
    overrides, every = routes.read_routes_file(path)
    full = routes.plan(schema, overrides, every)
    assert set(by_id(full)) == {"/me", "/keys", "/either", "/optional", "/open"} and not full["left_out"]
    assert by_id(full)["/keys"]["headers"] == {"X-API-Key": "k"}
    # Sent: every route's header under the route's own, by name whatever its case (--header's wins).
    every_env = {HEADERS_ENV: json.dumps(merged_headers(every, {"authorization": "Bearer cli"}))}
    (keys,) = [r for r in routes_of(full, every_env) if r.id == "/keys"]
    assert keys.headers == {"authorization": "Bearer cli", "X-API-Key": "k"}
    # Security declared for the whole schema counts for every operation that does not say otherwise.
    whole = {"components": {"securitySchemes": BEARER}, "security": [{"HTTPBearer": []}], "paths": {"/a": {"get": {}}}}
    assert routes.plan(whole, [])["routes"] == []


@pytest.mark.parametrize("text", ["Authorization Bearer t", ": x", "Bad Name: x"])
def test_a_header_not_given_as_name_colon_value_is_one_line(text: str) -> None:
    with pytest.raises(RoutesError, match="give it as 'Name: value'"):
        routes.parse_header(text)


def test_routes_of_mounted_apps_are_found_under_their_prefix(tmp_path: Path) -> None:
    """The API in a mounted FastAPI app (``app.mount("/api/v1", api)``): its routes under the prefix,
    with the security its own schema declares."""
    (tmp_path / "mounted.py").write_text(
        "from fastapi import Depends, FastAPI\n"
        "from fastapi.security import HTTPBearer\n"
        "api = FastAPI()\n"
        "@api.get('/items')\n"
        "async def items(limit: int = 3): return list(range(limit))\n"
        "@api.get('/me', dependencies=[Depends(HTTPBearer())])\n"
        "async def me(): return {}\n"
        "app = FastAPI()\n"
        "@app.get('/')\n"
        "async def root(): return {}\n"
        "app.mount('/api/v1', api)\n"
    )
    found = routes.describe("mounted:app", tmp_path, tmp_path / "d.json")
    assert found["mounted"] == ["/api/v1"]
    plan = routes.plan(found["openapi"], [])
    assert set(by_id(plan)) == {"/", "/api/v1/items"}
    assert [(x["path"], x["why"]) for x in plan["left_out"]] == [("/api/v1/me", routes.AUTH_WHY)]


def test_mounted_apps_keep_their_own_schemes_and_never_replace_the_app_s_routes(tmp_path: Path) -> None:
    """Two apps that each name their API key scheme APIKeyHeader, in different headers: each route
    asks for its own app's header. A mount at / does not replace the app's own open /health."""
    (tmp_path / "two.py").write_text(
        "from fastapi import Depends, FastAPI\n"
        "from fastapi.security import APIKeyHeader\n"
        "sub = FastAPI()\n"
        "@sub.get('/health', dependencies=[Depends(APIKeyHeader(name='X-Sub-Key'))])\n"
        "async def sub_health(): return {}\n"
        "@sub.get('/things', dependencies=[Depends(APIKeyHeader(name='X-Sub-Key'))])\n"
        "async def things(): return []\n"
        "app = FastAPI()\n"
        "@app.get('/health')\n"
        "async def health(): return {}\n"
        "@app.get('/top', dependencies=[Depends(APIKeyHeader(name='X-Top-Key'))])\n"
        "async def top(): return {}\n"
        "app.mount('/', sub)\n"
    )
    found = routes.describe("two:app", tmp_path, tmp_path / "d.json")
    assert found["mounted"] == ["/"]
    top_only = routes.plan(found["openapi"], [], {"X-Top-Key": "t"})
    assert set(by_id(top_only)) == {"/health", "/top"}  # the app's own /health, open
    both = routes.plan(found["openapi"], [], {"X-Top-Key": "t", "X-Sub-Key": "s"})
    assert set(by_id(both)) == {"/health", "/top", "/things"}
    assert routes.plan(found["openapi"], [], {"X-Sub-Key": "s"})["auth_needs"] == ["X-Top-Key"]
