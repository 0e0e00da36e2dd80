"""routebench's user classes plus one that sends a burst only while its process is in warm-up.

Used by tests/test_capture.py: the burst's requests (named ``sleep/sync-def``) all complete
before the window opens, so none may appear in the measured numbers, ours or Locust's.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import gevent
from locust import task

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from locustfiles import route_styles  # noqa: E402  (registers routebench's listeners)
from locustfiles.plugin.users import StyleUser  # noqa: E402
from target_app import catalogue  # noqa: E402

SleepAsyncAwait = route_styles.USER_CLASSES["sleep/async-await"]
MARGIN_S = 0.4  # a 50 ms request sent this long before the window opens has finished by then


class WarmupBurst(StyleUser):
    style = catalogue.BY_ID["sleep/sync-def"]

    @task
    def burst(self) -> None:
        opens = route_styles.state.window.measure_from
        if opens is not None and time.time() < opens - MARGIN_S:
            self.client.get(self.style.path, name=self.style.id)
        else:
            gevent.sleep(0.05)
