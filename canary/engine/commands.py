"""Requests from people and pipelines: approve, promote, abort, retry."""

from __future__ import annotations

from canary.engine.finish import rollback
from canary.engine.lifecycle import start
from canary.engine.observations import Command, CommandKind
from canary.engine.plan import JUDGED_PHASES
from canary.engine.tick import Tick
from canary.model.gates import ApprovalPoint
from canary.model.status import Phase

ABORTABLE_PHASES = frozenset({Phase.WAITING, Phase.PROGRESSING, Phase.PAUSED})


def apply_commands(tick: Tick) -> bool:
    """Apply this tick's commands in order; True when one of them ended the tick. Commands
    after the one that ended it are reported as ignored, never dropped silently."""
    for index, command in enumerate(tick.obs.commands):
        if _apply(tick, command):
            for later in tick.obs.commands[index + 1 :]:
                tick.tell(
                    "CommandIgnored",
                    f"{later.by} asked to {later.kind.value}, but {command.kind.value} by "
                    f"{command.by} came first in the same tick; ask again",
                    warning=True,
                )
            return True
    return False


def _apply(tick: Tick, command: Command) -> bool:
    if command.kind is CommandKind.APPROVE:
        _approve(tick, command)
        return False
    if command.kind is CommandKind.PROMOTE:
        _promote(tick, command)
        return False
    if command.kind is CommandKind.ABORT:
        return _abort(tick, command)
    return _retry(tick, command)


def _approve(tick: Tick, command: Command) -> None:
    point = command.point
    if point is None and tick.status.waiting_for in {p.value for p in ApprovalPoint}:
        point = ApprovalPoint(tick.status.waiting_for)
    if point is None:
        tick.tell("ApprovalIgnored", f"{command.by} approved, but nothing waits for approval")
        return
    if point.value not in tick.status.approvals:
        tick.status.approvals = [*tick.status.approvals, point.value]
    tick.tell("Approved", f"{command.by} approved {point.value}")


def _promote(tick: Tick, command: Command) -> None:
    if tick.status.phase not in JUDGED_PHASES:
        tick.tell(
            "PromoteIgnored",
            f"{command.by} asked to promote, but the rollout is {tick.status.phase.value}",
        )
        return
    tick.status.promote_requested = True
    if ApprovalPoint.PROMOTION.value not in tick.status.approvals:
        tick.status.approvals = [*tick.status.approvals, ApprovalPoint.PROMOTION.value]
    tick.tell(
        "PromoteRequested",
        f"{command.by} asked to promote: remaining steps are skipped once the checks pass",
    )


def _abort(tick: Tick, command: Command) -> bool:
    if tick.status.phase not in ABORTABLE_PHASES:
        tick.tell(
            "AbortIgnored",
            f"{command.by} asked to abort, but the rollout is {tick.status.phase.value}",
            warning=True,
        )
        return False
    rollback(tick, f"aborted by {command.by}")
    return True


def _retry(tick: Tick, command: Command) -> bool:
    status = tick.status
    target = tick.obs.workload.target_revision
    if status.phase is not Phase.FAILED or target is None or target != status.canary_revision:
        tick.tell(
            "RetryIgnored",
            f"{command.by} asked to retry, but there is no failed revision to run again",
        )
        return False
    if tick.rollout.spec.suspend:
        tick.tell(
            "RetryIgnored",
            f"{command.by} asked to retry, but spec.suspend is true: resume first",
        )
        return False
    tick.tell("Retry", f"{command.by} asked to run revision {target} again")
    start(tick)
    return True
