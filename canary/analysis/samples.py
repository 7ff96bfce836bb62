"""What a check sees at one tick: counts (and a value) for the canary and the primary."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from canary.model.analysis import DEFAULT_ALPHA, DEFAULT_BETA, DEFAULT_DETECT


class PodCounts(BaseModel):
    """One pod's share of a side's window (from a pod label on the counter series)."""

    model_config = ConfigDict(frozen=True)

    name: str
    requests: int = Field(ge=0)
    failures: int = Field(ge=0)


class SideSample(BaseModel):
    """One side's window: requests, failed requests (errors, or requests slower than the
    objective) and, for display or custom checks, a value (rate %, latency ms, ...)."""

    model_config = ConfigDict(frozen=True)

    requests: int = Field(ge=0)
    failures: int = Field(ge=0)
    value: float | None = None
    quantile_low: float | None = Field(
        default=None,
        description="A quantile value is an estimate inside a histogram bucket: its lower bound.",
    )
    quantile_high: float | None = Field(
        default=None, description="The bucket's upper bound (inf for the last, open bucket)."
    )
    pods: tuple[PodCounts, ...] = Field(
        default=(),
        description="The same counts per pod, when the series carry a pod label (empty: not "
        "known). The sequential judge bounds what few canary pods can hide with them.",
    )

    @property
    def failure_percent(self) -> float | None:
        return 100.0 * self.failures / self.requests if self.requests else None


class WindowSample(BaseModel):
    """A check's data for one tick. A side that is None had no data: never read as zero."""

    model_config = ConfigDict(frozen=True)

    canary: SideSample | None = None
    primary: SideSample | None = None
    baseline: SideSample | None = Field(
        default=None,
        description="The primary's counts over a longer window before the analysis started "
        "(its usual failure rate; None: no history). The sequential judge judges a compared "
        "check's objective at this rate, not at the moment's (docs/analysis.md, assumption 3).",
    )


class JudgeContext(BaseModel):
    """What a judge may know of the rollout beyond the data: the step, and the timing (all in
    seconds; the judge never reads a clock)."""

    model_config = ConfigDict(frozen=True)

    weight: int = Field(ge=0, le=100, description="Canary weight during the window.")
    min_requests: int = Field(ge=0, description="Canary requests a window needs to be judged.")
    final_step: bool = Field(default=False, description="A pass now would promote.")
    look_interval: float = Field(
        default=60.0, gt=0, description="Seconds between looks at the checks (lookInterval)."
    )
    interval: float = Field(default=60.0, gt=0, description="The analysis interval.")
    inconclusive_deadline: float = Field(
        default=600.0, gt=0, description="How long the checks may stay inconclusive."
    )
    step_seconds: float = Field(
        default=0.0, ge=0, description="Seconds the canary has been held at this weight."
    )
    analysis_seconds: float = Field(
        default=0.0, ge=0, description="Seconds since the canary took its first analysis traffic."
    )
    detect: float = Field(
        default=DEFAULT_DETECT, gt=1, description="The ratio a promotion must rule out."
    )
    alpha: float = Field(default=DEFAULT_ALPHA, gt=0, lt=1, description="False rollback, per test.")
    beta: float = Field(default=DEFAULT_BETA, gt=0, lt=1, description="Promotion of a bad canary.")
