"""Theory beside measurement: what the model in docs/model.md predicts for each cell and style, and a
verdict per style written from the numbers.

Each style is a small queueing network (the structure comes from ``target_app.catalogue``):

- a CPU station: D_cpu seconds per request (measured by the run's calibration probe), served by the
  cores the style's CPU work can use (the cores left to the server in that cell; at most one per
  worker for the cpu family's pure-Python work, the GIL);
- a held station: L places (one event loop per worker, W*T threadpool tokens, W*P pooled
  connections, or unlimited for awaited waits), each held for the hold time (the wait d, k*d for
  a sequential fan-out, d + the worker's own CPU for a blocking call inside ``async def``).

Closed model (U users, no think time): the exact product-form solution with load-dependent
stations (a station of m servers serves min(j, m) of its j requests at once), by Buzen's
convolution in logarithms. Open model (λ requests/s): utilisation law, then M/M/m (Erlang C)
response times, or "overloaded" when a station's utilisation reaches 1; the percentiles of a
station's wait (G/G/m, for a capacity search's predicted p99: analysis.capacity.prediction).
Pure functions.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

import numpy as np
import pandas as pd

from analysis.summary import is_bound
from target_app import catalogue
from target_app.catalogue import Shape

__all__ = [
    "MIN_CORES",
    "Predicted",
    "Shape",
    "Station",
    "add_predictions",
    "as_queue",
    "bounds",
    "demand_for",
    "erlang_c",
    "mva",
    "network",
    "predict",
    "verdict",
    "wait_quantile",
]

CPU = "CPU"
WAIT = "wait"
MIN_CORES = 0.1  # the floor on the cores left to the server when the generator took (nearly) all of them
BOTTLENECK_UTILISATION = 0.8  # a station this busy (per server) is named the bottleneck; below it, the wait is


@dataclass(frozen=True)
class Station:
    """``demand`` seconds per request at a station of ``servers`` parallel servers (inf: a delay)."""

    name: str
    demand: float
    servers: float

    @property
    def capacity(self) -> float:
        """The most requests/s it can complete: m/D (inf for a delay station)."""
        return math.inf if math.isinf(self.servers) else self.servers / self.demand


@dataclass(frozen=True)
class Predicted:
    """What the model expects of one style in one cell.

    ``utilisation`` is per station with a finite number of servers (utilisation law, at the predicted
    throughput: X*D/m). ``bound_rps`` is the asymptotic bound min(U/sum(D), min m/D) (closed) or the
    capacity (open); ``capacity_rps`` is min over stations of m/D.
    """

    rps: float
    mean_s: float
    bottleneck: str  # "CPU", "event loop", "threadpool", "db pool" or "wait"; "" when nothing was predicted
    utilisation: dict[str, float] = field(default_factory=dict)
    overloaded: bool = False  # open model only: a station's utilisation reached 1
    bound_rps: float = math.nan
    capacity_rps: float = math.nan

    @property
    def cpu_utilisation(self) -> float:
        return self.utilisation.get(CPU, math.nan)


NOTHING = Predicted(math.nan, math.nan, "")


def network(style_id: str, s: Shape) -> list[Station]:
    """The stations a request of ``style_id`` visits in a cell of shape ``s`` (empty: nothing to predict)."""
    style = catalogue.BY_ID[style_id]
    p = catalogue.PREDICTIONS[style.prediction]
    cpu = catalogue.cpu_of(s)
    stations = []
    if style.family == "cpu":
        if cpu <= 0:
            return []  # the cpu family's service is its CPU: unmeasured, nothing to predict
    elif not (math.isfinite(s.wait_s) and s.wait_s >= 0):
        return []
    own = catalogue.workers_cpu_of(s)
    if cpu > 0 and own is None:
        stations.append(Station(CPU, cpu, p.cpu_cores(s)))
    elif cpu > 0 and own is not None:
        # Python in a worker holds that worker's GIL: each worker is a CPU of its own, visited by
        # 1/W of the requests, running at most at the share of a core the machine leaves it, and at
        # the share it keeps when threads hand its GIL to each other (core_share).
        # (A blocking call inside async def already holds the loop for this CPU: its hold
        # station counts it.) The upstream's, PostgreSQL's and a process pool's CPU share the cores.
        if not p.blocks_loop and own > 0:
            speed = min(1.0, max(s.cores, MIN_CORES) / s.workers) * s.core_share
            stations += [Station(CPU, own / s.workers / speed, 1.0) for _ in range(s.workers)]
        if cpu - own > 0:
            stations.append(Station(CPU, cpu - own, max(s.cores, MIN_CORES)))
    hold = p.hold(s)
    if hold > 0:
        stations.append(Station(p.station_name(s), hold, p.limit(s)))
    return stations


def _log_factors(st: Station, top: int) -> np.ndarray:
    """log f(j), j = 0..top, of a station's product-form factor: D^j over the product of its
    service rates' multipliers min(i, m) (m may be fractional: m < 1 is one server slower by 1/m;
    an infinite m is a delay, j!)."""
    j = np.arange(top + 1, dtype=float)
    servers = np.minimum(np.arange(1, top + 1, dtype=float), st.servers)
    return j * math.log(st.demand) - np.concatenate([[0.0], np.cumsum(np.log(servers))])


def mva(stations: list[Station], users: float) -> float:
    """Throughput of the closed network with ``users`` requests in it and no think time: the exact
    product-form solution with load-dependent stations (Buzen's convolution, in logarithms so it
    stays exact at any population). A station of m servers serves min(j, m) of the j requests at
    it at once, so nobody waits while there are fewer requests than servers (an event loop per
    worker, T threads, P connections, the cores; m may be fractional); an infinite m is a delay.
    X(N) = G(N-1) / G(N); a fractional population is interpolated."""
    if users <= 0:
        return 0.0
    top = math.ceil(users)
    live = [st for st in stations if st.demand > 0]
    if not live:
        return math.inf
    log_g = np.full(top + 1, -np.inf)
    log_g[0] = 0.0
    for st in live:
        log_f = _log_factors(st, top)
        nxt = np.empty_like(log_g)
        for n in range(top + 1):
            terms = log_g[n::-1] + log_f[: n + 1]  # G(n - j) f(j), j = 0..n
            peak = float(np.max(terms))
            nxt[n] = peak + math.log(float(np.sum(np.exp(terms - peak)))) if np.isfinite(peak) else -np.inf
        log_g = nxt
    xs = [0.0] + [math.exp(log_g[n - 1] - log_g[n]) for n in range(1, top + 1)]
    low = math.floor(users)
    return xs[low] + (users - low) * (xs[top] - xs[low])


def bounds(stations: list[Station], users: float) -> tuple[float, float]:
    """The asymptotic bounds: (min(U/sum(D), capacity), capacity = min over stations of m/D)."""
    capacity = min((st.capacity for st in stations), default=math.inf)
    total = sum(st.demand / min(1.0, st.servers) for st in stations)
    return min(users / total if total > 0 else math.inf, capacity), capacity


@cache
def _laguerre() -> tuple[np.ndarray, np.ndarray]:
    nodes, weights = np.polynomial.laguerre.laggauss(60)
    return nodes, weights


def erlang_b(servers: float, offered: float) -> float:
    """Erlang B for ``servers`` >= 0 (real: the continuous extension) and offered load a = λ*S."""
    whole = math.floor(servers)
    frac = servers - whole
    if frac > 1e-12:
        # 1/B(f, a) = integral over u >= 0 of exp(-u) (1 + u/a)^f, for 0 < f < 1: smooth, Gauss-Laguerre.
        nodes, weights = _laguerre()
        b = 1.0 / float(np.sum(weights * (1 + nodes / offered) ** frac))
    else:
        frac, b = 0.0, 1.0
    for k in range(1, whole + 1):
        b = offered * b / (k + frac + offered * b)
    return b


def erlang_c(servers: float, offered: float) -> float:
    """The probability that an arrival waits at an M/M/m queue (m may be fractional, a < m)."""
    b = erlang_b(servers, offered)
    return servers * b / (servers - offered * (1 - b))


def as_queue(st: Station) -> tuple[float, float]:
    """A station as a queue: (servers, service time). Under one server (a fraction of a core) it is
    one server, slower by 1/m."""
    return (1.0, st.demand / st.servers) if st.servers < 1 else (st.servers, st.demand)


def _open_response(st: Station, rate: float) -> float:
    """Mean time a request spends at ``st`` under Poisson arrivals of ``rate`` (below saturation)."""
    if math.isinf(st.servers):
        return st.demand
    if st.servers < 1:
        _, service = as_queue(st)
        return service / (1 - rate * service)
    offered = rate * st.demand
    return st.demand + erlang_c(st.servers, offered) * st.demand / (st.servers - offered)


def wait_quantile(st: Station, rate: float, scv: float, quantile: float) -> float:
    """The ``quantile`` of the wait for a server at ``st`` under arrivals of ``rate`` (G/G/m:
    Allen-Cunneen's mean, Erlang C's exponential tail); ``scv`` is ca² + cs², the arrivals' and
    the service times' squared coefficients of variation. 0 at a delay; inf at or past saturation."""
    if math.isinf(st.servers):
        return 0.0
    servers, demand = as_queue(st)
    offered = rate * demand
    if offered >= servers:
        return math.inf
    c = erlang_c(servers, offered)
    if c <= 1 - quantile or scv <= 0:
        return 0.0
    # P(wait > t) = C exp(-t (m - a) / (D s)): the M/M/m tail, stretched by s = (ca² + cs²) / 2.
    s = scv / 2
    return s * demand / (servers - offered) * math.log(c / (1 - quantile))


