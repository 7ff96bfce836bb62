"""The end of a rollout: promotion to the primary, or rollback to it."""

from __future__ import annotations

from canary.engine.actions import (
    CallWebhook,
    PromoteCanary,
    RestorePrimary,
    Route,
    ScaleCanaryDown,
)
from canary.engine.clock import seconds_since
from canary.engine.routes import STABLE, SWITCHED
from canary.engine.tick import Tick
from canary.model.gates import GateType
from canary.model.notification import NotificationEvent
from canary.model.status import Phase
from canary.model.strategy import StrategyKind


def begin_promotion(tick: Tick, why: str) -> None:
    """Copy the canary into the primary; blue/green first switches all traffic to the canary."""
    revision = tick.status.canary_revision or ""
    tick.status.waiting_for = None
    tick.status.approvals = []
    if tick.rollout.spec.strategy.kind is StrategyKind.BLUE_GREEN:
        tick.route(SWITCHED)
    tick.emit(PromoteCanary(revision=revision))
    tick.enter(Phase.PROMOTING, f"{why}: promoting revision {revision} to the primary")
    tick.fast = True


def promoting(tick: Tick) -> None:
    """Wait for the primary to run the new revision, then move traffic back to it."""
    workload = tick.obs.workload
    status = tick.status
    revision = status.canary_revision
    primary_done = workload.primary_ready and workload.primary_revision == revision
    if not primary_done:
        waited = seconds_since(status.last_transition_time, tick.now)
        deadline = tick.rollout.spec.progress_deadline_seconds
        if waited > deadline:
            fail_promotion(
                tick,
                f"the primary did not become ready with revision {revision} "
                f"within progressDeadlineSeconds ({deadline}s)",
            )
            return
        status.message = f"waiting for the primary to run revision {revision}"
        tick.fast = True
        return
    step = _promotion_step(tick)
    if step is not None and status.canary_weight > step:
        tick.route(Route(canary_weight=status.canary_weight - step))
        status.message = f"primary runs {revision}; canary weight down to {status.canary_weight}%"
        return
    finalise(tick)


def _promotion_step(tick: Tick) -> int | None:
    strategy = tick.rollout.spec.strategy
    if strategy.kind is not StrategyKind.CANARY:
        return None
    return strategy.canary_or_default().promotion_step_weight


def finalise(tick: Tick) -> None:
    tick.route(STABLE)
    tick.emit(ScaleCanaryDown())
    tick.enter(Phase.FINALISING, "all traffic on the primary; scaling the canary down")
    tick.fast = True


def finalising(tick: Tick) -> None:
    revision = tick.status.canary_revision
    tick.status.stable_revision = revision
    _call_post_rollout(tick, "promoted")
    tick.enter(
        Phase.SUCCEEDED,
        f"revision {revision} promoted",
        notification=NotificationEvent.PROMOTED,
    )


def rollback(tick: Tick, why: str) -> None:
    """All traffic back on the primary and the canary scaled down, at once."""
    tick.route(STABLE)
    tick.emit(ScaleCanaryDown())
    tick.status.waiting_for = None
    tick.status.approvals = []
    tick.status.promote_requested = False
    tick.enter(
        Phase.ROLLING_BACK,
        f"rolling back revision {tick.status.canary_revision}: {why}",
        warning=True,
        notification=NotificationEvent.ROLLED_BACK,
    )
    tick.fast = True


def rolling_back(tick: Tick) -> None:
    # Re-assert the stable route: rolling back must never leave traffic on the canary.
    tick.route(STABLE)
    _call_post_rollout(tick, "rolled back")
    tick.enter(
        Phase.FAILED,
        f"revision {tick.status.canary_revision} rolled back; the primary serves "
        f"{tick.status.stable_revision}",
        warning=True,
        notification=NotificationEvent.FAILED,
    )


def fail_promotion(tick: Tick, why: str) -> None:
    """The primary could not run the new revision: put it back on the stable one."""
    stable = tick.status.stable_revision
    tick.emit(RestorePrimary(revision=stable))
    rollback(tick, f"{why}; restoring the primary to revision {stable}")


def _call_post_rollout(tick: Tick, outcome: str) -> None:
    for hook in tick.rollout.spec.gates.of_type(GateType.POST_ROLLOUT):
        tick.emit(CallWebhook(name=hook.name, type=GateType.POST_ROLLOUT, reason=outcome))
