"""The Mann-Whitney judge: Kayenta's approach, canary windows against primary windows.

Every tick adds one sample per side, the window's judged number
(canary.analysis.judges.judged): its failure percent for an error-rate check, its percent of
requests slower than the objective (``max`` ms) for a latency check (counted from the
histogram's bucket at the objective; the p99 estimate is only shown), the query's value for a
custom check. The samples of the current revision's analysis (the last ``MAX_WINDOWS`` per
side) are compared with the two-sided Mann-Whitney U test (``mann_whitney_u``: scipy's
``mannwhitneyu`` with ``method="auto"``, without scipy) at ``CONFIDENCE`` (98%, Kayenta's
default), and a significant difference is weighed by its effect size, the ratio of the
canary's mean to the primary's, against the allowed increase (1 + the check's ``margin``) and
the allowed decrease (``ALLOWED_DECREASE``). Each check is classified:

- ``no-data``: this window gave a side no sample, or a side has fewer than ``MIN_WINDOWS``
  samples: inconclusive (no data);
- ``pass``: no significant difference, or one within the allowed effect size: pass;
- ``high`` / ``low``: the canary is significantly (and beyond the tolerance) higher / lower.
  For error rate and latency higher is worse: high fails (not decisive: the failure limit
  counts the ticks), low passes (the canary is better). A custom check is read the same way
  unless it sets only ``min`` (a floor: higher is better), where low fails and high passes,
  and the margin allows a decrease to 1 / (1 + margin) instead of an increase.

The weighted score over a tick's checks (pass and marginal thresholds) is in ``score.py``.
docs/analysis.md has the reasons.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import cache

from canary.analysis.judges.base import register_judge
from canary.analysis.judges.common import accumulate, side_evidence
from canary.analysis.judges.judged import format_judged, judged_subject, judged_value
from canary.analysis.samples import JudgeContext, SideSample, WindowSample
from canary.model.analysis import CheckKind, CheckSpec, JudgeName
from canary.model.status import CheckResult, CheckState, Verdict

CONFIDENCE = 0.98
"""Kayenta's default confidence level for the Mann-Whitney test."""

ALPHA = 0.02
"""1 - CONFIDENCE: a difference is significant when the two-sided p-value is below it."""

MIN_WINDOWS = 3
"""Samples (windows) each side needs before the test is run; fewer is no-data."""

MAX_WINDOWS = 60
"""Samples kept per side (the most recent), so the stored state stays bounded."""

DEFAULT_MARGIN = 0.0
"""Effect-size tolerance when the check sets no ``margin``: allowed increase 1 + 0 = 1.0
(Kayenta's default), so any significant increase is high."""

ALLOWED_DECREASE = 1.0
"""Kayenta's default allowed decrease: any significant decrease is low (which passes for
error rate and latency)."""

_FORMAT = 1.0
_HEADER = 4  # format, kind, canary samples, primary samples
_KIND_CODE = {CheckKind.ERROR_RATE: 1.0, CheckKind.LATENCY: 4.0, CheckKind.CUSTOM: 3.0}
"""A latency check's samples are slow shares in percent (code 4); a state saved with the old
code 2 (p99 samples in ms) is not mixed with them: it starts over."""


class Classification(StrEnum):
    """Kayenta's per-metric classification."""

    PASS = "pass"
    HIGH = "high"
    LOW = "low"
    NO_DATA = "no-data"


@dataclass
class Samples:
    """judge_state, unpacked: the per-window values of each side, oldest first.

    Packed as ``[format, kind, n_canary, n_primary, *canary, *primary]``, a flat list of
    finite floats that round-trips through JSON; at most ``4 + 2 * MAX_WINDOWS`` numbers.
    """

    kind: float
    canary: list[float] = field(default_factory=list)
    primary: list[float] = field(default_factory=list)

    @classmethod
    def load(cls, saved: list[float], kind: CheckKind) -> Samples:
        code = _KIND_CODE[kind]
        if len(saved) < _HEADER or saved[0] != _FORMAT or saved[1] != code:
            return cls(code)  # new, or another check's numbers: start over
        n_canary, n_primary = int(saved[2]), int(saved[3])
        if len(saved) != _HEADER + n_canary + n_primary:
            return cls(code)
        body = [float(v) for v in saved[_HEADER:]]
        return cls(code, body[:n_canary], body[n_canary:])

    def add(self, canary: float | None, primary: float | None) -> None:
        if canary is not None:
            self.canary = [*self.canary, canary][-MAX_WINDOWS:]
        if primary is not None:
            self.primary = [*self.primary, primary][-MAX_WINDOWS:]

    def dump(self) -> list[float]:
        head = [_FORMAT, self.kind, float(len(self.canary)), float(len(self.primary))]
        return head + self.canary + self.primary


