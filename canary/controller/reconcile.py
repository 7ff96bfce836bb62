"""One tick of one Rollout: read, validate, observe, plan, ask, judge, step, apply, write.

The same loop as the local runner (canary.local.runner), against the cluster:

1. read the Rollout; validate it with the model (a Rollout the model refuses gets the
   condition ``Valid: False`` naming the field, and a Warning Event; the others go on; so
   does one whose ``spec.autoscalerRef`` names a missing HPA or one scaling another
   workload);
2. observe the workload (target, its ConfigMaps and Secrets, primary), and keep the Services
   in line with the spec (port, Linkerd's circuit breaker on ``<target>``);
3. `plan`; take the commands from the ``canary.dev/commands`` annotation; ask the gating
   webhooks; run the analysis (Prometheus) when the plan says so;
4. `step`; write the status first, with what the tick tells in ``status.outbox``; then
   apply its actions and what the new status calls for that they did not do
   (`canary.controller.converge`; without a route action, the route the status calls for,
   which repairs any change made by hand); deliver the outbox (webhooks, Events,
   notifications, `canary.controller.effects`) and clear it.

A tick that fails before its status write decided nothing (its commands are put back); one
that fails or dies after it is completed by the next tick from the status. The first tick of a
Rollout since the controller started or led, and one after a failed tick, puts the recorded
route back before judging (docs/controller.md, "Crash consistency").

While the canary is judged the next tick comes a *look interval* later
(`canary.engine.timing.look_interval`: ``spec.analysis.lookInterval``, else ``min(interval,
20s)`` when every check is judged by the sequential judge from counts, else ``interval``);
each look queries the time since the previous one (`canary.engine.timing.analysis_window`).
Where a watch wakes the Rollout anyway (idle, or waiting for pods), the engine's requeue is
stretched (`canary.controller.requeue`). Each tick is counted by why it ran and whether it
changed anything (``canary_ticks_total``).

An *early* tick (a Deployment, the Rollout or one of its route objects changed) runs like any
other, except that it never judges the canary ahead of its look interval: when the plan asks
for analysis and the target's revision is the one being judged, it does nothing and the
regular tick stands -- but for putting the route objects back when someone else changed one
(``drift``, `canary.controller.route_watch`).

The Rollout and its two Deployments are read from the watch caches when the reconciler is
given a `canary.controller.cached.CachedKube` (never older than the controller's own writes);
the first tick of a Rollout after the controller starts or gains the Lease, and the tick
after one that failed, read them from the API server.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError

from canary.analysis.analyse import analyse
from canary.analysis.checks import CheckResolutionError, resolve_checks
from canary.analysis.policies import AnyPolicy
from canary.analysis.provider import MetricsProvider, Targets
from canary.controller.commands import (
    CommandSource,
    Taken,
    abort_waiting,
    clean_up,
    listed,
    pending,
    remember,
)
from canary.controller.converge import PASSING_PHASES, apply_actions, converge, quiet
from canary.controller.deletion import ensure_finalizer, finalize_deleted
from canary.controller.deliveries import Deliveries
from canary.controller.effects import outbox_of
from canary.controller.event_sender import EventSender
from canary.controller.failures import TickFailures
from canary.controller.kinds import ROLLOUT
from canary.controller.kube import Json, Kube, NotLeaderError
from canary.controller.metrics import ControllerMetrics
from canary.controller.policies import sync_policies
from canary.controller.requeue import Waits, watched_requeue
from canary.controller.route_watch import RouteDrift
from canary.controller.routing import ROUTE_RESYNC_SECONDS, MeshRouter, route_signature
from canary.controller.scheduling import EARLY, SCHEDULED, current_wake
from canary.controller.status import (
    needs_write,
    with_valid,
    write_status,
)
from canary.controller.workloads import (
    Observed,
    ServiceSync,
    WorkloadActions,
    namespace_of,
    observe,
    services_signature,
)
from canary.engine import (
    CallWebhook,
    Event,
    Needs,
    Observations,
    SetRoute,
    plan,
    step,
)
from canary.engine.actions import StepResult
from canary.engine.clock import seconds_since
from canary.engine.timing import analysis_window, look_interval
from canary.gates.webhooks import WebhookCaller
from canary.model.loader import problems_of
from canary.model.rollout import Rollout
from canary.model.status import CheckResult, CheckState, Phase, RolloutStatus
from canary.notify import Notifier
from canary.traffic.mesh import desired_objects
from canary.workload import AutoscalerError, is_deleting

log = logging.getLogger("canary.controller.reconcile")

INVALID_REQUEUE = 60.0
"""Seconds between looks at a Rollout the model refuses (a change of it ticks at once)."""
AUTOSCALER_REQUEUE = 5.0
"""Seconds between looks at a Rollout whose HPA is missing or scales something else: the fix
is a change of the HPA, which the controller does not watch."""
MIN_REQUEUE = 0.05
PASSING_DELAY = timedelta(milliseconds=1)
"""The tick that ends Finalising or Rolling back runs this much after the one that entered it
(`PASSING_PHASES`): its outbox, and so its Events' names, are its own."""
SERVICE_RESYNC_SECONDS = 300.0
"""The Services are put in line with the spec when it or the primary changed, and at least
this often besides (`ServiceSync`)."""


