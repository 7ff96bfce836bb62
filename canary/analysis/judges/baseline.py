"""The primary's usual failure rate, and the objective judged at it (docs/analysis.md,
assumption 3).

"Bad" is a canary at least T times worse than its primary *and* over its objective q0 at the
service's usual conditions. Under common modes (a daily cycle, a dependency's incident) both
versions' rates move together: canary(t) = r · primary(t). The canary's own rate during the
analysis then says where the moment is, not whether r · p̄ >= q0 for the primary's usual rate
p̄: in a trough a canary at the objective looks within it. Two uses of a BASELINE, the
primary's counts over a longer window before the analysis (an hour in Prometheus and the
simulator):

- **exact**: with p̄ below its upper confidence bound p̄⁺ (which fails with probability at most
  BASELINE_SHARE of beta), "bad" implies r >= q0 / p̄⁺, so the comparison's split test may
  rule out max(T, q0 / p̄⁺) instead of T. The split is conditioned on each look's total, so
  this route is immune to anything that scales both versions alike.
- **a heuristic guard** on the one-sample route (the canary's failures against q0, which
  assumes the canary's rate during the analysis is no lower than usual): while the primary's
  rate during the analysis is below its baseline (the estimated ratio under 1), the
  objective is scaled down by that ratio. No bound is claimed for it.

Without a baseline (no history: a new service) neither is possible; the objective is then
judged at the rate during the analysis, as before, and the judge's messages say so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from canary.analysis.samples import SideSample

BASELINE_SHARE = 0.1
"""Share of beta spent on the baseline's upper bound being wrong (p̄ above p̄⁺), when the
exact route uses it: the promotion evidence must then reach 1 / (beta · (1 - share))."""


@dataclass(frozen=True)
class Usual:
    """The primary's usual failure rate, from its baseline counts."""

    requests: int
    failures: int
    upper: float  # p̄⁺: upper confidence bound at BASELINE_SHARE of beta

    @property
    def rate(self) -> float:
        return self.failures / self.requests

    def objective_ratio(self, objective: float) -> float:
        """q0 / p̄⁺: the ratio to the primary a canary over the objective is at least."""
        return objective / self.upper if self.upper > 0 else math.inf

    def trough(self, failures: int, requests: int) -> float:
        """The guard's factor: the primary's rate over ``failures``/``requests`` during the
        analysis relative to its baseline rate, capped at 1 (1: no trough seen). Given both
        windows' failures the analysis' share of them is binomial; the ratio is read from
        that share's median (Kerman's approximation of a Beta(x + 1, m - x) median), which
        stays finite and positive with few failures on either side."""
        if requests <= 0 or self.failures <= 0:
            return 1.0
        ratio = (failures + 2.0 / 3.0) / (self.failures - 1.0 / 3.0) * self.requests / requests
        return min(ratio, 1.0)


def usual(sample: SideSample | None, beta: float) -> Usual | None:
    """The primary's usual rate from ``sample`` (None: no baseline, or no requests in it).
    The upper bound is the exact Poisson one, one-sided at BASELINE_SHARE of beta (failure
    rates of a few percent at most: the binomial's is a little lower, so this is the safe
    side)."""
    if sample is None or sample.requests <= 0:
        return None
    failures = min(sample.failures, sample.requests)
    upper = min(poisson_upper(failures, beta * BASELINE_SHARE) / sample.requests, 1.0)
    return Usual(sample.requests, failures, upper)


@lru_cache(maxsize=1024)
def poisson_upper(count: int, level: float) -> float:
    """The mean m with P(Poisson(m) <= count) = level: the exact one-sided upper confidence
    bound of a Poisson mean after ``count`` events (bisection on the distribution function)."""
    first = max(0, count - int(12.0 * math.sqrt(count)) - 10)  # lower terms are negligible
    ks = np.arange(first, count + 1, dtype=np.float64)
    log_factorials = np.array([math.lgamma(k + 1.0) for k in range(first, count + 1)])
    low, high = float(count), float(count) + 10.0 * math.sqrt(count + 1.0) + 10.0
    for _ in range(60):
        middle = 0.5 * (low + high)
        terms = ks * math.log(middle) - middle - log_factorials
        if float(np.exp(np.logaddexp.reduce(terms))) > level:
            low = middle
        else:
            high = middle
    return high
