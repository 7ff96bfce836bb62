"""The sequential judge: an anytime-valid test on cumulative failure counts.

Given the failures of both sides in a window, the canary's share of them is binomial with
p = s*r / (s*r + 1 - s) (s: the canary's share of the window's requests, r: canary failure
rate / primary failure rate). A mixture of likelihood ratios over r > 1 + margin, kept as
running log-likelihood ratios on a fixed grid, is a test martingale under "the canary is no
worse": it fails the canary once it reaches 1/ALPHA (and the crossing sticks).

Passing is a different question with a wider tolerance: a step passes once its windows could
have shown a DETECT_RATIO-times-worse canary (their *exposure*, from the traffic and the
primary's failure rate) and the pass test (r <= 1 against r >= TOLERANCE) does not lean
against the canary; strong evidence for the pass test passes any step at once; a step too
quiet to ever get there passes after STEP_SECONDS at its weight with no sign of harm, except
the last one once the analysis could tell. The judge looks at every look interval (the tests
are anytime-valid) and its rules count seconds, never looks, so it behaves the same for any
interval. docs/analysis.md has the formulas, defaults and measurements.
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
"""A step does not pass while an e-value of harm is at or above this (the data lean towards
harm): the canary holds its weight (inconclusive) until the evidence clears it or fails it."""

DETECT_RATIO = 5.0
"""The regression each step must be able to see: a canary this many times worse than its
reference — the primary's failure rate (and at least twice the null 1 + margin), or for a
check against an objective (latency: 1% slow) the objective's rate."""

STEP_EXPOSURE = 1.0
"""A step passes once its own windows would have given a DETECT_RATIO canary this much
evidence against the null: the expected ln e-value, computed from the traffic and the
primary's failure rate (never from the canary's failures, so luck cannot make it)."""

PROMOTION_EXPOSURE = 8.0
"""The same over the whole analysis, for the last step (promotion): a DETECT_RATIO canary
would be expected to be at e^8 (about 3,000) by then, far past the fail threshold of 20."""

TOLERANCE = 3.0
"""The pass test weighs "the canary fails no more than its primary" against "it fails
TOLERANCE times as often" (at least twice the null 1 + margin; for an objective: "well under
it" against "at it")."""

OK_EVIDENCE = 0.5
"""A pass on exposure needs the pass test's e-value at or above this: the data may not lean
against a tolerable canary by more than 2 to 1. At the last step, once exposed, a canary
below it holds (and rolls back at the inconclusive deadline unless the data clear it)."""

PROMOTION_EVIDENCE = 20.0
"""A pass-test e-value that passes any step at once, promotion included: a canary TOLERANCE
times worse (or more) ever reaches it with probability at most 1/20."""

STEP_SECONDS = 20.0
"""Quiet-service rule: a step with no sign of harm (every e-value of harm under HOLD_EVIDENCE)
that no rule has passed yet passes once the canary has been held this long at its weight
(with at least one canary request there) — mostly steps whose windows are too few to reach
STEP_EXPOSURE; the last step only while the analysis is short of PROMOTION_EXPOSURE. Capped
at QUIET_SHARE of the inconclusiveDeadline, so a hold still fits after it."""

PROMOTION_SECONDS = 120.0
"""The quiet hold of the last step (a quiet promotion), in place of STEP_SECONDS."""

SUSPECT_EVIDENCE = 1.2
"""A canary whose e-value of harm is at or above this (but under HOLD_EVIDENCE: the data lean
towards harm at all, e.g. a single failure at a small share) is suspect: its quiet hold is
SUSPECT_SECONDS instead of STEP_SECONDS or PROMOTION_SECONDS, time for more evidence. A healthy
canary usually clears as the primary's failures come in; a bad one crosses or holds."""

SUSPECT_SECONDS = 300.0
"""The quiet hold of a suspect canary, at any step (capped like STEP_SECONDS)."""

