"""The search for one style's maximum sustainable throughput (MST): which rate to probe next.

A geometric ramp from the start rate (times ``growth`` while probes pass; the first step past the
model's ceiling stops 10% beyond it, where a probe settles whether the model's limit holds), then bisection in
geometric steps between the highest passing and the lowest failing rate until they are within the
tolerance (hi / lo <= 1 + tolerance), then a confirmation probe at the highest passing rate with a
longer window. A confirmation that fails makes that rate a failing one and the search goes on below
it. The search ends when a confirmation passes (MST = that rate, known to within the tolerance:
the next rate up failed), when the rate passes at the search's upper bound (MST at least that),
when a probe fails at its lower bound (MST below it), or when its probe budget is spent (nothing
confirmed: the best passing rate is kept as an unconfirmed lower bound). Pure: the capacity run
(routebench.capacity_run) probes, this decides.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

RAMP, BISECT, CONFIRM = "ramp", "bisect", "confirm"
CEILING_STEP = 1.1  # the first step up past the model's ceiling goes this far past it, no further


def rounded(rate: float) -> float:
    """A probe's rate to four significant digits: readable, and a bisection never stalls on it."""
    return float(f"{rate:.4g}")


@dataclass
class Search:
    start: float
    low_bound: float
    high_bound: float
    growth: float = 2.0
    tolerance: float = 0.05
    max_probes: int = 14
    ceiling: float | None = None  # the model's hard ceiling: a step up stops just past it first
    probes: list[dict[str, Any]] = field(default_factory=list)  # {"rate", "phase", "passed"}
    lo: float | None = None  # highest rate that passed (not yet refuted by a confirmation)
    hi: float | None = None  # lowest rate that failed
    confirmed: float | None = None
    outcome: str = ""  # why it ended, in words; empty while it runs
    retries: list[tuple[float, str]] = field(default_factory=list)  # (rate, phase) probes run again

    def retried(self, rate: float, phase: str) -> bool:
        """Whether this step was already run again (once is all a probe gets)."""
        return (rate, phase) in self.retries

    @property
    def done(self) -> bool:
        return bool(self.outcome)

    def next_probe(self) -> tuple[float, str] | None:
        """The next (rate, phase), or None when the search has ended (``outcome`` says how)."""
        if self.done:
            return None
        if self.lo is None and self.hi is not None and self.hi <= self.low_bound:
            self.outcome = f"failed at the search's lower bound, {self.low_bound:g} req/s: MST below it"
            return None
        if len(self.probes) >= self.max_probes:
            self.outcome = f"probe budget spent ({self.max_probes} probes), nothing confirmed"
            return None
        if not self.probes:
            return self.start, RAMP
        if self.hi is None:  # no failure yet: up
            assert self.lo is not None
            if self.lo >= self.high_bound:
                return self.lo, CONFIRM
            up = rounded(self.lo * self.growth)
            cap = rounded(CEILING_STEP * self.ceiling) if self.ceiling else None
            if cap is not None and self.lo < cap < up:
                up = cap  # past the model's ceiling, a whole step is sure to fail
            return min(up, self.high_bound), RAMP
        if self.lo is None:  # nothing passed yet: down
            return max(rounded(self.hi / self.growth), self.low_bound), RAMP
        mid = rounded(math.sqrt(self.lo * self.hi))
        if self.hi / self.lo > 1 + self.tolerance and self.lo < mid < self.hi:
            return mid, BISECT
        return self.lo, CONFIRM

    def record(self, rate: float, phase: str, passed: bool) -> None:
        self.probes.append({"rate": rate, "phase": phase, "passed": passed})
        if phase == CONFIRM:
            if passed:
                self.confirmed = rate
                self.outcome = (
                    f"passed at the search's upper bound, {self.high_bound:g} req/s: the MST is at least that"
                    if self.hi is None
                    else f"confirmed; the next rate up, {self.hi:g} req/s ({self.hi / rate - 1:.1%} higher), failed"
                )
                return
            # Refuted: that rate fails; the highest other pass below it is the new floor.
            self.hi = rate if self.hi is None else min(self.hi, rate)
            below = [p["rate"] for p in self.probes if p["passed"] and p["phase"] != CONFIRM and p["rate"] < rate]
            self.lo = max(below) if below else None
            return
        if passed:
            self.lo = rate if self.lo is None else max(self.lo, rate)
        else:
            self.hi = rate if self.hi is None else min(self.hi, rate)

    def mst(self) -> dict[str, Any]:
        """What the search found so far: the MST when confirmed; else the best rate that passed (a
        lower bound, unconfirmed), and ``below_rps`` when it failed at its lower bound."""
        upper = self.hi
        if self.confirmed is not None:
            return {
                "mst_rps": self.confirmed,
                "confirmed": True,
                "bracket": [self.confirmed, upper],
                "lower_bound": self.confirmed >= self.high_bound,
            }
        return {
            "mst_rps": None,
            "confirmed": False,
            "bracket": [self.lo, upper],
            "best_unconfirmed_rps": self.lo,
            "below_rps": self.low_bound if self.lo is None and "lower bound" in self.outcome else None,
        }

    def summary(self) -> dict[str, Any]:
        """The search as capacity.json's ``searches`` entry holds it, so far."""
        return {
            "outcome": self.outcome or "running",
            "probes": list(self.probes),
            "start_rps": self.start,
            **self.mst(),
        }

    @staticmethod
    def expected_probes(start: float, guess: float, growth: float, tolerance: float) -> int:
        """About how many probes a search from ``start`` takes when the MST is near ``guess``: the
        ramp's steps, the bisections from one growth step down to the tolerance, one confirmation."""
        ramp = max(1, math.ceil(math.log(max(guess, start) / start, growth)) + 1) if guess > 0 else 3
        halvings = max(0, math.ceil(math.log2(math.log(growth) / math.log(1 + tolerance))))
        return ramp + halvings + 1