def _bottleneck(utilisation: dict[str, float], stations: list[Station]) -> str:
    """The busiest station once its utilisation reaches BOTTLENECK_UTILISATION; below that the wait
    (throughput is users over latency), unless there is no wait at all (the cpu family: the CPU)."""
    busiest = max(utilisation, key=lambda k: utilisation[k], default=None)
    waits = any(st.name != CPU for st in stations)
    if busiest is not None and (utilisation[busiest] >= BOTTLENECK_UTILISATION or not waits):
        return busiest
    return WAIT


def _utilisation(stations: list[Station], x: float) -> dict[str, float]:
    """Per station name (the busiest of those that share one, such as the workers' CPUs)."""
    out: dict[str, float] = {}
    for st in stations:
        if math.isfinite(st.servers):
            out[st.name] = max(out.get(st.name, 0.0), float(x * st.demand / st.servers))
    return out


def predict(style_id: str, shape: Shape) -> Predicted:
    """What the model expects of ``style_id`` in a cell of shape ``shape`` (NaNs when it has nothing
    to go on: no users or rate, no wait, or the cpu family without a measured D_cpu)."""
    stations = network(style_id, shape)
    if not stations:
        return NOTHING
    if shape.model == "open":
        rate = shape.arrival_rate
        if not (math.isfinite(rate) and rate > 0):
            return NOTHING
        _, capacity = bounds(stations, math.inf)
        offered = _utilisation(stations, rate)
        if any(rho >= 1 for rho in offered.values()):
            worst = max(offered, key=lambda k: offered[k])
            return Predicted(capacity, math.inf, worst, _utilisation(stations, capacity), True, capacity, capacity)
        mean = sum(_open_response(st, rate) for st in stations)
        return Predicted(rate, mean, _bottleneck(offered, stations), offered, False, capacity, capacity)
    users = shape.users
    if not (math.isfinite(users) and users > 0):
        return NOTHING
    x = mva(stations, users)
    bound, capacity = bounds(stations, users)
    utilisation = _utilisation(stations, x)
    return Predicted(x, users / x, _bottleneck(utilisation, stations), utilisation, False, bound, capacity)