QUIET_SHARE = 0.5
"""The quiet hold is at most this share of the inconclusiveDeadline (and at least a look):
the inconclusive clock runs from the step's first look, and a suspicious canary must still
have time to clear or fail before the deadline."""

DEFAULT_MARGIN = 0.0
"""Tolerance when the check sets no margin: the canary may not be worse than the primary."""

LATENCY_SLOW_SHARE = 0.01
"""A latency check that does not compare with the primary tests 'at most 1% of canary
requests slower than max', i.e. its p99 within the objective."""

_FORMAT = 3.0
_HEADER = 9  # format, null ratio, null rate, crossed, abs crossed,
# step weight/requests/exposure, total exposure
_SIZE = _HEADER + stats.GRID.size
_THRESHOLD = math.log(1.0 / ALPHA)
_JITTER_SECONDS = 1.0  # a look this much early (scheduling) still counts as on time
_OK_SD = 0.5  # prior of the tolerance test: normal on ln(canary / primary), centred on 1x
_SLO_CENTRE = -2.0  # ... and for the slow share against the objective: about 0.14%
_SLO_SD = 1.0


def _zeros() -> FloatArray:
    return np.zeros(stats.GRID.size)


@dataclass
class _Running:
    """judge_state, unpacked: the test's running numbers."""

    null_ratio: float
    null_rate: float
    crossed: float = 0.0  # look (with data) at which the comparison crossed 1/ALPHA (0: never)
    abs_crossed: float = 0.0  # same for the absolute objective
    step_weight: float = -1.0
    step_requests: float = 0.0
    step_exposure: float = 0.0  # what this step's windows could tell (stats.exposure)
    exposure: float = 0.0  # ... and all windows of the analysis
    loglik: FloatArray = field(default_factory=_zeros)

    @classmethod
    def load(cls, saved: list[float], null_ratio: float, null_rate: float) -> _Running:
        if len(saved) != _SIZE or saved[0] != _FORMAT or saved[1:3] != [null_ratio, null_rate]:
            return cls(null_ratio, null_rate)  # new, or the margin/objective changed: restart
        crossed, abs_crossed, weight, requests, step_exposure, exposure = saved[3:_HEADER]
        loglik = np.asarray(saved[_HEADER:], dtype=np.float64)
        step = (weight, requests, step_exposure, exposure)
        return cls(null_ratio, null_rate, crossed, abs_crossed, *step, loglik=loglik)

    def dump(self) -> list[float]:
        head = [_FORMAT, self.null_ratio, self.null_rate, self.crossed, self.abs_crossed]
        head += [self.step_weight, self.step_requests, self.step_exposure, self.exposure]
        sums: list[float] = self.loglik.tolist()
        return head + sums


@dataclass(frozen=True)
class _Test:
    """One fail test: against the primary or the objective; ln of its e-value of harm."""

    against: str
    log_harm: float


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
            tests.append(_Test("primary", stats.log_evidence_of_harm(run.loglik)))
        if null_rate is not None:
            rate_ll = stats.rate_loglik(new.canary_failures, new.canary_requests, null_rate)
            tests.append(_Test("objective", stats.log_evidence_of_harm(rate_ll)))
        for test in tests:
            if test.log_harm >= _THRESHOLD and test.against == "primary" and not run.crossed:
                run.crossed = new.ticks
            if test.log_harm >= _THRESHOLD and test.against == "objective" and not run.abs_crossed:
                run.abs_crossed = new.ticks
        new.judge_state = run.dump()
        statistic = stats.evalue(max(t.log_harm for t in tests))
        routes = _routes(check, run, new, compare, null_rate, context.final_step)
        verdict, why = _verdict(run, tests, routes, new, context, statistic)
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
    if weight != run.step_weight:
        run.step_weight, run.step_requests, run.step_exposure = float(weight), 0.0, 0.0
    if p_req > 0:
        share = canary.requests / (canary.requests + p_req)
        run.loglik = run.loglik + stats.split_loglik(c_fail, p_fail, share, run.null_ratio)
        detect = max(DETECT_RATIO, 2.0 * run.null_ratio)
        rate = (state.primary_failures + p_fail) / (state.primary_requests + p_req)
        seen = stats.exposure(rate, canary.requests, p_req, run.null_ratio, detect)
        run.step_exposure += seen
        run.exposure += seen
    run.step_requests += canary.requests
    return CheckState(
        name=state.name,
        ticks=state.ticks + 1,
        canary_requests=state.canary_requests + canary.requests,
        canary_failures=state.canary_failures + c_fail,
        primary_requests=state.primary_requests + p_req,
        primary_failures=state.primary_failures + p_fail,
    )


