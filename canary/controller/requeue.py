"""When a Rollout's next tick comes, where a watch wakes it anyway.

The engine's ``requeueAfter`` is written for a runner that sees the world only when it ticks
(the local runner): an idle Rollout looks every interval for a new revision, and one waiting
for pods looks every 5 s for them to be ready. The controller's watches wake a Rollout at once
for both (`canary.controller.wakes`: a new revision of the target or of a ConfigMap or Secret
it references, a change of the spec, a command, a hand edit of a route object, a Deployment's
readiness, replicas or revision), so its ticks there only find nothing new. `watched_requeue`
stretches them:

- idle (Initialized, Succeeded, Failed) before and after the tick, at the engine's usual
  cadence (the interval): ``idle_wait`` (5 minutes), at most the route and Service resyncs
  (what no watch reports, a Service edited by hand, is put back at that tick as before). Not
  the tick that entered the phase: the one after it puts the Services and the policy copies in
  line with the new primary;
- waiting for a Deployment to become ready (`waits_for_readiness`) with the engine's quick
  requeue (5 s, the engine polling the world): ``readiness_wait`` (30 s), at most the
  interval. A longer requeue (a look due) stands.

The later tick is the fallback for a watch that broke (resumed with backoff; a relist reports
every change it missed, which wakes the Rollouts), and how soon a missed
``progressDeadlineSeconds`` is noticed.
"""

from __future__ import annotations

from dataclasses import dataclass

from canary.engine.observations import WorkloadState
from canary.engine.tick import FAST_REQUEUE_SECONDS
from canary.model.status import IDLE_PHASES, Phase, RolloutStatus

IDLE_WAIT = 300.0
"""Seconds between the ticks of an idle Rollout: the status heartbeat's, the route resync's and
the Service resync's period."""
READINESS_WAIT = 30.0
"""Seconds between ticks while the engine waits for a Deployment to become ready, when the
interval is not shorter."""


@dataclass(frozen=True)
class Waits:
    """How long the controller lets a Rollout wait where a watch wakes it, in seconds (0: the
    engine's requeue)."""

    idle: float = IDLE_WAIT
    readiness: float = READINESS_WAIT


def waits_for_readiness(status: RolloutStatus, workload: WorkloadState) -> bool:
    """The engine waits for a Deployment to become ready (the canary to start a rollout, the
    primary to be created or promoted): a change of readiness wakes the Rollout at once."""
    if status.phase is Phase.PROGRESSING:
        return not workload.canary_ready
    if status.phase is Phase.PROMOTING:
        return not (workload.primary_ready and workload.primary_revision == status.canary_revision)
    if status.phase is Phase.INITIALIZING:
        return not workload.primary_ready
    return False


def watched_requeue(
    requeue: float,
    *,
    interval: float,
    before: RolloutStatus,
    status: RolloutStatus,
    workload: WorkloadState,
    waits: Waits,
    resync: float,
) -> float:
    """The engine's ``requeue`` for a tick that went from ``before`` to ``status``, stretched
    as the module says (``resync``: the shortest resync an idle tick serves)."""
    if before.phase in IDLE_PHASES and status.phase in IDLE_PHASES and requeue >= interval:
        return max(requeue, min(waits.idle, resync))
    if requeue > FAST_REQUEUE_SECONDS or not waits_for_readiness(status, workload):
        return requeue  # (a look due while a judged canary is not ready stands)
    return max(requeue, min(waits.readiness, interval))