# -- calibration ----------------------------------------------------------------------------------------


def _same(a: Any, b: Any) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return False


def demand_for(
    calibration: dict[str, Any] | None,
    style: str,
    cell: dict[str, Any],
    field: str = "cpu_s_per_request",
    concurrency: float = math.nan,
) -> float:
    """D_cpu for ``style`` in ``cell`` from a run's ``calibration`` (NaN when it has none).

    The calibration probes (``{"probes": [{"style", "work", "fanout", "cpu_s_per_request", ...}]}``)
    match on the style, and on ``work`` for the cpu family and ``fanout`` for the fanout family.
    Older runs timed the cpu family's work alone (``{"cpu_s_per_request": {"<work>": seconds}}``):
    that gives the cpu family's c and nothing for the others."""
    if not isinstance(calibration, dict):
        return math.nan
    for probe in _probes(calibration, style, cell):
        at = _at_concurrency(probe.get("levels"), field, concurrency)
        if math.isfinite(at):
            return at
        value = probe.get(field)
        if isinstance(value, (int, float)) and math.isfinite(value) and value > 0:
            return float(value)
    legacy = calibration.get("cpu_s_per_request")
    if catalogue.family_of(style) == "cpu" and isinstance(legacy, dict):
        for work, seconds in legacy.items():
            if _same(work, cell.get("work")) and isinstance(seconds, (int, float)):
                return float(seconds)
    return math.nan


