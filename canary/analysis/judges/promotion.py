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

import numpy as np

from canary.analysis import stats
from canary.analysis.stats import FloatArray

OK_SD = 0.5
"""Prior of the route against the primary: normal on ln(canary / primary), centred on 1x."""

SLO_CENTRE = -1.0
SLO_SD = 1.0
"""Prior of the route against an objective above 1%: normal on ln(rate / objective), centred
on about 0.37 of the objective (objective_centre: -2 for 1% or less)."""


@dataclass(frozen=True)
class Route:
    """One way to show a canary is not bad: against its primary, or against the objective."""

    against: str  # "primary" or "objective"
    within: str  # what it is shown within, for the message
    exposure: float  # what the windows could have told about a DETECT_RATIO canary
    log_ok: float  # ln of the route's e-value against "bad"
    objective: float | None = None  # the objective's rate, for the route against it


def primary_route(
    loglik: FloatArray,
    null_ratio: float,
    detect: float,
    exposure: float,
    pod_margin: float = 0.0,
    usual: float | None = None,
) -> tuple[Route, float]:
    """The route against the primary and the ratio T it tests (``detect`` rounded down to
    the grid, at least a grid step above the null 1 + margin). With a ``pod_margin`` (ln;
    canary.analysis.judges.pods) the observed ratio must be shown under T·e^-margin instead,
    rounded down to the grid however low that is (no evidence once it is off the grid).
    ``usual``: ``detect`` is the objective's ratio to the primary's usual rate (baseline),
    named so in the message."""
    index = stats.tolerance_index(null_ratio, detect)
    tolerance = null_ratio * math.exp(float(stats.GRID[index]))
    within = f"{_x(detect)} of the primary"
    if usual is not None:
        within += f" (its objective at the primary's usual {100 * usual:.2g}%)"
    if pod_margin > 0.0:
        index = _index_at_or_below(null_ratio, detect * math.exp(-pod_margin))
        if index < 1:
            return Route("primary", within, exposure, -math.inf), tolerance
    centre = -math.log(null_ratio)  # ratio 1: a canary as good as its primary
    ok = stats.log_evidence_below(loglik, index, centre, OK_SD)
    return Route("primary", within, exposure, ok), tolerance


def _index_at_or_below(null_ratio: float, ratio: float) -> int:
    """Grid index of the largest grid ratio at or below ``ratio`` (-1 when none is)."""
    if ratio <= 0.0:
        return -1
    steps = math.floor(math.log(ratio / null_ratio) / stats.GRID_STEP + 1e-9)
    return min(stats.NULL_INDEX + steps, stats.GRID.size - 1)


def objective_route(
    failures: int,
    requests: int,
    rate: float,
    exposure: float,
    pod_margin: float = 0.0,
    pod_dispersion: float = 1.0,
) -> Route:
    """The route against the objective ``rate`` (a share of the canary's requests); with a
    ``pod_margin`` the canary's pods must be shown under rate·e^-margin instead, and with a
    ``pod_dispersion`` its log-likelihoods are divided by it (canary.analysis.judges.dispersion)."""
    within = f"the objective {100 * rate:g}%"
    if not math.isfinite(pod_margin):
        return Route("objective", within, exposure, -math.inf, rate)
    rate_ll = stats.rate_loglik(failures, requests, rate * math.exp(-pod_margin)) / pod_dispersion
    ok = stats.log_evidence_below(rate_ll, stats.NULL_INDEX, objective_centre(rate), SLO_SD)
    return Route("objective", within, exposure, ok, rate)


def objective_centre(rate: float) -> float:
    """Centre of the objective route's prior, in ln(rate / objective): for objectives of 1%
    or less (the built-in 1% errors, the 1% slow share) about 0.14 of it, where a healthy
    service usually sits; for larger ones about 0.37."""
    return -2.0 if rate <= 0.01 else SLO_CENTRE


OUT_OF_REACH_FAILURES = 10
"""The objective route is judged against the comparison only once the primary has failed at
least this often (before that its rate says little)."""

IDLE_SHARE = 0.25
"""The objective route is dropped from the promotion evidence while a canary like its primary
would gain less than this share of what the comparison gains per request (at the primary's
rate so far; nothing at all once the primary fails at the objective's rate or more)."""

_FLOOR = -1e9  # ln e-values are stored finite (JSON); -inf is kept as this


