"""Gunicorn's configuration for the target (the lab's app or yours), from the launcher's settings.

The launcher runs ``gunicorn -c python:routebench.serverside.gunicorn_conf APP``, with the
Gunicorn of the interpreter that serves the app; nothing else spells Gunicorn's options.
"""

from importlib.util import find_spec

from routebench.serverside.settings import KEEPALIVE_S, ServerSettings

_settings = ServerSettings.from_env()

WORKER_CLASSES = {
    # The uvicorn-worker package; Uvicorn before 0.30 shipped the same class itself.
    "uvicorn-worker": "uvicorn_worker.UvicornWorker"
    if find_spec("uvicorn_worker")
    else "uvicorn.workers.UvicornWorker",
    "gunicorn-asgi": "asgi",
}

bind = [f"{_settings.host}:{_settings.port}"] + (
    [f"{_settings.host}:{_settings.canary_port}"] if _settings.canary_port else []
)
workers = _settings.workers
worker_class = WORKER_CLASSES[_settings.worker_class]
# For async workers a missed check-in means a blocked event loop: Gunicorn kills and replaces it.
timeout = _settings.worker_timeout_s
graceful_timeout = 5
keepalive = KEEPALIVE_S
backlog = 2048
accesslog = None
loglevel = "warning"
proc_name = "routebench-target"