def _probes(calibration: dict[str, Any], style: str, cell: dict[str, Any]) -> list[dict[str, Any]]:
    """The calibration's probes of ``style`` that match ``cell`` (its work for the cpu family, its k
    for the fanout family), the one whose busy level ran at the cell's wait first."""
    fam = catalogue.family_of(style)
    probes = [p for p in calibration.get("probes") or [] if isinstance(p, dict) and p.get("style") == style]
    probes.sort(key=lambda p: not _same(_busy_wait(p), cell.get("wait_ms")))
    return [
        p
        for p in probes
        if not (fam == "cpu" and not _same(p.get("work"), cell.get("work")))
        and not (fam == "fanout" and not _same(p.get("fanout"), cell.get("fanout")))
    ]


MIN_CORE_SHARE = 0.1


def core_share(calibration: dict[str, Any] | None, style: str, cell: dict[str, Any]) -> float:
    """The share of its core a worker keeps when ``style`` runs its CPU work on threadpool threads
    (RouteStyle.cpu_on_threads), 1 for every other style or when it was not measured.

    Threads of one worker take turns at its GIL; each hand-over waits for the operating system to
    wake the next thread, and the core idles meanwhile (schedstat here: the machine a quarter idle
    while the threads waited), for a time that is the machine's own. The calibration measures it: at its busiest
    level (as many requests at a time as a cell of twenty users), the cores the style's workers kept
    busy over those the family's baseline kept busy, whose CPU work runs on the loop, on the same
    stack with the same probe client."""
    known = catalogue.BY_ID.get(style)
    if known is None or not known.cpu_on_threads or not isinstance(calibration, dict):
        return 1.0
    mine = _busy_cores(calibration, style, cell)
    loop = _busy_cores(calibration, catalogue.baseline(known.family).id, cell)
    if not (math.isfinite(mine) and math.isfinite(loop) and loop > 0):
        return 1.0
    return min(1.0, max(MIN_CORE_SHARE, mine / loop))


def _busy_cores(calibration: dict[str, Any], style: str, cell: dict[str, Any]) -> float:
    """The cores the workers kept busy at the busiest level of the style's probe (NaN: not measured)."""
    for probe in _probes(calibration, style, cell):
        levels = [
            lv
            for lv in probe.get("levels") or []
            if isinstance(lv, dict)
            and all(isinstance(lv.get(k), (int, float)) for k in ("concurrency", "requests", "seconds"))
            and isinstance(lv.get("workers_cpu_s_per_request"), (int, float))
            and lv["requests"] >= MIN_PROBE_REQUESTS
            and lv["seconds"] > 0
        ]
        if levels:
            top = max(levels, key=lambda lv: lv["concurrency"])
            return float(top["workers_cpu_s_per_request"] * top["requests"] / top["seconds"])
    return math.nan


