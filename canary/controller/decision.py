"""The second half of a tick: the engine's `step`, its decision written to the status first
(with what the tick tells in ``status.outbox``), then carried out and told.

After the status write the tick applies the step's actions and what the new status calls for
that they did not do (`canary.controller.converge`; without a route action, the route the
status calls for, which repairs any change made by hand), and delivers the outbox (webhooks,
Events, notifications, `canary.controller.deliveries`). A tick that fails or dies after the
write is completed by the next tick from the status (docs/controller.md, "Crash consistency").

A step that enters Finalising or Rolling back (`PASSING_PHASES`) is followed at once by the
step that ends the phase, once its actions are done and its outbox told.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from canary.controller.commands import Taken, clean_up, remember
from canary.controller.converge import PASSING_PHASES, apply_actions, converge, quiet
from canary.controller.deliveries import Deliveries
from canary.controller.effects import outbox_of
from canary.controller.kube import Json, Kube
from canary.controller.metrics import ControllerMetrics
from canary.controller.route_memory import RouteMemory
from canary.controller.routing import MeshRouter
from canary.controller.status import needs_write, with_valid, write_status
from canary.controller.workloads import Observed, WorkloadActions, namespace_of
from canary.engine import CallWebhook, Event, Observations, SetRoute, step
from canary.engine.actions import StepResult
from canary.model.rollout import Rollout
from canary.model.status import RolloutStatus
from canary.traffic.mesh import desired_objects

log = logging.getLogger("canary.controller.reconcile")  # (the tick's log, as failures.py)

PASSING_DELAY = timedelta(milliseconds=1)
"""The tick that ends Finalising or Rolling back runs this much after the one that entered it
(`PASSING_PHASES`): its outbox, and so its Events' names, are its own."""


@dataclass(frozen=True)
class Carried:
    """One step carried out."""

    status: RolloutStatus
    stored: Json
    """The Rollout as last stored."""
    told: bool
    """Everything the step tells was told."""
    acted: bool
    """An action or a repair wrote something."""


@dataclass(frozen=True)
class Decided:
    """What the tick's steps came to."""

    status: RolloutStatus
    requeue_after: float
    """The last step's."""
    told: bool
    """Every step's outbox was told in full."""
    acted: bool
    """The tick's own step wrote something besides the status."""


@dataclass(frozen=True)
class Decider:
    """Steps the engine for a tick and carries out what it decides."""

    kube: Kube
    metrics: ControllerMetrics
    deliveries: Deliveries
    routes: RouteMemory

    def decide(
        self,
        rollout: Rollout,
        status: RolloutStatus,
        obj: Json,
        observed: Observed,
        router: MeshRouter,
        observations: Observations,
        taken: Taken,
        now: datetime,
    ) -> Decided:
        """Step, record, act and tell; and the step that ends a passing phase at once."""
        result = step(rollout, status, observations, now)
        carried = self.carry_out(rollout, obj, observed, router, result, taken, now)
        first, last = carried, carried
        if carried.status.phase in PASSING_PHASES and carried.told:
            # the engine ends the phase at its next tick whatever it observes: that tick now,
            # once this one's actions are done and its outbox delivered (docs/controller.md,
            # "Early ticks"); a moment later, so its outbox is told from this one's
            then = now + PASSING_DELAY
            result = step(rollout, carried.status, quiet(observations), then)
            none = Taken(fresh=[], done=[], problems=[])
            last = self.carry_out(rollout, carried.stored, observed, router, result, none, then)
        return Decided(last.status, result.requeue_after, last.told, first.acted)

    def carry_out(
        self,
        rollout: Rollout,
        obj: Json,
        observed: Observed,
        router: MeshRouter,
        result: StepResult,
        taken: Taken,
        now: datetime,
    ) -> Carried:
        """Record the engine's decision, then act on it and deliver what it tells."""
        for action in result.actions:  # a route that cannot be rendered fails the tick here
            if isinstance(action, SetRoute):
                desired_objects(rollout, action.route)
        events = list(result.events)
        for problem in taken.problems:
            events.insert(0, Event(reason="CommandsInvalid", message=problem, warning=True))
        hooks = [a for a in result.actions if isinstance(a, CallWebhook)]
        new_status = remember(with_valid(result.status, now), taken.fresh).model_copy(
            update={"outbox": outbox_of(events, hooks, now)}
        )
        # the decision is recorded before anything is acted on (docs/controller.md, "Crash
        # consistency"), with the uids of the commands it applied: from here on, what it calls
        # for is carried out by this tick or, if it dies or fails, by the next one, from the
        # status; the command objects are deleted only once that write has landed
        stored = obj
        if needs_write(obj.get("status"), new_status, now):
            stored = write_status(
                self.kube, obj, new_status.to_wire(), on_conflict=self.metrics.status_conflicts.inc
            )
        clean_up(self.kube, namespace_of(rollout), [p.name for p in taken.fresh] + taken.done)
        workload_actions = WorkloadActions(self.kube, rollout, observed)
        written = apply_actions(workload_actions, router, result.actions)
        written += converge(new_status, result.actions, observed, workload_actions, router)
        for line in written:
            log.info("%s: %s", rollout.key, line)
        if not router.trust:  # every route object applied: trusted until the next resync
            self.routes.applied_all(rollout)
        stored, told = self.deliveries.tell(rollout, new_status, stored)
        return Carried(new_status, stored, told, bool(written))
