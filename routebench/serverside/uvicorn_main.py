"""Uvicorn's own ``--workers`` supervisor serving the target, from the launcher's settings.

The launcher runs ``python -m routebench.serverside.uvicorn_main APP`` where the app's environment has
no Gunicorn with a Uvicorn worker class; nothing else spells Uvicorn's options for the target. The
options go only as far as the app's own Uvicorn knows them (``--timeout-graceful-shutdown`` came in
0.22, say): what it does not know it does without, rather than refuse to start.
"""

from __future__ import annotations

import inspect
import sys
from typing import Any

import uvicorn

from routebench.serverside.settings import KEEPALIVE_S, ServerSettings

GRACEFUL_S = 5  # as Gunicorn's graceful_timeout (gunicorn_conf)


def options(s: ServerSettings) -> dict[str, Any]:
    """Uvicorn's keyword options for the target, those this Uvicorn's Config accepts."""
    wanted: dict[str, Any] = {
        "host": s.host,
        "port": s.port,
        "workers": s.workers,
        "log_level": "warning",
        "access_log": False,
        "timeout_keep_alive": KEEPALIVE_S,
        "timeout_graceful_shutdown": GRACEFUL_S,
    }
    known = inspect.signature(uvicorn.Config.__init__).parameters
    return {k: v for k, v in wanted.items() if k in known}


if __name__ == "__main__":
    uvicorn.run(sys.argv[1], **options(ServerSettings.from_env()))
