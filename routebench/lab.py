"""What the cells of a run share: the target stack and the Locust cluster.

A stack is kept while the next cell asks for the same server settings, and a cluster while it asks
for the same number of local workers; either is started afresh when the configuration changes,
when one of its processes is gone, or after a cell that failed or lost a process (nothing of a
troubled cell is carried into the next). Between cells the runner drains the stack (no request,
thread or connection held: routebench.measure) and the locustfile resets everything a test keeps
(its histograms, its window, Locust's stats, the users and their connections). With ``reuse``
off, every cell gets a fresh stack and cluster (how ``make bench`` measures what reuse saves).

The stack's telemetry goes to the run's ``telemetry/``; each cell keeps its own slice of it.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from analysis.rundir import RunDir
from routebench.launcher import Stack
from routebench.locust_cluster import LoadSpec, LocustCluster
from target_app.settings import Settings


@dataclass
class Lab:
    run_dir: Path
    reuse: bool = True
    master_host: str = "127.0.0.1"
    master_port: int = 0
    external_workers: int = 0
    on_worker_command: Callable[[list[str]], None] | None = None
    routes_file: Path | None = None  # your app's routes (routebench.routes): the Locust user classes
    stack: Stack | None = field(default=None, init=False)
    cluster: LocustCluster | None = field(default=None, init=False)
    started: Counter[str] = field(default_factory=Counter, init=False)  # stacks and clusters started
    _stack_key: str = field(default="", init=False)
    _logs: Path = field(default=Path(), init=False)

    def target(self, settings: Settings, with_db: bool) -> Stack:
        """A stack with these settings, running and whole: the one from the last cell if it is."""
        key = f"{settings.model_dump_json()} db={with_db}"
        if self.stack is not None and (key != self._stack_key or not all(m.alive() for m in self.stack.processes)):
            self.drop_stack()
        if self.stack is None:
            stack = Stack(settings, telemetry_dir=RunDir(self.run_dir).telemetry, with_db=with_db)
            try:
                stack.start()
            except BaseException:
                stack.stop()
                raise
            self.stack, self._stack_key = stack, key
            self.started["stacks"] += 1
        return self.stack

    def generator(self, workers: int) -> LocustCluster:
        """A driven Locust master with ``workers`` local workers (and the external ones), every one
        connected: the one from the last cell if it is whole."""
        c = self.cluster
        if c is not None and (c.workers != workers or not all(m.alive() for m in c.processes())):
            self.drop_cluster()
        if self.cluster is None:
            self._logs = RunDir(self.run_dir).generator(self.started["clusters"] + 1).path
            cluster = LocustCluster(
                LoadSpec(
                    target_url="",
                    user_classes=[],
                    users=1,
                    out_dir=self._logs,
                    routes_file=self.routes_file,
                ),
                workers,
                bind_host=self.master_host,
                master_port=self.master_port,
                external_workers=self.external_workers,
                driven=True,
            )
            try:
                cluster.start()
                if self.external_workers and self.on_worker_command:
                    self.on_worker_command(cluster.worker_command())
                cluster.wait_workers(600 if self.external_workers else 60)
            except BaseException:
                cluster.stop()
                raise
            self.cluster = cluster
            self.started["clusters"] += 1
        return self.cluster

    def logs(self) -> Path:
        """Where the last cluster started (or tried to start) has its processes' logs."""
        return self._logs

    def after_cell(self, clean: bool) -> None:
        """Keep both for the next cell only when reusing and this one went cleanly."""
        if not (clean and self.reuse):
            self.close()

    def drop_stack(self) -> None:
        if self.stack is not None:
            self.stack.stop()
            self.stack = None

    def drop_cluster(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()
            self.cluster = None

    def close(self) -> None:
        """Stop the cluster and the stack at once: neither needs the other any more (the test is
        saved, the server's evidence kept), and each waits on its own processes' exits (Locust's
        master waits half a second for its workers' last reports). Not a daemon thread: the
        interpreter waits for it, so no process is left behind even if the user interrupts."""
        cluster, self.cluster = self.cluster, None
        stopping = threading.Thread(target=cluster.stop, name="stop-cluster") if cluster is not None else None
        if stopping is not None:
            stopping.start()
        try:
            self.drop_stack()
        finally:
            if stopping is not None:
                stopping.join()
