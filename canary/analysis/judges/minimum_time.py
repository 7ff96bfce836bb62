"""The fastest any test could promote a healthy canary: two exact figures beside the judge's.

For a canary exactly like its primary (failing at the primary's rate ``p``) at a given
traffic and step schedule, and a test that must promote a canary ``T`` (``detect``) times
worse (and over its objective) with probability at most beta and roll back a healthy one with
probability at most alpha:

- **The fixed-sample minimum** (``fixed_minimum``): the fewest observations the best test
  that looks once needs. Against the primary: given each step's failures (both sides), the
  canary's share of them is binomial with ``pi(r) = s r / (s r + 1 - s)``; its log-odds is
  ``logit(s) + ln r`` at every share, so the canary's total failures S is sufficient for
  ``ln r`` and the test that promotes on small S (randomised at the boundary) is the most
  powerful at ratio 1 against T (Neyman-Pearson) and, conditioning on the totals, uniformly
  most powerful among unbiased tests whatever the primary's rate (Lehmann). Against the
  objective ``q0``: the canary's failures in its requests, Binomial(m, q0) against
  Binomial(m, p). Each route alone; the figure is the faster one, per check, and the slowest
  check (all must pass).
- **Wald's floor** (``wald_minutes``): a lower bound on the *expected* time of ANY sequential
  test with these error rates, however it looks and stops. For every bad world Q (any
  primary rate p', a canary failing at c' >= T p' and over the objective) the test's expected
  log-likelihood ratio of healthy against Q when it stops is at least d(a || beta) (a: its
  chance of promoting a healthy canary, d the binary divergence; Wald's inequality, with the
  outcomes other than promotion merged), and it grows by at most the largest rate any step's
  share gives: E[minutes] >= d(a || beta) / min over Q of the fastest rate.

A sequential test can go below the fixed-sample minimum (it stops early when the data are
clear, about half the fixed sample for an SPRT at these error rates) but never below Wald's
floor on average. Both figures assume the model the judge assumes: counts that are Poisson at
constant rates, one failure probability per version (docs/analysis.md); the judge sees counts
per window, which only loses information, so the floor holds for it too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from canary.analysis.checks import resolve_checks
from canary.analysis.judges.sequential import LATENCY_SLOW_SHARE
from canary.analysis.stats import GRID_STEP, FloatArray
from canary.engine.timing import look_interval
from canary.model.analysis import CheckKind, CheckSpec
from canary.model.rollout import Rollout
from canary.model.strategy import StrategyKind

_MAX_UNITS = 50_000_000
"""Beyond this many failures or requests a route is reported as out of reach (inf)."""


class MinimumTimeError(ValueError):
    """Inputs no test can be sized for (a share, rate or error level out of range)."""


@dataclass(frozen=True)
class Schedule:
    """The traffic a canary sees: live requests a minute (both versions), the canary's share
    at each step (0-1, the last is where it is promoted) and the least time at each step
    before the last (a look)."""

    requests_per_minute: float
    shares: tuple[float, ...]
    look_seconds: float

    def __post_init__(self) -> None:
        if self.requests_per_minute <= 0:
            raise MinimumTimeError("requests_per_minute must be above 0")
        if not self.shares or not all(0.0 < s < 1.0 for s in self.shares):
            raise MinimumTimeError(f"shares must be between 0 and 1 (not {self.shares})")
        if self.look_seconds < 0:
            raise MinimumTimeError("look_seconds must not be negative")

    @property
    def earlier(self) -> tuple[float, ...]:
        return self.shares[:-1]

    @property
    def final(self) -> float:
        return self.shares[-1]

    @property
    def earlier_minutes(self) -> float:
        return len(self.earlier) * self.look_seconds / 60.0


@dataclass(frozen=True)
class Check:
    """A count check as the judge sees it: the primary's failure share (a healthy canary's
    too), the objective's share if any, and whether it compares with the primary."""

    name: str
    rate: float
    objective: float | None = None
    compare: bool = True


