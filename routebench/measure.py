"""Measuring one cell: its load as one test on the lab's Locust cluster, every process watched, the
server's share of the cell kept once it has drained, and what the cell came to (a CellOutcome).

A load generator lost before the window opens is started again on a fresh cluster (up to
``GENERATOR_ATTEMPTS`` in all, the abandoned attempt set aside in ``attempt-N/``); one lost after
it degrades the cell, named; a target-stack process lost at any moment fails the cell.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from analysis import validity
from analysis.load import read_telemetry
from analysis.rundir import CellDir, CellOutcome, set_aside, write_json
from analysis.timeseries import stall_summary
from routebench import speed, stopping
from routebench.context import RunContext
from routebench.evidence import connections_per_worker, generator_load, lab_cpu_seconds, lab_load, placed, worker_deaths
from routebench.experiment import Cell
from routebench.external import ExternalTarget, external_target
from routebench.launcher import AppError, DiedWhileStarting, Stack, StackError, wait_for
from routebench.locust_cluster import LoadSpec, LocustCluster, default_worker_count
from routebench.profiler import Profiler
from routebench.progress import current_rps
from routebench.serverside.telemetry import copy_window, drained, sizes
from routebench.watch import BEFORE_WINDOW, TICK_S, GeneratorLost, Watch, heartbeat_losses

DRAIN_TIMEOUT_S = 30.0  # a server still holding requests this long after a cell is started afresh
SAVE_TIMEOUT_S = 90.0  # past a test's latest end, for its final reports and save
GENERATOR_ATTEMPTS = 3  # a load generator lost before the window is started again, this many times in all
NOTHING_COMPLETED = "no request completed in the window"  # a failed cell's reason (a probe: overload)


def load_spec(
    cell: Cell, classes: dict[str, str], cell_dir: Path, canary: str = "", canary_rate: float = 0.0
) -> LoadSpec:
    """The cell's test for the Locust master (its target is known once its stack is), with the
    canary at ``canary`` (a path; "": none)."""
    return LoadSpec(
        target_url="",
        user_classes=[classes[s] for s in cell.styles],
        users=cell.users,
        out_dir=cell_dir,
        run_time_s=cell.warmup_s + cell.duration_s + cell.tail_s,
        tail_s=cell.tail_s,
        finish_s=cell.finish_s if cell.model == "closed" else 0.0,
        warmup_s=cell.warmup_s,
        model=cell.model,
        arrival_rate=cell.arrival_rate,
        wait_ms=cell.wait_ms,
        work=cell.work,
        fanout=cell.fanout,
        precision=cell.precision,
        max_run_time_s=cell.warmup_s + cell.longest_s + cell.tail_s,
        canary=canary,
        canary_rate=canary_rate if canary else 0.0,
    )


def measure(ctx: RunContext, cell: Cell, cell_dir: Path, on_rps: Callable[[float | None], None]) -> CellOutcome:
    """The cell measured, its files written in ``cell_dir``; raises AppError when your app cannot
    be served (no cell can run), StackError when the stack cannot be had."""
    spec = load_spec(cell, ctx.classes, cell_dir, ctx.canary, ctx.experiment.canary_rate)
    workers = 0 if ctx.external_workers else cell.locust_workers or default_worker_count()
    longest = spec.max_run_time_s + spec.finish_s if spec.max_run_time_s is not None else None
    watch = Watch(cell_dir, longest)
    files = CellDir(cell_dir)
    begun = time.time()
    telemetry_from = sizes(ctx.files.telemetry)
    stack: Stack | ExternalTarget | None = None
    log_from = 0
    drain_s: float | None = None
    try:
        stacks_before = ctx.lab.started["stacks"]
        stack = (
            ctx.lab.target(ctx.settings(cell), ctx.with_db)
            if ctx.target_url is None
            else external_target(ctx.target_url)
        )
        # A stack started for this cell: its whole log is the cell's (a worker lost while it started).
        log_from = 0 if ctx.lab.started["stacks"] > stacks_before else len(stack.log("target"))
        spec.target_url = stack.target_url
        if spec.canary:  # its own listener where the stack has one: the users' connections are counted alone
            spec.canary = (stack.canary_url if isinstance(stack, Stack) else stack.target_url) + spec.canary
        reported = stack.server_shape() if isinstance(stack, ExternalTarget) else {}
        for attempt in range(1, GENERATOR_ATTEMPTS + 1):
            profiler = Profiler(files.profile) if ctx.experiment.profile and isinstance(stack, Stack) else None
            try:
                cluster, placements, lab_cpu, references = load(ctx, spec, workers, stack, watch, on_rps, profiler)
                break
            except GeneratorLost as gone:
                ctx.lab.drop_cluster()
                if attempt == GENERATOR_ATTEMPTS:
                    return CellOutcome(
                        "failed",
                        reason=f"the load generator could not be started: {gone} "
                        f"({GENERATOR_ATTEMPTS} attempts; logs: {ctx.lab.logs()})",
                        losses=watch.losses,
                    )
                ctx.console.print(f"[yellow]{gone}: starting the cell's load again[/]")
                set_aside(cell_dir, attempt)
                watch.new_attempt()
        cpu = {str(pid): list(zip(cluster.cpu_at[pid], readings, strict=True)) for pid, readings in cluster.cpu.items()}
        names = cluster.cpu_names()
        profile = profiler.finish(timeout_s=10) if profiler is not None and profiler.started else None
    except AppError:
        raise  # your app cannot be served: no cell can run
    except StackError as exc:
        if isinstance(exc, DiedWhileStarting):
            watch.dead([exc.managed], "target stack")
        return CellOutcome("failed", reason=str(exc), losses=watch.losses)
    finally:
        # A cluster missing a process, or whose test was never saved, may still be loading the
        # server (workers whose master died load on): stopped now, so the server can drain.
        c = ctx.lab.cluster
        if c is not None and (not files.exact.exists() or not all(m.alive() for m in c.processes())):
            ctx.lab.drop_cluster()
        server_log, drain_s = keep_server_evidence(ctx, stack, files, log_from, begun, telemetry_from)
    deaths = worker_deaths(server_log, files.telemetry)
    master = next((loss for loss in watch.measured_losses() if loss["kind"] == "locust master"), None)
    if not files.exact.exists() or master is not None:
        write_json(files.generator, generator_load(cpu, names))
        why = (
            validity.describe_loss(master)
            if master
            else f"the master exited: {cluster.master.tail(3) if cluster.master else ''}"
        )
        return CellOutcome("failed", reason=f"Locust left no complete results ({why})", losses=watch.losses)
    exact = json.loads(files.exact.read_text())
    watch.account(exact, deaths)
    window = (float(exact["measure_from"]), float(exact["stopped_at"]))
    generator = generator_load(cpu, names, window)
    write_json(files.generator, generator)
    stalls = stall_summary(read_telemetry(files.telemetry), *window)
    if stalls:
        write_json(files.stalls, stalls)
    if not any(int(e.get("count", 0)) + int(e.get("failures", 0)) for e in exact.get("requests", {}).values()):
        return CellOutcome("failed", reason=NOTHING_COMPLETED, losses=watch.losses)
    lost = watch.measured_losses() + heartbeat_losses(exact, watch.losses)
    if profile is not None and profile["problem"]:
        ctx.console.print(f"[yellow]profile:[/] {profile['problem']}; the run goes on")
    test = exact.get("test", {})
    outcome = CellOutcome(
        "degraded" if lost else "ok",
        generator_saturated=generator["saturated"],
        generator_cpu_cores=generator["cpu_cores"],
        orchestrator_cpu_cores=generator["orchestrator_cpu_cores"],
        users_by_style=test.get("users_by_style", {}),
        lost_workers=exact.get("lost_workers", []),
        losses=watch.losses,
        server_worker_deaths=deaths,
        server_shape=reported,
        connections_per_worker=placed(placements, *window),
        lab_cpu_cores=lab_load(lab_cpu, window),
        reference_ms=speed.typical([ms for t, ms in references if window[0] <= t <= window[1]]),
        window_s=round(float(exact.get("measure_until") or exact["stopped_at"]) - float(exact["measure_from"]), 3),
        # Empty: the test ended by another hand than its own timer (Locust's, say).
        stopped_by=test.get("stopped_by") or "ended early, not by its window",
        p99_intervals=exact.get("p99_intervals", {}),
        last_check=test.get("last_check", {}),
        stack={"started": ctx.lab.started["stacks"], "clusters": ctx.lab.started["clusters"]},
        drain_s=drain_s,
        profile=profile,
        degraded_because=[validity.describe_loss(loss) if "pid" in loss else loss["words"] for loss in lost]
        if lost
        else None,
    )
    outcome.validity = validity.check({**cell.model_dump(), **outcome.to_json()}, exact)
    return outcome


def load(
    ctx: RunContext,
    spec: LoadSpec,
    workers: int,
    stack: Stack | ExternalTarget,
    watch: Watch,
    on_rps: Callable[[float | None], None],
    profiler: Profiler | None = None,
) -> tuple[
    LocustCluster,
    list[tuple[float, dict[int, int]]],
    list[tuple[float, dict[str, float]]],
    list[tuple[float, float]],
]:
    """One attempt at the cell's load: one test on the lab's Locust master and workers, every
    process watched. A generator process lost before the window opens raises GeneratorLost
    (the caller starts the load again on a fresh cluster); one lost after it is recorded and
    the master told not to wait for it; a target-stack process lost at any moment fails the
    cell at once."""
    target = next((m for m in stack.processes if m.name == "target"), None)
    placements: list[tuple[float, dict[int, int]]] = []
    lab_cpu: list[tuple[float, dict[str, float]]] = []  # the lab services' CPU seconds, each tick
    references: list[tuple[float, float]] = []  # the machine's speed, each tick (routebench.speed)
    try:
        cluster = ctx.lab.generator(workers)
    except DiedWhileStarting as exc:
        kind = "locust master" if exc.managed.name == "locust-master" else "locust worker"
        raise GeneratorLost(watch.dead([exc.managed], kind)[0]) from None
    history = cluster.history

    def tick() -> None:
        for loss in watch.dead(stack.processes, "target stack"):
            raise StackError(f"the target stack died mid-cell: {validity.describe_loss(loss)}")
        watch.server_workers(target)
        for loss in watch.dead(cluster.local_workers, "locust worker"):
            if loss["phase"] in BEFORE_WINDOW:
                raise GeneratorLost(loss)
            watch.tell_master()
        for loss in watch.dead([cluster.master] if cluster.master else [], "locust master"):
            if loss["phase"] in BEFORE_WINDOW:
                raise GeneratorLost(loss)
        if isinstance(stack, Stack):
            placements.append((time.time(), connections_per_worker(stack)))
            lab_cpu.append((time.time(), lab_cpu_seconds(stack)))
        references.append((time.time(), speed.reading()))
        w = watch.window()
        if profiler is not None and not profiler.started and w is not None and target is not None:
            now = time.time()
            if now >= float(w["measure_from"]):  # the window is open: profile the rest of it
                workers = [p.pid for p in psutil.Process(target.proc.pid).children()]
                profiler.start(workers, float(w["started_at"]) + float(spec.max_run_time_s or 0) - now)
        on_rps(current_rps(history))

    # The server's workers as they are before the test: one killed before the first tick is then
    # seen to go, to the tick, not only in Gunicorn's log, to the second.
    watch.server_workers(target)
    cluster.start_test(spec)
    cluster.wait_saved(spec, spec.max_run_time_s + spec.finish_s + SAVE_TIMEOUT_S, TICK_S, tick)  # type: ignore[operator]
    tick_losses = watch.dead([cluster.master] if cluster.master else [], "locust master")
    watch.dead(cluster.local_workers, "locust worker")  # one that died since the last tick
    for loss in tick_losses:
        if loss["phase"] in BEFORE_WINDOW:
            raise GeneratorLost(loss)
    if isinstance(stack, Stack):  # a reading after the window closed, however soon the test was saved
        lab_cpu.append((time.time(), lab_cpu_seconds(stack)))
    return cluster, placements, lab_cpu, references


def keep_server_evidence(
    ctx: RunContext,
    stack: Stack | ExternalTarget | None,
    files: CellDir,
    log_from: int,
    begun: float,
    telemetry_from: dict[str, int],
) -> tuple[str, float | None]:
    """The cell's share of the server's log and telemetry, once the server holds nothing of the
    cell (drained: a server that does not drain in time is started afresh for the next cell);
    the log, and how long the drain took (None: not drained, or not our server)."""
    if not isinstance(stack, Stack):
        files.server_log.write_text("")
        return "", None
    drain_s = None
    t0 = time.time()
    source = ctx.files.telemetry
    if all(m.alive() for m in stack.processes):
        if wait_for(lambda: drained(source, stack.worker_pids(), t0), DRAIN_TIMEOUT_S, 0.05, stopping.check):
            drain_s = round(time.time() - t0, 2)
        else:
            ctx.lab.drop_stack()
    server_log = stack.log("target")[log_from:]
    files.server_log.write_text(server_log)
    copy_window(source, files.telemetry, begun, time.time(), telemetry_from)
    return server_log, drain_s
