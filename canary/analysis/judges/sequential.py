"""The sequential judge: an anytime-valid test on cumulative failure counts.

Given the failures of both sides in a window, the canary's share of them is binomial with
p = s*r / (s*r + 1 - s) (s: the canary's share of the window's requests, r: canary failure
rate / primary failure rate). A mixture of likelihood ratios over r > 1 + margin, kept as
running log-likelihood ratios on a fixed grid, is a test martingale under "the canary is no
worse": it fails the canary once it reaches 1/ALPHA (and the crossing sticks). The matching
confidence sequence passes it once it shows r < 1 + margin; until then a step passes on the
minimum-evidence rule below. docs/analysis.md has the formulas and the reasons.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from canary.analysis import stats
from canary.analysis.judges.base import register_judge
from canary.analysis.samples import JudgeContext, SideSample, WindowSample
from canary.analysis.stats import FloatArray
from canary.model.analysis import CheckKind, CheckSpec, JudgeName
from canary.model.status import CheckResult, CheckState, SideEvidence, Verdict

ALPHA = 0.05
"""Chance of failing a canary that is no worse than the null, over the whole analysis (per
test): the e-value threshold is 1/ALPHA = 20."""

HOLD_EVIDENCE = 5.0
"""A step does not pass while an e-value is at or above this (the data lean towards harm):
the canary holds its weight (inconclusive) until the evidence clears it or fails it."""

STEP_TICKS = 3
"""Low-traffic rule: a step also passes after this many ticks with data at its weight (and
at least one canary request among them), when minRequests canary requests have not arrived."""

DEFAULT_MARGIN = 0.0
"""Tolerance when the check sets no margin: the canary may not be worse than the primary."""

LATENCY_SLOW_SHARE = 0.01
"""A latency check that does not compare with the primary tests 'at most 1% of canary
requests slower than max', i.e. its p99 within the objective."""

_FORMAT = 1.0
_HEADER = 8  # format, null ratio, null rate, crossed, abs crossed, step weight/requests/ticks
_SIZE = _HEADER + stats.GRID.size
_THRESHOLD = math.log(1.0 / ALPHA)
_HOLD = math.log(HOLD_EVIDENCE)


def _zeros() -> FloatArray:
    return np.zeros(stats.GRID.size)


@dataclass
class _Running:
    """judge_state, unpacked: the test's running numbers."""

    null_ratio: float
    null_rate: float
    crossed: float = 0.0  # tick at which the comparison crossed 1/ALPHA (0: never)
    abs_crossed: float = 0.0  # same for the absolute objective
    step_weight: float = -1.0
    step_requests: float = 0.0
    step_ticks: float = 0.0
    loglik: FloatArray = field(default_factory=_zeros)

    @classmethod
    def load(cls, saved: list[float], null_ratio: float, null_rate: float) -> _Running:
        if len(saved) != _SIZE or saved[0] != _FORMAT or saved[1:3] != [null_ratio, null_rate]:
            return cls(null_ratio, null_rate)  # new, or the margin/objective changed: restart
        crossed, abs_crossed, weight, requests, ticks = saved[3:_HEADER]
        loglik = np.asarray(saved[_HEADER:], dtype=np.float64)
        return cls(null_ratio, null_rate, crossed, abs_crossed, weight, requests, ticks, loglik)

    def dump(self) -> list[float]:
        head = [_FORMAT, self.null_ratio, self.null_rate, self.crossed, self.abs_crossed]
        head += [self.step_weight, self.step_requests, self.step_ticks]
        return head + [float(v) for v in self.loglik]


@dataclass(frozen=True)
class _Test:
    """One test: against the primary or the objective; ln e-values for harm and safety."""

    against: str
    log_harm: float
    log_safe: float

    @classmethod
    def of(cls, against: str, loglik: FloatArray) -> _Test:
        harm, safe = stats.log_evidence_of_harm(loglik), stats.log_evidence_of_safety(loglik)
        return cls(against, harm, safe)


