"""Replay a Rollout's checks over a past period of a real Prometheus, look by look.

Each look runs `canary.analysis.analyse.analyse` — the code the controller runs at every look:
the same policies, the same provider (exact counts), the same judges with their running state —
at ``start + k * look_interval``, over the time since the previous look. What each judge said
at each look is kept, and the decision the rollout's rules draw from them: **fail** at the
first look where a check fails decisively (a sequential test crossed its boundary) or where
``failureLimit`` looks have failed; else **pass** at the first look where every check passes
(the rollout would step forward); else **inconclusive**. The canary weight is unknown in
history: the judges are told the rollout's first step weight (or ``weight``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field

from canary.analysis.analyse import analyse
from canary.analysis.checks import resolve_checks
from canary.analysis.policies import AnyPolicy
from canary.analysis.provider import MetricsProvider, Targets, inner_baseline
from canary.analysis.samples import SideSample, WindowSample
from canary.model.analysis import CheckKind, CheckSpec
from canary.model.base import CamelModel
from canary.model.rollout import Rollout
from canary.model.status import CheckResult, Phase, RolloutStatus, Verdict
from canary.model.strategy import StrategyKind

MAX_LOOKS = 10_000
"""A backtest reads one query per check per look: a longer period needs a longer interval."""


class BacktestError(ValueError):
    """A period or look interval that cannot be replayed; the message names the option."""


class SideCounts(CamelModel):
    """What one side served in the look: requests, and failures (errors, or slow requests)."""

    requests: int | None = None
    failures: int | None = None


class LookCheck(CamelModel):
    name: str
    kind: CheckKind | None = None
    canary: SideCounts | None = None
    primary: SideCounts | None = None
    verdict: Verdict
    judge: str | None = None
    decisive: bool = False
    values: dict[str, float] = Field(
        default_factory=dict,
        description="The value each side showed: the p99 in ms for a latency check, an "
        "estimate inside a histogram bucket (the judged number is the slow count).",
    )
    buckets: dict[str, tuple[float, float]] = Field(
        default_factory=dict,
        description="The bucket (low, high] in ms the p99 lies in, by side, where known.",
    )
    message: str = ""


class Look(CamelModel):
    start: datetime
    end: datetime
    checks: list[LookCheck] = Field(default_factory=list)


class Decision(CamelModel):
    verdict: Verdict
    at: datetime | None = Field(default=None, description="The end of the deciding look.")
    look: int | None = Field(default=None, description="The deciding look's index (from 0).")
    reason: str


class BacktestResult(CamelModel):
    rollout: str
    start: datetime
    end: datetime
    look_interval: float
    weight: int
    looks: list[Look] = Field(default_factory=list)
    decision: Decision

    def to_json_data(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def targets_of(rollout: Rollout) -> Targets:
    """The names the checks are about, as the controller derives them."""
    name = rollout.spec.target_ref.name
    namespace = rollout.metadata.namespace or "default"
    return Targets(namespace=namespace, target=name, canary=name, primary=f"{name}-primary")


def backtest(
    rollout: Rollout,
    provider: MetricsProvider,
    start: datetime,
    end: datetime,
    look_interval: float,
    *,
    targets: Targets | None = None,
    weight: int | None = None,
    extra_policies: Iterable[AnyPolicy] = (),
) -> BacktestResult:
    """Every look of (start, end] judged as the controller would have judged it."""
    _check_period(start, end, look_interval)
    checks = resolve_checks(rollout, extra_policies)
    names = targets or targets_of(rollout)
    shown = weight if weight is not None else _first_weight(rollout)
    status = RolloutStatus(
        phase=Phase.PROGRESSING,
        canary_weight=shown,
        started_at=start,
        analysis_started_at=start,
        step_started_at=start,
    )
    looks: list[Look] = []
    previous = start
    recorder = _Recorder(provider)
    kinds = {c.name: c.kind for c in checks}
    for index in range(1, _count(start, end, look_interval) + 1):
        now = start + timedelta(seconds=index * look_interval)
        seconds = (now - previous).total_seconds()
        recorder.seen.clear()
        results, states = analyse(
            rollout,
            status,
            checks,
            provider=recorder,
            targets=names,
            window_seconds=seconds,
            now=now,
        )
        looks.append(
            Look(
                start=previous,
                end=now,
                checks=[_check(r, kinds.get(r.name), recorder.seen.get(r.name)) for r in results],
            )
        )
        status = status.model_copy(update={"analysis": states, "last_tick_at": now})
        previous = now
    return BacktestResult(
        rollout=f"{rollout.metadata.namespace or 'default'}/{rollout.metadata.name}",
        start=start,
        end=end,
        look_interval=look_interval,
        weight=shown,
        looks=looks,
        decision=decide(looks, rollout.spec.analysis.failure_limit),
    )


def decide(looks: list[Look], failure_limit: int) -> Decision:
    """The first look that settles it, by the rollout's rules (see the module's doc)."""
    failed = 0
    for index, look in enumerate(looks):
        verdicts = [c.verdict for c in look.checks]
        decisive = [c for c in look.checks if c.verdict is Verdict.FAIL and c.decisive]
        if decisive:
            names = ", ".join(c.name for c in decisive)
            return Decision(
                verdict=Verdict.FAIL, at=look.end, look=index, reason=f"{names} failed decisively"
            )
        if Verdict.FAIL in verdicts:
            failed += 1
            if failed >= failure_limit:
                return Decision(
                    verdict=Verdict.FAIL,
                    at=look.end,
                    look=index,
                    reason=f"{failed} failed looks reached failureLimit {failure_limit}",
                )
        elif verdicts and all(v is Verdict.PASS for v in verdicts):
            return Decision(
                verdict=Verdict.PASS, at=look.end, look=index, reason="every check passed"
            )
    return Decision(
        verdict=Verdict.INCONCLUSIVE,
        reason=f"no look settled it ({failed} failed, failureLimit {failure_limit})",
    )


class _Recorder:
    """The provider, keeping each check's window of the current look (the look's own counts;
    a judge's evidence may be its running totals)."""

    def __init__(self, inner: MetricsProvider) -> None:
        self.inner = inner
        self.seen: dict[str, WindowSample] = {}

    def window(self, check: CheckSpec, variables: Mapping[str, str], at: datetime) -> WindowSample:
        sample = self.inner.window(check, variables, at)
        self.seen[check.name] = sample
        return sample

    def baseline(
        self, check: CheckSpec, variables: Mapping[str, str], start: datetime, seconds: float
    ) -> SideSample | None:
        return inner_baseline(self.inner, check, variables, start, seconds)


