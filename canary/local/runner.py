"""The local shell: the engine in a loop with real time, HAProxy as the router, fixed backends,
Prometheus for metrics. Its memory is a state file, so an interrupted run resumes; Ctrl-C
leaves all traffic on the primary."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from canary.analysis.analyse import analyse
from canary.analysis.checks import resolve_checks
from canary.analysis.provider import MetricsProvider, Targets
from canary.engine import CallWebhook, Route, SetRoute, StepResult, plan, step
from canary.engine.observations import GateAnswer, Observations
from canary.engine.routes import STABLE
from canary.engine.timing import analysis_window, look_interval
from canary.gates.api.filestore import CommandInbox, publish_rollout
from canary.gates.webhooks import WebhookCaller
from canary.local.state import LocalRunError, LocalState, save_state
from canary.local.workload import FixedBackends
from canary.model.rollout import Rollout
from canary.model.status import IDLE_PHASES, CheckResult, CheckState, RolloutStatus
from canary.notify import Notifier
from canary.traffic.haproxy.router import HaproxyRouter

TickCallback = Callable[[StepResult, float], None]


class LocalRunner:
    def __init__(
        self,
        rollout: Rollout,
        state_path: Path,
        state: LocalState,
        router: HaproxyRouter,
        workload: FixedBackends,
        provider: MetricsProvider,
        *,
        webhooks: WebhookCaller | None = None,
        notifier: Notifier | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
        log: Callable[[str], None] = print,
    ) -> None:
        self.rollout = rollout
        self.state_path = state_path
        self.state = state
        self.router = router
        self.workload = workload
        self.provider = provider
        self.checks = resolve_checks(rollout)
        self.look_interval = look_interval(rollout, self.checks)
        settings = rollout.spec.provider.haproxy
        assert settings is not None
        self.targets = Targets(
            namespace=rollout.metadata.namespace or "default",
            target=settings.backend,
            canary=settings.canary_server,
            primary=settings.primary_server,
        )
        self.webhooks = webhooks
        self.notifier = notifier
        # Commands from `canary approve/promote/abort/retry` arrive through the API's inbox
        # beside the state file; the rollout is published there for `canary get` and `wait`.
        self.inbox = CommandInbox.beside(state_path)
        publish_rollout(state_path, rollout, workload.revision)
        if rollout.spec.gates.webhooks and webhooks is None:
            raise LocalRunError(
                "spec.gates.webhooks: this Rollout has webhooks but the runner was given no "
                "webhook caller"
            )
        self.clock = clock
        self.sleep = sleep
        self.log = log

    def tick(self) -> StepResult:
        now = self.clock()
        status = self.state.status
        self._repair_drift()
        workload = self.workload.observe()
        needs = plan(self.rollout, status, workload)
        checks: list[CheckResult] = []
        states: list[CheckState] = []
        if needs.analyse:
            checks, states = analyse(
                self.rollout,
                status,
                self.checks,
                self.provider,
                self.targets,
                analysis_window(self.rollout, status, now),
                now,
            )
        answers: list[GateAnswer] = []
        if needs.webhooks and self.webhooks is not None:
            answers = self.webhooks.ask(self.rollout, status, needs.webhooks, now)
        commands = self.inbox.take()
        obs = Observations(
            workload=workload,
            checks=checks,
            check_states=states,
            gates=answers,
            commands=commands,
            look_interval=self.look_interval,
        )
        result = step(self.rollout, status, obs, now)
        for action in result.actions:
            self._apply(action, result.status, now)
        self.state.status = result.status
        save_state(self.state_path, self.state)
        if self.notifier is not None and result.events:
            self.notifier.notify(self.rollout, result.status, result.events, now)
        return result

    def run(self, on_tick: TickCallback | None = None, max_ticks: int | None = None) -> LocalState:
        """Tick until the rollout of the new revision ends (Succeeded or Failed)."""
        started = self.clock()
        ticks = 0
        try:
            while True:
                result = self.tick()
                ticks += 1
                if on_tick is not None:
                    on_tick(result, (self.clock() - started).total_seconds())
                if self._finished(result.status) or (max_ticks is not None and ticks >= max_ticks):
                    return self.state
                self.sleep(result.requeue_after)
        except KeyboardInterrupt:
            self.router.apply(STABLE)
            self.state.route = STABLE
            save_state(self.state_path, self.state)
            self.log("interrupted: all traffic is on the primary; run again to resume")
            raise

    def _finished(self, status: RolloutStatus) -> bool:
        return status.phase in IDLE_PHASES and status.canary_revision == self.workload.revision

    def _apply(self, action: object, status: RolloutStatus, now: datetime) -> None:
        if isinstance(action, SetRoute):
            self.router.apply(action.route)
            self.state.route = action.route
        elif isinstance(action, CallWebhook):
            if self.webhooks is not None:
                delivery = self.webhooks.fire(action, self.rollout, status, now)
                self.log(f"webhook {action.name} ({action.type.value}): {delivery.message}")
        else:
            done = self.workload.apply(action)  # type: ignore[arg-type]
            if done:
                self.log(done)

    def _repair_drift(self) -> None:
        """HAProxy must hold the route last applied (weights and A/B maps exactly) and its
        primary server must point where the state says; whatever someone changed, added or
        removed by hand is put back."""
        repaired = self.workload.repair()
        if repaired:
            self.log(repaired)
        route = self._held_route()
        drift = self.router.drift(route)
        if drift:
            self.log(f"HAProxy drifted from the last route ({'; '.join(drift)}); putting it back")
        if drift or route != self.state.route:
            self.router.apply(route)
            self.state.route = route

    def _held_route(self) -> Route:
        """The route last applied, with the spec's A/B rules if they changed since (a run
        resumed with an edited Rollout): the route a rule removed from the spec no longer
        matches."""
        route = self.state.route
        if route.match and tuple(route.match) != self.router.rules:
            return route.model_copy(update={"match": self.router.rules})
        return route