class SequentialJudge:
    """Compares canary and primary failure counts with an anytime-valid sequential test."""

    name: JudgeName = JudgeName.SEQUENTIAL

    def judge(
        self,
        check: CheckSpec,
        window: WindowSample,
        state: CheckState,
        context: JudgeContext,
        now: datetime,
    ) -> tuple[CheckResult, CheckState]:
        def result(
            verdict: Verdict,
            message: str,
            totals: CheckState,
            statistic: float | None = None,
            no_data: bool = False,
        ) -> CheckResult:
            return CheckResult(
                name=check.name,
                verdict=verdict,
                time=now,
                weight=context.weight,
                judge=self.name.value,
                canary=_evidence(totals.canary_requests, totals.canary_failures),
                primary=_evidence(totals.primary_requests, totals.primary_failures),
                statistic=statistic,
                no_data=no_data,
                # A fail here is a crossing of 1/ALPHA, which never un-crosses: waiting for
                # failureLimit more ticks would only let the canary serve more bad requests.
                decisive=verdict is Verdict.FAIL,
                message=message,
            )

        if check.kind is CheckKind.CUSTOM:
            return _custom(check, window, context, now), state
        if check.kind is None:
            why = "nothing to test: the check has no kind"
            return result(Verdict.INCONCLUSIVE, why, state), state
        compare = check.compare_to_primary is not False
        null_rate = _objective(check, compare)
        if not compare and null_rate is None:
            why = "nothing to test: compareToPrimary is false and there is no objective (max)"
            return result(Verdict.INCONCLUSIVE, why, state), state
        canary, primary = window.canary, window.primary
        if canary is None or (compare and primary is None):
            why = f"no {'canary' if canary is None else 'primary'} data in the window"
            crossed = _crossed(state.judge_state)
            if crossed:  # decided on earlier data; a gap does not undo it
                return result(Verdict.FAIL, f"{why}; {crossed}: fail", state), state
            return result(Verdict.INCONCLUSIVE, why, state, no_data=True), state

        margin = check.margin if check.margin is not None else DEFAULT_MARGIN
        run = _Running.load(state.judge_state, 1.0 + margin, null_rate or 0.0)
        new = _accumulate(state, run, canary, primary if compare else None, context.weight)
        tests: list[_Test] = []
        if compare:
            tests.append(_Test.of("primary", run.loglik))
        if null_rate is not None:
            rate_ll = stats.rate_loglik(new.canary_failures, new.canary_requests, null_rate)
            tests.append(_Test.of("objective", rate_ll))
        for test in tests:
            if test.log_harm >= _THRESHOLD and test.against == "primary" and not run.crossed:
                run.crossed = new.ticks
            if test.log_harm >= _THRESHOLD and test.against == "objective" and not run.abs_crossed:
                run.abs_crossed = new.ticks
        new.judge_state = run.dump()
        statistic = stats.evalue(max(t.log_harm for t in tests))
        verdict, why = _verdict(run, tests, new, context, statistic)
        text = _describe(check, new, run, null_rate, compare)
        return result(verdict, f"{text}, {why}", new, statistic), new


def _objective(check: CheckSpec, compare: bool) -> float | None:
    """The absolute failure rate the canary must stay under, if the check sets one."""
    if check.max is None:
        return None
    if check.kind is CheckKind.ERROR_RATE:
        return max(check.max / 100.0, 0.0) if check.max < 100.0 else None
    return None if compare else LATENCY_SLOW_SHARE


def _accumulate(
    state: CheckState, run: _Running, canary: SideSample, primary: SideSample | None, weight: int
) -> CheckState:
    """The totals and the running log-likelihoods with this window added."""
    c_fail = min(canary.failures, canary.requests)
    p_req = primary.requests if primary else 0
    p_fail = min(primary.failures, p_req) if primary else 0
    if p_req > 0:
        share = canary.requests / (canary.requests + p_req)
        run.loglik = run.loglik + stats.split_loglik(c_fail, p_fail, share, run.null_ratio)
    if weight != run.step_weight:
        run.step_weight, run.step_requests, run.step_ticks = float(weight), 0.0, 0.0
    run.step_requests += canary.requests
    run.step_ticks += 1
    return CheckState(
        name=state.name,
        ticks=state.ticks + 1,
        canary_requests=state.canary_requests + canary.requests,
        canary_failures=state.canary_failures + c_fail,
        primary_requests=state.primary_requests + p_req,
        primary_failures=state.primary_failures + p_fail,
    )