@dataclass(frozen=True)
class Errors:
    """What the test must hold to: alpha (a healthy canary rolled back), beta (a canary
    ``tolerance`` times worse and over its objective promoted)."""

    alpha: float
    beta: float
    tolerance: float

    def __post_init__(self) -> None:
        if not (0.0 < self.alpha < 0.5 and 0.0 < self.beta < 0.5):
            raise MinimumTimeError("alpha and beta must be between 0 and 0.5")
        if self.tolerance <= 1.0:
            raise MinimumTimeError("the tolerance T must be above 1")


@dataclass(frozen=True)
class RouteMinimum:
    """One route's fixed-sample minimum: ``units`` at the last step (both sides' failures
    against the primary; canary requests against the objective) and the analysis minutes
    (the earlier steps' looks plus the last step's share of it)."""

    route: str
    units: float
    minutes: float


@dataclass(frozen=True)
class CheckMinimum:
    name: str
    routes: tuple[RouteMinimum, ...]
    wald_minutes: float

    @property
    def fixed(self) -> RouteMinimum | None:
        """The faster route (None: neither can promote a healthy canary at this traffic)."""
        reachable = [r for r in self.routes if math.isfinite(r.minutes)]
        return min(reachable, key=lambda r: r.minutes) if reachable else None

    @property
    def fixed_minutes(self) -> float:
        best = self.fixed
        return best.minutes if best is not None else math.inf


@dataclass(frozen=True)
class Minimum:
    """The figures of every count check; the rollout is as fast as its slowest check."""

    checks: tuple[CheckMinimum, ...]

    @property
    def fixed_minutes(self) -> float:
        return max((c.fixed_minutes for c in self.checks), default=0.0)

    @property
    def wald_minutes(self) -> float:
        return max((c.wald_minutes for c in self.checks), default=0.0)


# --- exact fixed-sample tests ------------------------------------------------------------


def binomial_pmf(n: int, p: float) -> FloatArray:
    """P(X = k) for k = 0..n, X ~ Binomial(n, p), in floating point from log space."""
    if n < 0:
        raise MinimumTimeError("a binomial needs n >= 0")
    if p <= 0.0 or p >= 1.0:
        out = np.zeros(n + 1)
        out[0 if p <= 0.0 else n] = 1.0
        return out
    k = np.arange(1, n + 1, dtype=np.float64)
    steps = np.log((n - k + 1) / k) + math.log(p / (1.0 - p))
    log_pmf = n * math.log1p(-p) + np.concatenate(([0.0], np.cumsum(steps)))
    pmf = np.exp(log_pmf - log_pmf.max())
    return np.asarray(pmf / pmf.sum(), dtype=np.float64)


def lower_tail_power(
    bad: FloatArray, healthy: FloatArray, beta: float, *, randomised: bool = True
) -> float:
    """The power (chance of promoting a healthy canary) of the best test that promotes on
    small values of a statistic with pmfs ``bad`` / ``healthy``, with size (chance of
    promoting a bad one) at most ``beta``. Neyman-Pearson: with a likelihood ratio monotone
    in the statistic, the best test promotes below a cut c and, randomised, at c with the
    chance that makes its size exactly beta."""
    cdf_bad = np.cumsum(bad)
    cut = int(np.searchsorted(cdf_bad, beta, side="right"))  # first k with P(S<=k) > beta
    below_bad = float(cdf_bad[cut - 1]) if cut > 0 else 0.0
    below_healthy = float(healthy[:cut].sum())
    if not randomised or cut >= bad.size or bad[cut] <= 0.0:
        return below_healthy
    chance = min(max((beta - below_bad) / float(bad[cut]), 0.0), 1.0)
    return below_healthy + chance * float(healthy[cut])


