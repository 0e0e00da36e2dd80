"""A CPU profile of every server worker over a cell's measured window, on request
(``profile = true`` in an experiment, ``routebench run --profile``): py-spy samples each Gunicorn
worker 100 times a second from outside the process (``--nonblocking``: the worker is never
paused), idle frames excluded, and writes the stacks it saw in py-spy's raw (collapsed) format,
``profile/worker-<pid>.txt`` in the cell's directory (analysis.rundir.profile_file), which the
report reads (analysis.profiles).

py-spy reads another process's memory, which needs ptrace permission (root, or
``kernel.yama.ptrace_scope`` 0, or CAP_SYS_PTRACE in a container). Without it the cell says so in
one line and the run goes on.
"""

from __future__ import annotations

import math
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analysis.rundir import profile_file

RATE_HZ = 100


def pyspy() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.is_file() else shutil.which("py-spy")


@dataclass
class Profiler:
    out_dir: Path
    started: bool = False
    _procs: dict[int, subprocess.Popen[str]] = field(default_factory=dict)
    _problem: str | None = None

    def start(self, pids: list[int], seconds: float) -> None:
        """Sample each of ``pids`` for ``seconds`` (the rest of the measured window)."""
        self.started = True
        exe = pyspy()
        if exe is None:
            self._problem = "py-spy is not installed (it comes with routebench: pip install py-spy)"
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for pid in pids:
            self._procs[pid] = subprocess.Popen(
                [
                    exe,
                    "record",
                    "--pid",
                    str(pid),
                    "--duration",
                    str(max(1, math.ceil(seconds))),
                    "--rate",
                    str(RATE_HZ),
                    "--format",
                    "raw",
                    "--full-filenames",
                    "--nonblocking",
                    "--output",
                    str(profile_file(self.out_dir, pid)),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                text=True,
                start_new_session=True,
            )

    def finish(self, timeout_s: float) -> dict[str, Any]:
        """The window is over: every sampler still running is told to stop (py-spy writes what it has
        on SIGINT: a window that stopped early, its p99 precise, is not sampled past its end); wait
        for each (at most ``timeout_s``), kill any left; the cell's ``profile``."""
        problems = [self._problem] if self._problem else []
        written = []
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for pid, proc in self._procs.items():
            try:
                _, err = proc.communicate(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
            path = profile_file(self.out_dir, pid)
            if path.is_file() and path.stat().st_size > 0:
                written.append(path.name)
            elif proc.returncode != 0:
                last = [line for line in (err or "").splitlines() if line.strip()]
                reason = last[-1].strip() if last else f"exit code {proc.returncode}"
                if "ermission" in reason or "ptrace" in reason.lower() or "not permitted" in reason:
                    reason = f"no ptrace permission to read worker {pid} ({reason})"
                problems.append(f"py-spy could not profile worker {pid}: {reason}")
        return {
            "tool": "py-spy record --nonblocking --format raw (idle frames excluded)",
            "rate_hz": RATE_HZ,
            "files": written,
            "problem": "; ".join(dict.fromkeys(problems)) or None,
        }