def _check(result: CheckResult, kind: CheckKind | None, sample: WindowSample | None) -> LookCheck:
    sides = (("canary", sample.canary), ("primary", sample.primary)) if sample else ()
    return LookCheck(
        name=result.name,
        kind=kind,
        canary=_side(sample.canary) if sample else None,
        primary=_side(sample.primary) if sample else None,
        verdict=result.verdict,
        judge=result.judge,
        decisive=result.decisive,
        values={
            side: round(s.value, 1) for side, s in sides if s is not None and s.value is not None
        },
        buckets={
            side: (s.quantile_low, s.quantile_high)
            for side, s in sides
            if s is not None and s.quantile_low is not None and s.quantile_high is not None
        },
        message=result.message,
    )


def _side(side: SideSample | None) -> SideCounts | None:
    if side is None:
        return None
    return SideCounts(requests=side.requests, failures=side.failures)


def _first_weight(rollout: Rollout) -> int:
    strategy = rollout.spec.strategy
    if strategy.kind is not StrategyKind.CANARY:
        return 100  # A/B and blue/green judge the canary on its whole share of the route
    schedule = strategy.canary_or_default().schedule()
    return schedule[0] if schedule else 100


def _check_period(start: datetime, end: datetime, look_interval: float) -> None:
    if look_interval < 1:
        raise BacktestError("--look-interval must be at least 1s")
    if end <= start:
        raise BacktestError(f"--to ({end.isoformat()}) must be after --from ({start.isoformat()})")
    if _count(start, end, look_interval) > MAX_LOOKS:
        raise BacktestError(
            f"{_count(start, end, look_interval)} looks is more than {MAX_LOOKS}: shorten the "
            "period or lengthen --look-interval"
        )
    if _count(start, end, look_interval) == 0:
        raise BacktestError("the period is shorter than one --look-interval")


def _count(start: datetime, end: datetime, look_interval: float) -> int:
    return int((end - start).total_seconds() // look_interval)
