"""The launcher and ``routebench serve`` as a user meets them: real processes, real errors."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

import httpx
import psutil
import pytest

from routebench.launcher import Stack, StackError
from tests.conftest import routebench_cli, stack_settings, still_running

pytestmark = pytest.mark.stack  # starts the real stack or Locust: left out by -m 'not stack'


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_port_in_use_is_one_clear_error(taken_port: int) -> None:
    with pytest.raises(StackError, match=f"port {taken_port} on 127.0.0.1 is already in use"):
        with Stack(stack_settings(port=taken_port), with_db=False):
            pass


def test_cli_port_in_use_exits_nonzero_with_one_line(taken_port: int) -> None:
    result = routebench_cli("serve", "--no-db", "--port", str(taken_port))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert [line for line in result.stderr.splitlines() if "error" in line] == [
        f"routebench: error: port {taken_port} on 127.0.0.1 is already in use (wanted for the target app)"
    ]


@pytest.mark.parametrize(
    "args, words",
    [
        (["--workers", "0"], "workers"),
        (["--threadpool", "-3"], "threadpool_tokens"),
        (["--worker-class", "tornado"], "worker_class"),
    ],
)
def test_cli_bad_settings_are_one_line(args: list[str], words: str) -> None:
    result = routebench_cli("serve", "--no-db", *args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("worker_class", ["gunicorn-asgi", "uvicorn"])
def test_alternative_worker_classes_serve_with_w_workers(worker_class: str) -> None:
    with Stack(stack_settings(worker_class=worker_class), with_db=False) as s:
        assert len(s.worker_pids()) == 2
        r = httpx.get(s.target_url + "/sleep/async-await", params={"ms": 10})
        assert r.status_code == 200 and r.json()["pid"] in s.worker_pids()
        assert httpx.get(s.target_url + "/health").json()["threadpool_tokens"] == 40


def test_serve_prints_urls_and_stops_everything_on_ctrl_c() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "routebench.cli", "serve", "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:
        try:
            url = proc.stdout.readline().strip() if proc.stdout else ""
            assert url.startswith("http://127.0.0.1:")
            assert httpx.get(url + "/db/asyncpg", params={"ms": 5}).status_code == 200
            family = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
            assert len(family) >= 5
            proc.send_signal(signal.SIGINT)
            assert proc.wait(30) == 130
        finally:
            if proc.poll() is None:
                proc.kill()
    assert still_running(family) == []
