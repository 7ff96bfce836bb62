"""What crosses the API's boundary: the rollout views, requests, answers and audit records.

Every model is camelCase on the wire (like the Rollout resource) and refuses unknown fields.
Nothing here imports the web framework, so the CLI can parse answers with the same models.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from canary.engine.observations import Command, CommandKind
from canary.model.gates import ApprovalPoint
from canary.model.rollout import Rollout
from canary.model.status import CheckResult, Phase, RolloutStatus
from canary.model.strategy import StrategyKind


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class SpecSummary(ApiModel):
    """The parts of a Rollout's spec an operator needs beside its status."""

    target: str = Field(description="The Deployment rolled out.")
    provider: str
    strategy: StrategyKind
    weights: list[int] = Field(
        default_factory=list, description="Canary strategy: the weight of each step."
    )
    iterations: int | None = Field(default=None, description="abTest or blueGreen iterations.")
    interval_seconds: float = Field(description="Time between ticks.")
    failure_limit: int
    approvals: list[ApprovalPoint] = Field(
        default_factory=list, description="Points that wait for `canary approve`."
    )
    suspend: bool = False

    @classmethod
    def of(cls, rollout: Rollout) -> SpecSummary:
        spec = rollout.spec
        strategy = spec.strategy
        iterations = None
        if strategy.ab_test is not None:
            iterations = strategy.ab_test.iterations
        elif strategy.blue_green is not None:
            iterations = strategy.blue_green.iterations
        weights = (
            strategy.canary_or_default().schedule() if strategy.kind is StrategyKind.CANARY else []
        )
        return cls(
            target=spec.target_ref.name,
            provider=spec.provider.name.value,
            strategy=strategy.kind,
            weights=weights,
            iterations=iterations,
            interval_seconds=spec.analysis.interval,
            failure_limit=spec.analysis.failure_limit,
            approvals=list(spec.gates.approvals),
            suspend=spec.suspend,
        )


class RolloutView(ApiModel):
    """One rollout as a store sees it: who it is, what its spec says, where it stands."""

    namespace: str
    name: str
    target_revision: str | None = Field(
        default=None, description="The revision the target runs now, when the store knows it."
    )
    spec: SpecSummary | None = Field(
        default=None, description="None when the store has only the status (local mode)."
    )
    status: RolloutStatus
    pending_commands: list[Command] = Field(
        default_factory=list, description="Commands sent but not yet taken by a tick."
    )

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def latest_checks(self) -> list[CheckResult]:
        """Each check's latest result, in the order the checks first appear."""
        latest: dict[str, CheckResult] = {}
        for result in self.status.checks:
            latest[result.name] = result
        return list(latest.values())


class RolloutSummary(ApiModel):
    """A line of `GET /api/v1/rollouts`."""

    namespace: str
    name: str
    phase: Phase
    canary_weight: int
    step_index: int
    iteration: int
    waiting_for: str | None = None
    canary_revision: str | None = None
    stable_revision: str | None = None
    message: str = ""
    last_tick_at: datetime | None = None

    @classmethod
    def of(cls, view: RolloutView) -> RolloutSummary:
        status = view.status
        return cls(
            namespace=view.namespace,
            name=view.name,
            phase=status.phase,
            canary_weight=status.canary_weight,
            step_index=status.step_index,
            iteration=status.iteration,
            waiting_for=status.waiting_for,
            canary_revision=status.canary_revision,
            stable_revision=status.stable_revision,
            message=status.message,
            last_tick_at=status.last_tick_at,
        )


class RolloutList(ApiModel):
    items: list[RolloutSummary]


class ApproveRequest(ApiModel):
    point: ApprovalPoint | None = Field(
        default=None, description="The point approved; the one the rollout waits on if omitted."
    )


class AuditOutcome(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class AuditEvent(ApiModel):
    """A write someone asked for, with who asked: the shells turn it into a Kubernetes Event."""

    time: datetime
    namespace: str
    name: str
    action: CommandKind
    point: ApprovalPoint | None = None
    by: str = Field(description="The name of the token that asked.")
    outcome: AuditOutcome
    phase: Phase | None = Field(default=None, description="The rollout's phase when asked.")
    message: str


class CommandAccepted(ApiModel):
    """The answer to a write: the command is queued for the rollout's next tick."""

    namespace: str
    name: str
    command: Command
    audit: AuditEvent
    message: str


class WaitOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMEOUT = "timeout"


class WaitResult(ApiModel):
    """The answer of a long-poll: how the rollout ended, or that the timeout passed first."""

    outcome: WaitOutcome
    done: bool = Field(description="True when the rollout ended (succeeded or failed).")
    revision: str | None = Field(default=None, description="The revision waited for.")
    reason: str = Field(description="One sentence: why it ended, or where it stands.")
    waited_seconds: float
    rollout: RolloutView


class ApiError(ApiModel):
    """Every error answer: a message naming the problem and a short machine-readable reason."""

    reason: str = Field(description="Unauthorized, Forbidden, NotFound, Conflict, Invalid, ...")
    message: str


class Health(ApiModel):
    status: str = "ok"
