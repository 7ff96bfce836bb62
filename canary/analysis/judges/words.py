"""The sequential judge's words: the numbers of its messages, put so a person can read them
(no raw e-values of exposure, ratios with their confidence sequence, rates as percentages)."""

from __future__ import annotations

import math

from canary.analysis import stats
from canary.analysis.judges.dispersion import (
    Dispersion,
    inflation,
    limit_evidence,
    pods_a_side_needed,
)
from canary.analysis.judges.pods import MAX_PODS
from canary.analysis.judges.running import Running
from canary.analysis.samples import JudgeContext
from canary.model.analysis import CheckKind, CheckSpec
from canary.model.status import CheckState, SideEvidence


def could_show(exposure: float, at: str, ratio: float, needed: float) -> str:
    """Whether the step's traffic could have shown a canary ``ratio`` times worse, in words:
    the exposure as a share of what a step needs (``needed``, an expected ln e-value; never
    printed raw)."""
    if exposure >= needed:
        return f"the traffic {at} would have shown a {ratio:g}x canary"
    share = f"{min(100.0 * exposure / needed, 99.0):.0f}%"
    return f"the traffic {at} would not show a {ratio:g}x canary yet ({share} of a step's)"


def deadline_note(requests: float, per_minute: float, context: JudgeContext) -> str:
    """When the traffic cannot bring the evidence before inconclusiveDeadline (counted, about,
    from the last step's first look): say so, and what deadline would do."""
    if not math.isfinite(requests) or per_minute <= 0:
        return ""
    left = max(context.inconclusive_deadline - context.step_seconds, 0.0) / 60.0
    needed = requests / per_minute
    if needed <= left:
        return ""
    deadline = math.ceil((context.step_seconds / 60.0 + needed) / 5.0) * 5
    return (
        f", more than the {seconds(context.inconclusive_deadline)} inconclusiveDeadline "
        f"leaves at this step: about {deadline}m would let it decide"
    )


def seconds(value: float) -> str:
    return f"{value:.0f}s" if value < 120 else f"{value / 60:.1f}m"


def crossing(crossed: float, abs_crossed: float, bar: float) -> str:
    """Why the canary fails, once a test has crossed its bar (it stays crossed), else ''."""
    if crossed:
        return f"worse than the primary (crossed {bar:g} at look {crossed:.0f})"
    if abs_crossed:
        return f"above the objective (crossed {bar:g} at look {abs_crossed:.0f})"
    return ""


def describe(
    check: CheckSpec,
    totals: CheckState,
    run: Running,
    null_rate: float | None,
    compare: bool,
    alpha: float,
    dispersion: float = 1.0,
) -> str:
    """The numbers: rates, canary requests, the ratio and its confidence sequence (wider by
    the pods' ``dispersion`` when they have one: canary.analysis.judges.dispersion)."""
    what = "errors" if check.kind is CheckKind.ERROR_RATE else f"slow (>{check.max or 0:g}ms)"
    text = f"canary {what} {percent(totals.canary_failures, totals.canary_requests)}"
    if compare:
        text += f" vs primary {percent(totals.primary_failures, totals.primary_requests)}"
    text += f" (n={totals.canary_requests:,})"
    if compare:
        lo, hi = stats.confidence_bounds(run.loglik / dispersion, alpha)
        low = "0x" if lo <= stats.GRID[0] else x(run.null_ratio * math.exp(lo))
        high = "inf" if hi >= stats.GRID[-1] else x(run.null_ratio * math.exp(hi))
        text += f", {ratio(totals)} (CS {low}-{high})"
    if null_rate is not None:
        text += f", objective {100 * null_rate:g}%"
    return text


def ratio(totals: CheckState) -> str:
    if not totals.primary_requests or not totals.canary_requests:
        return "ratio n/a"
    c = totals.canary_failures / totals.canary_requests
    p = totals.primary_failures / totals.primary_requests
    if p == 0:
        return "ratio n/a" if c == 0 else "ratio inf"
    return x(c / p)


def x(value: float) -> str:
    return f"{value:.2g}x" if value < 10 else f"{value:.0f}x"


def num(value: float) -> str:
    """An e-value as a person reads it: no exponents ("<0.01", "0.16", "19,330", ">1,000,000")."""
    if value < 0.01:
        return "<0.01"
    if value < 10:
        return f"{value:.2g}"
    return f"{value:,.0f}" if value < 1e6 else ">1,000,000"


def percent(failures: int, requests: int) -> str:
    return f"{100 * failures / requests:.2g}%" if requests else "n/a"


def evidence(requests: int, failures: int) -> SideEvidence:
    rate = 100.0 * failures / requests if requests else None
    return SideEvidence(requests=requests, failures=failures, value=rate)


def spread_caps(spread: Dispersion, detect: float, beta: float) -> str:
    """With as many canary pods as primary pods, when their spread caps what a healthy canary
    can show against ``detect`` times worse however many requests it serves: why, and how
    many pods a side would do ('' when it does not cap it)."""
    side = spread.canary_pods
    if limit_evidence(spread.spread, side, detect, beta) >= math.log(1.0 / beta):
        return ""
    enough = pods_a_side_needed(spread.spread, detect, beta)
    would = (
        f"{enough} pods a side would"
        if enough is not None
        else f"no count of pods up to {MAX_PODS} a side would"
    )
    return (
        f" ({spread.describe()}: {side} pods a side cannot show a version is not "
        f"{x(detect)} worse apart from their own draw at this spread, {would})"
    )


def few_degrees(spread: Dispersion, beta: float) -> str:
    """With as many canary pods as primary pods, why the evidence grows slowly: few pods a
    side tell their spread from few degrees of freedom (and how many pods a side would count
    a failure at least half as much), or their spread is part of what the counts show; ''
    when neither slows it by more than FAIR_INFLATION."""
    if spread.inflation > FAIR_INFLATION:
        side = next(k for k in range(2, 10 * MAX_PODS) if inflation(2 * k - 2, beta) <= 2.0)
        return (
            f" ({spread.describe()}: {spread.canary_pods} pods a side tell their spread from "
            f"{spread.df} degrees of freedom, so each failure counts about "
            f"1/{spread.inflation:.0f} as much as with pods known to be alike; {side} pods a "
            f"side would count it at least half as much)"
        )
    if spread.ratio > FAIR_INFLATION:
        return (
            f" ({spread.describe()}: the pods' own draw is part of what the counts show, so "
            f"each failure counts about 1/{spread.ratio:.0f} as much, less as more come)"
        )
    return ""


FAIR_INFLATION = 2.0
"""The undecided message names the pods a side at which a failure counts at least half as
much (K(df) <= 2: canary.analysis.judges.dispersion)."""