@dataclass
class Combined:
    """The promotion evidence as it runs: C_t = C_{t-1} · Σ c_i E_i,t / Σ c_i E_i,t-1 over
    the routes, with weights c_i in {0, 1} fixed before each look (predictable). Whatever the
    weights, each factor has conditional expectation at most 1 when every route's null holds
    (each E_i is a supermartingale then), so C is a test supermartingale for "bad", C_0 = 1.
    With both weights 1 throughout it is the mean of the routes; dropping the objective route
    once it is out of reach (the primary itself fails at the objective's rate or more) spares
    the mean's halving, so the comparison alone carries C on from there."""

    log_c: float = 0.0
    before_primary: float = 0.0
    before_objective: float = 0.0
    moved: float = 0.0  # 1 while the routes' nulls move (the pods' bound): no running product

    def take(self, routes: Sequence[Route], *, only_primary: bool, moving: bool) -> float:
        """ln C after this look: the running product while the routes' nulls stay put; the
        mean of this look's values while they move (canary.analysis.judges.pods) and at the
        first look after (the routes are then e-processes over the whole analysis again, and
        their mean is one; a product across the change would mix two nulls)."""
        if moving or self.moved:
            self.moved = 1.0 if moving else 0.0
            return self.restart(routes)
        return self.add(routes, only_primary=only_primary)

    def add(self, routes: Sequence[Route], *, only_primary: bool) -> float:
        """Take in this look's route values; ln C after it."""
        by = {r.against: max(r.log_ok, _FLOOR) for r in routes}
        if len(by) == 1:
            self.log_c = next(iter(by.values()))
            return self.log_c if self.log_c > _FLOOR else -math.inf
        now_p, now_o = by["primary"], by["objective"]
        if only_primary:
            self.log_c += now_p - self.before_primary
        else:
            now = float(np.logaddexp(now_p, now_o))
            self.log_c += now - float(np.logaddexp(self.before_primary, self.before_objective))
        self.before_primary, self.before_objective = now_p, now_o
        return self.log_c

    def restart(self, routes: Sequence[Route]) -> float:
        """Start again from the mean of this look's route values (when the routes' nulls
        moved, e.g. with the pods' bound, the running product has no meaning across it); ln C."""
        by = {r.against: max(r.log_ok, _FLOOR) for r in routes}
        self.before_primary = by.get("primary", 0.0)
        self.before_objective = by.get("objective", 0.0)
        value = mean_of(routes)
        self.log_c = max(value, _FLOOR)
        return value

    def dump(self) -> list[float]:
        return [self.log_c, self.before_primary, self.before_objective, self.moved]


def mean_of(routes: Sequence[Route]) -> float:
    """ln of the mean of the routes' e-values at this look (-inf when none has any)."""
    values = [r.log_ok for r in routes if r.log_ok > -math.inf]
    if not values:
        return -math.inf
    return float(np.logaddexp.reduce(values)) - math.log(len(routes))


def objective_out_of_reach(
    failures: int, requests: int, share: float, tolerance: float, routes: Sequence[Route]
) -> bool:
    """Whether, from the primary's totals before this look (predictable), the objective route
    would gain a canary as good as its primary much less than the comparison does."""
    objective = next((r.objective for r in routes if r.objective is not None), None)
    if objective is None or failures < OUT_OF_REACH_FAILURES or not requests:
        return False
    growth = healthy_growth(failures / requests, share, tolerance, objective)
    return growth.objective < IDLE_SHARE * growth.primary


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
    if 0.0 < primary_rate < 1.0 and 0.0 < canary_share < 1.0 and tolerance > 1.0:
        odds = canary_share / (1.0 - canary_share)
        p_one = odds / (1.0 + odds)
        p_bad = odds * tolerance / (1.0 + odds * tolerance)
        failures = primary_rate / canary_share  # both sides' failures per canary request
        along = failures * stats.rate_divergence(p_one, p_bad)
    below = 0.0
    if objective is not None and 0.0 < objective < 1.0 and primary_rate < objective:
        below = stats.rate_divergence(max(primary_rate, 1e-12), objective)
    return Growth(along, below)


def requests_needed(log_promote: float, growth: Growth, beta: float) -> float:
    """About how many more canary requests a healthy canary needs before the promotion
    evidence (now ``log_promote``) reaches 1/beta, at the quicker route's gain (inf when
    neither can gain at this traffic)."""
    rate = max(growth.primary, growth.objective)
    if rate <= 0.0:
        return math.inf
    return max(math.log(1.0 / beta) - max(log_promote, -50.0), 0.0) / rate


def describe_needs(
    requests: float, per_minute: float, tolerance: float, objective: bool = True
) -> str:
    """'needs about 380 more canary requests to show it is not 2x worse; at this traffic
    about 9 minutes' (or why it cannot be said)."""
    if not math.isfinite(requests):
        return (
            f"cannot show the canary is not {_x(tolerance)} worse at this traffic (no failures "
            "on either side to compare, and no objective it could be shown within)"
        )
    text = f"needs about {rounded(requests)} more canary requests to show it is not "
    text += f"{_x(tolerance)} worse" + (" or within its objective" if objective else "")
    if per_minute > 0:
        text += f"; at this traffic about {in_minutes(requests / per_minute)}"
    return text


def rounded(value: float) -> str:
    """A request count as a message says it: two significant figures from 100 up."""
    if value < 100:
        return f"{max(value, 1):.0f}"
    digits = 10 ** max(int(math.log10(value)) - 1, 0)
    return f"{round(value / digits) * digits:,.0f}"


def in_minutes(value: float) -> str:
    """Minutes as a message says them ("1 minute", "9 minutes", "2.5 hours")."""
    if value < 1.5:
        return "1 minute"
    if value < 120:
        return f"{value:.0f} minutes"
    return f"{value / 60:.1f} hours"


def _x(value: float) -> str:
    return f"{value:.2g}x"
