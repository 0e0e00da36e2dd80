"""Locust user classes for routebench: one ``FastHttpUser`` per route style of the catalogue, or,
with your app (``ROUTEBENCH_ROUTES``: the run's ``routes.json``, routebench.routes), one per route.

Run it through ``routebench run`` / ``make ui``, or by hand::

    locust -f locustfiles/route_styles.py --host http://127.0.0.1:8000 --class-picker

The request name is the style id (your route: its path, ``METHOD path`` beyond GET); each task is
tagged with its family (``app`` for your routes). Two load models:

- closed (default): users with no think time, each sends its next request when the last answers;
- open (``--rb-model open --rb-rate R``): each style is started R times a second in all, on a fixed
  schedule, and latency counts from each request's *intended* start, so a slow server cannot hide
  its queue (coordinated omission).

Exact latencies, each process's own window, censoring at its close, final reports, the precision
stop, saving, the web UI's tab and login: locustfiles.plugin, one module per concept. This file is
only what Locust loads: routebench's listeners, and the user classes among its names.
"""

from __future__ import annotations

import sys
from pathlib import Path

# At import, before the package is imported: ``locust -f`` from a clone that is not installed puts
# only this file's directory on the path, and Locust loads the file before any listener runs.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from locustfiles.plugin.hooks import install  # noqa: E402
from locustfiles.plugin.plan import read_plan  # noqa: E402
from locustfiles.plugin.users import canary_user, user_classes  # noqa: E402

state = install()
state.user_classes = user_classes(read_plan(), state)
USER_CLASSES = state.user_classes
# Locust finds user classes among the module's names; these depend on the run's plan. The canary's
# runs only in a test that names it (and has --rb-canary).
globals().update({cls.__name__: cls for cls in [*USER_CLASSES.values(), canary_user(state)]})
