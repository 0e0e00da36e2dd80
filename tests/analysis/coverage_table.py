"""The p99 interval's coverage by regime: ``python -m tests.analysis.coverage_table [runs]``.

For each regime of :mod:`tests.analysis.queues` (station, utilisation, rate, open or closed), many
windows of 20 s; per window the interval :func:`analysis.precision.interval_from_samples` makes (or
its reason for none); the table gives the share of windows shown an interval and, among them, the
share whose interval holds the regime's p99, with the binomial band a true 95% would fall in.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from analysis.precision import interval_from_samples
from tests.analysis.queues import Regime, simulate, true_p99

SECONDS = 20


def regimes() -> list[Regime]:
    out = []
    for model in ("open", "closed"):
        for station in ("mm1", "md2", "pool"):
            for rate in (100.0, 1000.0, 5000.0):
                for rho in (0.5, 0.8, 0.9, 0.95):
                    out.append(Regime(station, rho, rate, model))
    return out


def measure(regime: Regime, runs: int, seed: int) -> dict:
    windows = list(simulate(regime, runs, SECONDS, seed))
    truth = true_p99([lat for lat, _ in windows])
    ivs = [interval_from_samples(lat, sec) for lat, sec in windows]
    made = [iv for iv in ivs if iv["batches"]]
    hits = [iv["low_us"] <= truth <= iv["high_us"] for iv in made]
    return {
        "regime": regime.label,
        "shown": len(made) / runs,
        "coverage": float(np.mean(hits)) if made else float("nan"),
        "n": len(made),
        "half": float(np.median([iv["half_width_rel"] for iv in made])) if made else float("nan"),
    }


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    only = sys.argv[2] if len(sys.argv) > 2 else ""
    for i, regime in enumerate(regimes()):
        if only and only not in regime.label:
            continue
        t0 = time.monotonic()
        row = measure(regime, runs, 1000 + i)
        print(
            f"{row['regime']:<34} shown {row['shown']:6.1%}  coverage {row['coverage']:6.1%} of {row['n']:>4}"
            f"  half {row['half']:6.1%}  ({time.monotonic() - t0:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
