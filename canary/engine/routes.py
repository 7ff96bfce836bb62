"""The traffic split each moment of a rollout calls for."""

from __future__ import annotations

from canary.engine.actions import Route
from canary.model.rollout import Rollout
from canary.model.strategy import StrategyKind

STABLE = Route()
"""All traffic on the primary: before, after and whenever a rollout is cancelled or fails."""

SWITCHED = Route(canary_weight=100)
"""Blue/green after its iterations: all traffic on the canary while the primary is updated."""


def analysis_route(rollout: Rollout, step_index: int) -> Route:
    """The split while the canary is judged at ``step_index``."""
    strategy = rollout.spec.strategy
    if strategy.kind is StrategyKind.AB_TEST and strategy.ab_test is not None:
        return Route(match=tuple(strategy.ab_test.match))
    if strategy.kind is StrategyKind.BLUE_GREEN:
        mirror = strategy.mirror.percentage if strategy.mirror is not None else None
        return Route(mirror_percentage=mirror)
    schedule = strategy.canary_or_default().schedule()
    return Route(canary_weight=schedule[min(step_index, len(schedule) - 1)])