_DIRECT_LIMIT = 1_000_000
"""Beyond this product of sizes two pmfs are convolved by FFT (O(n log n)) rather than
directly; the FFT's rounding (about 1e-16 of the largest term) is far below any alpha."""


def convolve(first: FloatArray, second: FloatArray) -> FloatArray:
    """The pmf of the sum of two independent counts with these pmfs."""
    if first.size * second.size <= _DIRECT_LIMIT:
        return np.asarray(np.convolve(first, second), dtype=np.float64)
    size = first.size + second.size - 1
    product = np.fft.rfft(first, size) * np.fft.rfft(second, size)
    out = np.clip(np.fft.irfft(product, size), 0.0, None)
    return np.asarray(out / out.sum(), dtype=np.float64)


def _share_probability(share: float, ratio: float) -> float:
    """The canary's share of a window's failures at a traffic share and a failure ratio."""
    return share * ratio / (share * ratio + 1.0 - share)


def comparison_power(
    earlier: Sequence[tuple[int, float]],
    failures: int,
    share: float,
    errors: Errors,
    *,
    randomised: bool = True,
) -> float:
    """Power of the exact conditional test against the primary: ``earlier`` steps' (failures,
    share) and ``failures`` at the last step's ``share``; S is the canary's total."""
    bad: FloatArray = np.ones(1)
    healthy: FloatArray = np.ones(1)
    for count, at in [*earlier, (failures, share)]:
        bad = convolve(bad, binomial_pmf(count, _share_probability(at, errors.tolerance)))
        healthy = convolve(healthy, binomial_pmf(count, _share_probability(at, 1.0)))
    return lower_tail_power(bad, healthy, errors.beta, randomised=randomised)


def objective_power(
    requests: int, rate: float, objective: float, beta: float, *, randomised: bool = True
) -> float:
    """Power of the exact test against the objective with ``requests`` canary requests."""
    bad = binomial_pmf(requests, objective)
    healthy = binomial_pmf(requests, rate)
    return lower_tail_power(bad, healthy, beta, randomised=randomised)


def fewest(power: Callable[[int], float], target: float, start: int = 0) -> int:
    """The least n >= start with power(n) >= target, for a power that never falls as n grows
    (true of the randomised most powerful test: with one more observation it may ignore it).
    Raises OverflowError past _MAX_UNITS."""
    if power(start) >= target:
        return start
    low, high = start, max(start * 2, 8)
    while power(high) < target:
        low, high = high, high * 2
        if high > _MAX_UNITS:
            raise OverflowError("out of reach")
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if power(middle) >= target else (middle, high)
    return high


def fewest_scanning(power: Callable[[int], float], target: float, start: int = 0) -> int:
    """The least n >= start with power(n) >= target, scanning n one by one (for the
    non-randomised test, whose power saw-tooths as n grows)."""
    n = start
    while power(n) < target:
        n += 1
        if n > _MAX_UNITS:
            raise OverflowError("out of reach")
    return n


def comparison_minimum(check: Check, schedule: Schedule, errors: Errors) -> RouteMinimum:
    """The fixed-sample minimum against the primary: the earlier steps' expected failures
    (both sides, one look each) count, then the fewest failures at the last step."""
    per_minute = schedule.requests_per_minute * check.rate  # both sides, a healthy canary
    if per_minute <= 0.0:
        return RouteMinimum("primary", math.inf, math.inf)
    per_look = per_minute * schedule.look_seconds / 60.0
    earlier = [(round(per_look), share) for share in schedule.earlier]

    def power(n: int) -> float:
        return comparison_power(earlier, n, schedule.final, errors)

    try:
        needed = fewest(power, 1.0 - errors.alpha)
    except OverflowError:
        return RouteMinimum("primary", math.inf, math.inf)
    return RouteMinimum("primary", needed, schedule.earlier_minutes + needed / per_minute)


