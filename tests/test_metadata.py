"""run.json's header has one builder (routebench.metadata.header) for runs and web-UI sessions."""

from __future__ import annotations

from pydantic import SecretStr

from analysis.rundir import RunState
from routebench import metadata
from target_app.settings import Settings


def test_a_runs_header_names_its_database_and_never_writes_the_url() -> None:
    url = "postgresql://bench:secret@db.example/bench"
    head = metadata.header("r", {"name": "x"}, Settings(database_url=url))
    assert head.database == "DATABASE_URL"
    assert "database_url" not in (head.settings or {}) and "secret" not in str(head.settings)
    assert metadata.header("r", {"name": "x"}, Settings(database_url=None)).database == "embedded"


def test_a_web_ui_sessions_header_leaves_out_its_login_and_names_no_database() -> None:
    settings = Settings(database_url=None, ui_password=SecretStr("hunter2"))
    head = metadata.header("ui", {"name": "web-ui"}, settings, web_ui=True)
    assert "ui_password" not in (head.settings or {}) and head.database is None
    assert "database" not in RunState(head).to_json()


def test_the_header_is_written_at_once_and_stamped_with_versions_machine_and_commit_after() -> None:
    settings = Settings(database_url=None)
    head = metadata.header("r", {"name": "x"}, settings)
    first = RunState(head).to_json()
    assert first["status"] == "running" and not {"versions", "machine", "git"} & set(first)
    metadata.stamp(head, settings)
    stamped = RunState(head).to_json()
    assert stamped["versions"]["locust"] and stamped["machine"]["cpu_count"] and "commit" in stamped["git"]