def _busy_wait(probe: dict[str, Any]) -> Any:
    levels = probe.get("levels")
    return levels[-1].get("wait_ms") if isinstance(levels, list) and levels and isinstance(levels[-1], dict) else None


MIN_PROBE_REQUESTS = 100  # a probe level with fewer measured too little CPU for the kernel's 10 ms clock


def _at_concurrency(levels: Any, field: str, concurrency: float) -> float:
    """The probe's ``field`` at ``concurrency`` requests at a time: linear between the measured
    levels, the nearest level outside them (NaN when the probe has no levels or none measured)."""
    if not isinstance(levels, list) or not math.isfinite(concurrency):
        return math.nan
    points = sorted(
        (float(lv["concurrency"]), float(lv[field]))
        for lv in levels
        if isinstance(lv, dict)
        and isinstance(lv.get("concurrency"), (int, float))
        and isinstance(lv.get(field), (int, float))
        and lv[field] > 0
        and lv.get("requests", MIN_PROBE_REQUESTS) >= MIN_PROBE_REQUESTS  # too few for the CPU clock
    )
    if not points:
        return math.nan
    xs, ys = zip(*points, strict=True)
    return float(np.interp(concurrency, xs, ys))


# -- the table ------------------------------------------------------------------------------------------


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


SPEED_BOUNDS = (0.5, 2.0)  # a machine speed ratio outside these is a broken reading, not a machine


def speed_ratio(cell: dict[str, Any], calibration: dict[str, Any] | None) -> float:
    """How much slower (over 1) or faster the machine ran Python in the cell's window than during
    the calibration: the reference loop's CPU time in each (routebench.speed); 1 when either was not
    measured. The calibration's CPU per request is scaled by it: the same request costs that much
    more CPU time on a machine that runs Python that much slower (why it does is outside the VM's
    view: routebench.speed)."""
    cell_ms = _number(cell.get("reference_ms"))
    calibrated = _number((calibration or {}).get("reference_ms")) if isinstance(calibration, dict) else math.nan
    if not (math.isfinite(cell_ms) and math.isfinite(calibrated) and cell_ms > 0 and calibrated > 0):
        return 1.0
    ratio = cell_ms / calibrated
    return ratio if SPEED_BOUNDS[0] <= ratio <= SPEED_BOUNDS[1] else 1.0


def cores_available(cell: dict[str, Any], machine_cores: float) -> float:
    """The machine's cores minus those the load side used in the cell (the Locust processes and
    routebench's own), never below MIN_CORES."""
    taken = [_number(cell.get(k)) for k in ("generator_cpu_cores", "orchestrator_cpu_cores")]
    return max(MIN_CORES, machine_cores - sum(c for c in taken if math.isfinite(c)))


def shape_for(
    row: dict[str, Any], cell: dict[str, Any], calibration: dict[str, Any] | None, machine_cores: float
) -> Shape:
    """The Shape of one table row (a style in a cell); KeyError when the cell lacks a setting."""
    open_model = row.get("model") == "open"
    users = _number(row.get("style_users"))
    # The requests at a time the CPU demand is read at: the users (closed), or rate x wait (open).
    concurrency = _number(row.get("arrival_rate")) * _number(cell["wait_ms"]) / 1000 if open_model else users
    speed = speed_ratio(cell, calibration)
    return Shape(
        users=math.nan if open_model else users,
        workers=int(cell["server_workers"]),
        threads=int(cell["threadpool_tokens"]),
        pool=int(cell["db_pool_size"]),
        wait_s=_number(cell["wait_ms"]) / 1000,
        fanout=int(cell["fanout"]),
        cpu_s=demand_for(calibration, row["style"], cell, concurrency=concurrency) * speed,
        workers_cpu_s=demand_for(calibration, row["style"], cell, "workers_cpu_s_per_request", concurrency) * speed,
        core_share=core_share(calibration, row["style"], cell),
        cores=cores_available(cell, machine_cores),
        model="open" if open_model else "closed",
        arrival_rate=_number(row.get("arrival_rate")) if open_model else math.nan,
    )


