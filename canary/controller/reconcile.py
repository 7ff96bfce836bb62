"""One tick of one Rollout: read, validate, observe, plan, ask, judge, step, apply, write.

The same loop as the local runner (canary.local.runner), against the cluster:

1. read the Rollout; validate it with the model (a Rollout the model refuses gets the
   condition ``Valid: False`` naming the field, and a Warning Event; the others go on; so
   does one whose ``spec.autoscalerRef`` names a missing HPA or one scaling another
   workload; `canary.controller.failures`);
2. observe the workload (target, its ConfigMaps and Secrets, primary), and keep the Services
   in line with the spec (port, Linkerd's circuit breaker on ``<target>``;
   `canary.controller.service_keeper`);
3. `plan`; take the commands from the ``canary.dev/commands`` annotation; ask the gating
   webhooks; run the analysis (Prometheus) when the plan says so
   (`canary.controller.observations`);
4. `step`; write the status first, with what the tick tells in ``status.outbox``; then
   apply its actions and what the new status calls for that they did not do, and deliver the
   outbox (`canary.controller.decision`).

A tick that fails before its status write decided nothing (its commands are put back); one
that fails or dies after it is completed by the next tick from the status. The first tick of a
Rollout since the controller started or led, and one after a failed tick, puts the recorded
route back before judging (docs/controller.md, "Crash consistency"); what earlier ticks applied
of the route objects is kept in `canary.controller.route_memory`.

While the canary is judged the next tick comes a *look interval* later
(`canary.engine.timing.look_interval`: ``spec.analysis.lookInterval``, else ``min(interval,
20s)`` when every check is judged by the sequential judge from counts, else ``interval``);
each look queries the time since the previous one (`canary.engine.timing.analysis_window`).
Where a watch wakes the Rollout anyway (idle, or waiting for pods), the engine's requeue is
stretched (`canary.controller.requeue`). Each tick is counted by why it ran and whether it
changed anything (``canary_ticks_total``; `canary.controller.tick_outcome`).

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
from datetime import UTC, datetime

from pydantic import ValidationError

from canary.analysis.checks import CheckResolutionError, resolve_checks
from canary.analysis.policies import AnyPolicy
from canary.analysis.provider import MetricsProvider
from canary.controller.cached import CachedKube
from canary.controller.commands import CommandSource, abort_waiting, listed, pending
from canary.controller.decision import Decided, Decider
from canary.controller.deletion import ensure_finalizer, finalize_deleted
from canary.controller.deliveries import Deliveries
from canary.controller.event_sender import EventSender
from canary.controller.failures import TickFailures
from canary.controller.kinds import ROLLOUT
from canary.controller.kube import Json, Kube, NotLeaderError
from canary.controller.metrics import ControllerMetrics
from canary.controller.observations import Observer
from canary.controller.requeue import Waits, watched_requeue
from canary.controller.route_memory import RouteMemory
from canary.controller.route_watch import RouteDrift
from canary.controller.routing import ROUTE_RESYNC_SECONDS, MeshRouter
from canary.controller.scheduling import EARLY, SCHEDULED, current_wake
from canary.controller.service_keeper import SERVICE_RESYNC_SECONDS, ServiceKeeper
from canary.controller.tick_outcome import (
    AUTOSCALER_REQUEUE,
    INVALID_REQUEUE,
    MIN_REQUEUE,
    TickOutcome,
    engine_state,
)
from canary.controller.workloads import ServiceSync, observe
from canary.engine import Needs, WorkloadState, plan
from canary.engine.clock import seconds_since
from canary.engine.timing import look_interval
from canary.gates.webhooks import WebhookCaller
from canary.model.analysis import CheckSpec
from canary.model.loader import problems_of
from canary.model.rollout import Rollout
from canary.model.status import Phase, RolloutStatus
from canary.notify import Notifier
from canary.workload import AutoscalerError, is_deleting

log = logging.getLogger("canary.controller.reconcile")


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

    def __post_init__(self) -> None:
        if self.routes is None:
            self.routes = ServiceSync(ROUTE_RESYNC_SECONDS, clock=lambda: self.clock().timestamp())
        self._routes = RouteMemory(self.routes)
        self._failures = TickFailures(self.kube, self.metrics, self.identity, self.clock)
        self._deliveries = Deliveries(
            self.kube, self.webhooks, self.notifier, self.identity, self.events
        )
        self._service_keeper = ServiceKeeper(self.kube, self.services)
        self._observer = Observer(self.provider, self.webhooks)
        self._decider = Decider(self.kube, self.metrics, self._deliveries, self._routes)

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
            self._routes.distrust(key)
        if isinstance(self.kube, CachedKube) and self.kube.holds(ROLLOUT, namespace, name) is False:
            # deleted while this tick ran: its deletion's watch event forgot it first, and this
            # tick's bookkeeping would otherwise outlive it for the life of the process
            self.forget(key)
            self.metrics.forget(namespace, name)
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
        self._routes.distrust()
        self.drift.forget()

    def forget(self, key: str) -> None:
        """The Rollout ``key`` is gone."""
        with self._lock:
            self._checked.discard(key)
        self._routes.forget(key)
        self._failures.clear(key)
        self._deliveries.forget(key)
        self.services.forget(key)
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
        valid = self._validated(obj, now)
        if isinstance(valid, TickOutcome):
            return valid
        rollout, checks = valid
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
        trust = not drifted and not self._routes.due(rollout)
        router = self._routes.router(self.kube, rollout, trust)
        if early and needs.analyse and workload.target_revision == status.canary_revision:
            if not abort_waiting(command_objects, name, status.applied_commands):
                return self._look_stands(rollout, status, router, drifted, look, now)
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
        synced = status.phase is not Phase.INITIALIZING and self._service_keeper.sync(
            rollout, observed
        )
        wrote = bool(repaired) or synced or obj is not read
        taken = pending(command_objects, name, status.applied_commands)
        observations = self._observer.observe(
            rollout, status, needs, checks, workload, taken, look, now
        )
        decided = self._decider.decide(
            rollout, status, obj, observed, router, observations, taken, now
        )
        self.metrics.rollout(namespace, name, decided.status.phase, decided.status.canary_weight)
        self.metrics.check_results(namespace, name, observations.checks)
        changed = wrote or decided.acted or engine_state(decided.status) != engine_state(status)
        requeue = self._requeue(rollout, status, decided, workload)
        return TickOutcome("ok", requeue, decided.status.message, changed)

    def _validated(self, obj: Json, now: datetime) -> tuple[Rollout, list[CheckSpec]] | TickOutcome:
        """The Rollout and the checks it is judged by; an invalid outcome if the model refuses
        it."""
        try:
            rollout = Rollout.model_validate(obj)
            checks = resolve_checks(rollout, self.policies(), inline_queries=self.inline_queries)
        except ValidationError as exc:
            problems = [f"{p.path}: {p.message}" for p in problems_of("", exc)]
            return self._invalid(obj, problems, now)
        except CheckResolutionError as exc:
            return self._invalid(obj, [f"{exc.path}: {exc.message}"], now)
        return rollout, checks

    def _look_stands(
        self,
        rollout: Rollout,
        status: RolloutStatus,
        router: MeshRouter,
        drifted: bool,
        look: float,
        now: datetime,
    ) -> TickOutcome:
        """An early tick while the canary is judged: the next look stands, a look interval
        after the last tick; route objects someone else changed are put back."""
        if drifted:
            router.repair(status)
            self._routes.applied_all(rollout)
        since = seconds_since(status.last_tick_at, now)
        return TickOutcome("skipped", max(look - since, MIN_REQUEUE))

    def _requeue(
        self, rollout: Rollout, before: RolloutStatus, decided: Decided, workload: WorkloadState
    ) -> float:
        """The engine's requeue, stretched where a watch wakes the Rollout anyway; an outbox
        not told in full keeps the engine's, to retry."""
        if not decided.told:
            return decided.requeue_after
        return watched_requeue(
            decided.requeue_after,
            interval=rollout.spec.analysis.interval,
            before=before,
            status=decided.status,
            workload=workload,
            waits=self.waits,
            resync=min(self._routes.resync, self.services.resync),
        )

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
