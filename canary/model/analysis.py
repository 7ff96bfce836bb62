"""What is judged at every tick, and by which rule."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, model_validator

from canary.model.base import CamelModel, Name, ObjectName
from canary.model.duration import Duration


class JudgeName(StrEnum):
    """The rule that turns samples into a verdict."""

    THRESHOLD = "threshold"
    MANN_WHITNEY = "mann-whitney"
    SEQUENTIAL = "sequential"


class CheckKind(StrEnum):
    """error-rate and latency are judged from counts; custom from one value per side."""

    ERROR_RATE = "error-rate"
    LATENCY = "latency"
    CUSTOM = "custom"


class CheckSpec(CamelModel):
    """One SLO. In a policy it is complete; inline in a Rollout it may only override a
    policy check of the same name (e.g. a stricter ``max``)."""

    name: Name
    kind: CheckKind | None = None
    requests_query: str | None = Field(
        default=None, description="PromQL: requests per side over the interval (counts)."
    )
    failures_query: str | None = Field(
        default=None,
        description="PromQL: failed requests per side (errors, or requests slower than 'max').",
    )
    quantile_query: str | None = Field(
        default=None, description="PromQL: the latency quantile per side, for display."
    )
    query: str | None = Field(
        default=None, description="PromQL for a custom check: a value per side."
    )
    max: float | None = Field(
        default=None,
        description="Upper bound on the canary: percent for error-rate, milliseconds for latency "
        "(the latency objective), the query's unit for custom.",
    )
    min: float | None = Field(default=None, description="Lower bound on the canary's value.")
    compare_to_primary: bool | None = Field(
        default=None, description="Judge the canary against the primary on the same window."
    )
    margin: float | None = Field(
        default=None,
        ge=0,
        le=10,
        description="Tolerance against the primary: the canary may be (1 + margin) times worse.",
    )
    judge: JudgeName | None = Field(default=None, description="Overrides the rollout's judge.")
    weight: float | None = Field(default=None, gt=0, description="Share in a weighted score.")
    critical: bool | None = Field(default=None, description="A failure fails the whole tick.")

    @model_validator(mode="after")
    def _bounds_ordered(self) -> CheckSpec:
        if self.max is not None and self.min is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}: swap them")
        if self.kind is CheckKind.CUSTOM and (self.requests_query or self.failures_query):
            raise ValueError(
                "a custom check takes 'query'; requestsQuery/failuresQuery belong to "
                "error-rate and latency checks"
            )
        if self.kind in (CheckKind.ERROR_RATE, CheckKind.LATENCY) and self.query:
            raise ValueError(
                f"a {self.kind.value} check is judged from counts: give requestsQuery and "
                "failuresQuery instead of 'query', or make it kind 'custom'"
            )
        return self

    def is_complete(self) -> bool:
        """A check that can run on its own (as a policy check must)."""
        if self.kind is CheckKind.CUSTOM:
            return self.query is not None
        if self.kind in (CheckKind.ERROR_RATE, CheckKind.LATENCY):
            return self.requests_query is not None and self.failures_query is not None
        return False


class PolicyKind(StrEnum):
    ANALYSIS_POLICY = "AnalysisPolicy"
    CLUSTER_ANALYSIS_POLICY = "ClusterAnalysisPolicy"


class PolicyRef(CamelModel):
    name: ObjectName
    kind: PolicyKind = PolicyKind.CLUSTER_ANALYSIS_POLICY


class AnalysisSpec(CamelModel):
    """How often the canary is judged, by which rule, and how much failure is tolerated."""

    interval: Duration = Field(
        default=60.0,
        description="Time between ticks: the window of judges that take one sample per window "
        "(threshold, mann-whitney), and the longest a look at the checks may wait.",
    )
    look_interval: Duration | None = Field(
        default=None,
        description="How often the checks are evaluated while the canary is judged, at most "
        "interval; each look queries the time since the previous one, and a passing look steps "
        "the weight. Default: min(interval, 20s) when every check is judged by the sequential "
        "judge from counts (error-rate, latency); otherwise interval. Prometheus should scrape "
        "at least twice per lookInterval (a look without data is made up by the next one).",
    )
    failure_limit: int = Field(default=3, ge=1, le=100, description="Failed ticks before rollback.")
    min_requests: int = Field(
        default=20,
        ge=0,
        description="The fewest canary requests a verdict rests on: sequential judge, in the "
        "whole analysis before a quiet last step promotes; threshold and mann-whitney, in a "
        "window (fewer: no verdict from that window).",
    )
    judge: JudgeName = JudgeName.SEQUENTIAL
    inconclusive_deadline: Duration = Field(
        default=600.0,
        description="How long checks may stay inconclusive (no data) before the rollout fails.",
    )
    policies: list[PolicyRef] = Field(
        default_factory=list,
        description="Policies whose checks apply; the provider's built-in policy when empty.",
    )
    checks: list[CheckSpec] = Field(
        default_factory=list, description="Inline checks, or overrides of policy checks by name."
    )

    @model_validator(mode="after")
    def _sane_timing(self) -> AnalysisSpec:
        if self.interval < 1:
            raise ValueError("interval must be at least 1s")
        if self.look_interval is not None and not 1 <= self.look_interval <= self.interval:
            raise ValueError(
                "lookInterval must be at least 1s and at most interval: the checks are looked "
                "at every lookInterval, and at least once per interval"
            )
        if self.inconclusive_deadline < self.interval:
            raise ValueError(
                "inconclusiveDeadline is shorter than interval: the rollout would fail before a "
                "single tick; make it at least one interval"
            )
        names = [c.name for c in self.checks]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"check names must be unique: {', '.join(duplicated)} repeated")
        return self