@dataclass(frozen=True)
class Comparison:
    """The test's outcome on the samples of both sides."""

    classification: Classification
    u: float  # the smaller of the two U statistics (the textbook U)
    u_canary: float  # U of the canary sample (n_canary * n_primary / 2 when no shift)
    canary_higher: bool  # the ranks put the canary above the primary
    p_value: float
    ratio: float | None  # canary mean / primary mean; None when it means nothing
    allowed_increase: float
    allowed_decrease: float
    can_reject: bool  # whether the sample sizes allow p < ALPHA at all


def compare(
    canary: list[float],
    primary: list[float],
    allowed_increase: float,
    allowed_decrease: float = ALLOWED_DECREASE,
) -> Comparison:
    """Mann-Whitney U (two-sided) at ALPHA, then the effect size against the tolerances."""
    n_c, n_p = len(canary), len(primary)
    u_canary, p_value, tied = mann_whitney_u(canary, primary)
    ratio = _mean_ratio(canary, primary)
    # Without ties an exact two-sided test cannot go below 2 / C(n_c + n_p, n_c) (all of one
    # side first). With ties it depends on them: the test could have rejected only if the
    # most extreme arrangement of these very values (the canary holding the largest) does.
    # Every window of both sides the same number (a latency check's slow share is 0 in every
    # window when neither side had a slow request): no arrangement of them differs, yet they
    # say the sides behaved alike once there are as many windows as a test without ties needs.
    pooled = sorted([*canary, *primary])
    if tied and pooled[0] != pooled[-1]:
        can_reject = mann_whitney_u(pooled[n_p:], pooled[:n_p])[1] < ALPHA
    else:
        can_reject = 2.0 / math.comb(n_c + n_p, n_c) < ALPHA
    higher = u_canary > n_c * n_p / 2.0
    classification = Classification.PASS
    if p_value < ALPHA:
        if higher:
            if ratio is None or ratio > allowed_increase:
                classification = Classification.HIGH
        elif ratio is None or ratio < allowed_decrease:
            classification = Classification.LOW
    return Comparison(
        classification=classification,
        u=min(u_canary, n_c * n_p - u_canary),
        u_canary=u_canary,
        canary_higher=higher,
        p_value=p_value,
        ratio=ratio,
        allowed_increase=allowed_increase,
        allowed_decrease=allowed_decrease,
        can_reject=can_reject,
    )


EXACT_MAX_SIZE = 8
"""The exact null distribution of U is used when a side has at most this many samples and no
value is tied (scipy's ``method="auto"``); otherwise the normal approximation."""

_SQRT1_2 = math.sqrt(0.5)


def mann_whitney_u(canary: list[float], primary: list[float]) -> tuple[float, float, bool]:
    """The canary's U, the two-sided p-value and whether any values tie: what
    ``scipy.stats.mannwhitneyu(canary, primary, alternative="two-sided")`` computes (to within
    a few units in the last place; tests/analysis/test_mann_whitney.py compares them), without
    its input checks and without scipy.

    U counts the (canary, primary) pairs with the canary higher, ties counting one half, from
    the midranks of both samples together. With ties, or both samples larger than
    EXACT_MAX_SIZE, p comes from the normal approximation with the tie correction and a
    continuity correction of 0.5; otherwise from the exact distribution of U (counted once
    per pair of sizes): p = min(1, 2 P(U >= max(U, n_c n_p - U))). Both sides need a sample.
    """
    n_c, n_p = len(canary), len(primary)
    ranks, ties = _midranks([*canary, *primary])
    u_canary = math.fsum(ranks[:n_c]) - n_c * (n_c + 1) / 2
    u_max = max(u_canary, n_c * n_p - u_canary)
    tied = bool(ties)
    if tied or (n_c > EXACT_MAX_SIZE and n_p > EXACT_MAX_SIZE):
        p = 2.0 * _normal_sf(u_max, n_c, n_p, ties)
    else:
        p = 2.0 * _exact_cdf(min(n_c, n_p), max(n_c, n_p))[n_c * n_p - int(u_max)]
    if math.isnan(p):  # every value tied: no difference can be seen
        p = 1.0
    return u_canary, min(max(p, 0.0), 1.0), tied