@dataclass(frozen=True)
class _Route:
    """One way to show a canary tolerable: against its primary, or against the objective."""

    within: str  # what it is shown within, for the message
    exposure: float  # what the windows could have told about a DETECT_RATIO canary
    log_ok: float  # ln of the pass test's e-value


def _routes(
    check: CheckSpec,
    run: _Running,
    totals: CheckState,
    compare: bool,
    null_rate: float | None,
    final: bool,
) -> list[_Route]:
    """The pass tests of a check, with their exposure: the step's windows, or at the last
    step the whole analysis'. Against the primary: "r <= 1" against "r >= TOLERANCE". Against
    the objective (latency: 1% slow; an error-rate check that does not compare: ``max``):
    "well under it" against "at it"."""
    routes: list[_Route] = []
    if compare:
        tolerance = max(TOLERANCE, 2.0 * run.null_ratio)
        index = stats.tolerance_index(run.null_ratio, tolerance)
        centre = -math.log(run.null_ratio)  # ratio 1: a canary as good as its primary
        ok = stats.log_evidence_below(run.loglik, index, centre, _OK_SD)
        seen = run.exposure if final else run.step_exposure
        routes.append(_Route(f"{tolerance:g}x", seen, ok))
    slo = LATENCY_SLOW_SHARE if check.kind is CheckKind.LATENCY else None if compare else null_rate
    if slo is not None and 0.0 < slo < 1.0:
        rate_ll = stats.rate_loglik(totals.canary_failures, totals.canary_requests, slo)
        ok = stats.log_evidence_below(rate_ll, stats.NULL_INDEX, _SLO_CENTRE, _SLO_SD)
        requests = totals.canary_requests if final else run.step_requests
        worse = min(DETECT_RATIO * slo, (1.0 + slo) / 2.0)
        seen = requests * stats.rate_divergence(worse, slo)
        routes.append(_Route("the objective", seen, ok))
    return routes or [_Route("the objective", 0.0, -math.inf)]  # max: 0 has no pass test


def _verdict(
    run: _Running,
    tests: list[_Test],
    routes: list[_Route],
    totals: CheckState,
    context: JudgeContext,
    evidence: float,
) -> tuple[Verdict, str]:
    """The rules of docs/analysis.md, in order: fail on a crossing; hold on leaning evidence;
    pass on strong evidence that the canary is tolerable; pass once exposed to a DETECT_RATIO
    canary unless the data lean against it (at the last step: hold); pass a quiet step after
    its quiet hold (STEP_SECONDS at its weight); otherwise gather evidence."""
    shown = f"evidence {_num(evidence)}"
    crossed = _crossing(run.crossed, run.abs_crossed)
    if crossed:
        return Verdict.FAIL, f"{shown}; {crossed}: fail"
    if any(t.log_harm >= math.log(HOLD_EVIDENCE) for t in tests):
        why = f"{shown} >= {HOLD_EVIDENCE:g} (fails at {1 / ALPHA:g}): holding for more data"
        return Verdict.INCONCLUSIVE, why
    at = f"at {context.weight}%"
    if run.step_requests < 1:
        return Verdict.INCONCLUSIVE, f"{shown}; no canary request {at} yet: waiting for traffic"
    best = max(routes, key=lambda r: r.log_ok)
    if best.log_ok >= math.log(PROMOTION_EVIDENCE):
        ok = f"pass test {_num(stats.evalue(best.log_ok))} >= {PROMOTION_EVIDENCE:g}"
        return Verdict.PASS, f"{shown}; within {best.within} ({ok}): pass"
    final = context.final_step
    need = PROMOTION_EXPOSURE if final else STEP_EXPOSURE
    seen = max(r.exposure for r in routes)
    could = (
        f"a {DETECT_RATIO:g}x canary would be at {_num(stats.evalue(seen))} of "
        f"{_num(stats.evalue(need))} {'in all' if final else at}"
    )
    exposed = [r for r in routes if r.exposure >= need]
    for route in exposed:
        if route.log_ok >= math.log(OK_EVIDENCE):
            ok = f"pass test within {route.within} {_num(stats.evalue(route.log_ok))}"
            return Verdict.PASS, f"{shown}; {could}, {ok}: pass"
    ok = f"pass test within {best.within} {_num(stats.evalue(best.log_ok))}"
    if exposed and final:
        why = f"{could}, but {ok} < {OK_EVIDENCE:g}: not shown tolerable, holding"
        return Verdict.INCONCLUSIVE, f"{shown}; {why}"
    log_harm = max(t.log_harm for t in tests)
    return _quiet_step(context, totals, log_harm, shown, could, ok if exposed else "")