def predict_per_worker(
    row: dict[str, Any],
    cell: dict[str, Any],
    calibration: dict[str, Any] | None,
    machine_cores: float,
    users_per_worker: list[float],
) -> Predicted:
    """The model for a closed cell whose users' connections did not spread evenly: each worker
    predicted with its own users (one loop, its T threads and P connections, its share of the
    cores), the throughputs added. The users each worker held are measured (requests in flight on
    it, time-averaged: with no think time, every user always has one), an input the generator's
    connections decided, not an outcome of the route style."""
    shape = shape_for(row, cell, calibration, machine_cores)
    w = shape.workers
    parts = []
    for users in users_per_worker:
        if not users > 0:
            continue
        share = {**row, "style_users": users * w}  # the CPU demand at the load this worker saw
        own = shape_for(share, cell, calibration, machine_cores)
        parts.append(
            predict(
                row["style"],
                replace(own, users=users, workers=1, cores=own.cores / w),
            )
        )
    if not parts:
        return NOTHING
    x = sum(p.rps for p in parts)
    busiest = max(parts, key=lambda p: max(p.utilisation.values(), default=0.0))
    utilisation = {k: max(p.utilisation.get(k, 0.0) for p in parts) for k in busiest.utilisation}
    return Predicted(x, shape.users / x, busiest.bottleneck, utilisation, False, math.nan, math.nan)


def add_predictions(
    table: pd.DataFrame,
    cells: dict[str, dict[str, Any]],
    calibration: dict[str, Any] | None,
    machine_cores: float | None = None,
) -> pd.DataFrame:
    """The model's throughput, mean latency, bottleneck and CPU utilisation per row, and measured
    over predicted. U is the users on the row's own style (``style_users``): in a shared cell the
    others drive the other styles. ``calibration`` is run.json's; ``machine_cores`` the machine's
    (default: this one's)."""
    machine = float(machine_cores or os.cpu_count() or 1)
    out = table.copy()
    predictions = []
    even = []  # the model at an even spread of the users over the workers, for the answers' ranking
    for row in out.to_dict("records"):
        if cells.get(row["cell"], {}).get("predict") is False:
            # A target elsewhere that did not say its W, T and P: no prediction rather than a guess.
            predictions.append(NOTHING)
            even.append(NOTHING)
            continue
        try:
            shape = shape_for(row, cells[row["cell"]], calibration, machine)
            spread = row.get("users_per_worker")
            if isinstance(spread, list) and len(spread) == shape.workers > 1 and shape.model == "closed":
                placed = predict_per_worker(row, cells[row["cell"]], calibration, machine, spread)
                # The same worker-by-worker model at an even spread: the two differ by the spread alone.
                even_spread = [shape.users / shape.workers] * shape.workers
                evenly = predict_per_worker(row, cells[row["cell"]], calibration, machine, even_spread)
            else:
                placed = evenly = predict(row["style"], shape)
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            # A web-UI session has no fixed users or work sizes: nothing to predict from.
            evenly = placed = NOTHING
        predictions.append(placed)
        even.append(evenly)
    out["predicted_rps"] = [p.rps for p in predictions]
    out["predicted_even_rps"] = [p.rps for p in even]
    out["predicted_mean_ms"] = [p.mean_s * 1000 for p in predictions]
    out["predicted_bottleneck"] = [p.bottleneck or None for p in predictions]
    out["predicted_cpu_utilisation"] = [p.cpu_utilisation for p in predictions]
    # The machine's speed in the cell against the calibration's (over 1: slower), and the
    # calibration's CPU per request of the Gunicorn workers alone scaled by it, as the model used it,
    # to set beside what the workers used per request in the cell itself (a consistency check).
    out["machine_slowdown"] = [speed_ratio(cells.get(row["cell"], {}), calibration) for row in out.to_dict("records")]
    out["calibrated_workers_cpu_ms"] = [
        demand_for(
            calibration,
            row["style"],
            cells.get(row["cell"], {}),
            "workers_cpu_s_per_request",
            _number(row.get("style_users")),
        )
        * 1000
        * row["machine_slowdown"]
        for row in out.to_dict("records")
    ]
    out["rps_vs_predicted"] = out["rps"] / out["predicted_rps"]
    measured_mean = out["mean_ms"] if "mean_ms" in out else pd.Series(math.nan, index=out.index)
    finite_mean = out["predicted_mean_ms"].where(np.isfinite(out["predicted_mean_ms"]))
    out["mean_vs_predicted"] = measured_mean / finite_mean
    return out.drop(columns=["predicted_latency_ms", "p50_vs_predicted"], errors="ignore")


