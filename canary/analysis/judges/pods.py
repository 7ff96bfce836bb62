"""Few canary pods: how far the draw of pods alone can move the observed ratio.

The comparison's guarantee is about the canary's pods as served. When each pod fails at the
version's rate times a factor of its own (a node, a noisy neighbour, a cache), one canary pod
is one draw of that factor, and a version T times worse can look better than T. With counts
per pod, and fewer canary pods than primary pods, the judge bounds that draw (with as many,
the controller's default, both sides' pods tell the spread and
canary.analysis.judges.dispersion widens the count tests by it instead):

- the spread comes from the primary's pods: their failures' dispersion beyond binomial
  (Pearson's X² over the pods, with the pooled rate, less the binomial part) gives s², an
  estimate of the variance of a pod's ln rate; it is told from 3 pods and 2 failures a pod;
- assuming the canary's pods spread as the primary's do (log-normal factors, the same sd),
  the canary pods' mean ln factor minus the primary pods' lies below
  -t·s·sqrt(1/k_c + 1/k_p) with probability at most ``share`` (Student's t with k_p - 1
  degrees of freedom: a prediction bound that accounts for s being an estimate; exact for a
  noise-free sample variance, approximate for s² with the counting noise taken out);
- sides fail at the mean of their pods' rates, not the geometric mean: the difference,
  σ²/2·(1/k_c - 1/k_p) for log-normal factors, is added (with s² for σ²).

The promotion test against the primary then rules out T·e^(-margin) instead of T, and the
objective route the objective times e^(-margin of the canary's pods alone): a version T times
worse passes only if the pods were drawn below their bound (at most ``share``) or the count
test erred (its own share of beta). The fail test's null is widened the other way
(harm_margin). docs/analysis.md states the assumption and the measurements.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from canary.analysis import stats
from canary.analysis.samples import PodCounts
from canary.analysis.stats import FloatArray

MAX_PODS = 32
"""Pods tracked per side (bounded state): later pods' counts go to the side totals only."""

MIN_PRIMARY_PODS = 3
"""The spread needs at least this many primary pods with requests (two degrees of freedom:
with one, an estimate of no spread at all is too likely whatever the truth)."""

MIN_POOLED_DF = 2
"""With as many canary pods as primary pods the spread is told from both sides' pods
(canary.analysis.judges.dispersion); it needs this many degrees of freedom ((k_c - 1) +
(k_p - 1): two pods a side at least). One pod a side tells nothing, and the judge keeps its
unadjusted tests (assumption 2)."""

MIN_POD_FAILURES = 2.0
"""The spread is told once the primary's pods have failed this often each, on average: with
fewer, their counts' own noise hides it."""

POD_SHARE = 0.5
"""Share of beta (and of alpha) spent on the pods' draw when the judge allows for it: the count
tests then promote at 1/(beta·(1 - POD_SHARE)) and fail at 1/(alpha·(1 - POD_SHARE)), and the
draw's bounds use the rest (beta's split between the promotion routes)."""


@dataclass
class PodTally:
    """Counts per pod since the analysis started, keyed by a CRC of the pod's name (numbers
    only: judge_state is a list of floats)."""

    pods: dict[float, tuple[float, float]] = field(default_factory=dict)

    def add(self, counts: Iterable[PodCounts]) -> None:
        for pod in counts:
            key = float(zlib.crc32(pod.name.encode()))
            if key not in self.pods and len(self.pods) >= MAX_PODS:
                continue
            requests, failures = self.pods.get(key, (0.0, 0.0))
            self.pods[key] = (requests + pod.requests, failures + min(pod.failures, pod.requests))

    def serving(self) -> list[tuple[float, float]]:
        """(requests, failures) of the pods that served at least one request."""
        return [(n, x) for n, x in self.pods.values() if n > 0]

    def dump(self) -> list[float]:
        out: list[float] = [float(len(self.pods))]
        for key, (requests, failures) in self.pods.items():
            out += [key, requests, failures]
        return out

    @classmethod
    def load(cls, saved: Sequence[float]) -> tuple[PodTally, int]:
        """A tally from ``saved`` and how many numbers it took (a malformed one is empty)."""
        if not saved:
            return cls(), 0
        count = int(saved[0])
        size = 1 + 3 * count
        if count < 0 or count > MAX_PODS or len(saved) < size:
            return cls(), len(saved)
        pods = {saved[1 + 3 * i]: (saved[2 + 3 * i], saved[3 + 3 * i]) for i in range(count)}
        return cls(pods), size


