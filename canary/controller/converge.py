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

A tick that enters Finalising or Rolling back (`PASSING_PHASES`) records it and carries out its
actions (traffic to the primary, the canary scaled down), then at once runs the tick that ends
the phase (Succeeded, Failed), which the engine decides without reading anything of the world
(`canary.engine.finish`: ``finalising``, ``rolling_back``): two decisions, each written before
it is acted on as always, in one tick instead of two, and no wait for the watch's echo of the
scale-down. A terminal phase still means its actions are done.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from canary.controller.routing import MeshRouter
from canary.controller.workloads import Observed, WorkloadActions
from canary.engine import (
    Action,
    InitializePrimary,
    Observations,
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
PASSING_PHASES = frozenset({Phase.FINALISING, Phase.ROLLING_BACK})
"""Phases the engine ends at their next tick whatever it observes: the reconciler runs that
tick at once, once the actions of the tick that entered them are done."""


def quiet(observations: Observations) -> Observations:
    """The observations of a tick for the tick that follows it at once (`PASSING_PHASES`):
    the same workload; its commands, checks and gates were used by the first."""
    return observations.model_copy(update={"commands": [], "checks": [], "gates": []})


def apply_actions(
    workload: WorkloadActions, router: MeshRouter, actions: Sequence[Action]
) -> list[str]:
    """Carry out a tick's actions (webhooks aside: the outbox's); returns what was written."""
    done: list[str] = []
    for action in actions:
        if isinstance(action, SetRoute):
            done += router.apply(action.route)
        elif isinstance(action, InitializePrimary):
            done += workload.initialize(action.revision)
        elif isinstance(action, ScaleCanaryUp):
            done += workload.scale_up()
        elif isinstance(action, ScaleCanaryDown):
            done += workload.scale_target(0)
        elif isinstance(action, PromoteCanary):
            done += workload.promote(action.revision)
        elif isinstance(action, RestorePrimary):
            done += workload.restore()
    return done


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
