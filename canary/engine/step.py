"""The engine's one entry point: a pure function from (spec, status, observations, now) to
(new status, actions, events). No clock, no network, no globals."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from canary.engine.actions import CallWebhook, StepResult
from canary.engine.clock import aware
from canary.engine.commands import apply_commands
from canary.engine.finish import finalising, promoting, rolling_back
from canary.engine.lifecycle import idle, initializing, waiting
from canary.engine.observations import Observations
from canary.engine.plan import JUDGED_PHASES, SUSPENDED, is_suspended
from canary.engine.progress import judged
from canary.engine.tick import FAST_REQUEUE_SECONDS, Tick
from canary.engine.timing import tick_look_interval
from canary.model.gates import GateType
from canary.model.rollout import Rollout
from canary.model.status import Phase, RolloutStatus

_HANDLERS: dict[Phase, Callable[[Tick], None]] = {
    Phase.INITIALIZING: initializing,
    Phase.INITIALIZED: idle,
    Phase.SUCCEEDED: idle,
    Phase.FAILED: idle,
    Phase.WAITING: waiting,
    Phase.PROGRESSING: judged,
    Phase.PAUSED: judged,
    Phase.PROMOTING: promoting,
    Phase.FINALISING: finalising,
    Phase.ROLLING_BACK: rolling_back,
}


def step(
    rollout: Rollout,
    status: RolloutStatus | None,
    observations: Observations,
    now: datetime,
) -> StepResult:
    """Evaluate one tick of ``rollout``. ``status`` is not modified; the new one is returned."""
    now = aware(now)
    current = _copy(status) if status is not None else RolloutStatus()
    tick = Tick(rollout=rollout, status=current, obs=observations, now=now)
    current.observed_generation = rollout.metadata.generation
    current.last_tick_at = now
    if not apply_commands(tick):
        if is_suspended(rollout, current):
            _hold(tick)
        else:
            _HANDLERS[current.phase](tick)
    _call_event_webhooks(tick)
    requeue = _requeue(rollout, tick.status, observations)
    if tick.fast:
        requeue = min(FAST_REQUEUE_SECONDS, requeue)
    return StepResult(
        status=tick.status, actions=tick.actions, events=tick.events, requeue_after=requeue
    )


def _requeue(rollout: Rollout, status: RolloutStatus, obs: Observations) -> float:
    """While the canary is judged, the next look comes a look interval later; otherwise an
    interval later."""
    if status.phase not in JUDGED_PHASES:
        return rollout.spec.analysis.interval
    return tick_look_interval(rollout, obs.look_interval)


def _copy(status: RolloutStatus) -> RolloutStatus:
    """A copy the tick may change without touching the caller's status.

    The engine only ever replaces the status's lists (never edits their items in place), so
    copying the lists is enough; a deep copy made the simulator four times slower.
    """
    return status.model_copy(
        update={
            "approvals": list(status.approvals),
            "checks": list(status.checks),
            "analysis": list(status.analysis),
            "conditions": list(status.conditions),
        }
    )


def _hold(tick: Tick) -> None:
    """spec.suspend: a rollout in flight pauses where it is; nothing new starts."""
    if tick.status.phase in (Phase.PROGRESSING, Phase.PAUSED):
        tick.status.waiting_for = SUSPENDED
        tick.enter(Phase.PAUSED, f"suspended at weight {tick.status.canary_weight}%: {SUSPENDED}")
    else:
        tick.status.message = f"suspended: {SUSPENDED}"


def _call_event_webhooks(tick: Tick) -> None:
    hooks = tick.rollout.spec.gates.of_type(GateType.EVENT)
    for event in tick.events:
        for hook in hooks:
            tick.emit(CallWebhook(name=hook.name, type=GateType.EVENT, reason=event.reason))
