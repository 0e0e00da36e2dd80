from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from routebench.launcher import Stack
from target_app.settings import Settings

WAIT_MS = 100  # d for the real-stack tests: long enough to dwarf loopback and scheduling noise


# The suite's tiers (README, "Development"; each a make verb):
#   fast   no server, no browser, no sleep: deterministic, seconds   make test-fast
#   stack  the real stack, Locust or Chromium                       make test-stack
#   slow   the fault matrix, capacity runs, and tests that time      make test-slow
#          real sleeps or compare two measurements
# ``stack`` is marked in each module that starts the real processes; a test that takes the
# ``browser`` fixture is marked ``browser`` here; ``slow`` is given by module, in this one list.
SLOW_MODULES = frozenset(
    {
        "tests/test_fault_matrix.py",
        "tests/test_faults.py",
        "tests/test_capacity_run.py",
        "tests/test_reuse.py",
        "tests/test_inprocess.py",
        "tests/test_stalls.py",
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(__file__).resolve().parent.parent
    for item in items:
        if Path(item.path).resolve().relative_to(root).as_posix() in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
        if "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)


def stack_settings(**overrides: object) -> Settings:
    base: dict[str, object] = {"workers": 2, "database_url": None, "telemetry_interval_ms": 20}
    base.update(overrides)
    return Settings(**base)


@pytest.fixture(scope="session")
def telemetry_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("telemetry")


@pytest.fixture(scope="session")
def stack(telemetry_dir: Path) -> Iterator[Stack]:
    """The full target stack, W=2: Gunicorn + UvicornWorker, upstream service, embedded PostgreSQL."""
    with Stack(stack_settings(), telemetry_dir=telemetry_dir) as s:
        yield s


async def burst(
    base_url: str, path: str, n: int, params: dict[str, object] | None = None
) -> tuple[float, list[httpx.Response]]:
    """Send n concurrent requests, each on its own connection; return the wall time and responses."""
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:
        start = time.perf_counter()
        responses = await asyncio.gather(*(client.get(path, params=params) for _ in range(n)))
        return time.perf_counter() - start, list(responses)


def routebench_cli(
    *args: str,
    timeout: float = 300,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """The real command, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "routebench.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=cwd,
    )


def assert_one_line_error(done: subprocess.CompletedProcess[str], words: str) -> None:
    """What the user sees of bad input: exit 2 and one line saying it, never a traceback."""
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and words in lines[0], lines


def ui_command(results: Path, *extra: str) -> list[str]:
    """``routebench ui`` as the tests start it: no database, results under ``results``."""
    return [sys.executable, "-m", "routebench.cli", "ui", "--no-db", "--results", str(results), *extra]


def still_running(pids: list[int], grace_s: float = 5.0) -> list[int]:
    """Those of ``pids`` still alive (zombies excepted) after up to ``grace_s`` of waiting for them."""

    def alive() -> list[int]:
        out = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    out.append(pid)
            except psutil.NoSuchProcess:
                pass
        return out

    deadline = time.monotonic() + grace_s
    left = alive()
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = alive()
    return left


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="Debian's chromium is not installed (.ci/run installs it: apt-get install chromium)",
)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's Chromium, headless, driven by Playwright (which downloads no browser of its own).
    Per module: Playwright's sync API keeps an event loop running in this thread while it lives,
    and the in-process tests need to start their own."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield b
        b.close()


FIXTURE_RUN = Path(__file__).resolve().parent / "fixtures" / "run"


@pytest.fixture
def run_copy(tmp_path: Path) -> Path:
    """A writable copy of the committed real run, for tests that break or alter it."""
    return Path(shutil.copytree(FIXTURE_RUN, tmp_path / FIXTURE_RUN.name))
