"""Which outside answers a tick needs, decided before it runs.

The shell calls `plan` after observing the workload, asks the webhooks it names, runs the
analysis if asked, and hands all answers to `step`. Both functions read the same status, so
`step` never waits for an answer `plan` did not ask for: a missing answer is a closed gate.
"""

from __future__ import annotations

from pydantic import Field

from canary.engine.observations import WorkloadState
from canary.model.base import CamelModel
from canary.model.gates import CONFIRM_GATE_OF_POINT, ApprovalPoint, GateType, Webhook
from canary.model.rollout import Rollout
from canary.model.status import IDLE_PHASES, Phase, RolloutStatus
from canary.model.strategy import StrategyKind

SUSPENDABLE_PHASES = frozenset({Phase.WAITING, Phase.PROGRESSING, Phase.PAUSED})
JUDGED_PHASES = frozenset({Phase.PROGRESSING, Phase.PAUSED})
SUSPENDED = "resume: spec.suspend is true"


class Needs(CamelModel):
    webhooks: list[Webhook] = Field(default_factory=list, description="Gating webhooks to call.")
    analyse: bool = Field(default=False, description="Run the rollout's checks this tick.")


def new_revision(status: RolloutStatus, workload: WorkloadState) -> str | None:
    """The target's revision when it is one that should be rolled out, else None."""
    revision = workload.target_revision
    if revision is None or revision == status.stable_revision:
        return None
    if status.phase is Phase.FAILED and revision == status.canary_revision:
        return None  # already judged and rolled back; only a retry runs it again
    return revision


def is_suspended(rollout: Rollout, status: RolloutStatus) -> bool:
    return rollout.spec.suspend and (
        status.phase in SUSPENDABLE_PHASES or status.phase in IDLE_PHASES
    )


def at_last_step(rollout: Rollout, status: RolloutStatus) -> bool:
    """True when the next passing tick completes the analysis."""
    strategy = rollout.spec.strategy
    if status.promote_requested:
        return True
    if strategy.kind is StrategyKind.AB_TEST and strategy.ab_test is not None:
        return status.iteration + 1 >= strategy.ab_test.iterations
    if strategy.kind is StrategyKind.BLUE_GREEN and strategy.blue_green is not None:
        return status.iteration + 1 >= strategy.blue_green.iterations
    return status.step_index >= len(strategy.canary_or_default().schedule()) - 1


def next_point(rollout: Rollout, status: RolloutStatus) -> ApprovalPoint | None:
    """The gate a passing tick must go through: promotion, more traffic, or none (an A/B or
    blue/green iteration)."""
    if at_last_step(rollout, status):
        return ApprovalPoint.PROMOTION
    if rollout.spec.strategy.kind is StrategyKind.CANARY:
        return ApprovalPoint.TRAFFIC_INCREASE
    return None


def plan(rollout: Rollout, status: RolloutStatus, workload: WorkloadState) -> Needs:
    gates = rollout.spec.gates
    if is_suspended(rollout, status):
        return Needs()
    if status.phase in IDLE_PHASES:
        if new_revision(status, workload) is None:
            return Needs()
        return Needs(webhooks=gates.of_type(GateType.CONFIRM_ROLLOUT))
    if status.phase is Phase.WAITING:
        return Needs(webhooks=gates.of_type(GateType.CONFIRM_ROLLOUT))
    if status.phase not in JUDGED_PHASES:
        return Needs()
    rollback = gates.of_type(GateType.ROLLBACK)
    if not workload.canary_ready:
        return Needs(webhooks=rollback)
    if not status.pre_rollout_passed:
        return Needs(webhooks=gates.of_type(GateType.PRE_ROLLOUT) + rollback)
    point = ApprovalPoint.PROMOTION if rollout.spec.skip_analysis else next_point(rollout, status)
    confirm = gates.of_type(CONFIRM_GATE_OF_POINT[point]) if point is not None else []
    if rollout.spec.skip_analysis:
        return Needs(webhooks=rollback + confirm)
    return Needs(webhooks=gates.of_type(GateType.ROLLOUT) + rollback + confirm, analyse=True)