@dataclass
class TickOutcome:
    outcome: str
    """ok, skipped (an early tick with nothing to do), invalid, gone, error."""
    requeue_after: float
    message: str = ""
    changed: bool = True
    """An ok tick changed the engine's state (the status other than ``lastTickAt`` and the
    outbox) or wrote something; False: it found everything as it was."""

    @property
    def effect(self) -> str:
        """The ``effect`` label of ``canary_ticks_total``: changed, idle, or the outcome."""
        if self.outcome != "ok":
            return self.outcome
        return "changed" if self.changed else "idle"


@dataclass
class Reconciler:
    """Runs ticks; shared by every Rollout's job (ticks of different Rollouts run at once)."""

    kube: Kube
    provider: MetricsProvider
    webhooks: WebhookCaller
    metrics: ControllerMetrics
    identity: str = "canary-controller"
    notifier: Notifier | None = None
    policies: Callable[[], Sequence[AnyPolicy]] = tuple
    restore_on_delete: bool = False
    """Keep a finalizer on each Rollout and give the target back when one is deleted."""
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    services: ServiceSync = field(default_factory=lambda: ServiceSync(SERVICE_RESYNC_SECONDS))
    routes: ServiceSync | None = None
    """When every route object is applied again (`canary.controller.routing`); by default
    every ``ROUTE_RESYNC_SECONDS`` of ``clock``."""
    inline_queries: bool = True
    """False: a Rollout may bring no query of its own (--forbid-inline-queries)."""
    commands: CommandSource | None = None
    """Where a tick finds its Rollout's RolloutCommands (the controller's watch cache); None
    lists them from the API server."""
    events: EventSender | None = None
    """Records the Events of a step off the tick's critical path; None: the tick posts them."""
    waits: Waits = field(default_factory=Waits)
    """Where a watch wakes the Rollout anyway, how long its next tick may wait
    (`canary.controller.requeue`)."""
    drift: RouteDrift = field(default_factory=RouteDrift)
    """Rollouts whose route objects someone else changed (`canary.controller.route_watch`):
    their next tick applies every route object."""
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _checked: set[str] = field(default_factory=set, init=False)
    """Rollouts whose last tick read the API server or succeeded since (`reset`): their next
    tick may read the caches."""
    _epoch: int = field(default=0, init=False)
    _route_versions: dict[str, dict[tuple[str, str, str, str], str]] = field(
        default_factory=dict, init=False
    )
    """By Rollout, the last resourceVersion of each route object (a repair from a no-op)."""
    _route_held: dict[str, dict[tuple[str, str, str, str], tuple[Json, Json]]] = field(
        default_factory=dict, init=False
    )
    """By Rollout, each route object as last applied and answered (`MeshRouter`)."""

    def __post_init__(self) -> None:
        if self.routes is None:
            self.routes = ServiceSync(ROUTE_RESYNC_SECONDS, clock=lambda: self.clock().timestamp())
        self._routes = self.routes
        self._failures = TickFailures(self.kube, self.metrics, self.identity, self.clock)
        self._deliveries = Deliveries(
            self.kube, self.webhooks, self.notifier, self.identity, self.events
        )

    def tick(self, key: str, early: bool = False) -> float:
        """Tick the Rollout ``namespace/name``; returns seconds until its next tick."""
        started = time.monotonic()
        namespace, _, name = key.partition("/")
        with self._lock:
            epoch, cached = self._epoch, key in self._checked
        ok = False
        try:
            with nullcontext() if cached else self.kube.fresh_reads():
                outcome = self._tick(namespace, name, early, cached)
            self._failures.clear(key)
            ok = True
        except NotLeaderError:
            outcome = TickOutcome("skipped", 1.0, "not the leader")
        except Exception as exc:
            outcome = self._failed(namespace, name, exc)
        with self._lock:
            if ok and epoch == self._epoch:
                self._checked.add(key)
            elif not ok:  # the caches may be what failed it: the next tick reads afresh
                self._checked.discard(key)
        if not ok:
            self._routes.forget(key)
        self.metrics.reconcile_duration.labels(outcome.outcome).observe(time.monotonic() - started)
        wake = current_wake() or (EARLY if early else SCHEDULED)
        self.metrics.ticks.labels(wake, outcome.effect).inc()
        log.debug("%s: tick (%s): %s; %s", key, wake, outcome.effect, outcome.message)
        return max(outcome.requeue_after, MIN_REQUEUE)

    def reset(self) -> None:
        """This replica (again) leads: every Rollout's next tick reads the API server, and
        puts its Services in line with the spec."""
        with self._lock:
            self._epoch += 1
            self._checked.clear()
        self.services.forget()
        self._routes.forget()
        self.drift.forget()

    def forget(self, key: str) -> None:
        """The Rollout ``key`` is gone."""
        with self._lock:
            self._checked.discard(key)
            self._route_versions.pop(key, None)
            self._route_held.pop(key, None)
        self._failures.clear(key)
        self._deliveries.forget(key)
        self.services.forget(key)
        self._routes.forget(key)
        self.drift.forget(key)

    # --- the tick ------------------------------------------------------------------------------

    def _tick(self, namespace: str, name: str, early: bool, cached: bool) -> TickOutcome:
        obj = self.kube.get(ROLLOUT, namespace, name)
        if obj is None:
            self.metrics.forget(namespace, name)
            self.services.forget(f"{namespace}/{name}")
            return TickOutcome("gone", INVALID_REQUEUE)
        now = self.clock()
        if is_deleting(obj):
            return self._deleted(obj, now)
        try:
            rollout = Rollout.model_validate(obj)
            checks = resolve_checks(rollout, self.policies(), inline_queries=self.inline_queries)
        except ValidationError as exc:
            problems = [f"{p.path}: {p.message}" for p in problems_of("", exc)]
            return self._invalid(obj, problems, now)
        except CheckResolutionError as exc:
            return self._invalid(obj, [f"{exc.path}: {exc.message}"], now)
        status = rollout.status or RolloutStatus()
        read = obj
        obj = ensure_finalizer(self.kube, obj, self.restore_on_delete)
        try:
            observed = observe(self.kube, rollout)
        except AutoscalerError as exc:
            return self._invalid(obj, [str(exc)], now, AUTOSCALER_REQUEUE)
        workload = observed.state
        needs = plan(rollout, status, workload)
        look = look_interval(rollout, checks)
        command_objects = (self.commands or listed(self.kube))(namespace, name)
        # someone else changed a route object (canary.controller.route_watch): every one is
        # applied at this tick, whatever the resync
        drifted = self.drift.take(rollout.key)
        trust = not drifted and not self._routes.due(rollout.key, route_signature(rollout))
        router = self._router(rollout, trust)
        if early and needs.analyse and workload.target_revision == status.canary_revision:
            if not abort_waiting(command_objects, name, status.applied_commands):
                if drifted:  # put back what was edited; the look stands
                    router.repair(status)
                    self._routes.done(rollout.key, route_signature(rollout))
                # the next look stands: a look interval after the last tick
                since = seconds_since(status.last_tick_at, now)
                return TickOutcome("skipped", max(look - since, MIN_REQUEUE))
            needs = Needs()  # an abort ends the tick before anything is judged: act on it now
        # the first tick since this replica (re)started or led, or after a failed tick: the
        # status may have been written without its actions (docs/controller.md, "Crash
        # consistency"); the route it records is put back before anything is judged
        repaired = router.repair(status, unknown=True) if not cached else []
        obj = self._deliveries.catch_up(rollout, status, obj)
        if (
            repaired
            and needs.analyse
            and not abort_waiting(command_objects, name, status.applied_commands)
        ):
            # the canary did not have the recorded share of traffic until now: it is judged a
            # look interval from now, on traffic routed as recorded
            return TickOutcome("skipped", look, "route put back to the recorded step")
        synced = status.phase is not Phase.INITIALIZING and self._sync_services(rollout, observed)
        wrote = bool(repaired) or synced or obj is not read
        taken = pending(command_objects, name, status.applied_commands)
        commands = [p.command for p in taken.fresh]
        # the commands stay until the status write below records them (commands.py)
        answers = self.webhooks.ask(rollout, status, needs.webhooks, now) if needs.webhooks else []
        results: list[CheckResult] = []
        states: list[CheckState] = []
        if needs.analyse:
            results, states = analyse(
                rollout,
                status,
                checks,
                self.provider,
                targets_of(rollout),
                analysis_window(rollout, status, now),
                now,
            )
        observations = Observations(
            workload=workload,
            checks=results,
            check_states=states,
            gates=answers,
            commands=commands,
            look_interval=look,
        )
        result = step(rollout, status, observations, now)
        new_status, stored, told, acted = self._carry_out(
            rollout, obj, observed, router, result, taken, now
        )
        everything_told = told
        if new_status.phase in PASSING_PHASES and told:
            # the engine ends the phase at its next tick whatever it observes: that tick now,
            # once this one's actions are done and its outbox delivered (docs/controller.md,
            # "Early ticks"); a moment later, so its outbox is told from this one's
            then = now + PASSING_DELAY
            result = step(rollout, new_status, quiet(observations), then)
            none = Taken(fresh=[], done=[], problems=[])
            new_status, _, everything_told, _ = self._carry_out(
                rollout, stored, observed, router, result, none, then
            )
        self.metrics.rollout(namespace, name, new_status.phase, new_status.canary_weight)
        self.metrics.check_results(namespace, name, results)
        changed = wrote or acted or engine_state(new_status) != engine_state(status)
        requeue = result.requeue_after
        if everything_told:  # (an outbox not told in full: the engine's requeue, to retry)
            requeue = watched_requeue(
                requeue,
                interval=rollout.spec.analysis.interval,
                before=status,
                status=new_status,
                workload=workload,
                waits=self.waits,
                resync=min(self._routes.resync, self.services.resync),
            )
        return TickOutcome("ok", requeue, new_status.message, changed)

    def _carry_out(
        self,
        rollout: Rollout,
        obj: Json,
        observed: Observed,
        router: MeshRouter,
        result: StepResult,
        taken: Taken,
        now: datetime,
    ) -> tuple[RolloutStatus, Json, bool, bool]:
        """Record the engine's decision, then act on it and deliver what it tells; returns the
        new status, the Rollout as last stored, whether everything it tells was told, and
        whether any action or repair wrote something."""
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
            self._routes.done(rollout.key, route_signature(rollout))
        stored, told = self._deliveries.tell(rollout, new_status, stored)
        return new_status, stored, told, bool(written)

    def _router(self, rollout: Rollout, trust: bool) -> MeshRouter:
        """The Rollout's route objects for this tick, with what earlier ticks applied."""
        with self._lock:
            versions = self._route_versions.setdefault(rollout.key, {})
            held = self._route_held.setdefault(rollout.key, {})
        return MeshRouter(self.kube, rollout, versions, held, trust=trust)

    def _sync_services(self, rollout: Rollout, observed: Observed) -> bool:
        """The Services in line with the spec, when it or the primary changed (`ServiceSync`);
        whether anything was written."""
        signature = services_signature(rollout, observed)
        if signature is None or not self.services.due(rollout.key, signature):
            return False
        written = WorkloadActions(self.kube, rollout, observed).sync_services()
        if observed.target is not None:
            written += sync_policies(self.kube, rollout, observed.target)
        for line in written:
            log.info("%s: %s", rollout.key, line)
        self.services.done(rollout.key, signature)
        return bool(written)

    def _deleted(self, obj: Json, now: datetime) -> TickOutcome:
        again = finalize_deleted(self.kube, obj, restore_target=self.restore_on_delete, now=now)
        if again is None:
            return TickOutcome("gone", INVALID_REQUEUE, "cleaned up")
        return TickOutcome("ok", again, "cleaning up")

    # --- what goes wrong -----------------------------------------------------------------------

    def _invalid(
        self, obj: Json, problems: list[str], now: datetime, requeue: float = INVALID_REQUEUE
    ) -> TickOutcome:
        return TickOutcome("invalid", requeue, self._failures.invalid(obj, problems, now))

    def _failed(self, namespace: str, name: str, exc: Exception) -> TickOutcome:
        delay, message = self._failures.failed(namespace, name, exc)
        return TickOutcome("error", delay, message)


def engine_state(status: RolloutStatus) -> Json:
    """What of a status the engine decides: all but when it was written and what it tells."""
    return status.model_dump(exclude={"last_tick_at", "outbox"})


def targets_of(rollout: Rollout) -> Targets:
    name = rollout.spec.target_ref.name
    return Targets(
        namespace=namespace_of(rollout), target=name, canary=name, primary=f"{name}-primary"
    )
