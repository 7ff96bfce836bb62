"""Promotion on positive evidence: the two routes by which a canary is shown not to be bad.

"Bad" is a canary failing at least T (``spec.analysis.detect``) times as often as its primary
*and* over its objective. Each route is an e-process for its own half of that null:

- against the primary: the failures' split given their total, alternatives below T against
  T (a supermartingale whenever the canary is at least T times worse, whatever the traffic
  shares do from look to look);
- against the objective: the canary's failures in its requests, alternatives below the
  objective's rate q0 against q0 (a supermartingale whenever the canary fails at q0 or more).

Under "bad" both nulls hold, so the *mean* of the routes' e-values is a supermartingale with
initial value 1 too, and by Ville's inequality it ever reaches 1/beta with probability at most
beta. That is never weaker than a union bound (either route alone at 2/beta) and is stronger
when both routes carry some evidence. docs/analysis.md states the assumptions.

This module also estimates how much more traffic a decision needs (for messages, and for
``canary validate`` / ``canary simulate`` warnings).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from canary.analysis import stats
from canary.analysis.stats import FloatArray

OK_SD = 0.5
"""Prior of the route against the primary: normal on ln(canary / primary), centred on 1x."""

SLO_CENTRE = -1.0
SLO_SD = 1.0
"""Prior of the route against the objective: normal on ln(rate / objective), centred on
about 0.37 of the objective."""


@dataclass(frozen=True)
class Route:
    """One way to show a canary is not bad: against its primary, or against the objective."""

    against: str  # "primary" or "objective"
    within: str  # what it is shown within, for the message
    exposure: float  # what the windows could have told about a DETECT_RATIO canary
    log_ok: float  # ln of the route's e-value against "bad"
    objective: float | None = None  # the objective's rate, for the route against it


def primary_route(
    loglik: FloatArray, null_ratio: float, detect: float, exposure: float
) -> tuple[Route, float]:
    """The route against the primary and the ratio T it tests (``detect`` rounded down to
    the grid, at least a grid step above the null 1 + margin)."""
    index = stats.tolerance_index(null_ratio, detect)
    tolerance = null_ratio * math.exp(float(stats.GRID[index]))
    centre = -math.log(null_ratio)  # ratio 1: a canary as good as its primary
    ok = stats.log_evidence_below(loglik, index, centre, OK_SD)
    return Route("primary", f"{_x(detect)} of the primary", exposure, ok), tolerance


def objective_route(failures: int, requests: int, rate: float, exposure: float) -> Route:
    """The route against the objective ``rate`` (a share of the canary's requests)."""
    rate_ll = stats.rate_loglik(failures, requests, rate)
    ok = stats.log_evidence_below(rate_ll, stats.NULL_INDEX, objective_centre(rate), SLO_SD)
    return Route("objective", f"the objective {100 * rate:g}%", exposure, ok, rate)


def objective_centre(rate: float) -> float:
    """Centre of the objective route's prior, in ln(rate / objective): a slow share of at
    most 1% is usually far under it (about 0.14 of it), an error objective less so."""
    return -2.0 if rate <= 0.01 else SLO_CENTRE


def log_promotion_evidence(routes: Sequence[Route]) -> float:
    """ln of the mean of the routes' e-values: an e-process for "bad" (both nulls at once)."""
    logs = [r.log_ok for r in routes]
    if not logs or all(v == -math.inf for v in logs):
        return -math.inf
    top = max(logs)
    return top + math.log(sum(math.exp(v - top) for v in logs) / len(logs))


@dataclass(frozen=True)
class Growth:
    """Expected growth of each route's ln e-value per canary request, for a canary that
    fails like its primary (a healthy one): what a promotion can be expected to need."""

    primary: float
    objective: float


def healthy_growth(
    primary_rate: float, canary_share: float, tolerance: float, objective: float | None
) -> Growth:
    """Per canary request at a traffic share ``canary_share`` (0-1), the primary failing at
    ``primary_rate``: the split route gains (failures per canary request) x KL(p(1) || p(T))
    and the objective route KL(q || q0). Both are point-alternative figures (the mixtures
    gain a little less): estimates, not bounds."""
    along = 0.0
    if 0.0 < primary_rate < 1.0 and 0.0 < canary_share < 1.0:
        odds = canary_share / (1.0 - canary_share)
        p_one = odds / (1.0 + odds)
        p_bad = odds * tolerance / (1.0 + odds * tolerance)
        failures = primary_rate / canary_share  # both sides' failures per canary request
        along = failures * stats.rate_divergence(p_one, p_bad)
    below = 0.0
    if objective is not None and 0.0 < objective < 1.0 and primary_rate < objective:
        below = stats.rate_divergence(max(primary_rate, 1e-12), objective)
    return Growth(along, below)


def requests_needed(routes: Sequence[Route], growth: Growth, beta: float) -> float:
    """About how many more canary requests a healthy canary needs before the mean of the
    routes reaches 1/beta: the quicker route alone, brought to len(routes)/beta (inf when
    neither can get there at this traffic)."""
    target = math.log(max(len(routes), 1) / beta)
    best = math.inf
    for route in routes:
        rate = growth.primary if route.against == "primary" else growth.objective
        if rate > 0.0:
            best = min(best, max(target - max(route.log_ok, -50.0), 0.0) / rate)
    return best


def describe_needs(requests: float, per_minute: float, tolerance: float) -> str:
    """'needs about 380 more canary requests to show it is not 2x worse; at this traffic
    about 9 minutes' (or why it cannot be said)."""
    if not math.isfinite(requests):
        return (
            f"cannot show the canary is not {_x(tolerance)} worse at this traffic (no failures "
            "on either side to compare, and no objective it could be shown within)"
        )
    text = f"needs about {_round(requests)} more canary requests to show it is not "
    text += f"{_x(tolerance)} worse or within its objective"
    if per_minute > 0:
        text += f"; at this traffic about {_minutes(requests / per_minute)}"
    return text


def _round(value: float) -> str:
    if value < 100:
        return f"{max(value, 1):.0f}"
    digits = 10 ** max(int(math.log10(value)) - 1, 0)
    return f"{round(value / digits) * digits:,.0f}"


def _minutes(value: float) -> str:
    if value < 1.5:
        return "1 minute"
    if value < 120:
        return f"{value:.0f} minutes"
    return f"{value / 60:.1f} hours"


def _x(value: float) -> str:
    return f"{value:.2g}x"
