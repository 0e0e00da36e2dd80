"""The one state of a Locust process that routebench's listeners and users share.

Locust calls our listeners with its own arguments only, so what lives between its events (this
process's window, its requests in flight, its histograms, the master's tests) is held in one object,
made once by :func:`locustfiles.plugin.hooks.install` and handed to every listener, instead of in
module globals. A worker uses the window, the schedules and what is in flight; the master its tests,
its workers and their pids; both the capture (a worker's since its last report, the master's merged).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from locustfiles.capture import Capture
from locustfiles.plugin.options import Options, Reader
from locustfiles.plugin.record import Test
from locustfiles.plugin.window import Schedule, Window

if TYPE_CHECKING:
    from locust.env import Environment


@dataclass
class ProcessState:
    """routebench's part of one Locust process."""

    environment: Environment | None = None  # set by Locust's ``init``
    user_classes: dict[str, type[Any]] = field(default_factory=dict)  # by request name (a style's id)
    window: Window = field(default_factory=Window)  # rebound by each test
    # Requests this process has in flight (sent, not yet answered) and open-model starts it has taken
    # but not yet sent, by user: (request name, when its latency clock started).
    in_flight: dict[int, tuple[str, float]] = field(default_factory=dict)
    waiting: dict[int, tuple[str, float]] = field(default_factory=dict)
    schedules: dict[str, Schedule] = field(default_factory=dict)  # open model, by style, for this test
    capture: Capture = field(default_factory=Capture)
    tests: list[Test] = field(default_factory=list)  # master
    lost_workers: list[dict[str, Any]] = field(default_factory=list)  # master: gone mid-test, and when
    worker_pids: dict[str, int] = field(default_factory=dict)  # master: each worker's pid, as it said
    _read: Reader = field(default_factory=Reader)

    @property
    def options(self) -> Options:
        """routebench's options as Locust holds them now (the web form changes them per test)."""
        return self._read(self.environment.parsed_options if self.environment is not None else None)

    @property
    def test(self) -> Test | None:
        """The master's current (last) test."""
        return self.tests[-1] if self.tests else None

    @property
    def driven(self) -> bool:
        """A session whose tests a program starts through the web API (``routebench run``)."""
        return self.options.driven

    @property
    def in_session(self) -> bool:
        """A web-UI session (many tests, each saved as it ends), not a headless cell."""
        environment = self.environment
        if environment is None or environment.web_ui is None:
            return False
        return not getattr(environment.parsed_options, "headless", True)  # Locust's own option

    def schedule(self, style: str) -> Schedule:
        return self.schedules.setdefault(style, Schedule())
