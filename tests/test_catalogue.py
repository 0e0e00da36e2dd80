from __future__ import annotations

import pytest

from target_app import catalogue
from target_app.main import FAMILY_MODULES, create_app, family_router
from target_app.settings import Settings

REQUIRED = {
    "sleep/async-await",
    "sleep/blocking-in-async",
    "sleep/sync-def",
    "sleep/offloaded",
    "cpu/async",
    "cpu/sync-def",
    "cpu/process-pool",
    "fanout/sequential",
    "fanout/gather",
    "http/async-client",
    "http/blocking-client-in-async",
    "http/sync-def",
    "db/asyncpg",
    "db/blocking-in-async",
    "db/sync-def",
}


def test_catalogue_has_every_required_style_once() -> None:
    ids = [s.id for s in catalogue.STYLES]
    assert len(ids) == len(set(ids))
    assert REQUIRED <= set(ids)
    for s in catalogue.STYLES:
        assert s.prediction in catalogue.PREDICTIONS
        assert s.path == f"/{s.family}/{s.style}"


def test_every_catalogue_id_is_a_route_named_after_it() -> None:
    app = create_app(Settings(database_url=None))
    paths = app.openapi()["paths"]
    for s in catalogue.STYLES:
        assert app.url_path_for(s.id) == s.path
        assert paths[s.path]["get"]["tags"] == [s.family]


def test_a_handler_missing_from_the_catalogue_is_refused() -> None:
    handlers = dict(FAMILY_MODULES["sleep"].HANDLERS, extra=lambda: None)
    with pytest.raises(RuntimeError, match="extra"):
        family_router("sleep", handlers)


def test_select_by_family_and_id() -> None:
    chosen = catalogue.select(["sleep", "db/asyncpg"])
    assert [s.id for s in chosen] == [s.id for s in catalogue.family("sleep")] + ["db/asyncpg"]
    with pytest.raises(KeyError, match="nope"):
        catalogue.select(["nope"])


def test_the_app_imports_nothing_from_the_orchestrator() -> None:
    """target_app/ is the app alone: supervision, load and analysis depend on it, never the reverse
    (routebench's server-side instruments, the layer below it, excepted)."""
    import ast
    from pathlib import Path

    import target_app

    for path in Path(target_app.__file__).parent.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                if name.startswith("routebench.serverside"):
                    continue
                assert name.split(".")[0] not in {"routebench", "analysis", "locustfiles"}, (path, name)


def test_each_spelling_of_a_style_is_its_own_and_unique() -> None:
    """The route style owns its path, Locust class, histogram file and family: nothing re-spells them."""
    for spelling in ("path", "class_name", "hdr_file"):
        values = [getattr(s, spelling) for s in catalogue.STYLES]
        assert len(set(values)) == len(values), spelling
    style = catalogue.BY_ID["http/blocking-client-in-async"]
    assert (style.path, style.class_name, style.hdr_file, style.family) == (
        "/http/blocking-client-in-async",
        "HttpBlockingClientInAsync",
        "http__blocking-client-in-async.hdr",
        "http",
    )
    assert catalogue.family_of(style.id) == style.family == "http"
    assert catalogue.slug("007-sleep/async-await-u10-w2-r1") == "007-sleep_async-await-u10-w2-r1"
