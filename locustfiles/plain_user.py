"""A plain Locust ``FastHttpUser`` on the route our ``SleepAsyncAwait`` class hits: what ``make bench``
compares our user class against, so the price of exact capture is a number.

It loads routebench's locustfile for its command-line options and listeners (the bench starts every
master the same way) but none of its capture sees this class's requests (their name is not a route
style's).
"""

from __future__ import annotations

import sys
from pathlib import Path

from locust import FastHttpUser, constant, task

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for ``locust -f`` from a clone

import locustfiles.route_styles  # noqa: E402, F401  (the options and listeners; its classes go unused)


class PlainFastHttpUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def sleep_async_await(self) -> None:
        self.client.get("/sleep/async-await?ms=0", name="plain")
