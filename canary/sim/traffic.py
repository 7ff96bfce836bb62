"""Synthetic traffic for one window, drawn from counts' distributions (never request by request).

Requests are Poisson, errors binomial. Latency is log-normal: the number of requests slower than
an objective is binomial, and the quantile shown (e.g. p99) is the matching order statistic of
the window's latencies, drawn from a Beta distribution *given* that slow count, so the two
always agree (a p99 above the objective comes with at least 1% slow requests).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from canary.engine.actions import Route
from canary.sim.scenario import Scenario

AB_MATCH_SHARE = 0.10
"""Share of live traffic that matches an A/B test's rules."""

LOAD_TEST_SHARE = 0.05
"""Blue/green: synthetic load a load-test webhook sends the canary, as a share of live traffic."""

_SQRT2 = math.sqrt(2.0)
_INV_CDF = NormalDist().inv_cdf
_TINY = 1e-15


@dataclass(frozen=True, slots=True)
class SideModel:
    """How one version answers: an error probability and a log-normal latency."""

    error_probability: float
    log_median: float
    sigma: float

    @classmethod
    def of(cls, error_percent: float, median_ms: float, sigma: float) -> SideModel:
        return cls(error_percent / 100.0, math.log(median_ms), sigma)

    def share_within(self, ms: float) -> float:
        """P(latency <= ms)."""
        return 0.5 * math.erfc(-(math.log(ms) - self.log_median) / (self.sigma * _SQRT2))

    def latency_at(self, u: float) -> float:
        """The latency (ms) at cumulative probability ``u``."""
        u = min(max(u, _TINY), 1.0 - _TINY)
        return math.exp(self.log_median + self.sigma * _INV_CDF(u))


def side_models(scenario: Scenario) -> tuple[SideModel, SideModel]:
    """(the stable version, the new version) of ``scenario``."""
    stable = SideModel.of(
        scenario.primary_error_percent, scenario.latency_median_ms, scenario.latency_sigma
    )
    new = SideModel.of(
        scenario.canary_error_percent, scenario.canary_latency_median_ms, scenario.latency_sigma
    )
    return stable, new


@dataclass(slots=True)
class Counts:
    """What one side served in a window."""

    requests: int = 0
    errors: int = 0
    pods: tuple[tuple[int, int, int], ...] = ()  # (pod, requests, errors) of pods that served


def canary_load(route: Route, *, blue_green: bool, canary_ready: bool) -> tuple[float, float]:
    """(share of live traffic routed to the canary, extra canary load as a share of live
    traffic: mirrored copies and, for blue/green, a load test while it takes no live traffic)."""
    if route.canary_weight > 0:
        live = route.canary_weight / 100.0
    elif route.match:
        live = AB_MATCH_SHARE
    else:
        live = 0.0
    extra = (route.mirror_percentage or 0.0) / 100.0 * (1.0 - live)
    if blue_green and canary_ready and live == 0.0:
        extra += LOAD_TEST_SHARE
    return live, extra


def serve(
    rng: np.random.Generator,
    model: SideModel,
    expected: float,
    *,
    up: bool,
    error_factor: float = 1.0,
) -> Counts:
    """Poisson requests and binomial errors (the model's rate times ``error_factor``: bursts,
    cycles, pods); a side that is not up fails every request."""
    requests = int(rng.poisson(expected)) if expected > 0 else 0
    if requests == 0:
        return Counts()
    probability = min(model.error_probability * error_factor, 1.0)
    errors = int(rng.binomial(requests, probability)) if up else requests
    return Counts(requests, errors)


def serve_pods(
    rng: np.random.Generator,
    model: SideModel,
    expected: float,
    pods: tuple[float, ...],
    *,
    up: bool,
    error_factor: float = 1.0,
) -> Counts:
    """As serve, the requests split evenly at random between ``pods``, each failing at the
    model's rate times ``error_factor`` times its own factor; the pods' counts kept."""
    requests = int(rng.poisson(expected)) if expected > 0 else 0
    if requests == 0:
        return Counts()
    shares = rng.multinomial(requests, [1.0 / len(pods)] * len(pods))
    served: list[tuple[int, int, int]] = []
    for pod, (n, factor) in enumerate(zip(shares, pods, strict=True)):
        if n > 0:
            rate = min(model.error_probability * error_factor * factor, 1.0)
            served.append((pod, int(n), int(rng.binomial(n, rate)) if up else int(n)))
    return Counts(requests, sum(x for _, _, x in served), tuple(served))


def draw_latency(
    rng: np.random.Generator,
    model: SideModel,
    requests: int,
    objective_ms: float,
    quantile: float = 0.99,
) -> tuple[int, float | None]:
    """(requests slower than ``objective_ms``, the window's ``quantile`` in ms) for
    ``requests`` requests; no quantile without requests."""
    if requests <= 0:
        return 0, None
    within = model.share_within(objective_ms)
    slow = int(rng.binomial(requests, 1.0 - within))
    fast = requests - slow
    rank = max(1, math.ceil(quantile * requests - 1e-9))
    if rank <= fast:
        u = within * float(rng.beta(rank, fast - rank + 1))
    else:
        above = rank - fast
        u = within + (1.0 - within) * float(rng.beta(above, slow - above + 1))
    return slow, model.latency_at(u)
