"""What the controller remembers of a rollout: everything lives here, so a restart resumes."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from canary.model.analysis import CheckKind
from canary.model.base import CamelModel, Weight

MAX_CHECK_RESULTS = 20


class Phase(StrEnum):
    INITIALIZING = "Initializing"
    INITIALIZED = "Initialized"
    WAITING = "Waiting"
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    PROMOTING = "Promoting"
    FINALISING = "Finalising"
    SUCCEEDED = "Succeeded"
    ROLLING_BACK = "RollingBack"
    FAILED = "Failed"


ACTIVE_PHASES = frozenset(
    {Phase.WAITING, Phase.PROGRESSING, Phase.PAUSED, Phase.PROMOTING, Phase.FINALISING}
)
"""Phases in which a canary revision is being rolled out."""

IDLE_PHASES = frozenset({Phase.INITIALIZED, Phase.SUCCEEDED, Phase.FAILED})
"""Phases that wait for a new revision."""


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


class SideEvidence(CamelModel):
    """What one side (canary or primary) showed over the window of a check."""

    requests: int | None = Field(default=None, ge=0)
    failures: int | None = Field(default=None, ge=0)
    value: float | None = Field(default=None, description="Rate in percent, latency in ms, ...")
    quantile: float | None = Field(
        default=None,
        description="A latency check's quantile (e.g. p99) over the look, ms: an estimate "
        "inside one histogram bucket, not a measured latency.",
    )
    quantile_low: float | None = Field(
        default=None,
        description="The lower bound of the bucket the quantile lies in, ms.",
    )
    quantile_high: float | None = Field(
        default=None,
        description="Its upper bound, ms; unset for the last, open bucket.",
    )


class CheckResult(CamelModel):
    """One check's verdict at one tick, with its evidence and a sentence a person understands."""

    name: str
    verdict: Verdict
    time: datetime
    weight: Weight = 0
    judge: str | None = None
    canary: SideEvidence | None = None
    primary: SideEvidence | None = None
    statistic: float | None = Field(default=None, description="The judge's statistic, if any.")
    no_data: bool = Field(default=False, description="Inconclusive because data was missing.")
    decisive: bool = Field(
        default=False,
        description="The evidence settles it (a sequential test crossed its boundary): a "
        "failure rolls back at once instead of counting towards failureLimit.",
    )
    message: str = ""
    kind: CheckKind | None = Field(default=None, description="The check's kind.")
    objective: float | None = Field(
        default=None,
        description="A latency check's objective (its max), ms: the failures counted are the "
        "requests slower than it.",
    )
    quantile_label: str | None = Field(
        default=None, description="A latency check's quantile, e.g. p99."
    )


class CheckState(CamelModel):
    """A check's running totals over the current revision's analysis, for cumulative judges.

    The analysis layer returns the new state with each verdict; the engine stores it and
    clears it whenever an analysis (re)starts, so a restarted controller resumes the test.
    """

    name: str
    ticks: int = Field(default=0, ge=0)
    canary_requests: int = Field(default=0, ge=0)
    canary_failures: int = Field(default=0, ge=0)
    primary_requests: int = Field(default=0, ge=0)
    primary_failures: int = Field(default=0, ge=0)
    judge_state: list[float] = Field(
        default_factory=list, description="The judge's own running numbers (opaque)."
    )
    window_end: datetime | None = Field(
        default=None,
        description="End of the last window whose data the check took in: an evidence-driven "
        "check's next window starts here, so a look without data is made up by the next one.",
    )
    baseline_requests: int | None = Field(
        default=None,
        ge=0,
        description="The primary's requests over spec.analysis.baseline before the analysis "
        "(its usual failure rate, asked once per analysis): None not asked yet, 0 no history.",
    )
    baseline_failures: int = Field(default=0, ge=0, description="... and its failures then.")


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(CamelModel):
    """A Kubernetes-style condition: Ready, Promoted, Analysing."""

    type: str
    status: ConditionStatus
    reason: str = ""
    message: str = ""
    last_transition_time: datetime | None = None


class PendingEvent(CamelModel):
    """An Event a tick decided (with its notification, if any)."""

    reason: str
    message: str
    warning: bool = False
    notification: str | None = Field(default=None, description="The notification event.")


class PendingWebhook(CamelModel):
    """An informative webhook (post-rollout, event) a tick decided."""

    name: str
    type: str
    reason: str = ""


class Outbox(CamelModel):
    """What a tick decided to tell (Events, notifications, informative webhooks), written with
    its status before any of it is delivered and cleared once delivered: a controller that
    dies in between delivers it after the restart (at least once; an Event's name is derived
    from ``decidedAt``, so it is recorded once)."""

    decided_at: datetime
    events: list[PendingEvent] = Field(default_factory=list)
    webhooks: list[PendingWebhook] = Field(default_factory=list)
    notified: bool = Field(default=False, description="The notifications went out.")


class RolloutStatus(CamelModel):
    phase: Phase = Phase.INITIALIZING
    observed_generation: int | None = None
    canary_weight: Weight = 0
    step_index: int = Field(default=0, ge=0, description="Index in the weight schedule.")
    iteration: int = Field(default=0, ge=0, description="Passing A/B or blue/green iterations.")
    failed_checks: int = Field(default=0, ge=0, description="Failed ticks of this revision.")
    inconclusive_since: datetime | None = None
    canary_revision: str | None = Field(default=None, description="Revision being judged.")
    stable_revision: str | None = Field(default=None, description="Last promoted revision.")
    pre_rollout_passed: bool = False
    waiting_for: str | None = Field(default=None, description="The gate the rollout waits on.")
    approvals: list[str] = Field(
        default_factory=list, description="Manual approvals given for the current wait."
    )
    promote_requested: bool = False
    checks: list[CheckResult] = Field(default_factory=list, description="Latest check results.")
    analysis: list[CheckState] = Field(
        default_factory=list, description="Running totals per check for this revision."
    )
    conditions: list[Condition] = Field(default_factory=list)
    message: str = ""
    started_at: datetime | None = None
    analysis_started_at: datetime | None = Field(
        default=None, description="When the canary took its first analysis traffic."
    )
    step_started_at: datetime | None = Field(
        default=None,
        description="When the current step began: the canary's weight was set, or the "
        "current A/B or blue/green iteration began.",
    )
    last_tick_at: datetime | None = None
    last_transition_time: datetime | None = None
    applied_commands: list[str] = Field(
        default_factory=list,
        max_length=64,
        description="The uids of the last RolloutCommands applied, written with their effect: a "
        "command seen again after a restart is not applied twice.",
    )
    outbox: Outbox | None = Field(
        default=None, description="Events and webhooks decided, not yet known delivered."
    )