def _quiet_step(
    context: JudgeContext,
    totals: CheckState,
    log_harm: float,
    shown: str,
    could: str,
    leaning: str,
) -> tuple[Verdict, str]:
    """Rules 7-9: a step no evidence has passed waits its quiet hold (longer for a suspect
    canary), then passes unless the last step lacks minRequests in all. ``leaning`` is the
    pass test's reading when the step was exposed but the data lean against the canary."""
    hold = quiet_hold(context, log_harm)
    at = f"at {context.weight}%"
    if context.step_seconds + _JITTER_SECONDS < hold:
        suspect = " (suspect)" if hold > quiet_hold(context) else ""
        held = f"{_seconds(context.step_seconds)} of {_seconds(hold)}{suspect} {at}"
        return Verdict.INCONCLUSIVE, f"{shown}; {could}, {held}: gathering evidence"
    need = context.min_requests
    if context.final_step and totals.canary_requests < need:
        why = f"{totals.canary_requests} canary requests in all (minRequests {need})"
        return Verdict.INCONCLUSIVE, f"{shown}; {why}: waiting to promote"
    after = f"after {_seconds(context.step_seconds)} {at}"
    if leaning:  # a step before the last: the data lean against it, but not towards harm
        why = f"{could}, {leaning} < {OK_EVIDENCE:g} {after}: no sign of harm"
    else:
        why = f"{could} {after}: too few failures to tell"
    return Verdict.PASS, f"{shown} < {HOLD_EVIDENCE:g}; {why}: pass"


def quiet_hold(context: JudgeContext, log_harm: float = -math.inf) -> float:
    """Seconds at a weight after which a quiet step passes: STEP_SECONDS (PROMOTION_SECONDS at
    the last step), or SUSPECT_SECONDS for a suspect canary (ln E of harm at least
    ln SUSPECT_EVIDENCE); at most QUIET_SHARE of the inconclusive deadline, at least a look."""
    quiet = PROMOTION_SECONDS if context.final_step else STEP_SECONDS
    hold = SUSPECT_SECONDS if log_harm >= math.log(SUSPECT_EVIDENCE) else quiet
    return max(min(hold, QUIET_SHARE * context.inconclusive_deadline), context.look_interval)


def _seconds(value: float) -> str:
    return f"{value:.0f}s" if value < 120 else f"{value / 60:.1f}m"


def _crossing(crossed: float, abs_crossed: float) -> str:
    """Why the canary fails, once a test has crossed 1/ALPHA (it stays crossed), else ''."""
    if crossed:
        return f"worse than the primary (crossed {1 / ALPHA:g} at look {crossed:.0f})"
    if abs_crossed:
        return f"above the objective (crossed {1 / ALPHA:g} at look {abs_crossed:.0f})"
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
