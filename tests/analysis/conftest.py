from __future__ import annotations

import shutil
from pathlib import Path

import pytest

FIXTURE_RUN = Path(__file__).resolve().parent.parent / "fixtures" / "run"


@pytest.fixture
def run_copy(tmp_path: Path) -> Path:
    """A writable copy of the committed real run, for tests that break or alter it."""
    return Path(shutil.copytree(FIXTURE_RUN, tmp_path / FIXTURE_RUN.name))