def objective_minimum(check: Check, schedule: Schedule, errors: Errors) -> RouteMinimum:
    """The fixed-sample minimum against the objective: the earlier steps' canary requests
    (one look each) count, then the fewest canary requests at the last step."""
    objective = check.objective
    if objective is None or not 0.0 < objective < 1.0 or check.rate >= objective:
        return RouteMinimum("objective", math.inf, math.inf)
    rpm, look = schedule.requests_per_minute, schedule.look_seconds / 60.0
    earlier = round(sum(rpm * share * look for share in schedule.earlier))

    def power(n: int) -> float:
        return objective_power(n, check.rate, objective, errors.beta)

    try:
        total = fewest(power, 1.0 - errors.alpha)
    except OverflowError:
        return RouteMinimum("objective", math.inf, math.inf)
    last = max(total - earlier, 0)
    minutes = schedule.earlier_minutes + last / (rpm * schedule.final)
    return RouteMinimum("objective", last, minutes)


# --- Wald's floor ------------------------------------------------------------------------


def bernoulli_divergence(a: float, b: float) -> float:
    """KL(Bernoulli(a) || Bernoulli(b)), with 0 ln 0 = 0 (inf when b excludes what a allows)."""
    total = 0.0
    for x, y in ((a, b), (1.0 - a, 1.0 - b)):
        if x > 0.0:
            total += math.inf if y <= 0.0 else x * math.log(x / y)
    return total


def decision_divergence(promoted: float, beta: float) -> float:
    """d(a || beta): the least expected log-likelihood ratio a test that promotes a healthy
    canary with chance ``promoted`` and a bad one with at most ``beta`` must gather (0 when
    a <= beta: such a test need not look at all)."""
    if promoted <= beta:
        return 0.0
    return bernoulli_divergence(promoted, beta)


def least_favourable_rate(check: Check, schedule: Schedule, errors: Errors) -> float:
    """Nats a minute of evidence for healthy against the hardest bad world, at the step share
    that gathers it fastest: min over bad (p', c') of max over shares of
    rpm [s KL(p || c') + (1 - s) KL(p || p')]. A bad world fails the canary at c' >= T p'
    (when the check compares) and c' >= q0 (when it has an objective)."""
    p = check.rate
    rpm = schedule.requests_per_minute
    ends = (min(schedule.shares), max(schedule.shares))
    if not check.compare:
        if check.objective is None:
            return 0.0
        canary = bernoulli_divergence(p, max(check.objective, p))
        return rpm * ends[1] * canary
    if p <= 0.0 and check.objective is None:
        return 0.0  # a bad primary failing ever less tells a canary failing never nothing
    grid = np.geomspace(1e-9, 1.0 - 1e-9, 4001)
    best = _lowest_rate(check, errors, rpm, ends, grid)
    for _ in range(3):  # refine around the best point
        at = int(np.argmin(np.abs(grid - best[1])))
        lo, hi = grid[max(at - 2, 0)], grid[min(at + 2, grid.size - 1)]
        grid = np.linspace(lo, hi, 401)
        best = min(best, _lowest_rate(check, errors, rpm, ends, grid))
    return best[0]


def _lowest_rate(
    check: Check,
    errors: Errors,
    rpm: float,
    ends: tuple[float, float],
    primaries: FloatArray,
) -> tuple[float, float]:
    """(the lowest fastest-share rate over the bad worlds with these primary rates, its p')."""
    best = (math.inf, float(primaries[0]))
    p = check.rate
    for primary in primaries.tolist():
        least = errors.tolerance * primary
        if check.objective is not None:
            least = max(least, check.objective)
        if least >= 1.0:
            continue
        canary = bernoulli_divergence(p, max(least, p))
        side = bernoulli_divergence(p, primary)
        rate = rpm * max(s * canary + (1.0 - s) * side for s in ends)
        if rate < best[0]:
            best = (rate, primary)
    return best


