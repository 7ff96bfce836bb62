"""The workload and routes the recorded status calls for, put in place every tick.

The engine asks for a workload action once, on the tick that enters a phase (scale the canary
up when a rollout starts, copy it into the primary when promotion begins, ...). The controller
records that decision in the status *before* acting on it, so a controller that dies, or a
write that fails, after the status write leaves a status whose actions were not (all) carried
out. Every tick therefore also carries out what the status it wrote calls for, when the tick's
own actions did not:

- the route (`canary.controller.routing.expected_route`): applied when no `SetRoute` was;
- Progressing or Paused: the canary runs (scaled up when it has no replicas);
- Promoting: the primary runs the canary's revision (promoted again, idempotently);
- Rolling back or Failed: the primary runs the stable revision (restored when a promotion that
  failed left it on the canary's);
- Initialized, Succeeded, Failed (with the primary ready): the canary runs no pods.

Each is idempotent: a tick that finds things in place writes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from canary.controller.routing import MeshRouter
from canary.controller.workloads import Observed, WorkloadActions
from canary.engine import (
    Action,
    PromoteCanary,
    RestorePrimary,
    ScaleCanaryDown,
    ScaleCanaryUp,
    SetRoute,
)
from canary.model.status import IDLE_PHASES, Phase, RolloutStatus
from canary.workload import WorkloadError

log = logging.getLogger("canary.controller.converge")

RUNNING_PHASES = frozenset({Phase.PROGRESSING, Phase.PAUSED})
STABLE_PRIMARY_PHASES = frozenset({Phase.ROLLING_BACK, Phase.FAILED})


def converge(
    status: RolloutStatus,
    actions: Sequence[Action],
    observed: Observed,
    workload: WorkloadActions,
    router: MeshRouter,
) -> list[str]:
    """Carry out what ``status`` calls for that ``actions`` (this tick's) did not; returns
    what was written."""
    done: list[str] = []
    kinds = {type(a) for a in actions}
    if SetRoute not in kinds:
        done += router.repair(status)
    state = observed.state
    scaled = kinds & {ScaleCanaryUp, ScaleCanaryDown}
    if (
        status.phase in RUNNING_PHASES
        and not scaled
        and observed.target is not None
        and observed.target_replicas == 0
    ):
        done += workload.scale_up()
    if (
        status.phase is Phase.PROMOTING
        and PromoteCanary not in kinds
        and status.canary_revision
        and state.primary_revision != status.canary_revision
    ):
        done += _tried(workload.promote, status.canary_revision)
    if (
        status.phase in STABLE_PRIMARY_PHASES
        and RestorePrimary not in kinds
        and status.stable_revision
        and state.primary_revision not in (None, status.stable_revision)
    ):
        done += _tried(workload.restore)
    if status.phase in IDLE_PHASES and state.primary_ready:
        # between rollouts the target (the canary) runs no pods: the primary serves
        done += workload.scale_target(0)
    return done


def _tried(act: Callable[..., list[str]], *args: str) -> list[str]:
    """``act``, whose refusal (the target moved on, nothing recorded to restore) the engine
    handles at its deadline: reported, not a failed tick."""
    try:
        return act(*args)
    except WorkloadError as exc:
        log.warning("not carried out: %s", exc)
        return []
