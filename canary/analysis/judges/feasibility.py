"""Can this Rollout's traffic reach a decision before its deadline? Estimates for
`canary validate --rpm` and `canary simulate`, from the traffic a person expects.

For the sequential judge: the minutes a canary as good as its primary needs at the last step
before its promotion evidence reaches 1/beta (canary.analysis.judges.promotion), against
``inconclusiveDeadline``. For the threshold and mann-whitney judges: whether a window at the
first weight holds ``minRequests`` canary requests at all (otherwise the judge never sees the
canary and every rollout ends at the deadline). Estimates, not guarantees: they use the
expected traffic and point alternatives (the judge's mixtures need somewhat more).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from canary.analysis.checks import CheckResolutionError, resolve_checks
from canary.analysis.judges import minimum_time, promotion
from canary.analysis.judges.sequential import LATENCY_SLOW_SHARE, STEP_SECONDS
from canary.analysis.stats import GRID_STEP
from canary.engine.timing import judge_of, look_interval
from canary.model.analysis import CheckKind, CheckSpec, JudgeName
from canary.model.loader import Document
from canary.model.rollout import Rollout
from canary.model.strategy import StrategyKind

MIXTURE_COST = 1.3
"""The judge's mixtures gain about this much more slowly than the point alternative (seen in
the simulator); the estimate is multiplied by it."""


def promotion_minutes(
    rollout: Rollout, check: CheckSpec, rpm: float, primary_error_percent: float
) -> float:
    """About how many minutes a healthy canary spends at the last weight before the
    sequential judge can promote it on ``check`` (inf: never at this traffic)."""
    analysis = rollout.spec.analysis
    weights = _weights(rollout)
    final = weights[-1] / 100.0
    null_ratio = 1.0 + (check.margin or 0.0)
    tolerance = max(analysis.detect, null_ratio * math.exp(GRID_STEP))
    objective: float | None
    if check.kind is CheckKind.LATENCY:
        rate, objective = 0.0, LATENCY_SLOW_SHARE  # a primary with few slow requests
    else:
        rate = primary_error_percent / 100.0
        objective = check.max / 100.0 if check.max is not None and check.max < 100 else None
    growth = promotion.healthy_growth(rate, final, tolerance, objective)
    # both routes in the mean halve the evidence, unless the objective route is idle
    idle = growth.objective < promotion.IDLE_SHARE * growth.primary
    routes = 1 + (objective is not None and check.compare_to_primary is not False and not idle)
    need = math.log(routes / analysis.beta) * MIXTURE_COST
    # the steps before the last: about a quiet hold each, adding to the objective route
    early = sum(rpm * w / 100.0 * max(STEP_SECONDS, 20.0) / 60.0 for w in weights[:-1])
    per_minute_final = rpm * final
    best = math.inf
    if growth.primary > 0 and check.compare_to_primary is not False:
        best = min(best, need / (growth.primary * per_minute_final))
    if growth.objective > 0:
        left = max(need - growth.objective * early, 0.0)
        best = min(best, left / (growth.objective * per_minute_final))
    return best


def traffic_warnings(rollout: Rollout, rpm: float, primary_error_percent: float) -> list[str]:
    """Plain-words warnings for ``rollout`` at ``rpm`` requests a minute, the primary failing
    ``primary_error_percent`` percent of them."""
    analysis = rollout.spec.analysis
    checks = [
        c for c in resolve_checks(rollout) if c.kind in (CheckKind.ERROR_RATE, CheckKind.LATENCY)
    ]
    warnings: list[str] = []
    floors = _exact_minimums(rollout, rpm, primary_error_percent)
    first = _weights(rollout)[0] / 100.0
    traffic = f"at {rpm:g} requests a minute and {primary_error_percent:g}% errors"
    for check in checks:
        judge = judge_of(rollout, check, None)
        if judge is JudgeName.SEQUENTIAL:
            minutes = promotion_minutes(rollout, check, rpm, primary_error_percent)
            deadline = analysis.inconclusive_deadline / 60.0
            if minutes > deadline:
                needed = "never" if math.isinf(minutes) else f"about {minutes:.0f} minutes"
                fix = "raise the deadline"
                if math.isfinite(minutes):
                    fix += f" (inconclusiveDeadline: {math.ceil(minutes / 5) * 5}m)"
                warnings.append(
                    f"check '{check.name}': {traffic} a healthy canary needs {needed} at the "
                    f"last weight to be shown not {analysis.detect:g}x worse (or within its "
                    f"objective), more than inconclusiveDeadline ({deadline:g}m): it would end "
                    f"undecided ({analysis.on_undecided.value}); {fix}, the last weight or "
                    f"detect, or expect more traffic{_floor_note(floors.get(check.name))}"
                )
            continue
        seconds = look_interval(rollout, checks, None)
        per_window = rpm * first * seconds / 60.0
        if per_window < analysis.min_requests:
            warnings.append(
                f"check '{check.name}' ({judge.value}): {traffic} a window at the first weight "
                f"holds about {per_window:.0f} canary requests, fewer than minRequests "
                f"({analysis.min_requests}): the judge cannot see the canary there and every "
                "rollout would end at inconclusiveDeadline; lower minRequests or raise the "
                "first weight"
            )
    return warnings


def _exact_minimums(
    rollout: Rollout, rpm: float, primary_error_percent: float
) -> dict[str, minimum_time.CheckMinimum]:
    """The exact fixed-sample minimum and Wald's floor of each count check at this traffic
    (docs/minimum-time.md), by check name; a latency check's primary is taken to have no
    slow requests, as promotion_minutes does. Empty when they cannot be computed."""
    try:
        found = minimum_time.for_rollout(
            rollout, rpm, primary_error_percent / 100.0, lambda _ms: 0.0
        )
    except minimum_time.MinimumTimeError:
        return {}
    return {c.name: c for c in found.checks}


def _floor_note(floor: minimum_time.CheckMinimum | None) -> str:
    """What no test could beat, for the warning: the best test that looks once, in analysis
    minutes (from the canary's first look), and Wald's floor on any test's average."""
    if floor is None:
        return ""
    if not math.isfinite(floor.fixed_minutes):
        return " (no test holding alpha and beta could promote it at this traffic)"
    return (
        f" (for comparison, the best test holding alpha and beta that looks once needs "
        f"{floor.fixed_minutes:.1f} analysis minutes at this traffic, and no test fewer than "
        f"{floor.wald_minutes:.1f} on average: docs/minimum-time.md)"
    )


def document_warnings(
    documents: Sequence[Document], rpm: float, primary_error_percent: float
) -> list[str]:
    """traffic_warnings for every Rollout among ``documents`` (policies a Rollout names must
    be in the cluster, not the file: a Rollout whose checks cannot be resolved here gets a
    warning saying so instead)."""
    warnings: list[str] = []
    for document in documents:
        if isinstance(document.resource, Rollout):
            name = document.resource.metadata.name
            try:
                found = traffic_warnings(document.resource, rpm, primary_error_percent)
            except CheckResolutionError as exc:
                found = [f"cannot estimate the traffic it needs: {exc}"]
            warnings += [f"Rollout/{name}: {w}" for w in found]
    return warnings


def _weights(rollout: Rollout) -> list[int]:
    strategy = rollout.spec.strategy
    if strategy.kind is StrategyKind.CANARY:
        return strategy.canary_or_default().schedule()
    return [50]  # A/B and blue/green: judged at their share; a rough stand-in