@dataclass(frozen=True)
class PodBound:
    """What the pods' draw can do to the observed rates: margins in ln, and their reading."""

    canary_pods: int
    primary_pods: int
    spread: float  # s: the sd of a pod's ln rate, counting noise included
    ratio_margin: float  # the comparison's T is divided by e^this
    rate_margin: float  # the objective is divided by e^this

    def describe(self) -> str:
        return (
            f"{self.canary_pods} canary vs {self.primary_pods} primary pods, spread "
            f"{self.spread:.2f}"
        )


def spread(primary: Sequence[tuple[float, float]]) -> float:
    """s: the primary pods' dispersion as the sd of a pod's ln rate (counting noise included);
    inf when it cannot be told (fewer than two pods, or no failures at all)."""
    if len(primary) < MIN_PRIMARY_PODS:
        return math.inf
    requests = sum(n for n, _ in primary)
    failures = sum(x for _, x in primary)
    if failures <= 0 or requests <= 0:
        return math.inf
    per_pod = failures / len(primary)  # expected failures of a typical pod
    if per_pod < MIN_POD_FAILURES:
        return math.inf
    rate = failures / requests
    pearson = sum((x - n * rate) ** 2 / (n * rate) for n, x in primary)
    return math.sqrt(max(pearson / (len(primary) - 1) - 1.0, 0.0) / per_pod)


def pooled_spread(sides: Sequence[Sequence[tuple[float, float]]]) -> float:
    """s from every side's pods (pooled_variance), 0 when their counts are within counting
    noise or no side has failed yet."""
    return math.sqrt(max(pooled_variance(sides), 0.0))


def pooled_variance(sides: Sequence[Sequence[tuple[float, float]]]) -> float:
    """The variance of a pod's ln rate from every side's pods, each about its own pooled
    rate: Pearson's X² summed over the sides, less its binomial part (one a degree of
    freedom), over what a unit of that variance adds to it (each pod's expected failures,
    less its share of its side's). Unbiased, so it may come out below 0 when the pods are
    alike (counting noise alone); 0 when no side with two pods has failed yet."""
    excess, scale = 0.0, 0.0
    for side in sides:
        requests = sum(n for n, _ in side)
        failures = sum(x for _, x in side)
        if len(side) < 2 or failures <= 0 or requests <= 0:
            continue
        rate = failures / requests
        excess += sum((x - n * rate) ** 2 / (n * rate) for n, x in side) - (len(side) - 1)
        scale += sum(n * rate * (1.0 - n / requests) for n, _ in side)
    return excess / scale if scale > 0 else 0.0


def bound(
    canary: Sequence[tuple[float, float]], primary: Sequence[tuple[float, float]], share: float
) -> PodBound | None:
    """The margins at probability ``share`` for each route, or None when either side has no
    per-pod counts or the canary has as many pods as the primary (then both sides' pods tell
    the spread, and canary.analysis.judges.dispersion widens the tests instead)."""
    if not fewer_canary_pods(canary, primary):
        return None
    k_c, k_p = len(canary), len(primary)
    s = spread(primary)
    if not math.isfinite(s):
        return PodBound(k_c, k_p, s, math.inf, math.inf)
    t = t_quantile(1.0 - share, k_p - 1)
    rate = t * s / math.sqrt(k_c) + 0.5 * s * s / k_c
    return PodBound(k_c, k_p, s, ratio_margin(s, k_c, k_p, t), rate)


def fewer_canary_pods(
    canary: Sequence[tuple[float, float]], primary: Sequence[tuple[float, float]]
) -> bool:
    """Whether the judge bounds the canary pods' draw from the primary's pods: counts per pod
    on both sides, and fewer canary pods than primary pods (the canary's few pods cannot
    tell the spread). With as many, see canary.analysis.judges.dispersion."""
    return bool(canary) and len(canary) < len(primary)


