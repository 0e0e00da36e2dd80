"""Gunicorn's configuration for the target, from the one settings object.

The launcher runs ``gunicorn -c target_app/gunicorn_conf.py target_app.main:app``; nothing else
spells Gunicorn's options.
"""

from target_app.settings import KEEPALIVE_S, Settings

_settings = Settings()

WORKER_CLASSES = {
    "uvicorn-worker": "uvicorn_worker.UvicornWorker",
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
