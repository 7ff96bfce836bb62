"""What is judged at every tick, and by which rule."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BeforeValidator, Field, model_validator

from canary.model.base import CamelModel, Name, ObjectName
from canary.model.duration import Duration
from canary.model.limits import MAX_CHECKS, MAX_COUNT, MAX_POLICIES, Query

DEFAULT_DETECT = 2.0
"""spec.analysis.detect: the regression the sequential judge must not promote."""
DEFAULT_ALPHA = 0.05
"""spec.analysis.alpha: chance of a false rollback per fail test."""
DEFAULT_BETA = 0.05
"""spec.analysis.beta: chance of promoting a canary ``detect`` times worse."""
MAX_BASELINE_SECONDS = 7 * 86400.0
"""spec.analysis.baseline at most a week (one query over it per check and analysis)."""


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
    requests_query: Query | None = Field(
        default=None, description="PromQL: requests per side over the interval (counts)."
    )
    failures_query: Query | None = Field(
        default=None,
        description="PromQL: failed requests per side (errors, or requests slower than 'max').",
    )
    quantile_query: Query | None = Field(
        default=None, description="PromQL: the latency quantile per side, for display."
    )
    query: Query | None = Field(
        default=None, description="PromQL for a custom check: a value per side."
    )
    side_label: str | None = Field(
        default=None,
        pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$",
        description="Exact counts: the label whose value names each series' side (the canary's "
        "or the primary's workload). requestsQuery and failuresQuery then select the counter "
        "series as they are (no increase(), no sum) and canary counts each series' increase "
        "between the look's boundaries itself. Without it the queries aggregate with "
        "increase() by one label (Prometheus' extrapolated estimate). See docs/policies.md.",
    )
    max: float | None = Field(
        default=None,
        allow_inf_nan=False,
        description="Upper bound on the canary: percent for error-rate, milliseconds for latency "
        "(the latency objective), the query's unit for custom.",
    )
    min: float | None = Field(
        default=None, allow_inf_nan=False, description="Lower bound on the canary's value."
    )
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
    weight: float | None = Field(
        default=None, gt=0, le=1000, description="Share in a weighted score."
    )
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
        if self.kind is CheckKind.CUSTOM and self.side_label:
            raise ValueError(
                "sideLabel belongs to error-rate and latency checks (exact counts); a custom "
                "check's query gives one value per side"
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


class UndecidedOutcome(StrEnum):
    """What happens when the analysis reaches its deadline without a decision."""

    ROLLBACK = "rollback"
    PAUSE = "pause"
    PROMOTE = "promote"


def _ratio(value: object) -> object:
    """'2x', '2.5X' or a number: the regression the judge must be able to catch."""
    if isinstance(value, str):
        text = value.strip().lower().removesuffix("x")
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"detect must be a ratio such as '2x' or 2, not {value!r}") from None
    return value


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
        le=MAX_COUNT,
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
        max_length=MAX_POLICIES,
        description="Policies whose checks apply; the provider's built-in policy when empty.",
    )
    checks: list[CheckSpec] = Field(
        default_factory=list,
        max_length=MAX_CHECKS,
        description="Inline checks, or overrides of policy checks by name.",
    )
    detect: Annotated[float, BeforeValidator(_ratio)] = Field(
        default=DEFAULT_DETECT,
        gt=1,
        le=100,
        description="The regression that must not be promoted: a canary failing this many times "
        "as often as its primary (and over its objective) is promoted with probability at most "
        "beta. '2x' or 2.",
    )
    alpha: float = Field(
        default=DEFAULT_ALPHA,
        gt=0,
        le=0.5,
        description="Sequential judge: chance of rolling back a canary that is no worse than its "
        "primary (by margin) nor over its objective, per test, over the whole analysis.",
    )
    beta: float = Field(
        default=DEFAULT_BETA,
        gt=0,
        le=0.5,
        description="Sequential judge: chance of promoting a canary 'detect' times worse than its "
        "primary and over its objective, over the whole analysis.",
    )
    baseline: Duration = Field(
        default=86400.0,
        description="Sequential judge: the window before the analysis over which the primary's "
        "usual failure rate is read (one query per error-rate check per analysis, at its start). "
        "A compared check's objective is judged at that rate, not the moment's: in a trough of "
        "a daily cycle a canary at its objective looks within it. 24h spans a daily cycle; 0s: "
        "none (the objective is then judged at the rate during the analysis, unchecked).",
    )
    on_undecided: UndecidedOutcome = Field(
        default=UndecidedOutcome.ROLLBACK,
        description="What happens when the checks are still undecided at inconclusiveDeadline: "
        "rollback (default), pause for a person (canary promote / canary abort), or promote "
        "(never when a check has no data).",
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
        if not 0 <= self.baseline <= MAX_BASELINE_SECONDS:
            raise ValueError(
                "baseline must be between 0s and 168h (a week): the primary's usual failure "
                "rate is read over that window before the analysis (24h spans a daily cycle)"
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
