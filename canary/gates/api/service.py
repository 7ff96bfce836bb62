"""What a write and a wait do, over any `RolloutStore`: shared by the API (`app.py`) and by the
CLI when it talks to Kubernetes directly (``canary --kubeconfig``), so both check a command the
same way, record it the same way, and answer a wait with the same sentences.
"""

from __future__ import annotations

from datetime import datetime

from canary.engine.observations import Command, CommandKind
from canary.gates.api.audit import Audit
from canary.gates.api.models import (
    AuditEvent,
    AuditOutcome,
    CommandAccepted,
    RolloutView,
    WaitOutcome,
    WaitResult,
)
from canary.gates.api.rules import ended, why_not
from canary.gates.api.store import RolloutStore
from canary.model.duration import format_duration
from canary.model.gates import ApprovalPoint


class CommandRefusedError(Exception):
    """The action does not apply to the rollout as it stands (the API's 409)."""

    def __init__(self, message: str, audit: AuditEvent) -> None:
        super().__init__(message)
        self.message = message
        self.audit = audit


def queue_command(
    store: RolloutStore,
    audit: Audit,
    kind: CommandKind,
    namespace: str,
    name: str,
    *,
    by: str,
    point: ApprovalPoint | None,
    now: datetime,
) -> CommandAccepted:
    """Check that ``kind`` applies, queue it in the store and record who asked (accepted or
    refused). Raises `CommandRefusedError`, and the store's `RolloutNotFoundError` and
    `StoreError`."""
    view = store.get(namespace, name)
    reason = why_not(kind, view, point)

    def event(outcome: AuditOutcome, message: str) -> AuditEvent:
        return AuditEvent(
            time=now,
            namespace=namespace,
            name=name,
            action=kind,
            point=point,
            by=by,
            outcome=outcome,
            phase=view.status.phase,
            message=message,
        )

    if reason is not None:
        refused = event(AuditOutcome.REJECTED, reason)
        audit.record(refused)
        raise CommandRefusedError(reason, refused)
    command = Command(kind=kind, point=point, by=by)
    store.post_command(namespace, name, command)
    message = f"{kind.value} queued for {namespace}/{name}: it takes effect at the next tick"
    recorded = event(AuditOutcome.ACCEPTED, message)
    audit.record(recorded)
    return CommandAccepted(
        namespace=namespace, name=name, command=command, audit=recorded, message=message
    )


def wait_answer(
    view: RolloutView, revision: str | None, waited: float, timed_out: bool
) -> WaitResult | None:
    """The answer of a wait that has read ``view`` after ``waited`` seconds: how the rollout
    ended, the timeout (when ``timed_out``), or None to keep waiting."""
    outcome, reason = ended(view, revision)
    wanted = revision or view.target_revision
    if outcome is not None:
        return WaitResult(
            outcome=outcome,
            done=True,
            revision=wanted,
            reason=reason,
            waited_seconds=waited,
            rollout=view,
        )
    if not timed_out:
        return None
    return WaitResult(
        outcome=WaitOutcome.TIMEOUT,
        done=False,
        revision=wanted,
        reason=f"not ended after {format_duration(round(waited, 1))}: {reason}",
        waited_seconds=waited,
        rollout=view,
    )
