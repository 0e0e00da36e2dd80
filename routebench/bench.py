"""``routebench bench``: what routebench itself costs and how far to trust it.

Each comparison runs side by side in one invocation and is reported as a ratio, because a shared
2-core machine is noisy: generator ceiling (our user class against wrk), capture overhead (exact
capture on against off), the loop-stall detector's cost to the server (on against off), the CPU
per call of the two async HTTP clients the lab uses (aiohttp against httpx), accuracy
(our p50 against wrk's at a 50 ms wait), analysis at scale (a synthetic run of 200 cells and 10
million requests), and model fit (the latest default run, measured against predicted throughput
per style).
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

from analysis.rundir import CellDir, CellRecord, RunDir, RunHeader, RunState, write_json
from locustfiles.capture import HIGHEST_US, LOWEST_US, SIGNIFICANT_DIGITS
from locustfiles.plugin.options import Options
from routebench import experiment
from routebench.launcher import REPO, Stack, StackError
from routebench.locust_cluster import LOCUSTFILE, LoadSpec, LocustCluster
from routebench.serverside.telemetry import worker_file
from target_app import catalogue
from target_app.settings import Settings

BENCH_DIR = Path("bench") / "results"


def wrk(url: str, connections: int, seconds: int) -> dict[str, float]:
    """Requests/s and latency percentiles (ms) from wrk --latency."""
    if shutil.which("wrk") is None:
        raise StackError("wrk is not installed: apt-get install wrk (Debian's package)")
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    pct = {}
    for p, value, unit in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
        pct[p] = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    return {"rps": rps, "p50_ms": pct.get("50", float("nan")), "p99_ms": pct.get("99", float("nan"))}


PLAIN_LOCUSTFILE = REPO / "locustfiles" / "plain_user.py"


def locust(
    stack: Stack,
    out: Path,
    users: int,
    seconds: float,
    wait_ms: int,
    capture: bool = True,
    workers: int = 1,
    plain: bool = False,
) -> dict[str, float]:
    """One headless Locust test of ``SleepAsyncAwait`` (or, ``plain``, of a plain FastHttpUser on
    the same route) and what it cost the generator."""
    spec = LoadSpec(
        target_url=stack.target_url,
        user_classes=["PlainFastHttpUser" if plain else "SleepAsyncAwait"],
        users=users,
        out_dir=out,
        run_time_s=seconds + 1,
        warmup_s=1,
        wait_ms=wait_ms,
        locustfile=PLAIN_LOCUSTFILE if plain else LOCUSTFILE,
    )
    cluster = LocustCluster(spec, workers, extra_args=[] if capture else Options(no_capture=True).argv())
    with cluster:
        cluster.wait(timeout=seconds + 60)
    import pandas as pd

    name = "plain" if plain else "sleep/async-await"
    stats = pd.read_csv(CellDir(out).stats).set_index("Name").loc[name]
    exact = json.loads(CellDir(out).exact.read_text())["requests"].get(name)
    cpu = [statistics.mean(r) for r in cluster.cpu.values() if r]
    rps = float(stats["Requests/s"])
    return {
        "rps": rps,
        "p50_ms": exact["percentiles_us"]["50"] / 1000 if exact else float("nan"),
        "locust_p50_ms": float(stats["50%"]),
        "max_process_cpu": max(cpu, default=float("nan")),
        # Generator CPU per request: what the capture adds, whatever the server's speed that run.
        "cpu_us_per_request": sum(cpu) / 100 / rps * 1e6 if rps else float("nan"),
    }


def record_cost_us(n: int = 200_000) -> float:
    """Microseconds one ``Capture.record`` costs, alone."""
    from locustfiles.capture import Capture

    c = Capture()
    values = np.random.default_rng(3).integers(1_000, 200_000, n)
    start = time.perf_counter()
    for v in values:
        c.record("sleep/async-await", int(v))
    return (time.perf_counter() - start) / n * 1e6


def bench_load(seconds: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    settings = Settings(workers=2, database_url=None)
    with tempfile.TemporaryDirectory() as tmp, Stack(settings, with_db=False) as stack:
        base = stack.target_url + "/sleep/async-await"
        # Generator ceiling: one Locust worker process against wrk, same no-wait route, same server.
        ours = locust(stack, Path(tmp) / "ceiling", users=50, seconds=seconds, wait_ms=0)
        theirs = wrk(base + "?ms=0", connections=50, seconds=seconds)
        out["generator_ceiling"] = {
            "routebench_rps": ours["rps"],
            "wrk_rps": theirs["rps"],
            "ratio": ours["rps"] / theirs["rps"],
            "routebench_process_cpu_percent": ours["max_process_cpu"],
        }
        # The generator's cost: CPU per request of a plain FastHttpUser, of our user class with the
        # exact capture off, and on; alternated so drift hits all alike (requests/s would measure the
        # shared, saturated server instead).
        cost: dict[str, list[float]] = {"plain": [], "off": [], "on": []}
        for i, variant in enumerate(["plain", "off", "on", "on", "off", "plain"]):
            cost[variant].append(
                locust(
                    stack,
                    Path(tmp) / f"generator{i}",
                    users=50,
                    seconds=seconds,
                    wait_ms=0,
                    capture=variant != "off",
                    plain=variant == "plain",
                )["cpu_us_per_request"]
            )
        on, off, plain = (statistics.mean(cost[k]) for k in ("on", "off", "plain"))
        out["capture_overhead"] = {
            "cpu_us_per_request_on": on,
            "cpu_us_per_request_off": off,
            "cpu_us_per_request_plain": plain,
            "overhead": on / off - 1,
            "over_plain": on / plain - 1,
            "record_us": record_cost_us(),
            "goal": "< 3%",
        }
        # Accuracy at a 50 ms wait, modest concurrency.
        ours = locust(stack, Path(tmp) / "accuracy", users=10, seconds=seconds, wait_ms=50)
        theirs = wrk(base + "?ms=50", connections=10, seconds=seconds)
        out["accuracy_p50_at_50ms"] = {
            "routebench_exact_p50_ms": ours["p50_ms"],
            "locust_rounded_p50_ms": ours["locust_p50_ms"],
            "wrk_p50_ms": theirs["p50_ms"],
            "ratio": ours["p50_ms"] / theirs["p50_ms"],
        }
    return out


def bench_detector(seconds: int) -> dict[str, Any]:
    """What the loop-stall detector costs the server: requests/s on the no-wait route with it on
    (20 ms threshold) and off, wrk as the client (it leaves the cores to the server), a fresh stack
    each time, alternated off-on-on-off so drift hits both alike."""
    rps: dict[bool, list[float]] = {True: [], False: []}
    for detector in (False, True, True, False):
        settings = Settings(workers=2, database_url=None, stall_threshold_ms=20 if detector else 0)
        with Stack(settings, with_db=False) as stack:
            url = stack.target_url + "/sleep/async-await?ms=0"
            wrk(url, connections=50, seconds=1)  # warm the workers
            rps[detector].append(wrk(url, connections=50, seconds=seconds)["rps"])
    on, off = statistics.mean(rps[True]), statistics.mean(rps[False])
    return {"rps_on": on, "rps_off": off, "runs": rps, "cost": 1 - on / off, "goal": "at most 2%"}


CLIENT_CALLS = 3000
CLIENT_IN_FLIGHT = (10, 50)


def bench_fanout_clients(calls: int = CLIENT_CALLS) -> dict[str, Any]:
    """CPU milliseconds per call of the two async HTTP clients against the lab's upstream (50 ms waits),
    at 10 and 50 calls in flight from one uvloop process: why the fan-out calls through aiohttp
    (target_app.resources.Upstream) while the http family measures httpx."""
    import asyncio

    import aiohttp
    import httpx
    import uvloop

    async def per_call(kind: str, url: str, in_flight: int) -> float:
        if kind == "httpx":
            limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
            client: Any = httpx.AsyncClient(base_url=url, limits=limits)

            async def one() -> None:
                (await client.get("/wait", params={"ms": 50})).raise_for_status()
        else:
            client = aiohttp.ClientSession(base_url=url, connector=aiohttp.TCPConnector(limit=1000))

            async def one() -> None:
                async with client.get("/wait", params={"ms": 50}) as r:
                    r.raise_for_status()
                    await r.read()

        gate = asyncio.Semaphore(in_flight)

        async def gated() -> None:
            async with gate:
                await one()

        try:
            await asyncio.gather(*(gated() for _ in range(in_flight)))  # open the connections
            start = time.process_time()
            await asyncio.gather(*(gated() for _ in range(calls)))
            return (time.process_time() - start) / calls * 1000
        finally:
            await (client.aclose() if kind == "httpx" else client.close())

    settings = Settings(workers=1, database_url=None)
    with Stack(settings, with_db=False) as stack:
        assert stack.upstream_url is not None
        url = stack.upstream_url
        out = {
            kind: {str(n): round(uvloop.run(per_call(kind, url, n)), 3) for n in CLIENT_IN_FLIGHT}
            for kind in ("httpx", "aiohttp")
        }
    return {"cpu_ms_per_call": out, "calls": calls, "wait_ms": 50}


def synthetic_run(root: Path, cells: int = 200, requests: int = 10_000_000, seed: int = 7) -> Path:
    """A run directory shaped like a real one: 200 cells, 10 million recorded requests in all."""
    rng = np.random.default_rng(seed)
    run_dir = root / "synthetic"
    run_dir.mkdir(parents=True)
    per_cell = requests // cells
    cell_records: list[CellRecord] = []
    styles = ["sleep/async-await", "sleep/blocking-in-async", "sleep/sync-def", "sleep/offloaded"]
    t0 = 1_800_000_000.0
    for i in range(cells):
        style, users = styles[i % 4], [10, 50, 100, 200, 400][(i // 4) % 5]
        cid = f"{i + 1:03d}-{style.replace('/', '_')}-u{users}-w2-r{i // 20 + 1}"
        cell = RunDir(run_dir).cell(cid)
        cell.hdr_dir.mkdir(parents=True)
        cell.telemetry.mkdir()
        h = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
        values, counts = np.unique(rng.lognormal(np.log(50_000), 0.3, 20_000).astype(int), return_counts=True)
        for v, c in zip(values, counts * (per_cell // 20_000), strict=True):
            h.record_value(int(v), int(c))
        (cell.hdr_dir / catalogue.hdr_file(style)).write_bytes(h.encode())
        pct = {str(p): h.get_value_at_percentile(p) for p in (50, 90, 95, 99, 99.9)}
        cell.exact.write_text(
            json.dumps(
                {
                    "measure_from": t0,
                    "samples_by_worker": {"w1": per_cell},
                    "requests": {style: {"count": h.get_total_count(), "percentiles_us": pct, "late_starts": 0}},
                }
            )
        )
        rps = per_cell / 10
        cell.stats.write_text(
            "Type,Name,Request Count,Failure Count,Requests/s,50%,95%,99%\n"
            f"GET,{style},{per_cell},0,{rps},{pct['50'] // 1000},{pct['95'] // 1000},{pct['99'] // 1000}\n"
            f",Aggregated,{per_cell},0,{rps},{pct['50'] // 1000},{pct['95'] // 1000},{pct['99'] // 1000}\n"
        )
        rows = "".join(
            f"{int(t0) + s},{users},GET,{style},{rps},50\n{int(t0) + s},{users},,Aggregated,{rps},50\n"
            for s in range(12)
        )
        cell.history.write_text("Timestamp,User Count,Type,Name,Requests/s,95%\n" + rows)
        cell.failures.write_text("Method,Name,Error,Occurrences\n")
        cell.exceptions.write_text("Count,Message,Traceback,Nodes\n")
        for pid in (1, 2):
            worker_file(cell.telemetry, pid).write_text(
                "".join(
                    json.dumps(
                        {
                            "t": t0 + k / 10,
                            "pid": pid,
                            "lag_ms": float(rng.exponential(2)),
                            "threads_busy": 0,
                            "threads_total": 40,
                            "inflight": 5,
                        }
                    )
                    + "\n"
                    for k in range(120)
                )
            )
        cell_records.append(
            CellRecord(
                {
                    "index": i + 1,
                    "id": cid,
                    "group": "sleep",
                    "styles": [style],
                    "users": users,
                    "server_workers": 2,
                    "repeat": i // 20 + 1,
                    "model": "closed",
                    "wait_ms": 50,
                    "work": 200000,
                    "fanout": 5,
                    "threadpool_tokens": 40,
                    "db_pool_size": 10,
                },
                status="ok",
                dir=cid,
            )
        )
    header = RunHeader(
        run_id="synthetic",
        experiment={"name": "synthetic", "description": "bench", "slo": []},
        versions={},
        machine={"cpu_count": 2},
        git={},
    )
    RunDir(run_dir).write_state(RunState(header, status="complete", cells=cell_records))
    return run_dir


def bench_analysis() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        made = time.perf_counter()
        run_dir = synthetic_run(Path(tmp))
        made = time.perf_counter() - made
        # In a child process, so its peak memory is the pipeline's alone.
        code = (
            "import sys, time, resource; from pathlib import Path; from analysis.report import publish; "
            "t = time.perf_counter(); p = publish(Path(sys.argv[1]), Path(sys.argv[2])); "
            "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, p.stat().st_size)"
        )
        done = subprocess.run(
            [sys.executable, "-c", code, str(run_dir), str(Path(tmp) / "reports")],
            capture_output=True,
            text=True,
            check=True,
        )
        wall, rss_kb, size = done.stdout.split()
    return {
        "cells": 200,
        "requests": 10_000_000,
        "synthesis_s": round(made, 1),
        "pipeline_and_report_s": float(wall),
        "peak_rss_mb": int(rss_kb) / 1024,
        "report_mb": int(size) / 1e6,
    }


def bench_model_fit(results: Path) -> dict[str, Any]:
    from analysis.report import analyse

    runs = sorted(
        p.parent for p in results.glob("*-default/run.json") if json.loads(p.read_text()).get("status") == "complete"
    )
    if not runs:
        return {"note": "no complete default run in results/: run `make loadtest` first"}
    a = analyse(runs[-1])
    solo = a.table[~a.table["together"]]
    rows = [
        {
            "style": r.style,
            "users": int(r.users),
            "measured_rps": round(r.rps, 1),
            "predicted_rps": round(r.predicted_rps, 1),
            "ratio": round(r.rps_vs_predicted, 2),
        }
        for r in solo.itertuples()
    ]
    return {"run": runs[-1].name, "rows": rows}


def overhead(run_dir: Path) -> dict[str, Any]:
    """How much of a run's wall time was not spent measuring, from its run.json alone: the run's
    ``wall_s`` (from its start to its last cell, calibration included, the report not) against
    every measured cell's warm-up and window (``warmup_s`` + ``window_s``)."""
    meta = json.loads(RunDir(run_dir).run_json.read_text())
    cells = [c for c in meta["cells"] if c.get("window_s") is not None and c.get("wall_s") is not None]
    measuring = sum(float(c["warmup_s"]) + float(c["window_s"]) for c in cells)
    wall = float(meta["wall_s"])
    per_cell = [float(c["wall_s"]) - float(c["warmup_s"]) - float(c["window_s"]) for c in cells]
    windows = [float(c["window_s"]) for c in cells]
    return {
        "run": run_dir.name,
        "cells": len(cells),
        "of_cells": len(meta["cells"]),
        "wall_s": wall,
        "measuring_s": round(measuring, 1),
        "overhead_ratio": (wall - measuring) / wall if wall else float("nan"),
        "calibration_s": (meta.get("calibration") or {}).get("wall_s"),
        "cell_overhead_median_s": statistics.median(per_cell) if per_cell else float("nan"),
        "cell_overhead_max_s": max(per_cell, default=float("nan")),
        "window_min_s": min(windows, default=float("nan")),
        "window_max_s": max(windows, default=float("nan")),
        # Runs from before reuse recorded nothing: every cell started its own.
        "stacks": max((int(c["stack"]["started"]) for c in cells if "stack" in c), default=len(cells)),
        "clusters": max((int(c["stack"]["clusters"]) for c in cells if "stack" in c), default=len(cells)),
    }


