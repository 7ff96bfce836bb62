"""The threshold judge: Flagger's rule, one window at a time.

Each tick the canary's judged number (canary.analysis.judges.judged) must lie within the
check's bounds:

- error-rate: the canary's failed requests in percent (failures / requests x 100) must be
  <= ``max`` (and >= ``min`` when set);
- latency: the canary's requests slower than the objective ``max`` (ms), in percent, must be
  <= 1% (LATENCY_LIMIT_PERCENT): Flagger's "p99 <= max", said with the counts instead of a
  quantile interpolated inside a histogram bucket. The p99 estimate is shown, never judged;
- custom: the canary's value must lie within [``min``, ``max``].

The primary is shown beside the canary but not compared with (that is what the sequential and
Mann-Whitney judges do); the failure limit counts failed ticks in the engine. A window
without canary data, or with fewer canary requests than ``minRequests``, is inconclusive:
never a pass. A latency objective that is no bucket boundary of the histogram has no slow
counts: the provider makes the check inconclusive and says so (docs/policies.md).
"""

from __future__ import annotations

from datetime import datetime

from canary.analysis.judges.base import register_judge
from canary.analysis.judges.common import accumulate, side_evidence
from canary.analysis.judges.judged import (
    LATENCY_LIMIT_PERCENT,
    format_judged,
    judged_subject,
    judged_value,
)
from canary.analysis.samples import JudgeContext, WindowSample
from canary.model.analysis import CheckKind, CheckSpec, JudgeName
from canary.model.status import CheckResult, CheckState, Verdict


class ThresholdJudge:
    """Fixed bounds on the canary, per window (Flagger's semantics)."""

    name: JudgeName = JudgeName.THRESHOLD

    def judge(
        self,
        check: CheckSpec,
        window: WindowSample,
        state: CheckState,
        context: JudgeContext,
        now: datetime,
    ) -> tuple[CheckResult, CheckState]:
        new_state = accumulate(state, window)
        kind = check.kind
        canary = window.canary
        canary_value = judged_value(kind, canary) if kind is not None else None
        primary_value = judged_value(kind, window.primary) if kind is not None else None

        def result(verdict: Verdict, message: str, *, no_data: bool = False) -> CheckResult:
            return CheckResult(
                name=check.name,
                verdict=verdict,
                time=now,
                weight=context.weight,
                judge=self.name.value,
                canary=side_evidence(canary, canary_value),
                primary=side_evidence(window.primary, primary_value),
                statistic=canary_value,
                no_data=no_data,
                message=message,
            )

        inconclusive = Verdict.INCONCLUSIVE
        if kind is None:
            return result(inconclusive, "the check has no kind: nothing to judge"), new_state
        if kind is CheckKind.LATENCY and check.max is None:
            why = "a latency check needs max: the objective in ms that slow requests exceed"
            return result(inconclusive, why), new_state
        if check.max is None and check.min is None:
            return result(inconclusive, "the check sets neither max nor min"), new_state
        counted = kind is not CheckKind.CUSTOM
        subject = judged_subject(check, kind)
        if canary is None or (counted and canary.requests == 0):
            what = "no canary data" if canary is None else "no canary requests"
            return result(inconclusive, f"{what} in the window", no_data=True), new_state
        if counted and canary.requests < context.min_requests:
            message = (
                f"canary served {canary.requests} requests, fewer than "
                f"minRequests {context.min_requests}"
            )
            return result(inconclusive, message), new_state
        if canary_value is None:
            return result(inconclusive, f"no {subject} in the window", no_data=True), new_state

        verdict, comparison = _compare(*_bounds(check, kind), kind, canary_value)
        count = f" (n={canary.requests:,})" if counted else ""
        shown = format_judged(kind, canary_value)
        message = f"{subject} {shown}{count} {comparison}: {verdict.value}"
        if primary_value is not None:
            message += f" (primary {format_judged(kind, primary_value)})"
        return result(verdict, message), new_state


def _bounds(check: CheckSpec, kind: CheckKind) -> tuple[float | None, float | None, str]:
    """(max, min, what max means) of the judged number."""
    if kind is CheckKind.LATENCY:
        return LATENCY_LIMIT_PERCENT, None, " (p99 over the objective)"
    return check.max, check.min, ""


def _compare(
    high: float | None, low: float | None, meaning: str, kind: CheckKind, value: float
) -> tuple[Verdict, str]:
    """The verdict and the comparison that decided it, e.g. '> max 1.00%'."""
    if high is not None and value > high:
        return Verdict.FAIL, f"> max {format_judged(kind, high)}{meaning}"
    if low is not None and value < low:
        return Verdict.FAIL, f"< min {format_judged(kind, low)}"
    if high is not None and low is not None:
        bounds = f"{format_judged(kind, low)}..{format_judged(kind, high)}"
        return Verdict.PASS, f"within {bounds}"
    if high is not None:
        return Verdict.PASS, f"<= max {format_judged(kind, high)}"
    assert low is not None
    return Verdict.PASS, f">= min {format_judged(kind, low)}"


THRESHOLD = register_judge(ThresholdJudge())
