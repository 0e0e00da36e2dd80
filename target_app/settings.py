"""One typed settings object per process, read once from ROUTEBENCH_* environment variables.

The launcher hands settings to the processes it starts through the same variables
(:meth:`Settings.to_env`), so a Gunicorn worker, the upstream service and the CLI agree.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from routebench.serverside.settings import ENV_PREFIX

WorkerClass = Literal["uvicorn-worker", "gunicorn-asgi", "uvicorn"]

# Hard bounds on what one request may ask for: hostile input gets a 422, never a tied-up worker.
MAX_WAIT_MS = 10_000
MAX_FANOUT = 100
MAX_WORK = 20_000_000


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", validate_default=True, populate_by_name=True
    )

    # Where things listen. Port 0 means: the launcher picks a free one.
    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535)
    # A second listener of the same workers, for the canary's connections alone (catalogue.CANARY), so
    # that where the users' connections landed is counted without them; 0: none (Gunicorn's workers only).
    canary_port: int = Field(0, ge=0, le=65535)
    upstream_port: int = Field(0, ge=0, le=65535)
    db_port: int = Field(0, ge=0, le=65535)

    # How the target is served.
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=64)
    worker_class: WorkerClass = "uvicorn-worker"
    threadpool_tokens: int = Field(40, ge=1, le=1000)
    process_pool_size: int = Field(1, ge=1, le=64)
    worker_timeout_s: int = Field(30, ge=2, le=3600)

    # Database: DATABASE_URL (or ROUTEBENCH_DATABASE_URL) to use one's own, else the embedded server.
    database_url: str | None = Field(None, validation_alias=AliasChoices("ROUTEBENCH_DATABASE_URL", "DATABASE_URL"))
    embedded_db: bool = True
    db_pool_size: int = Field(10, ge=1, le=200)
    db_timeout_s: float = Field(15.0, gt=0, le=600)

    # The upstream HTTP service (its own process) and how the target calls it.
    upstream_url: str | None = None
    upstream_latency_ms: int = Field(50, ge=0, le=MAX_WAIT_MS)
    upstream_timeout_s: float = Field(15.0, gt=0, le=600)
    upstream_max_connections: int = Field(1000, ge=1, le=100_000)

    # Per-request defaults; each request may override within the hard bounds above.
    default_wait_ms: int = Field(50, ge=0, le=MAX_WAIT_MS)
    default_work: int = Field(200_000, ge=0, le=MAX_WORK)
    default_fanout: int = Field(5, ge=1, le=MAX_FANOUT)

    # The Locust web UI asks for this password when set (``routebench ui``); never on a command line.
    ui_password: SecretStr | None = None

    # Your own app instead of the target app (routebench.serverside.harness serves it): ``module:attribute``,
    # importable from ``app_dir`` (the server's working directory; default: where routebench runs).
    app: str | None = None
    app_dir: Path | None = None
    # The interpreter that serves your app (routebench.appenv chooses it): its own environment.
    app_python: Path | None = None

    # Server-side evidence.
    telemetry_interval_ms: int = Field(100, ge=10, le=10_000)
    # A loop that has not turned for longer than this is stalled: its stack is captured (0: off).
    stall_threshold_ms: int = Field(20, ge=0, le=10_000)
    telemetry_dir: Path | None = None
    state_dir: Path | None = None

    @property
    def is_loopback(self) -> bool:
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return self.host == "localhost"

    def to_env(self) -> dict[str, str]:
        """The environment variables that reproduce these settings in a child process."""
        env: dict[str, str] = {}
        for name, value in self.model_dump(exclude={"ui_password"}).items():
            if value is None:
                continue
            env[ENV_PREFIX + name.upper()] = str(value).lower() if isinstance(value, bool) else str(value)
        return env


def bounds(name: str) -> dict[str, Any]:
    """The bounds (ge, gt, le, lt) ``Settings`` declares for a knob: an experiment file or a CLI flag
    that takes the same knob checks it against these, never a copy."""
    out: dict[str, Any] = {}
    for rule in Settings.model_fields[name].metadata:
        out.update({key: getattr(rule, key) for key in ("ge", "gt", "le", "lt") if hasattr(rule, key)})
    return out


def default(name: str) -> Any:
    """The knob's built-in default (before any ROUTEBENCH_* variable)."""
    return Settings.model_fields[name].get_default(call_default_factory=True)
