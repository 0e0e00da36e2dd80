"""A target stack started elsewhere (``--target-url``, another host): measured, not managed.

The runner starts no process for it, so it has no server evidence (log, telemetry, connections);
what theory needs of its shape (W, T, P) comes from its own ``/health``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from routebench.launcher import StackError, http_status, wait_for


@dataclass
class ExternalTarget:
    """A target running elsewhere, in the place of a :class:`routebench.launcher.Stack`."""

    target_url: str
    processes: list[Any] = field(default_factory=list)

    health: dict[str, Any] = field(default_factory=dict)

    def wait_ready(self, timeout: float = 60.0) -> None:
        if not wait_for(lambda: http_status(self.target_url + "/health") == 200, timeout, 0.2):
            raise StackError(f"the target at {self.target_url} did not answer /health within {timeout:.0f} s")
        try:
            with httpx.Client(timeout=5) as client:
                body = client.get(self.target_url + "/health").json()
            self.health = body if isinstance(body, dict) else {}
        except (httpx.HTTPError, ValueError):
            self.health = {}

    def server_shape(self) -> dict[str, Any]:
        """W, T and P as the server itself reports them (theory predicts from these, not from the
        experiment file); without them, the cell is not predicted."""
        keys = {"workers": "server_workers", "threadpool_tokens": "threadpool_tokens", "db_pool_size": "db_pool_size"}
        reported = {
            ours: self.health[theirs] for theirs, ours in keys.items() if isinstance(self.health.get(theirs), int)
        }
        if len(reported) < len(keys):
            return {"predict": False, "predict_reason": "the target's /health does not report W, T and P"}
        return {**reported, "worker_class": self.health.get("worker_class", "unknown")}

    def log(self, name: str) -> str:
        return ""


def external_target(url: str) -> ExternalTarget:
    """A target running elsewhere, once it answers."""
    target = ExternalTarget(url.rstrip("/"))
    target.wait_ready()
    return target