# -- the verdict ----------------------------------------------------------------------------------------

LIMITED_BY = {
    CPU: "the CPU",
    "event loop": "one event loop per worker",
    "threadpool": "the threadpool's tokens",
    "db pool": "the database pool",
    WAIT: "the wait itself (users over latency)",
}


def _ms(value: float) -> str:
    return f"{value:,.1f} ms"


def verdict(rows: pd.DataFrame, baseline: str | None = None) -> str:
    """One line for a style, from its rows (one per user count), written from the numbers: measured
    against the model's throughput and MEAN latency, and what the model says limits it. Users are
    those on this style (its share of a shared cell). With ``baseline`` (the family's reference
    style's name) and a ``p99_vs_baseline`` column, the p99 ratio to it too."""
    rows = rows.sort_values("style_users")
    top = rows.iloc[-1]
    open_model = top.get("model") == "open"
    where = f"at {top.arrival_rate:g} req/s offered" if open_model else f"at U={top.style_users:g}"
    parts = [f"{where}: {top.rps:,.0f} req/s"]
    predicted_rps = _number(top.get("predicted_rps"))
    if math.isfinite(predicted_rps):
        parts[0] += f" against {predicted_rps:,.0f} predicted ({top.rps / predicted_rps:.0%})"
        bottleneck = top.get("predicted_bottleneck")
        if isinstance(bottleneck, str) and bottleneck in LIMITED_BY:
            parts[0] += f", limited by {LIMITED_BY[bottleneck]}"
    mean, predicted_mean = _number(top.get("mean_ms")), _number(top.get("predicted_mean_ms"))

    def at_least(metric: str) -> str:  # a lower bound (requests unfinished at the stop reach it)
        return "≥" if is_bound(top, metric) else ""

    latency = (
        f"mean {at_least('mean_ms')}{_ms(mean)}"
        if math.isfinite(mean)
        else f"p50 {at_least('p50_ms')}{_ms(top.p50_ms)} (mean not recorded)"
    )
    if math.isinf(predicted_mean):
        latency += " (predicted: overloaded, grows without bound)"
    elif math.isfinite(predicted_mean):
        latency += f" (predicted mean {_ms(predicted_mean)})"
    parts.append(f"{latency}, p99 {at_least('p99_ms')}{_ms(top.p99_ms)}")
    ratio = _number(top.get("p99_vs_baseline", top.get("p99_vs_async")))
    if baseline and math.isfinite(ratio) and abs(ratio - 1) > 0.05:
        parts.append(f"p99 {at_least('p99_vs_baseline')}{ratio:.1f}x {baseline}'s")
    if len(rows) > 1 and not open_model:
        low = rows.iloc[0]
        growth_users = top.style_users / low.style_users
        growth_rps = top.rps / low.rps if low.rps else math.nan
        if growth_rps < 0.5 * growth_users:
            parts.append(
                f"throughput capped: {growth_users:g}x the users gave {growth_rps:.1f}x the requests/s "
                f"({low.rps:,.0f} -> {top.rps:,.0f})"
            )
        else:
            parts.append(f"throughput scaled {growth_rps:.1f}x for {growth_users:g}x the users")
    return "; ".join(parts)
