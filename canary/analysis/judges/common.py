"""Helpers every judge shares: a side's judged value, its evidence, running totals."""

from __future__ import annotations

import math
import re

from canary.analysis.samples import SideSample, WindowSample
from canary.model.analysis import CheckKind, CheckSpec
from canary.model.status import CheckResult, CheckState, SideEvidence

_QUANTILE = re.compile(r"histogram_quantile\(\s*(0?\.[0-9]+|1(?:\.0*)?)")


def quantile_label(check: CheckSpec) -> str:
    """'p99' for a check whose quantile query asks for 0.99; p99 when it names none."""
    if check.quantile_query:
        found = _QUANTILE.search(check.quantile_query)
        if found:
            return f"p{float(found.group(1)) * 100:g}"
    return "p99"


def side_value(kind: CheckKind, side: SideSample | None) -> float | None:
    """The number a side is judged by: failure percent, or the side's value; NaN is no data."""
    if side is None:
        return None
    value = side.failure_percent if kind is CheckKind.ERROR_RATE else side.value
    if value is None or math.isnan(value):
        return None
    return value


def format_value(kind: CheckKind, value: float) -> str:
    if kind is CheckKind.ERROR_RATE:
        return f"{value:.2f}%"
    if kind is CheckKind.LATENCY:
        return f"{value:.0f}ms"
    return f"{value:g}"


def accumulate(state: CheckState, window: WindowSample) -> CheckState:
    """The running totals with this window's counts added (a missing side adds nothing)."""
    canary, primary = window.canary, window.primary
    return CheckState(
        name=state.name,
        ticks=state.ticks + 1,
        canary_requests=state.canary_requests + (canary.requests if canary else 0),
        canary_failures=state.canary_failures + (canary.failures if canary else 0),
        primary_requests=state.primary_requests + (primary.requests if primary else 0),
        primary_failures=state.primary_failures + (primary.failures if primary else 0),
        judge_state=list(state.judge_state),
    )


def side_evidence(side: SideSample | None, value: float | None) -> SideEvidence | None:
    if side is None:
        return None
    return SideEvidence(requests=side.requests, failures=side.failures, value=value)


def described(check: CheckSpec, result: CheckResult, window: WindowSample | None) -> CheckResult:
    """``result`` with what is needed to read its evidence: the check's kind and, for latency,
    its objective, its quantile's name and each side's estimate with the estimate's bucket."""
    update: dict[str, object] = {"kind": check.kind}
    if check.kind is CheckKind.LATENCY:
        update.update(objective=check.max, quantile_label=quantile_label(check))
        if window is not None:
            update.update(
                canary=_with_quantile(result.canary, window.canary),
                primary=_with_quantile(result.primary, window.primary),
            )
    return result.model_copy(update=update)


def _with_quantile(evidence: SideEvidence | None, side: SideSample | None) -> SideEvidence | None:
    if evidence is None or side is None or side.value is None or not math.isfinite(side.value):
        return evidence
    low, high = side.quantile_low, side.quantile_high
    return evidence.model_copy(
        update={
            "quantile": side.value,
            "quantile_low": low if low is not None and math.isfinite(low) else None,
            "quantile_high": high if high is not None and math.isfinite(high) else None,
        }
    )