def wald_minutes(
    check: Check, schedule: Schedule, errors: Errors, promoted: float | None = None
) -> float:
    """Wald's floor on the expected analysis minutes of any test that promotes a healthy
    canary with chance ``promoted`` (default 1 - alpha) and a bad one with at most beta."""
    share = 1.0 - errors.alpha if promoted is None else promoted
    needed = decision_divergence(share, errors.beta)
    if needed == 0.0:
        return 0.0
    rate = least_favourable_rate(check, schedule, errors)
    return needed / rate if rate > 0.0 else math.inf


# --- putting it together -----------------------------------------------------------------


def check_minimum(
    check: Check, schedule: Schedule, errors: Errors, promoted: float | None = None
) -> CheckMinimum:
    """Both figures for one check; ``promoted`` as in wald_minutes."""
    routes: list[RouteMinimum] = []
    if check.compare:
        routes.append(comparison_minimum(check, schedule, errors))
    if check.objective is not None:
        routes.append(objective_minimum(check, schedule, errors))
    floor = wald_minutes(check, schedule, errors, promoted)
    return CheckMinimum(check.name, tuple(routes), floor)


def minimum(
    checks: Sequence[Check], schedule: Schedule, errors: Errors, promoted: float | None = None
) -> Minimum:
    return Minimum(tuple(check_minimum(c, schedule, errors, promoted) for c in checks))


SlowShare = Callable[[float], float]
"""The share of the primary's requests slower than a latency objective (ms)."""


def rollout_checks(rollout: Rollout, error_rate: float, slow_share: SlowShare) -> list[Check]:
    """The count checks of ``rollout`` as the sequential judge tests them, the primary
    failing ``error_rate`` (a share, 0-1) of its requests."""
    found: list[Check] = []
    for spec in resolve_checks(rollout):
        compare = spec.compare_to_primary is not False
        if spec.kind is CheckKind.ERROR_RATE:
            objective = _error_objective(spec)
            found.append(Check(spec.name, error_rate, objective, compare))
        elif spec.kind is CheckKind.LATENCY and spec.max is not None:
            slow = slow_share(spec.max)
            found.append(Check(spec.name, slow, LATENCY_SLOW_SHARE, compare))
    return found


def _error_objective(spec: CheckSpec) -> float | None:
    if spec.max is None or not 0.0 < spec.max < 100.0:
        return None
    return spec.max / 100.0


def rollout_schedule(rollout: Rollout, requests_per_minute: float) -> Schedule:
    """The canary's shares through ``rollout``'s steps and its look interval."""
    strategy = rollout.spec.strategy
    if strategy.kind is StrategyKind.CANARY:
        weights = strategy.canary_or_default().schedule()
    else:
        weights = [50]  # A/B and blue/green: a rough stand-in, as canary validate uses
    shares = tuple(w / 100.0 for w in weights if 0 < w < 100) or (0.5,)
    look = look_interval(rollout, resolve_checks(rollout))
    return Schedule(requests_per_minute, shares, look)


def rollout_errors(rollout: Rollout) -> Errors:
    """spec.analysis' alpha, beta and detect (at least a grid step above 1, as the judge)."""
    analysis = rollout.spec.analysis
    tolerance = max(analysis.detect, math.exp(GRID_STEP))
    return Errors(analysis.alpha, analysis.beta, tolerance)


def for_rollout(
    rollout: Rollout,
    requests_per_minute: float,
    error_rate: float,
    slow_share: SlowShare,
    promoted: float | None = None,
) -> Minimum:
    """Both figures for a healthy canary of ``rollout`` at this traffic, in analysis minutes
    (from the canary's first look to the promotion decision; readiness and the promotion
    itself are not in them). ``promoted`` as in wald_minutes."""
    checks = rollout_checks(rollout, error_rate, slow_share)
    schedule = rollout_schedule(rollout, requests_per_minute)
    return minimum(checks, schedule, rollout_errors(rollout), promoted)
