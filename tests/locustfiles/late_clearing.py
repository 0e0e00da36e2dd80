"""routebench's user classes on a worker whose timers run late, as on a busy machine.

Used by tests/test_capture.py: the timer that clears Locust's own stats as the window opens
fires ``LATE_S`` after the window's start. Locust's count must still cover the window alone, as
the exact count does (a report sent in between carries warm-up requests).
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gevent

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from locustfiles import route_styles  # noqa: E402  (registers routebench's listeners)
from locustfiles.plugin import measure  # noqa: E402

LATE_S = 1.5  # past a whole report interval (workers report every second)


def _late(seconds: float, function: Any, *args: Any) -> Any:
    return gevent.spawn_later(seconds + LATE_S, function, *args)


measure.gevent = SimpleNamespace(spawn_later=_late)  # type: ignore[assignment]  # only the clearing timer uses it
SleepAsyncAwait = route_styles.USER_CLASSES["sleep/async-await"]