def _midranks(values: list[float]) -> tuple[list[float], list[int]]:
    """Each value's rank among ``values`` (1-based, ties sharing their mean rank), and the
    size of every group of tied values."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    ties: list[int] = []
    start = 0
    while start < len(order):
        end = start + 1
        while end < len(order) and values[order[end]] == values[order[start]]:
            end += 1
        rank = (start + 1 + end) / 2.0  # the mean of ranks start+1 .. end
        for index in order[start:end]:
            ranks[index] = rank
        if end - start > 1:
            ties.append(end - start)
        start = end
    return ranks, ties


def _normal_sf(u: float, n_c: int, n_p: int, ties: list[int]) -> float:
    """P(U >= u) by the normal approximation: tie-corrected variance, continuity 0.5 (the
    arithmetic of scipy's ``_get_mwu_z`` and ``ndtr``)."""
    n = n_c + n_p
    tie_term = float(sum(t**3 - t for t in ties))
    with_ties = n_c * n_p / 12 * ((n + 1) - tie_term / (n * (n - 1)))
    if with_ties <= 0.0:
        return math.nan  # every value tied
    z = (u - n_c * n_p / 2 - 0.5) / math.sqrt(with_ties)
    x = -z * _SQRT1_2  # ndtr(-z) = P(N(0, 1) >= z), computed as cephes' ndtr does
    if abs(x) < _SQRT1_2:
        return 0.5 + 0.5 * math.erf(x)
    tail = 0.5 * math.erfc(abs(x))
    return 1.0 - tail if x > 0 else tail


@cache
def _exact_cdf(m: int, n: int) -> tuple[float, ...]:
    """P(U <= k) for k = 0 .. m*n, samples of m and n values without ties, under the null.

    The counts of U are the coefficients of the Gaussian binomial [m + n choose m] in q
    (exact integers); the probabilities are summed in order as scipy's exact method does."""
    counts = [1] + [0] * (m * n)
    for i in range(1, m + 1):
        for k in range(m * n, n + i - 1, -1):  # times (1 - q^(n + i))
            counts[k] -= counts[k - n - i]
        for k in range(i, m * n + 1):  # divided by (1 - q^i), exactly
            counts[k] += counts[k - i]
    total = float(math.comb(m + n, m))
    cumulative: list[float] = []
    running = 0.0
    for count in counts:
        running += count / total
        cumulative.append(running)
    return tuple(cumulative)


def _mean_ratio(canary: list[float], primary: list[float]) -> float | None:
    """Kayenta's effect size: mean(canary) / mean(primary); inf over a primary mean of 0."""
    c = sum(canary) / len(canary)
    p = sum(primary) / len(primary)
    if p > 0 and c >= 0:
        return c / p
    if p == 0 and c == 0:
        return 1.0
    if p == 0 and c > 0:
        return math.inf
    return None  # negative values (a custom check): no ratio, significance alone decides


def higher_is_worse(check: CheckSpec) -> bool:
    """Error rate and latency: yes. A custom check with only a floor (``min``): no."""
    return not (check.kind is CheckKind.CUSTOM and check.max is None and check.min is not None)


class MannWhitneyJudge:
    """Canary windows against primary windows with the Mann-Whitney U test (Kayenta)."""

    name: JudgeName = JudgeName.MANN_WHITNEY

    def judge(
        self,
        check: CheckSpec,
        window: WindowSample,
        state: CheckState,
        context: JudgeContext,
        now: datetime,
    ) -> tuple[CheckResult, CheckState]:
        kind = check.kind
        new_state = accumulate(state, window)
        canary_value, canary_gap = (None, "") if kind is None else _sample(kind, window.canary)
        primary_value, primary_gap = (None, "") if kind is None else _sample(kind, window.primary)
        if kind is not None and kind is not CheckKind.CUSTOM:
            canary_value, canary_gap = _enough(window.canary, canary_value, canary_gap, context)
            primary_value, primary_gap = _enough(
                window.primary, primary_value, primary_gap, context
            )

        def result(
            verdict: Verdict, message: str, *, no_data: bool = False, p: float | None = None
        ) -> CheckResult:
            return CheckResult(
                name=check.name,
                verdict=verdict,
                time=now,
                weight=context.weight,
                judge=self.name.value,
                canary=side_evidence(window.canary, canary_value),
                primary=side_evidence(window.primary, primary_value),
                statistic=p,
                no_data=no_data,
                message=message,
            )

        inconclusive = Verdict.INCONCLUSIVE
        if kind is None:
            return result(inconclusive, "nothing to test: the check has no kind"), new_state
        samples = Samples.load(state.judge_state, kind)
        samples.add(canary_value, primary_value)
        new_state.judge_state = samples.dump()
        counts = f"{len(samples.canary)} canary and {len(samples.primary)} primary windows so far"
        for side, gap in (("canary", canary_gap), ("primary", primary_gap)):
            if gap:
                short = "minRequests" in gap  # data, but too little of it
                why = f"no-data: {gap.format(side=side)} ({counts})"
                return result(inconclusive, why, no_data=not short), new_state
        if min(len(samples.canary), len(samples.primary)) < MIN_WINDOWS:
            why = f"no-data: {counts}, the test needs {MIN_WINDOWS} per side"
            return result(inconclusive, why, no_data=True), new_state

        margin = check.margin if check.margin is not None else DEFAULT_MARGIN
        if higher_is_worse(check):
            bad = Classification.HIGH
            outcome = compare(samples.canary, samples.primary, 1.0 + margin)
        else:  # a floor: the tolerance applies to a decrease
            bad = Classification.LOW
            outcome = compare(samples.canary, samples.primary, 1.0, 1.0 / (1.0 + margin))
        verdict = Verdict.FAIL if outcome.classification is bad else Verdict.PASS
        if verdict is Verdict.PASS and not outcome.can_reject:
            # Kayenta's mustHaveData, for the windows: a test that could not have failed
            # with this many windows says nothing, and nothing passes on nothing.
            why = f"no-data: {counts}, too few to reject at {CONFIDENCE:.0%}: no pass yet"
            return result(inconclusive, why, p=outcome.p_value, no_data=True), new_state
        label = outcome.classification.value
        if label != verdict.value:
            label += f" → {verdict.value}"  # high → fail, low → pass
        message = f"{_describe(check, kind, samples)}, {_reason(outcome)}: {label}"
        return result(verdict, message, p=outcome.p_value), new_state


def _sample(kind: CheckKind, side: SideSample | None) -> tuple[float | None, str]:
    """The side's number for this window, or why there is none."""
    if side is None:
        return None, "no {side} data in the window"
    if kind is not CheckKind.CUSTOM and side.requests == 0:
        return None, "no {side} requests in the window"
    value = judged_value(kind, side)
    if value is None or not math.isfinite(value):
        return None, "no {side} value in the window"
    return value, ""


def _enough(
    side: SideSample | None, value: float | None, gap: str, context: JudgeContext
) -> tuple[float | None, str]:
    """A counted window is a sample only with at least minRequests requests on that side."""
    if side is None or value is None or side.requests >= context.min_requests:
        return value, gap
    need = context.min_requests
    return None, f"{{side}} served {side.requests} requests, fewer than minRequests {need}"


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2.0


def _describe(check: CheckSpec, kind: CheckKind, samples: Samples) -> str:
    """'canary slow (>500ms) median 2.40% vs primary 0.30% over 5 windows'."""
    subject = judged_subject(check, kind)
    n_c, n_p = len(samples.canary), len(samples.primary)
    over = f"{n_c} windows" if n_c == n_p else f"{n_c} canary and {n_p} primary windows"
    c = format_judged(kind, _median(samples.canary))
    p = format_judged(kind, _median(samples.primary))
    return f"{subject} median {c} vs primary {p} over {over}"


def _reason(outcome: Comparison) -> str:
    """'U=0, p=0.0079 < 0.02, means 2.5x > allowed 1x'."""
    shown = f"U={outcome.u:g}, p={_p(outcome.p_value)}"
    if outcome.p_value >= ALPHA:
        text = f"{shown} >= {ALPHA:g}"
        if not outcome.can_reject:
            text += f" (too few windows to reject at {CONFIDENCE:.0%})"
        return text
    text = f"{shown} < {ALPHA:g}"
    higher = outcome.classification is Classification.HIGH
    lower = outcome.classification is Classification.LOW
    if outcome.ratio is None:
        return f"{text}, no mean ratio (values below zero)"
    means = f"means {_x(outcome.ratio)}"
    if higher:
        return f"{text}, {means} > allowed {_x(outcome.allowed_increase)}"
    if lower:
        return f"{text}, {means} < allowed {_x(outcome.allowed_decrease)}"
    if outcome.canary_higher:
        return f"{text} but {means} within allowed {_x(outcome.allowed_increase)}"
    return f"{text} but {means} within allowed {_x(outcome.allowed_decrease)}"


def _p(value: float) -> str:
    return f"{value:.2g}" if value >= 0.001 else f"{value:.1e}"


def _x(value: float) -> str:
    if math.isinf(value):
        return "inf"
    return f"{value:.3g}x"


MANN_WHITNEY = register_judge(MannWhitneyJudge())
