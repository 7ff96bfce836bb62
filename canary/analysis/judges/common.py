"""Helpers every judge shares: a side's judged value, its evidence, running totals."""

from __future__ import annotations

import math
import re

from canary.analysis.samples import SideSample, WindowSample
from canary.model.analysis import CheckKind, CheckSpec
from canary.model.status import CheckState, SideEvidence

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
