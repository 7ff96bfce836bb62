"""Everything that happened in the world since the last tick, as the engine receives it."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from canary.model.base import CamelModel
from canary.model.gates import ApprovalPoint, GateType
from canary.model.status import CheckResult, CheckState


class WorkloadState(CamelModel):
    """What the workload shell saw: the target's revision and who is ready."""

    target_revision: str | None = Field(
        default=None, description="Revision of the target's pod template; None when it is missing."
    )
    canary_ready: bool = False
    primary_ready: bool = False
    primary_revision: str | None = Field(
        default=None, description="Revision the primary runs; None before it exists."
    )


class GateAnswer(CamelModel):
    """A webhook's answer: open (2xx) or not, with what it said."""

    name: str
    type: GateType
    open: bool
    message: str = ""


class CommandKind(StrEnum):
    APPROVE = "approve"
    PROMOTE = "promote"
    ABORT = "abort"
    RETRY = "retry"


class Command(CamelModel):
    """A person's or a pipeline's request, from the API or the CLI."""

    kind: CommandKind
    point: ApprovalPoint | None = Field(
        default=None, description="For approve: which point; the one waited on when omitted."
    )
    by: str = Field(default="unknown", description="Who asked, for the record.")


class Observations(CamelModel):
    workload: WorkloadState = Field(default_factory=WorkloadState)
    checks: list[CheckResult] = Field(
        default_factory=list, description="This tick's check verdicts from the analysis."
    )
    check_states: list[CheckState] = Field(
        default_factory=list, description="The checks' running totals after this tick."
    )
    gates: list[GateAnswer] = Field(default_factory=list, description="Answers of the webhooks.")
    commands: list[Command] = Field(default_factory=list)
    look_interval: float | None = Field(
        default=None,
        gt=0,
        description="Seconds between looks at the checks while the canary is judged, from the "
        "checks the shell resolved (canary.engine.timing.look_interval); None: "
        "spec.analysis.lookInterval, else interval.",
    )