def _verdict(
    run: _Running,
    tests: list[_Test],
    totals: CheckState,
    context: JudgeContext,
    evidence: float,
) -> tuple[Verdict, str]:
    """Fail on a crossing; pass when shown no worse, or on the minimum-evidence rule."""
    shown = f"evidence {_num(evidence)}"
    crossed = _crossing(run.crossed, run.abs_crossed)
    if crossed:
        return Verdict.FAIL, f"{shown}; {crossed}: fail"
    if all(t.log_safe >= _THRESHOLD for t in tests):
        return Verdict.PASS, f"{shown}; shown no worse: pass"
    if any(t.log_harm >= _HOLD for t in tests):
        why = f"{shown} >= {HOLD_EVIDENCE:g} (fails at {1 / ALPHA:g}): holding for more data"
        return Verdict.INCONCLUSIVE, why
    need = max(context.min_requests, 1)
    at = f"{run.step_requests:,.0f} canary requests at {context.weight}%"
    if run.step_requests < need and (run.step_ticks < STEP_TICKS or run.step_requests < 1):
        why = f"{shown}; only {at} (minRequests {need}): waiting for traffic"
        return Verdict.INCONCLUSIVE, why
    if context.final_step and totals.canary_requests < need:
        why = f"{shown}; {totals.canary_requests} canary requests in all: waiting to promote"
        return Verdict.INCONCLUSIVE, why
    return Verdict.PASS, f"{shown} < {HOLD_EVIDENCE:g}, {at}: pass"


def _crossing(crossed: float, abs_crossed: float) -> str:
    """Why the canary fails, once a test has crossed 1/ALPHA (it stays crossed), else ''."""
    if crossed:
        return f"worse than the primary (crossed {1 / ALPHA:g} at tick {crossed:.0f})"
    if abs_crossed:
        return f"above the objective (crossed {1 / ALPHA:g} at tick {abs_crossed:.0f})"
    return ""


def _crossed(saved: list[float]) -> str:
    return _crossing(saved[3], saved[4]) if len(saved) == _SIZE else ""


def _describe(
    check: CheckSpec, totals: CheckState, run: _Running, null_rate: float | None, compare: bool
) -> str:
    """The numbers: rates, canary requests, the ratio and its confidence sequence."""
    what = "errors" if check.kind is CheckKind.ERROR_RATE else f"slow (>{check.max or 0:g}ms)"
    text = f"canary {what} {_percent(totals.canary_failures, totals.canary_requests)}"
    if compare:
        text += f" vs primary {_percent(totals.primary_failures, totals.primary_requests)}"
    text += f" (n={totals.canary_requests:,})"
    if compare:
        lo, hi = stats.confidence_bounds(run.loglik, ALPHA)
        low = "0x" if lo <= stats.GRID[0] else _x(run.null_ratio * math.exp(lo))
        high = "inf" if hi >= stats.GRID[-1] else _x(run.null_ratio * math.exp(hi))
        text += f", {_ratio(totals)} (CS {low}-{high})"
    if null_rate is not None:
        text += f", objective {100 * null_rate:g}%"
    return text


def _ratio(totals: CheckState) -> str:
    if not totals.primary_requests or not totals.canary_requests:
        return "ratio n/a"
    c = totals.canary_failures / totals.canary_requests
    p = totals.primary_failures / totals.primary_requests
    if p == 0:
        return "ratio n/a" if c == 0 else "ratio inf"
    return _x(c / p)


def _x(value: float) -> str:
    return f"{value:.2g}x" if value < 10 else f"{value:.0f}x"


def _num(value: float) -> str:
    return f"{value:.2g}" if value < 10 else f"{value:,.0f}" if value < 1e6 else f"{value:.1e}"


def _percent(failures: int, requests: int) -> str:
    return f"{100 * failures / requests:.2g}%" if requests else "n/a"


def _evidence(requests: int, failures: int) -> SideEvidence:
    rate = 100.0 * failures / requests if requests else None
    return SideEvidence(requests=requests, failures=failures, value=rate)


def _custom(
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


SEQUENTIAL = register_judge(SequentialJudge())
