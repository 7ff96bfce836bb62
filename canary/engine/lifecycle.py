"""Before and between rollouts: setting up the primary, spotting a new revision, starting."""

from __future__ import annotations

from canary.engine.actions import InitializePrimary, ScaleCanaryDown, ScaleCanaryUp
from canary.engine.plan import new_revision
from canary.engine.routes import STABLE
from canary.engine.tick import Tick
from canary.model.gates import ApprovalPoint
from canary.model.notification import NotificationEvent
from canary.model.status import Phase


def initializing(tick: Tick) -> None:
    """Create the primary from the target; the first revision is adopted without judgement."""
    workload = tick.obs.workload
    target = tick.rollout.spec.target_ref.name
    if workload.target_revision is None:
        tick.status.message = f"waiting for Deployment '{target}' to exist"
        return
    if workload.primary_ready and workload.primary_revision == workload.target_revision:
        tick.status.stable_revision = workload.target_revision
        tick.status.canary_revision = None
        tick.enter(
            Phase.INITIALIZED,
            f"'{target}-primary' serves revision {workload.target_revision}; "
            "new revisions will be rolled out progressively",
        )
        return
    tick.emit(InitializePrimary(revision=workload.target_revision))
    tick.route(STABLE)
    tick.status.message = f"creating '{target}-primary' from revision {workload.target_revision}"
    tick.fast = True


def idle(tick: Tick) -> None:
    """Initialized, Succeeded or Failed: wait for a revision worth rolling out."""
    revision = new_revision(tick.status, tick.obs.workload)
    if tick.obs.workload.target_revision is None:
        target = tick.rollout.spec.target_ref.name
        tick.status.message = f"Deployment '{target}' is missing; the primary keeps serving"
        return
    if revision is None:
        return
    tick.status.canary_revision = revision
    try_start(tick)


def waiting(tick: Tick) -> None:
    """A new revision waits for confirm-rollout webhooks or a person's approval."""
    revision = new_revision(tick.status, tick.obs.workload)
    if tick.obs.workload.target_revision is None:
        target = tick.rollout.spec.target_ref.name
        withdraw(tick, f"Deployment '{target}' disappeared; nothing to roll out")
        return
    if revision is None:
        withdraw(tick, "the target is back on the stable revision; nothing to roll out")
        return
    tick.status.canary_revision = revision
    try_start(tick)


def try_start(tick: Tick) -> None:
    ok, why = tick.gate_open(ApprovalPoint.ROLLOUT)
    if not ok:
        tick.status.waiting_for = ApprovalPoint.ROLLOUT.value
        tick.enter(
            Phase.WAITING,
            f"revision {tick.status.canary_revision} waits for {why}",
            notification=NotificationEvent.WAITING,
        )
        return
    start(tick)


def start(tick: Tick) -> None:
    """Scale the canary up with traffic still on the primary; analysis begins once it is ready."""
    status = tick.status
    revision = status.canary_revision or ""
    status.step_index = 0
    status.iteration = 0
    status.failed_checks = 0
    status.inconclusive_since = None
    status.pre_rollout_passed = False
    status.analysis = []
    status.waiting_for = None
    status.approvals = []
    status.promote_requested = False
    status.started_at = tick.now
    status.analysis_started_at = None
    status.step_started_at = None
    tick.emit(ScaleCanaryUp(revision=revision))
    tick.route(STABLE)
    tick.enter(
        Phase.PROGRESSING,
        f"new revision {revision}: starting the canary",
        notification=NotificationEvent.STARTED,
    )
    tick.fast = True


def restart(tick: Tick, revision: str) -> None:
    """A newer revision arrived mid-rollout: judge it from scratch, through the same
    confirm-rollout gate (an approval of the previous revision does not carry over)."""
    previous = tick.status.canary_revision
    tick.tell(
        "NewRevision",
        f"revision {revision} replaces {previous} mid-rollout; analysis restarts",
        notification=NotificationEvent.STARTED,
    )
    tick.status.canary_revision = revision
    tick.status.approvals = []
    tick.route(STABLE)
    try_start(tick)


def withdraw(tick: Tick, message: str) -> None:
    """Cancel without judgement (the target went back to the stable revision)."""
    tick.route(STABLE)
    tick.emit(ScaleCanaryDown())
    tick.status.canary_revision = None
    tick.status.waiting_for = None
    tick.status.approvals = []
    tick.enter(Phase.INITIALIZED, message)
    tick.fast = True
