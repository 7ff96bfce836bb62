"""The local shell: the engine in a loop with real time, HAProxy as the router, fixed backends,
Prometheus for metrics. Its memory is a state file, so an interrupted run resumes; Ctrl-C
leaves all traffic on the primary."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from pydantic import Field, ValidationError

from canary.analysis.analyse import analyse
from canary.analysis.checks import resolve_checks
from canary.analysis.provider import MetricsProvider, Targets
from canary.engine import CallWebhook, Route, SetRoute, StepResult, plan, step
from canary.engine.observations import GateAnswer, Observations
from canary.engine.routes import STABLE
from canary.gates.webhooks import WebhookCaller
from canary.local.workload import FixedBackends, WorkloadRecord
from canary.model.base import CamelModel
from canary.model.rollout import Rollout
from canary.model.status import IDLE_PHASES, CheckResult, CheckState, Phase, RolloutStatus
from canary.notify import Notifier
from canary.traffic.router import Router

STATE_FORMAT = 1


class LocalRunError(Exception):
    """Local mode cannot run this Rollout or state file; the message says what to change."""


class LocalState(CamelModel):
    """Everything local mode remembers between runs."""

    format: int = STATE_FORMAT
    rollout: str = Field(description="namespace/name of the Rollout this state belongs to.")
    status: RolloutStatus
    workload: WorkloadRecord = Field(default_factory=WorkloadRecord)
    route: Route = Field(default_factory=Route, description="The route last applied.")


def load_state(path: Path, rollout: Rollout, stable: str) -> LocalState:
    """The state file's contents, or a fresh state whose primary already runs ``stable``."""
    if not path.exists():
        status = RolloutStatus(phase=Phase.INITIALIZED, stable_revision=stable)
        return LocalState(
            rollout=rollout.key,
            status=status,
            workload=WorkloadRecord(primary_revision=stable),
        )
    try:
        state = LocalState.model_validate_json(path.read_text())
    except (OSError, ValidationError, json.JSONDecodeError) as exc:
        raise LocalRunError(
            f"state file {path} is unreadable ({exc}); move it away to start afresh"
        ) from None
    if state.rollout != rollout.key:
        raise LocalRunError(
            f"state file {path} belongs to Rollout {state.rollout}, not {rollout.key}: "
            "give another --state file"
        )
    return state


def save_state(path: Path, state: LocalState) -> None:
    """Write atomically: a crash mid-write leaves the previous state, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(state.model_dump_json(by_alias=True, indent=2))
    os.replace(tmp, path)


TickCallback = Callable[[StepResult, float], None]


class LocalRunner:
    def __init__(
        self,
        rollout: Rollout,
        state_path: Path,
        state: LocalState,
        router: Router,
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
                self._window_seconds(status, now),
                now,
            )
        answers: list[GateAnswer] = []
        if needs.webhooks and self.webhooks is not None:
            answers = self.webhooks.ask(self.rollout, status, needs.webhooks, now)
        obs = Observations(workload=workload, checks=checks, check_states=states, gates=answers)
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
        """HAProxy must hold the route last applied; if someone changed it, put it back."""
        if self.router.current() != self.state.route:
            self.log("HAProxy drifted from the last route; applying it again")
            self.router.apply(self.state.route)

    def _window_seconds(self, status: RolloutStatus, now: datetime) -> float:
        interval = self.rollout.spec.analysis.interval
        if status.last_tick_at is None:
            return interval
        since = (now - status.last_tick_at).total_seconds()
        return min(max(since, 1.0), 4 * interval)
