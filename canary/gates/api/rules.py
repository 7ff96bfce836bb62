"""The API's own reading of a rollout: does an action apply now, has the rollout ended?

These are early, helpful answers (a 409 instead of a command the engine would ignore at its
next tick). The engine stays the authority: a command that passes here can still be ignored
if the rollout moved on in between, and the engine says so in its events.
"""

from __future__ import annotations

from canary.engine.observations import CommandKind
from canary.gates.api.models import RolloutView, WaitOutcome
from canary.model.gates import ApprovalPoint
from canary.model.status import Phase

PROMOTABLE = frozenset({Phase.PROGRESSING, Phase.PAUSED})
ABORTABLE = frozenset({Phase.WAITING, Phase.PROGRESSING, Phase.PAUSED})
_POINTS = {p.value for p in ApprovalPoint}


def _phases(phases: frozenset[Phase]) -> str:
    return " or ".join(sorted(p.value for p in phases))


def why_not(kind: CommandKind, view: RolloutView, point: ApprovalPoint | None = None) -> str | None:
    """Why ``kind`` does not apply to the rollout as it stands, or None when it does."""
    status = view.status
    phase = status.phase.value
    key = view.key
    if kind is CommandKind.APPROVE:
        return _approve_problem(view, point)
    if kind is CommandKind.PROMOTE and status.phase not in PROMOTABLE:
        return f"promote applies while {_phases(PROMOTABLE)}; rollout {key} is {phase}"
    if kind is CommandKind.ABORT and status.phase not in ABORTABLE:
        return f"abort applies while {_phases(ABORTABLE)}; rollout {key} is {phase}"
    if kind is CommandKind.RETRY:
        if status.phase is not Phase.FAILED:
            return f"retry applies to a Failed rollout; rollout {key} is {phase}"
        target = view.target_revision
        if target is not None and target != status.canary_revision:
            return (
                f"rollout {key} failed revision {status.canary_revision}, but the target now "
                f"runs {target}: the new revision rolls out by itself"
            )
        if view.spec is not None and view.spec.suspend:
            return f"rollout {key} is suspended (spec.suspend: true): resume it first"
    return None


def ended(view: RolloutView, revision: str | None = None) -> tuple[WaitOutcome | None, str]:
    """Whether the rollout of ``revision`` (default: the target's, when known) has ended, and
    a sentence saying how it ended or where it stands."""
    status = view.status
    wanted = revision or view.target_revision
    promoted = wanted is None or status.stable_revision == wanted
    if status.phase is Phase.SUCCEEDED and promoted:
        return WaitOutcome.SUCCEEDED, f"Succeeded: {status.message}"
    if status.phase is Phase.INITIALIZED and wanted is not None and promoted:
        return WaitOutcome.SUCCEEDED, f"Initialized: revision {wanted} serves as primary"
    failing = status.phase in {Phase.FAILED, Phase.ROLLING_BACK}
    if failing and (wanted is None or status.canary_revision == wanted):
        return WaitOutcome.FAILED, f"{status.phase.value}: {status.message}"
    where = f"{status.phase.value} at {status.canary_weight}%"
    if status.waiting_for:
        where += f", waiting for {status.waiting_for}"
    if wanted is not None and status.canary_revision != wanted:
        where += f" (revision {wanted} not picked up yet)"
    return None, (f"{where}: {status.message}" if status.message else where)


def _approve_problem(view: RolloutView, point: ApprovalPoint | None) -> str | None:
    status = view.status
    if point is None:
        if status.waiting_for not in _POINTS:
            waiting = (
                f"waits for {status.waiting_for}" if status.waiting_for else "waits for nothing"
            )
            return (
                f"rollout {view.key} is {status.phase.value} and {waiting}: nothing waits for "
                "approval; to approve ahead of time, name the point (rollout, traffic-increase, "
                "promotion)"
            )
        point = ApprovalPoint(status.waiting_for)
    if view.spec is not None and point not in view.spec.approvals:
        listed = ", ".join(p.value for p in view.spec.approvals) or "none"
        return (
            f"rollout {view.key} does not ask for approval at {point.value} "
            f"(spec.gates.approvals: {listed})"
        )
    return None
