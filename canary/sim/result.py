"""What a simulated rollout produced: the outcome, the totals and a timeline tick by tick."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from canary.model.analysis import CheckKind
from canary.model.base import CamelModel
from canary.model.status import Phase, Verdict


class CheckOutcome(CamelModel):
    """One check's verdict at one tick, with what each side showed in the window: requests,
    failures (errors, or requests slower than the objective) and the value (error rate in
    percent, or the latency quantile in ms). The judge's own view is in its message."""

    name: str
    kind: CheckKind | None = None
    judge: str | None = None
    verdict: Verdict
    canary_requests: int | None = None
    canary_failures: int | None = None
    canary_value: float | None = Field(
        default=None, description="Error rate in percent, or the latency quantile in ms."
    )
    primary_requests: int | None = None
    primary_failures: int | None = None
    primary_value: float | None = None
    statistic: float | None = Field(default=None, description="The judge's statistic.")
    message: str = ""


class TimelineEntry(CamelModel):
    """One tick: where the rollout stood after it (phase, canary weight) and why."""

    time: float = Field(description="Virtual seconds since the new revision was detected.")
    phase: Phase
    weight: int = Field(description="Canary weight after the tick.")
    checks: list[CheckOutcome] = Field(default_factory=list)
    message: str = ""


class CheckSummary(CamelModel):
    """A check the rollout was judged by."""

    name: str
    kind: CheckKind | None = None
    judge: str
    max: float | None = None
    min: float | None = None


class SimulationResult(CamelModel):
    scenario: str
    seed: int
    phase: Phase = Field(description="The rollout's phase at the end.")
    message: str = ""
    checks: list[CheckSummary] = Field(default_factory=list)
    canary_requests: int = Field(description="Requests the canary served in total.")
    canary_errors: int = Field(description="Failed requests among them.")
    primary_requests: int = 0
    primary_errors: int = 0
    duration_seconds: float = Field(
        description="Virtual seconds from detecting the new revision to the end."
    )
    final_weight: int = Field(description="The canary weight of the route at the end.")
    primary_revision: str | None = None
    stable_revision: str | None = None
    timed_out: bool = False
    reason: str = Field(
        default="", description="The status message when the rollout was decided (or paused)."
    )
    notes: list[str] = Field(default_factory=list)
    timeline: list[TimelineEntry] = Field(default_factory=list)

    def to_json_data(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)
