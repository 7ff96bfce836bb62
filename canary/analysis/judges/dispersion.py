"""As many canary pods as primary pods: the pods' draw as extra variance of the count tests.

With counts per pod and k_c >= k_p pods (the controller's default is as many), both sides'
pods tell the spread (canary.analysis.judges.pods.pooled_spread: Pearson's X² pooled over the
sides, each about its own rate, df = (k_c - 1) + (k_p - 1)). Each side fails at its version's
rate times the mean of its pods' factors, a draw fixed for the run; the observed ln ratio
then varies by the counts' noise, V ≈ 1/F_c + 1/F_p, plus the draw's, s²·(1/k_c + 1/k_p). One
test carries both: the split test's log-likelihoods are divided by

    φ = K(df) · (1 + s²·(1/k_c + 1/k_p)·H),   H = F_c·F_p / (F_c + F_p),

(the quasi-likelihood way: a likelihood whose curvature matches the estimate's whole
variance), and the objective route's by K(df) · (1 + s²·F_c/k_c) (the canary's pods alone).
K(df) = (t_df / z)² at the quantile 1 - beta/2 (z = 1.96 for beta 5%): the whole variance is
estimated from df degrees of freedom, as Student's t pays for (quasi-Poisson t tests do the
same), at a quantile chosen by measurement; with 2 pods a side K is 4.8, with 10 1.15.
Alike pods (s = 0) keep K only: the count test at nearly its old strength, no time spent
"learning" a spread, and no pretest (a spread estimated at 0 by chance still pays K). It is
a heuristic, measured, not a proof: the division is exact for a normal estimate at one look,
the pods' draw does not average out over looks, and the spread is re-estimated at each one
(docs/analysis.md, "Few canary pods", gives the figures and the seeded tests that check them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

from canary.analysis.judges.pods import MAX_PODS, MIN_POOLED_DF, pooled_variance, t_quantile


@dataclass(frozen=True)
class Dispersion:
    """How much wider than the counts' own each test's estimate is, given the pods."""

    canary_pods: int
    primary_pods: int
    spread: float  # s: the sd of a pod's ln rate, from both sides' pods
    df: int
    inflation: float  # K(df): the price of estimating the variance from df
    ratio: float  # the split test's log-likelihoods are divided by this
    rate: float  # the objective route's are divided by this

    def describe(self) -> str:
        return (
            f"{self.canary_pods} canary vs {self.primary_pods} primary pods, spread "
            f"{self.spread:.2f}"
        )


def inflation(df: int, tail: float) -> float:
    """K(df) = (t_df / z)² at the quantile 1 - ``tail``/2 (1.96 for 5%): Student's price for a
    variance estimated from df, at a quantile chosen by measurement (docs/analysis.md)."""
    probability = 1.0 - tail / 2.0
    z = NormalDist().inv_cdf(probability)
    return (t_quantile(probability, df) / z) ** 2


def dispersion(
    canary: Sequence[tuple[float, float]], primary: Sequence[tuple[float, float]], tail: float
) -> Dispersion | None:
    """The tests' dispersion for as many (or more) canary pods as primary pods, at the bar
    1/``tail``; None otherwise (fewer canary pods: canary.analysis.judges.pods bounds their
    draw from the primary's pods; one pod a side, or no counts per pod: the tests stay as they
    are)."""
    if not canary or not primary or len(canary) < len(primary):
        return None
    k_c, k_p = len(canary), len(primary)
    df = (k_c - 1) + (k_p - 1)
    if df < MIN_POOLED_DF:
        return None
    variance = pooled_variance([canary, primary])
    s = math.sqrt(max(variance, 0.0))
    f_c = sum(x for _, x in canary)
    f_p = sum(x for _, x in primary)
    harmonic = f_c * f_p / (f_c + f_p) if f_c > 0 and f_p > 0 else 0.0
    k = inflation(df, tail)
    # Unclipped, as the quasi-likelihood t test takes it (the counts' own noise is in the
    # estimate too); never below 1: the count tests alone are valid for the counts.
    ratio = max(k * max(1.0 + variance * (1.0 / k_c + 1.0 / k_p) * harmonic, 0.0), 1.0)
    rate = max(k * max(1.0 + variance * f_c / k_c, 0.0), 1.0)
    return Dispersion(k_c, k_p, s, df, k, ratio, rate)


def limit_evidence(spread: float, pods_a_side: int, detect: float, tail: float) -> float:
    """ln of the most evidence, however many requests, that a canary exactly like its
    primary can show against ``detect`` times worse with this many pods a side at this
    spread: the counts' noise vanishes, the draw's stays (s²·2/k, times K)."""
    variance = inflation(2 * pods_a_side - 2, tail) * spread * spread * 2.0 / pods_a_side
    if variance <= 0.0:
        return math.inf
    return math.log(detect) ** 2 / (2.0 * variance)


def pods_a_side_needed(spread: float, detect: float, tail: float) -> int | None:
    """The fewest pods a side with which a healthy canary could show it is not ``detect``
    times worse at this spread (its limit evidence over 1/``tail``, with room: twice the
    bar's ln); None when no count up to MAX_PODS would."""
    for k in range(2, MAX_PODS + 1):
        if limit_evidence(spread, k, detect, tail) >= 2.0 * math.log(1.0 / tail):
            return k
    return None
