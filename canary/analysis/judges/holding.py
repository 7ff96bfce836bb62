"""What a held canary is missing, in plain words: the figures the sequential judge's
undecided messages carry when no promotion figure applies (the data lean towards harm, or
the canary pods' draw cannot be bounded yet). Estimates for people, never used to decide."""

from __future__ import annotations

import math

from canary.analysis import stats
from canary.analysis.judges import pods
from canary.analysis.judges.promotion import in_minutes, rounded
from canary.model.status import CheckState

_CERTAIN = 1.0 - 1e-9  # a share of failures of exactly 1 has no finite divergence term


def growth_to_fail(
    totals: CheckState, share: float, null_ratio: float, objective: float | None
) -> float:
    """Expected gain in ln e-value of harm per canary request if both sides keep failing at
    their rates so far: against the primary (``objective`` None) the split of failures at a
    canary share ``share`` (0-1) against the null ratio, else the canary's rate against the
    objective. A point figure (the harm mixture gains a little less): an estimate. 0 when
    the rates so far do not lean towards harm."""
    if not totals.canary_requests:
        return 0.0
    canary = totals.canary_failures / totals.canary_requests
    if objective is not None:
        if not 0.0 < objective < canary:
            return 0.0
        return stats.rate_divergence(min(canary, _CERTAIN), objective)
    if not totals.primary_requests or not 0.0 < share < 1.0:
        return 0.0
    primary = totals.primary_failures / totals.primary_requests
    failures = canary + primary * (1.0 - share) / share  # both sides' per canary request
    if failures <= 0.0:
        return 0.0
    observed = min(canary / failures, _CERTAIN)
    odds = share / (1.0 - share) * null_ratio
    expected = odds / (1.0 + odds)
    if observed <= expected:
        return 0.0
    return failures * stats.rate_divergence(observed, expected)


def requests_to_fail(log_harm: float, fail_bar: float, growth: float) -> float:
    """About how many more canary requests bring the e-value of harm (now ``log_harm``) to
    ``fail_bar`` at ``growth`` a request (inf when it does not grow)."""
    if growth <= 0.0:
        return math.inf
    return max(math.log(fail_bar) - log_harm, 0.0) / growth


def describe_fail_needs(requests: float, per_minute: float) -> str:
    """'if it keeps failing as it has, needs about 120 more canary requests to be rolled
    back; at this traffic about 3 minutes' (or why no figure can be given)."""
    if not math.isfinite(requests):
        return (
            "its failures so far lean towards harm, but not at a rate that would ever cross "
            "the bar: more failures of either side will tell"
        )
    text = f"if it keeps failing as it has, needs about {rounded(requests)} more canary "
    text += "requests to be rolled back"
    if per_minute > 0:
        text += f"; at this traffic about {in_minutes(requests / per_minute)}"
    return text


def spread_shortfall(primary: list[tuple[float, float]]) -> str:
    """Why the primary pods' spread cannot be told yet, and what would tell it: more primary
    pods with traffic, or more primary failures (pods.MIN_POD_FAILURES a pod), or a canary
    with as many pods as the primary (the spread is then told from both sides' pods)."""
    same = f"or give the canary as many pods as the primary ({len(primary)})"
    if len(primary) < pods.MIN_PRIMARY_PODS:
        return (
            f"the primary's spread needs at least {pods.MIN_PRIMARY_PODS} primary pods with "
            f"traffic, {len(primary)} have had some; {same}"
        )
    failed = sum(x for _, x in primary)
    missing = max(math.ceil(pods.MIN_POD_FAILURES * len(primary) - failed), 1)
    return (
        f"the primary's pods have failed {failed:.0f} times, too few to measure their spread "
        f"({pods.MIN_POD_FAILURES:g} a pod): it can be told after about {missing} more primary "
        f"failures, {same}"
    )
