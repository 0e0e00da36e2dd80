"""Simulated stations whose latencies a window's p99 interval is checked against: the regimes a user
of routebench meets, open and closed, with many runs at once.

A station is c servers taking requests first come, first served; a request's latency is its wait
plus its service. Three kinds, as the route styles make them:

- ``mm1``: one server, exponential service (M/M/1): the textbook queue, slow responses in clusters
  one per busy spell;
- ``md2``: two servers whose service is nearly constant (a CPU-bound route on two workers: the
  work's time with a 5% log-normal spread; "M/D/c" up to that spread);
- ``pool``: 80 servers (a threadpool of 40 tokens on two workers) holding each request for a wait
  with a 2% spread, the sleep behind a ``def`` route: the latency is the wait until the tokens run
  short, then a queue for them.

Open: Poisson arrivals at ``rate``. Closed: ``users`` users, each thinking an exponential time
after each response, the mean think time set so that the throughput is about ``rate``.

Every run of a regime is simulated at once (numpy arrays over runs), one request per step: at each
step each run's next request (the open model's next arrival, the closed model's earliest user to
finish thinking) takes the server that frees first. The window [0, seconds) starts after a warm-up
long enough for the station to forget its empty start (ten of the M/M/1's relaxation times at that
utilisation, at least two seconds).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

# A run: latencies and the whole second (0-based) each completed in, in completion order.
Run = tuple[np.ndarray, np.ndarray]

SERVERS = {"mm1": 1, "md2": 2, "pool": 80}
SPREAD = {"md2": 0.05, "pool": 0.02}  # the service time's log-normal spread (sd of its log)


@dataclass(frozen=True)
class Regime:
    station: str  # mm1, md2 or pool
    rho: float  # the servers' utilisation
    rate: float  # requests per second
    model: str = "open"  # or closed
    users: int = 0  # closed: how many (default: twice the open model's mean number in the system, at least 20)

    @property
    def servers(self) -> int:
        return SERVERS[self.station]

    @property
    def service_s(self) -> float:
        """The mean service time that makes utilisation ``rho`` at ``rate``."""
        return self.rho * self.servers / self.rate

    @property
    def label(self) -> str:
        return f"{self.station} {self.model} rho {self.rho:g} {self.rate:g}/s"

    def warm_s(self) -> float:
        relax = 1.0 / ((self.rate / self.rho) * (1.0 - math.sqrt(self.rho)) ** 2)
        return max(2.0, 10.0 * relax)


def _service(rng: np.random.Generator, regime: Regime, shape: tuple[int, ...]) -> np.ndarray:
    mean = regime.service_s
    if regime.station == "mm1":
        return rng.standard_exponential(shape) * mean
    sd = SPREAD[regime.station]
    return mean * np.exp(sd * rng.standard_normal(shape) - sd * sd / 2.0)


def simulate(regime: Regime, runs: int, seconds: int, seed: int) -> Iterator[Run]:
    """``runs`` independent windows of ``seconds`` seconds of ``regime``."""
    rng = np.random.default_rng(seed)
    warm = regime.warm_s()
    span = warm + seconds
    n = int(span * regime.rate + 6.0 * math.sqrt(span * regime.rate) + 50)
    if regime.model == "open":
        latency, done = _open(rng, regime, runs, n)
    else:
        latency, done = _closed(rng, regime, runs, int(n * 1.2))
    done -= warm
    if not (done.max(axis=1) >= seconds).all():
        raise ValueError(f"{regime.label}: {n} requests do not reach the window's end: fewer than its rate")
    for r in range(runs):
        order = np.argsort(done[r], kind="stable")
        d, lat = done[r][order], latency[r][order]
        keep = (d >= 0.0) & (d < seconds)
        yield lat[keep], np.floor(d[keep]).astype(np.int64)


def _open(rng: np.random.Generator, regime: Regime, runs: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    arrivals = np.cumsum(rng.standard_exponential((runs, n)) / regime.rate, axis=1)
    service = _service(rng, regime, (runs, n))
    if regime.servers == 1:  # Lindley's recursion in closed form: W_k = C_k - min(0, C_1..C_k)
        drift = np.zeros((runs, n))
        np.cumsum(service[:, :-1] - np.diff(arrivals, axis=1), axis=1, out=drift[:, 1:])
        latency = drift - np.minimum.accumulate(np.minimum(drift, 0.0), axis=1) + service
        return latency, arrivals + latency
    free = np.zeros((runs, regime.servers))
    rows = np.arange(runs)
    latency = np.empty((runs, n))
    for k in range(n):
        i = free.argmin(axis=1)
        start = np.maximum(arrivals[:, k], free[rows, i])
        free[rows, i] = start + service[:, k]
        latency[:, k] = free[rows, i] - arrivals[:, k]
    return latency, arrivals + latency


def closed_users(regime: Regime) -> int:
    if regime.users:
        return regime.users
    if regime.station == "mm1":
        in_system = regime.rho / (1.0 - regime.rho)
    else:  # at least the busy servers, and a queue's worth near saturation
        in_system = regime.rho * regime.servers + regime.rho / (1.0 - regime.rho)
    return max(20, int(2 * in_system))


def _closed(rng: np.random.Generator, regime: Regime, runs: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Users think, send, wait for the response, think again. The mean think time is set so that the
    throughput would be ``rate`` if the latency were the open model's mean (Little: N = X (R + Z))."""
    users = closed_users(regime)
    s = regime.service_s
    if regime.station == "mm1":
        open_r = s / (1.0 - regime.rho)
    else:
        open_r = s + (s * regime.rho / (1.0 - regime.rho)) / regime.servers  # a rough queue on top
    think = max(users / regime.rate - open_r, 1e-6)
    ready = rng.standard_exponential((runs, users)) * think
    free = np.zeros((runs, regime.servers))
    rows = np.arange(runs)
    latency = np.empty((runs, n))
    done = np.empty((runs, n))
    service = _service(rng, regime, (runs, n))
    thinks = rng.standard_exponential((runs, n)) * think
    for k in range(n):
        u = ready.argmin(axis=1)
        arrival = ready[rows, u]
        i = free.argmin(axis=1)
        start = np.maximum(arrival, free[rows, i])
        finish = start + service[:, k]
        free[rows, i] = finish
        latency[:, k] = finish - arrival
        done[:, k] = finish
        ready[rows, u] = finish + thinks[:, k]
    return latency, done


def true_p99(samples: list[np.ndarray]) -> float:
    """The regime's p99 from every run's samples pooled (the truth the intervals are checked
    against, as no formula gives it for most of these stations)."""
    return float(np.quantile(np.concatenate(samples), 0.99))
