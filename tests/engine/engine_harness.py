"""Helpers for driving the pure engine tick by tick in tests (a fake world applies actions)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from canary.engine import (
    Command,
    GateAnswer,
    InitializePrimary,
    Observations,
    PromoteCanary,
    RestorePrimary,
    Route,
    ScaleCanaryDown,
    ScaleCanaryUp,
    SetRoute,
    StepResult,
    WorkloadState,
    plan,
    step,
)
from canary.model import CheckResult, Phase, Rollout, RolloutStatus, Verdict

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def rollout(**spec: Any) -> Rollout:
    """A valid istio Rollout with ``spec`` fields merged over a minimal one."""
    base: dict[str, Any] = {
        "targetRef": {"name": "podinfo"},
        "service": {"port": 9898},
        "provider": {"name": "istio"},
        "strategy": {"canary": {"weights": [5, 10, 20, 50]}},
        "analysis": {"interval": "1m", "failureLimit": 2, "inconclusiveDeadline": "5m"},
    }
    base.update(spec)
    return Rollout.model_validate(
        {"metadata": {"name": "podinfo", "namespace": "test", "generation": 1}, "spec": base}
    )


def check(verdict: Verdict, name: str = "error-rate") -> CheckResult:
    return CheckResult(name=name, verdict=verdict, time=T0, message=f"{name} {verdict.value}")


PASS = [check(Verdict.PASS)]
FAIL = [check(Verdict.FAIL)]
INCONCLUSIVE = [check(Verdict.INCONCLUSIVE)]


@dataclass
class World:
    """A fake cluster that applies the engine's actions the way the shells would."""

    ro: Rollout
    target: str | None = "rev-1"
    primary: str | None = None
    canary_up: bool = False
    canary_ready_after_up: bool = True
    primary_ready: bool = True
    route: Route = field(default_factory=Route)
    status: RolloutStatus | None = None
    now: datetime = T0
    look_interval: float | None = None  # what the shell says (Observations.look_interval)
    history: list[StepResult] = field(default_factory=list)

    def workload(self) -> WorkloadState:
        return WorkloadState(
            target_revision=self.target,
            canary_ready=self.canary_up and self.canary_ready_after_up,
            primary_ready=self.primary is not None and self.primary_ready,
            primary_revision=self.primary,
        )

    def tick(
        self,
        checks: list[CheckResult] | None = None,
        gates: list[GateAnswer] | None = None,
        commands: list[Command] | None = None,
        advance: float | None = None,
    ) -> StepResult:
        """One tick: observations in, actions applied to the world, time moved on."""
        obs = Observations(
            workload=self.workload(),
            checks=checks or [],
            gates=gates or [],
            commands=commands or [],
            look_interval=self.look_interval,
        )
        result = step(self.ro, self.status, obs, self.now)
        for action in result.actions:
            self.apply(action)
        self.status = result.status
        self.history.append(result)
        self.now += timedelta(seconds=advance if advance is not None else result.requeue_after)
        return result

    def apply(self, action: object) -> None:
        if isinstance(action, InitializePrimary):
            self.primary = action.revision
        elif isinstance(action, ScaleCanaryUp):
            self.canary_up = True
        elif isinstance(action, ScaleCanaryDown):
            self.canary_up = False
        elif isinstance(action, SetRoute):
            self.route = action.route
        elif isinstance(action, PromoteCanary | RestorePrimary):
            self.primary = action.revision

    def needs(self) -> list[str]:
        status = self.status or RolloutStatus()
        return [w.name for w in plan(self.ro, status, self.workload()).webhooks]

    @property
    def phase(self) -> Phase:
        assert self.status is not None
        return self.status.phase

    def initialized(self) -> World:
        """Run until the primary serves rev-1."""
        self.tick()
        self.tick()
        assert self.phase is Phase.INITIALIZED
        return self

    def progressing(self, revision: str = "rev-2") -> World:
        """A new revision, its canary ready and routed at the first step."""
        self.target = revision
        self.tick()
        assert self.phase is Phase.PROGRESSING
        self.tick()  # canary ready: pre-rollout passes, first route set
        return self


def answer(name: str, gate_type: str, open_: bool, message: str = "") -> GateAnswer:
    return GateAnswer.model_validate(
        {"name": name, "type": gate_type, "open": open_, "message": message}
    )


def hook(name: str, gate_type: str) -> dict[str, str]:
    return {"name": name, "type": gate_type, "url": f"http://127.0.0.1:1/{name}"}
