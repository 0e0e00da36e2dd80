"""What the server side reads of the settings: the ROUTEBENCH_* variables the launcher set.

routebench's own settings (:class:`target_app.settings.Settings`, pydantic) validate every value
before the launcher hands it to the server (``Settings.to_env``); here, in a worker of any Python
with only the standard library, they are only read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV_PREFIX = "ROUTEBENCH_"
# How long the server keeps an idle client connection open. Longer than any user of a cell sits
# idle (an open-model user waits for its next scheduled start), so the server never closes a
# connection just as a request goes out on it: the client does not resend a request whose
# connection died (locustfiles.route_styles), and such a race would count as a failure.
KEEPALIVE_S = 75


def _env(name: str, default: str = "") -> str:
    return os.environ.get(ENV_PREFIX + name.upper(), default)


def _path(name: str) -> Path | None:
    value = _env(name)
    return Path(value) if value else None


@dataclass(frozen=True)
class ServerSettings:
    host: str
    port: int
    canary_port: int
    workers: int
    worker_class: str
    worker_timeout_s: int
    threadpool_tokens: int
    app: str
    app_dir: Path | None
    telemetry_interval_ms: int
    stall_threshold_ms: int
    telemetry_dir: Path | None
    state_dir: Path | None

    @classmethod
    def from_env(cls) -> ServerSettings:
        return cls(
            host=_env("host", "127.0.0.1"),
            port=int(_env("port", "0")),
            canary_port=int(_env("canary_port", "0")),
            workers=int(_env("workers", str(os.cpu_count() or 1))),
            worker_class=_env("worker_class", "uvicorn-worker"),
            worker_timeout_s=int(_env("worker_timeout_s", "30")),
            threadpool_tokens=int(_env("threadpool_tokens", "40")),
            app=_env("app"),
            app_dir=_path("app_dir"),
            telemetry_interval_ms=int(_env("telemetry_interval_ms", "100")),
            stall_threshold_ms=int(_env("stall_threshold_ms", "20")),
            telemetry_dir=_path("telemetry_dir"),
            state_dir=_path("state_dir"),
        )
