"""Theory's two numbers for a capacity search (:func:`theory_numbers`), from the same stations as
every other prediction (analysis.theory.network, CPU per request from the run's calibration):

- ``ceiling_rps``: the hard ceiling, min over the stations of servers / demand, with the cores the
  server has left once the generator took its share at that rate (its CPU per request measured in
  the run's probes): the rate where the ceiling meets itself;
- ``predicted_mst_rps``: the highest rate at which the model's p99 stays within the SLO's p99. The
  p99 is the sum over stations of the service time plus, at a station of m servers, the 99th
  percentile of the wait of a G/G/m queue (analysis.theory.wait_quantile): Allen-Cunneen's mean
  wait ((ca² + cs²) / 2 times Erlang C's M/M/m mean wait) with Erlang C's exponential tail. The
  arrivals are the schedule's, evenly spaced (ca² = 0); a fixed wait is served in a fixed time
  (cs² = 0), the CPU in exponential times (cs² = 1). A stated approximation: the measured MST is
  set beside it, as a ratio.
"""

from __future__ import annotations

import math
from typing import Any

from analysis import theory
from target_app import catalogue

QUANTILE = 0.99
PREDICTION_METHOD = (
    "the model's stations (CPU from the run's calibration, the cores the generator leaves at that rate); "
    "ceiling = min over stations of servers / demand; predicted MST = the highest rate whose p99 (service "
    "times plus each station's G/G/m wait p99: Allen-Cunneen mean, Erlang C tail; evenly spaced arrivals, "
    "fixed waits, exponential CPU) stays within the SLO's p99"
)


def predicted_p99_s(stations: list[theory.Station], rate: float) -> float:
    """The model's p99 at ``rate`` (seconds): each station's service time plus its wait's p99."""
    total = 0.0
    for st in stations:
        _, service = theory.as_queue(st)
        cs2 = 1.0 if st.name == theory.CPU else 0.0  # CPU: exponential; a fixed wait: fixed
        total += service + theory.wait_quantile(st, rate, 0.0 + cs2, QUANTILE)
    return total


def _shape(
    style: str, cell: dict[str, Any], calibration: dict[str, Any] | None, cores: float, gen_s: float, rate: float
) -> theory.Shape:
    probe = {**cell, "generator_cpu_cores": gen_s * rate}
    row = {"style": style, "model": "open", "arrival_rate": rate, "style_users": math.nan}
    return theory.shape_for(row, probe, calibration, cores)


def theory_numbers(
    style: str,
    cell: dict[str, Any],
    calibration: dict[str, Any] | None,
    machine_cores: float,
    generator_s_per_request: float,
    slo_p99_ms: float,
) -> dict[str, Any]:
    """``ceiling_rps`` and ``predicted_mst_rps`` for ``style`` on ``cell``'s server shape (None where
    the model has nothing to go on, with ``reason``)."""
    if style not in catalogue.BY_ID:
        return {"ceiling_rps": None, "predicted_mst_rps": None, "reason": "your app's route: no model of its code"}
    gen = generator_s_per_request if math.isfinite(generator_s_per_request) else 0.0

    def stations(rate: float) -> list[theory.Station]:
        return theory.network(style, _shape(style, cell, calibration, machine_cores, gen, rate))

    if not stations(1.0):
        return {"ceiling_rps": None, "predicted_mst_rps": None, "reason": "no CPU per request measured for it"}

    def ceiling_at(rate: float) -> float:
        return theory.bounds(stations(rate), math.inf)[1]

    # The ceiling falls as the generator takes more cores: where it meets the rate, by bisection.
    lo, hi = 0.0, ceiling_at(0.0)
    if not math.isfinite(hi):
        return {"ceiling_rps": None, "predicted_mst_rps": None, "reason": "the model has no finite ceiling"}
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if ceiling_at(mid) > mid else (lo, mid)
    ceiling = lo
    limit = slo_p99_ms / 1000
    if predicted_p99_s(stations(min(1.0, ceiling / 2)), min(1.0, ceiling / 2)) > limit:
        return {
            "ceiling_rps": round(ceiling, 2),
            "predicted_mst_rps": 0.0,
            "reason": "the p99 at no load is over the SLO",
        }
    lo, hi = 0.0, ceiling
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if predicted_p99_s(stations(mid), mid) <= limit else (lo, mid)
    return {"ceiling_rps": round(ceiling, 2), "predicted_mst_rps": round(lo, 2)}
