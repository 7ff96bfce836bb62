"""A custom check under the sequential judge: a value per side and no counts, so no
sequential test is possible; threshold rules per window."""

from __future__ import annotations

import math
from datetime import datetime

from canary.analysis.samples import JudgeContext, WindowSample
from canary.model.analysis import CheckSpec, JudgeName
from canary.model.status import CheckResult, SideEvidence, Verdict

DEFAULT_MARGIN = 0.0
"""Tolerance when the check sets no margin: the canary may not be above the primary."""


def custom_result(
    check: CheckSpec, window: WindowSample, context: JudgeContext, now: datetime
) -> CheckResult:
    """A value per side and no counts: no sequential test is possible, so threshold rules."""
    canary = window.canary.value if window.canary else None
    primary = window.primary.value if window.primary else None
    compare = check.compare_to_primary is True
    verdict, why, no_data = Verdict.PASS, "", False
    if (
        canary is None
        or math.isnan(canary)
        or (compare and (primary is None or math.isnan(primary)))
    ):
        verdict, why, no_data = Verdict.INCONCLUSIVE, "no data", True
    elif check.max is None and check.min is None and not compare:
        verdict, why = Verdict.INCONCLUSIVE, "no max, min or compareToPrimary: nothing to judge"
    elif check.max is not None and canary > check.max:
        verdict, why = Verdict.FAIL, f"above max {check.max:g}"
    elif check.min is not None and canary < check.min:
        verdict, why = Verdict.FAIL, f"below min {check.min:g}"
    elif compare and primary is not None:
        margin = check.margin if check.margin is not None else DEFAULT_MARGIN
        if canary > primary * (1.0 + margin):
            verdict, why = Verdict.FAIL, f"above primary {primary:g} x {1 + margin:g}"
    shown = "n/a" if canary is None else f"{canary:g}"
    message = (
        f"{check.name}: canary {shown}, {why or 'within bounds'}: {verdict.value} "
        "(custom check: threshold rule per window, no sequential test without counts)"
    )
    return CheckResult(
        name=check.name,
        verdict=verdict,
        time=now,
        weight=context.weight,
        judge=JudgeName.SEQUENTIAL.value,
        canary=SideEvidence(value=canary),
        primary=SideEvidence(value=primary) if window.primary else None,
        statistic=canary,
        no_data=no_data,
        message=message,
    )