def harm_margin(
    canary: Sequence[tuple[float, float]], primary: Sequence[tuple[float, float]], share: float
) -> float:
    """ln of the factor by which the pods' draw can raise the observed ratio above the
    versions' (probability at most ``share``): the fail test's null is widened by it. 0 when
    the counts are not per pod, the canary has as many pods as the primary (the dispersion
    then widens the test), or the spread cannot be told yet (the unadjusted test)."""
    if not fewer_canary_pods(canary, primary):
        return 0.0
    s = spread(primary)
    if not math.isfinite(s):
        return 0.0
    k_c, k_p = len(canary), len(primary)
    t = t_quantile(1.0 - share, k_p - 1)
    return t * s * math.sqrt(1.0 / k_c + 1.0 / k_p) + 0.5 * s * s * max(1.0 / k_p - 1.0 / k_c, 0)


def log_harm_above(loglik: FloatArray, margin: float) -> float:
    """ln of the fail test's e-value against "no worse than the null times e^margin": the
    harm mixture from the grid point at or above it (rounding up only widens the null)."""
    index = min(stats.NULL_INDEX + math.ceil(margin / stats.GRID_STEP - 1e-9), stats.GRID.size - 2)
    alternatives = loglik[index + 1 :]
    prior = stats.HARM_LOG_PRIOR[: alternatives.size]
    return float(np.logaddexp.reduce(alternatives + prior) - loglik[index])


def ratio_margin(s: float, canary_pods: int, primary_pods: int, t: float) -> float:
    """ln of the factor by which k_c canary pods against k_p primary pods, spread s, can
    lower the observed ratio below the versions' at the bound ``t``: the draw of the pods'
    mean ln rates, and the gap between the mean of rates and the mean of ln rates."""
    k_c, k_p = canary_pods, primary_pods
    return t * s * math.sqrt(1.0 / k_c + 1.0 / k_p) + 0.5 * s * s * max(1.0 / k_c - 1.0 / k_p, 0)


def canary_pods_needed(drawn: PodBound, share: float, detect: float, floor: float) -> int | None:
    """The fewest canary pods with which a ``detect`` times worse version would still have to
    show under ``floor`` (a ratio a healthy canary can show), at this spread; None when no
    count up to MAX_PODS does."""
    if not math.isfinite(drawn.spread):
        return None
    t = t_quantile(1.0 - share, drawn.primary_pods - 1)
    for k in range(1, MAX_PODS + 1):
        if detect * math.exp(-ratio_margin(drawn.spread, k, drawn.primary_pods, t)) >= floor:
            return k
    return None


def t_cdf(value: float, df: int) -> float:
    """Student's t distribution function for an integer ``df`` >= 1 (the closed forms of
    Abramowitz and Stegun 26.7.3 and 26.7.4)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be at least 1, not {df}")
    theta = math.atan(abs(value) / math.sqrt(df))
    c2 = math.cos(theta) ** 2
    if df % 2 == 1:
        series, term = 0.0, math.cos(theta)
        for k in range(1, (df - 1) // 2 + 1):
            series += term
            term *= c2 * (2 * k) / (2 * k + 1)
        inside = 2.0 / math.pi * (theta + math.sin(theta) * series)
    else:
        series, term = 0.0, 1.0
        for k in range(1, df // 2 + 1):
            series += term
            term *= c2 * (2 * k - 1) / (2 * k)
        inside = math.sin(theta) * series
    return 0.5 + 0.5 * inside if value >= 0 else 0.5 - 0.5 * inside


def t_quantile(probability: float, df: int) -> float:
    """The ``probability`` quantile of Student's t with ``df`` degrees of freedom (bisection
    on t_cdf; ``probability`` above one half)."""
    low, high = 0.0, 1.0
    while t_cdf(high, df) < probability:
        high *= 2.0
    for _ in range(80):
        middle = 0.5 * (low + high)
        if t_cdf(middle, df) < probability:
            low = middle
        else:
            high = middle
    return high
