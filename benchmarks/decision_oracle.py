"""The oracle SPRT of issue #7: the canary requests a test that knows the true ratio needs.

Given m failures of both sides in a window, the canary's share of them is binomial with
p(r) = s*r / (s*r + 1 - s) (s: the canary's share of the requests, r: its failure rate over
the primary's). The oracle is the one-sided SPRT of r0 (the null the sequential judge tests)
against the true r: each failure adds ln(p(r)/p(r0)) to the log likelihood ratio when it is
the canary's, ln((1-p(r))/(1-p(r0))) when it is the primary's, and the test stops when the sum
reaches ln(1/alpha). A canary request brings q_c + q_p * (1 - s) / s failures of both sides,
so in canary requests (Wald's identity) N = E[failures to stop] / (q_c + q_p * (1 - s) / s).

E[failures to stop] is simulated (``RUNS`` runs, fixed seed, so deterministic), overshoot
included: at a 5% share one canary failure raises the likelihood ratio by at most 1/0.05 = 20,
less whenever p(r) < 1, so the oracle needs at least two. Runs that have not stopped after
``MAX_FAILURES`` failures count as stopping there (a lower bound; none of the benchmark's cells
comes near it). Wald's approximation ln(1/alpha) / KL(p(r) || p(r0)) failures, which ignores
the overshoot (and the beta term, as in docs/analysis.md), is kept as ``Oracle.wald``. For
latency the failure rates are the shares of requests slower than the latency objective under
the simulator's log-normal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np

from canary.analysis.checks import resolve_checks
from canary.model.analysis import CheckKind
from canary.model.rollout import Rollout
from canary.sim.scenario import Scenario

ALPHA = 1 / 20
"""The sequential judge's evidence threshold is 20."""
RUNS = 4_000
"""Simulated runs of the oracle SPRT per cell."""
BATCH = 256
"""Failures drawn per run and step of the simulation."""
MAX_FAILURES = 2_000_000
"""Runs not stopped after this many failures count as stopping there."""
SEED = 20_240_607


def slow_share(median_ms: float, sigma: float, objective_ms: float) -> float:
    """Share of log-normal latencies (median, sigma of the log) above ``objective_ms``."""
    z = (math.log(objective_ms) - math.log(median_ms)) / sigma
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def bernoulli_kl(p: float, q: float) -> float:
    """KL(Bernoulli(p) || Bernoulli(q))."""
    total = 0.0
    if p > 0:
        total += p * math.log(p / q)
    if p < 1:
        total += (1 - p) * math.log((1 - p) / (1 - q))
    return total


def _split(share: float, ratio: float) -> float:
    """The canary's share of the failures of both sides."""
    return share * ratio / (share * ratio + 1 - share)


def _failures_per_request(primary_rate: float, canary_rate: float, share: float) -> float:
    """Failures of both sides that come with one canary request."""
    return canary_rate + primary_rate * (1 - share) / share


def wald_requests(
    primary_rate: float, canary_rate: float, share: float, null_ratio: float, alpha: float = ALPHA
) -> float:
    """Wald's approximation (no overshoot) of the oracle SPRT's mean canary requests."""
    if primary_rate <= 0 or canary_rate <= primary_rate * null_ratio:
        return math.inf
    ratio = canary_rate / primary_rate
    kl = bernoulli_kl(_split(share, ratio), _split(share, null_ratio))
    per_request = _failures_per_request(primary_rate, canary_rate, share) * kl
    return math.log(1 / alpha) / per_request


@cache
def sprt_failures(p_true: float, p_null: float, alpha: float = ALPHA) -> float:
    """Mean failures until the one-sided SPRT of p_null against p_true, each failure the
    canary's with probability p_true, reaches ln(1/alpha); simulated, overshoot included."""
    up = math.log(p_true / p_null)
    down = math.log((1 - p_true) / (1 - p_null))
    bound = math.log(1 / alpha)
    rng = np.random.default_rng(SEED)
    llr = np.zeros(RUNS)
    stopped = np.zeros(RUNS)
    active = np.arange(RUNS)
    used = 0
    while active.size and used < MAX_FAILURES:
        steps = np.where(rng.random((active.size, BATCH)) < p_true, up, down)
        path = llr[active, None] + np.cumsum(steps, axis=1)
        hit = path >= bound
        done = hit.any(axis=1)
        stopped[active[done]] = used + hit[done].argmax(axis=1) + 1
        llr[active] = path[:, -1]
        active = active[~done]
        used += BATCH
    stopped[active] = used
    return float(stopped.mean())


def oracle_requests(
    primary_rate: float, canary_rate: float, share: float, null_ratio: float, alpha: float = ALPHA
) -> float:
    """Mean canary requests for the oracle SPRT (simulated, overshoot included); infinite when
    the canary is within the null."""
    if primary_rate <= 0 or canary_rate <= primary_rate * null_ratio:
        return math.inf
    p_true = _split(share, canary_rate / primary_rate)
    failures = sprt_failures(p_true, _split(share, null_ratio), alpha)
    return failures / _failures_per_request(primary_rate, canary_rate, share)


def check_nulls(rollout: Rollout) -> tuple[float, float, float]:
    """(error-rate null 1 + margin, latency null 1 + margin, latency objective ms) of the
    rollout's checks; a check without a margin tests r0 = 1."""
    error_null, latency_null, objective = 1.0, 1.0, 500.0
    for check in resolve_checks(rollout):
        margin = check.margin or 0.0
        if check.kind is CheckKind.ERROR_RATE:
            error_null = 1.0 + margin
        elif check.kind is CheckKind.LATENCY:
            latency_null = 1.0 + margin
            objective = check.max or objective
    return error_null, latency_null, objective


def failure_rates(scenario: Scenario, latency: bool, objective_ms: float) -> tuple[float, float]:
    """(primary, canary) failure rates the oracle sees: errors, or requests over the objective."""
    if latency:
        median, sigma = scenario.latency_median_ms, scenario.latency_sigma
        return (
            slow_share(median, sigma, objective_ms),
            slow_share(median * scenario.canary_latency_multiplier, sigma, objective_ms),
        )
    return scenario.primary_error_percent / 100.0, scenario.canary_error_percent / 100.0


@dataclass(frozen=True, slots=True)
class Oracle:
    """A cell's oracle figure and what explains a judge's distance from it."""

    requests: float  # the oracle SPRT's mean canary requests (inf: the canary is within the null)
    wald: float  # Wald's approximation of ``requests``, overshoot ignored
    ratio: float  # the true failure-rate ratio, canary over primary
    first_window: float  # canary requests in the first window at the first weight
    canary_rate: float  # the canary's failure rate (errors, or requests over the objective)

    @property
    def bad(self) -> float:
        """The bad requests the canary serves while the oracle decides: its blast radius."""
        return self.requests * self.canary_rate


def cell_oracle(
    rollout: Rollout, scenario: Scenario, latency: bool, share: float, look_minutes: float
) -> Oracle:
    """The oracle for a cell, at canary share ``share``; the judge looks every
    ``look_minutes``."""
    error_null, latency_null, objective = check_nulls(rollout)
    primary, canary = failure_rates(scenario, latency, objective)
    null = latency_null if latency else error_null
    return Oracle(
        requests=oracle_requests(primary, canary, share, null),
        wald=wald_requests(primary, canary, share, null),
        ratio=canary / primary if primary > 0 else math.inf,
        first_window=scenario.requests_per_minute * share * look_minutes,
        canary_rate=canary,
    )
