"""Bad input to ``routebench run``: one clear line, a non-zero exit, nothing half-written."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from tests.conftest import assert_one_line_error, routebench_cli


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return routebench_cli("run", *args, timeout=120)


@pytest.mark.parametrize(
    "body, words",
    [
        ("name = 'x'\n[[groups]\nstyles = ['sleep']\n", "not valid TOML"),
        ("[[groups]]\nstyles = ['sleep/nope']\n", "unknown route style 'sleep/nope'"),
        ("users = [0]\n[[groups]]\nstyles = ['sleep']\n", "users"),
        ("wait_ms = 20000\n[[groups]]\nstyles = ['sleep']\n", "wait_ms"),
        ("colour = 'blue'\n[[groups]]\nstyles = ['sleep']\n", "colour"),
        ("name = 'no groups'\n", "groups"),
        ("precision = 0.05\nduration_s = 10\nmax_duration_s = 5\n[[groups]]\nstyles = ['sleep']\n", "max_duration_s"),
        ("precision = 1.5\n[[groups]]\nstyles = ['sleep']\n", "precision"),
        ("mode = 'capacity'\n[capacity]\nslo = ['p99>1ms']\n[[groups]]\nstyles = ['sleep']\n", "METRIC<VALUE"),
        ("mode = 'capacity'\n[capacity]\nprobe_s = 5\nconfirm_s = 5\n[[groups]]\nstyles = ['sleep']\n", "confirm_s"),
        ("mode = 'capacity'\n[capacity]\nmin_rps = 50\nmax_rps = 10\n[[groups]]\nstyles = ['sleep']\n", "min_rps"),
        ("mode = 'capacity'\n[[groups]]\nstyles = ['sleep']\ntogether = true\n", "one style at a time"),
        ("mode = 'fast'\n[[groups]]\nstyles = ['sleep']\n", "mode"),
    ],
)
def test_malformed_experiment_files(tmp_path: Path, body: str, words: str) -> None:
    exp = tmp_path / "bad.toml"
    exp.write_text(body)
    results = tmp_path / "results"
    done = run(str(exp), "--results", str(results))
    assert_one_line_error(done, words)
    assert str(exp) in done.stderr
    assert not results.exists()


def test_capacity_with_a_bad_file_is_one_line_too(tmp_path: Path) -> None:
    exp = tmp_path / "bad.toml"
    exp.write_text("[capacity]\ngrowth = 1\n[[groups]]\nstyles = ['sleep']\n")
    done = routebench_cli("capacity", str(exp), "--results", str(tmp_path / "results"), timeout=120)
    assert_one_line_error(done, "growth")
    assert not (tmp_path / "results").exists()


def test_unknown_profile(tmp_path: Path) -> None:
    assert_one_line_error(run("nonesuch", "--results", str(tmp_path / "r")), "no experiment file 'nonesuch'")


def test_results_directory_that_cannot_be_written(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert_one_line_error(run("smoke", "--results", str(blocker / "results")), "is not writable")


def test_port_in_use_before_anything_is_written(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        done = run("smoke", "--port", str(port), "--results", str(tmp_path / "results"))
    assert_one_line_error(done, f"port {port} on 127.0.0.1 is already in use")
    assert not (tmp_path / "results").exists()


def test_ui_with_its_port_taken_writes_nothing(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        done = routebench_cli(
            "ui", "--no-db", "--web-port", str(port), "--results", str(tmp_path / "results"), timeout=120
        )
    assert_one_line_error(done, f"port {port} on 127.0.0.1 is already in use (wanted for the Locust web UI)")
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    "args, words",
    [
        # Brackets in what the error quotes are text, not terminal markup (rich would eat them).
        (["--app", "main:app", "--app-dir", "/nowhere/[/x]"], "--app-dir /nowhere/[/x]: no such directory"),
        (["--python", "/usr/bin/python3"], "--python goes with --app module:attribute"),
        (["--postgres"], "--postgres and --setup go with --app module:attribute"),
    ],
)
def test_your_app_s_flags_checked_before_anything_starts(tmp_path: Path, args: list[str], words: str) -> None:
    done = run(*args, "--results", str(tmp_path / "results"))
    assert_one_line_error(done, words)
    assert not (tmp_path / "results").exists()