DESIGNS = {
    # The previous design: a fresh stack and Locust cluster for every cell (the windows as the
    # profile sets them, so only the processes' life differs).
    "previous": {"reuse": False},
    # This one: stack and cluster reused while the configuration holds, precision-driven windows
    # as the profile sets them.
    "reuse": {},
}


def bench_overhead(profiles: list[str], results: Path) -> list[dict[str, Any]]:
    """Each profile run both ways, one after the other: the overhead ratio side by side."""
    from routebench.runner import Runner

    rows = []
    for profile in profiles:
        for design, update in DESIGNS.items():
            exp = experiment.load(profile)
            exp = exp.model_copy(update={**update, "name": f"{exp.name}-{design}"})
            run_dir = Runner(exp, Settings(), results_dir=results, source=profile).run()
            rows.append({"profile": profile, "design": design, **overhead(run_dir)})
    return rows


def render_markdown(result: dict[str, Any]) -> str:
    lines = [f"# routebench bench, {result['when']}", ""]
    g = result.get("generator_ceiling")
    if g:
        lines += [
            "| benchmark | routebench | reference | ratio |",
            "|---|--:|--:|--:|",
            f"| generator ceiling, no-wait route, 50 users/connections (req/s) | {g['routebench_rps']:,.0f} "
            f"| wrk {g['wrk_rps']:,.0f} | {g['ratio']:.2f} |",
        ]
        c = result["capture_overhead"]
        lines.append(
            f"| generator CPU per request, exact capture on / off (µs) | {c['cpu_us_per_request_on']:,.0f} "
            f"| {c['cpu_us_per_request_off']:,.0f} | overhead {c['overhead']:+.1%} (goal < 3%); "
            f"one record() alone {c['record_us']:.1f} µs |"
        )
        if "cpu_us_per_request_plain" in c:
            lines.append(
                f"| generator CPU per request, our user class (capture on) / a plain FastHttpUser (µs) "
                f"| {c['cpu_us_per_request_on']:,.0f} | {c['cpu_us_per_request_plain']:,.0f} "
                f"| {c['over_plain']:+.1%} |"
            )
        d = result.get("stall_detector")
        if d:
            lines.append(
                f"| server req/s on the no-wait route, stall detector on / off (wrk, 50 connections, W=2) "
                f"| {d['rps_on']:,.0f} | {d['rps_off']:,.0f} | cost {d['cost']:+.1%} (goal: {d['goal']}) |"
            )
        acc = result["accuracy_p50_at_50ms"]
        lines.append(
            f"| p50 of sleep/async-await at d=50 ms (ms) | {acc['routebench_exact_p50_ms']:.2f} "
            f"| wrk {acc['wrk_p50_ms']:.2f} | {acc['ratio']:.3f} |"
        )
    clients = result.get("fanout_clients")
    if clients:
        per = clients["cpu_ms_per_call"]
        lines.append(
            f"| CPU ms per upstream call at {' / '.join(map(str, CLIENT_IN_FLIGHT))} in flight, "
            f"{clients['calls']:,} calls each (one uvloop process, {clients['wait_ms']} ms waits) "
            f"| aiohttp {' / '.join(f'{v:.2f}' for v in per['aiohttp'].values())} "
            f"| httpx {' / '.join(f'{v:.2f}' for v in per['httpx'].values())} | the fan-out's client |"
        )
    rows = result.get("overhead") or []
    if rows:
        lines += [
            "",
            "Overhead: the share of a run's wall time (calibration included, report not) not spent in a "
            "cell's warm-up or window. previous: a fresh stack and Locust cluster for every cell; reuse: "
            "both reused while the configuration holds; the same windows (as the profile sets them) in both.",
            "",
            "| profile | design | cells | wall s | measuring s | overhead ratio | calibration s "
            "| per-cell overhead median / max s | windows s | stacks | Locust clusters |",
            "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
        ]
        lines += [
            f"| {r['profile']} | {r['design']} | {r['cells']}/{r['of_cells']} | {r['wall_s']:,.0f} "
            f"| {r['measuring_s']:,.0f} | {r['overhead_ratio']:.3f} | {r['calibration_s'] or 0:.0f} "
            f"| {r['cell_overhead_median_s']:.2f} / {r['cell_overhead_max_s']:.2f} "
            f"| {r['window_min_s']:.1f}–{r['window_max_s']:.1f} | {r['stacks']} | {r['clusters']} |"
            for r in rows
        ]
    an = result["analysis_at_scale"]
    lines += [
        "",
        f"Analysis at scale: {an['cells']} cells, {an['requests']:,} requests: pipeline and report "
        f"{an['pipeline_and_report_s']:.1f} s, peak memory {an['peak_rss_mb']:.0f} MB, "
        f"report {an['report_mb']:.2f} MB.",
        "",
    ]
    fit = result["model_fit"]
    if "rows" in fit:
        lines += [
            f"Model fit ({fit['run']}): measured against predicted throughput",
            "",
            "| style | users | measured req/s | predicted req/s | measured/predicted |",
            "|---|--:|--:|--:|--:|",
        ]
        lines += [
            f"| {r['style']} | {r['users']} | {r['measured_rps']} | {r['predicted_rps']} | {r['ratio']} |"
            for r in fit["rows"]
        ]
    else:
        lines.append(f"Model fit: {fit['note']}")
    return "\n".join(lines) + "\n"


def run_bench(
    results: Path, seconds: int, out_dir: Path = BENCH_DIR, overhead_profiles: list[str] | None = None
) -> tuple[Path, str]:
    result: dict[str, Any] = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    result.update(bench_load(seconds))
    result["stall_detector"] = bench_detector(seconds)
    result["fanout_clients"] = bench_fanout_clients()
    if overhead_profiles:
        result["overhead"] = bench_overhead(overhead_profiles, results)
    result["analysis_at_scale"] = bench_analysis()
    result["model_fit"] = bench_model_fit(results)
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    write_json(out_dir / f"bench-{stamp}.json", result)
    md = render_markdown(result)
    (out_dir / f"bench-{stamp}.md").write_text(md)
    (out_dir / "latest.md").write_text(md)
    return out_dir / f"bench-{stamp}.md", md
