"""Capacity under an SLO: pure functions over what a capacity run saved, one module per concept.

- ``limits``: the capacity SLO (``p99<250ms``, ``failure_rate<1%``) and the limits it sets a
  search: a probe's tail, the latency limit the model aims at;
- ``judgement``: how a probe is judged (the SLO, throughput, trend and validity rules) and whether it
  is run again;
- ``prediction``: theory's ceiling and predicted MST for a style (analysis.theory's stations and
  queueing formulas);
- ``power``: the knee, Kleinrock's operating point;
- ``mst_stats``: the repeats' MSTs as a mean with an interval, and Welch's test between two styles;
- ``doc``: ``capacity.json``, the document a capacity run writes and the report reads;
- ``thresholds``: ``check``'s ``STYLE:mst>=N`` thresholds against that document;
- ``two_runs``: two capacity runs' MSTs compared.

The search itself (which rate to probe next) is routebench's: it decides, the runner probes, and
this package judges and writes. ``from analysis import capacity`` gives the names used elsewhere.
"""

from __future__ import annotations

from analysis.capacity.doc import SCHEMA_VERSION, baseline_of, document, generator_s_per_request, shape_label
from analysis.capacity.judgement import ACHIEVED_SHARE, PROBE_RULES, SERVER_RULES, judge, trend
from analysis.capacity.limits import CapacityError, latency_label, latency_limit_ms, parse_slo, tail_ms
from analysis.capacity.mst_stats import ALPHA, differ, mst_interval
from analysis.capacity.power import KNEE_METHOD, knee
from analysis.capacity.prediction import PREDICTION_METHOD, predicted_p99_s, theory_numbers
from analysis.capacity.thresholds import evaluate
from analysis.capacity.two_runs import compare_docs

__all__ = [
    "ACHIEVED_SHARE",
    "ALPHA",
    "KNEE_METHOD",
    "PREDICTION_METHOD",
    "PROBE_RULES",
    "SCHEMA_VERSION",
    "SERVER_RULES",
    "CapacityError",
    "baseline_of",
    "compare_docs",
    "differ",
    "document",
    "evaluate",
    "generator_s_per_request",
    "judge",
    "knee",
    "latency_label",
    "latency_limit_ms",
    "mst_interval",
    "parse_slo",
    "predicted_p99_s",
    "shape_label",
    "tail_ms",
    "theory_numbers",
    "trend",
]
