"""The figures a judge's promotion time is read against, per cell of the decision benchmarks:

- the exact fixed-sample minimum and Wald's floor for a healthy canary
  (canary.analysis.judges.minimum_time), in minutes from the new revision as the simulator
  counts them (its readiness and promotion added);
- Flagger's fixed schedule: readiness, one ``interval`` per weight, then the promotion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from canary.analysis.judges import minimum_time
from canary.model.rollout import Rollout
from canary.sim.scenario import Scenario
from canary.sim.traffic import side_models


@dataclass(frozen=True)
class Floors:
    """Minutes from the new revision; inf where no test can promote at this traffic."""

    fixed: float  # the best fixed-sample test, its faster route per check, the slowest check
    wald: float  # Wald's floor on any sequential test's mean, promoting 1 - alpha of healthy
    overhead: float  # readiness and promotion, in both figures
    earlier: float  # the steps before the last, one look each, in both figures

    @property
    def fixed_last_step(self) -> float:
        """The exact minimum's minutes at the last step: what inconclusiveDeadline limits."""
        return self.fixed - self.overhead - self.earlier


def _calm(scenario: Scenario) -> Scenario:
    return Scenario(
        name="calm",
        requests_per_minute=scenario.requests_per_minute,
        primary_error_percent=scenario.primary_error_percent,
        latency_median_ms=scenario.latency_median_ms,
        latency_sigma=scenario.latency_sigma,
        canary_ready_seconds=scenario.canary_ready_seconds,
        promotion_seconds=scenario.promotion_seconds,
    )


def _figures(rollout: Rollout, scenario: Scenario, promoted: float | None) -> minimum_time.Minimum:
    calm = _calm(scenario)  # the figures assume constant rates (the judge's model)
    stable, _ = side_models(calm)
    return minimum_time.for_rollout(
        rollout,
        calm.requests_per_minute,
        calm.primary_error_percent / 100.0,
        lambda ms: 1.0 - stable.share_within(ms),
        promoted,
    )


def floors(rollout: Rollout, scenario: Scenario) -> Floors:
    """The exact minimum and Wald's floor for a healthy canary in ``scenario``'s traffic."""
    overhead = (scenario.canary_ready_seconds + scenario.promotion_seconds) / 60.0
    figures = _figures(rollout, scenario, None)
    earlier = _earlier(rollout)
    fixed, wald = figures.fixed_minutes + overhead, figures.wald_minutes + overhead
    return Floors(fixed, wald, overhead, earlier)


def _earlier(rollout: Rollout) -> float:
    return minimum_time.rollout_schedule(rollout, 1.0).earlier_minutes


def wald_analysis_minutes(rollout: Rollout, scenario: Scenario, promoted: float) -> float:
    """Wald's floor on the mean analysis minutes (canary ready to decision) of a test that
    promotes ``promoted`` of healthy canaries: what the judge's mean is checked against."""
    return _figures(rollout, scenario, promoted).wald_minutes


def flagger_schedule(rollout: Rollout, scenario: Scenario) -> float:
    """Minutes Flagger's rules take to promote a canary that passes every window."""
    strategy = rollout.spec.strategy.canary
    steps = len(strategy.schedule()) if strategy is not None else 1
    seconds = scenario.canary_ready_seconds + steps * rollout.spec.analysis.interval
    return (seconds + scenario.promotion_seconds) / 60.0


def minutes(value: float) -> str:
    return f"{value:.1f}" if math.isfinite(value) else "never"


def rpm_for_deadline(rollout: Rollout, scenario: Scenario, deadline_minutes: float) -> float:
    """The least traffic (requests a minute) at which the exact fixed-sample minimum for a
    healthy canary fits within ``deadline_minutes`` at the last step (inconclusiveDeadline
    runs from the last step's first look; inf: none up to 10^7 a minute)."""
    earlier = _earlier(rollout)

    def fits(rpm: float) -> bool:
        moved = scenario.model_copy(update={"requests_per_minute": rpm})
        return _figures(rollout, moved, None).fixed_minutes - earlier <= deadline_minutes

    low, high = 1.0, 1e7
    if not fits(high):
        return math.inf
    if fits(low):
        return low
    for _ in range(40):
        middle = math.sqrt(low * high)
        low, high = (low, middle) if fits(middle) else (middle, high)
        if high / low < 1.01:
            break
    return high
