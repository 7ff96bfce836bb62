"""The sequential judge: anytime-valid tests on cumulative failure counts.

Rolling back: given the failures of both sides in a window, the canary's share of them is
binomial with p = s*r / (s*r + 1 - s) (s: the canary's share of the window's requests, r:
canary failure rate / primary failure rate). A mixture of likelihood ratios over r > 1 +
margin, kept as running log-likelihood ratios on a fixed grid, is a test supermartingale under
"the canary is no worse": it fails the canary once it reaches 1/alpha (the crossing sticks);
the canary's rate against the check's objective is tested the same way.

Promoting needs positive evidence (canary.analysis.judges.promotion): that the canary is not
``detect`` (T) times worse than its primary, or that it is within its objective; the mean of
the two routes' e-values reaching 1/beta promotes (and sticks), and nothing else does. A step
*before the last* may pass on weaker grounds — its windows could have shown a DETECT_RATIO
canary and the data do not lean against it, or a quiet hold with no sign of harm: a heuristic,
as a step moves risk and ships nothing. The rules count seconds, never looks.

With counts per pod both tests allow for the pods' draw. Fewer canary pods than primary pods
(canary.analysis.judges.pods): half of alpha and beta go to a bound on it from the primary
pods' spread, the other halves to the counts (both bars at 40 instead of 20). As many or more
(canary.analysis.judges.dispersion): the spread from both sides' pods widens the count tests'
variance, at the same bars.
docs/analysis.md has the formulas, guarantees, defaults and measurements.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from canary.analysis import stats
from canary.analysis.judges import baseline, dispersion, holding, pods, promotion, words
from canary.analysis.judges.base import register_judge
from canary.analysis.judges.custom import custom_result
from canary.analysis.judges.running import Running, usable
from canary.analysis.samples import JudgeContext, SideSample, WindowSample
from canary.model.analysis import DEFAULT_ALPHA, CheckKind, CheckSpec, JudgeName
from canary.model.status import CheckResult, CheckState, Verdict

ALPHA = DEFAULT_ALPHA
"""Default chance of failing a canary that is no worse than the null, over the whole analysis
(per test): the e-value threshold is 1/alpha = 20 (spec.analysis.alpha)."""

HOLD_EVIDENCE = 5.0
"""A step does not pass while an e-value of harm is at or above this (the data lean towards
harm): the canary holds its weight (inconclusive) until the evidence clears it or fails it."""

DETECT_RATIO = 5.0
"""The regression each step must be able to see: a canary this many times worse than its
reference — the primary's failure rate (and at least twice the null 1 + margin), or for a
check against an objective (latency: 1% slow) the objective's rate."""

STEP_EXPOSURE = 1.0
"""A step before the last passes once its own windows would have given a DETECT_RATIO canary
this much evidence against the null: the expected ln e-value, computed from the traffic and
the primary's failure rate (never from the canary's failures, so luck cannot make it)."""

OK_EVIDENCE = 0.5
"""A step's pass on exposure needs a route's e-value at or above this: the data may not lean
against the canary by more than 2 to 1."""

STEP_SECONDS = 20.0
"""Quiet-service rule: a step with no sign of harm (every e-value of harm under HOLD_EVIDENCE)
that no rule has passed yet passes once the canary has been held this long at its weight
(with at least one canary request there) — steps whose windows are too few to reach
STEP_EXPOSURE; never the last step. Capped at QUIET_SHARE of the inconclusiveDeadline."""

SUSPECT_EVIDENCE = 1.2
"""A canary whose e-value of harm is at or above this (but under HOLD_EVIDENCE: the data lean
towards harm at all, e.g. a single failure at a small share) is suspect: its quiet hold is
SUSPECT_SECONDS instead of STEP_SECONDS, time for more evidence. A healthy
canary usually clears as the primary's failures come in; a bad one crosses or holds."""

SUSPECT_SECONDS = 300.0
"""The quiet hold of a suspect canary, at any step (capped like STEP_SECONDS)."""

QUIET_SHARE = 0.5
"""The quiet hold is at most this share of the inconclusiveDeadline (and at least a look):
the inconclusive clock runs from the step's first look, and a suspicious canary must still
have time to clear or fail before the deadline."""

DEFAULT_MARGIN = 0.0
"""Tolerance when the check sets no margin: the canary may not be worse than the primary."""

FAIR_RATIO = 1.2
"""How the message counts the canary pods that would do: enough that a version ``detect``
times worse would have to show under this ratio, which a healthy canary can."""

LATENCY_SLOW_SHARE = 0.01
"""A latency check that does not compare with the primary tests 'at most 1% of canary
requests slower than max', i.e. its p99 within the objective."""

_JITTER_SECONDS = 1.0  # a look this much early (scheduling) still counts as on time


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
                canary=words.evidence(totals.canary_requests, totals.canary_failures),
                primary=words.evidence(totals.primary_requests, totals.primary_failures),
                statistic=statistic,
                no_data=no_data,
                # A fail here is a crossing of 1/alpha, which never un-crosses: waiting for
                # failureLimit more ticks would only let the canary serve more bad requests.
                decisive=verdict is Verdict.FAIL,
                message=message,
            )

        if check.kind is CheckKind.CUSTOM:
            return custom_result(check, window, context, now), state
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
            crossed = _crossed(state.judge_state, context.alpha)
            if crossed:  # decided on earlier data; a gap does not undo it
                return result(Verdict.FAIL, f"{why}; {crossed}: fail", state), state
            return result(Verdict.INCONCLUSIVE, why, state, no_data=True), state

        margin = check.margin if check.margin is not None else DEFAULT_MARGIN
        run = Running.load(state.judge_state, 1.0 + margin, null_rate or 0.0)
        new = _accumulate(state, run, canary, primary if compare else None, context.weight)
        tests: list[_Test] = []
        widen = _harm_margin(run, context.alpha) if compare else 0.0
        spread = _dispersion(run, context.alpha) if compare else None
        if compare and widen > 0.0:  # what the pods' draw could explain is no harm
            tests.append(_Test("primary", pods.log_harm_above(run.loglik, widen)))
        elif compare and spread is not None:  # ... nor what their spread adds to the counts'
            tempered = run.loglik / spread.ratio
            tests.append(_Test("primary", stats.log_evidence_of_harm(tempered)))
        elif compare:
            tests.append(_Test("primary", stats.log_evidence_of_harm(run.loglik)))
        if null_rate is not None and not compare:  # comparing conditions on common modes
            rate_ll = stats.rate_loglik(new.canary_failures, new.canary_requests, null_rate)
            tests.append(_Test("objective", stats.log_evidence_of_harm(rate_ll)))
        fail_bar = 1.0 / (context.alpha * (1.0 - pods.POD_SHARE) if widen > 0.0 else context.alpha)
        threshold = math.log(fail_bar)
        for test in tests:
            if test.log_harm >= threshold and test.against == "primary" and not run.crossed:
                run.crossed = new.ticks
            if test.log_harm >= threshold and test.against == "objective" and not run.abs_crossed:
                run.abs_crossed = new.ticks
        drawn = _pod_bound(run, check, compare, null_rate, context.beta)
        spread = _dispersion(run, context.beta)
        usual = baseline.usual(window.baseline, context.beta) if compare and null_rate else None
        detect = max(context.detect, run.null_ratio * math.exp(stats.GRID_STEP))
        objective = _Objective.of(compare, null_rate, usual, new, detect)
        routes, tolerance = _routes(check, run, new, compare, objective, context, drawn, spread)
        share = context.weight / 100.0
        totals = (state.primary_failures, state.primary_requests)
        dead = promotion.objective_out_of_reach(*totals, share, tolerance, routes)
        moving = drawn is not None or spread is not None or objective.trough < 1.0
        log_promote = run.combined.take(routes, only_primary=dead, moving=moving)
        count_beta = _count_beta(context.beta, drawn, objective.exact)
        if log_promote >= math.log(1.0 / count_beta) and not run.promoted:
            run.promoted = new.ticks
        new.judge_state = run.dump()
        statistic = stats.evalue(max(t.log_harm for t in tests))
        case = _Case(
            run,
            tests,
            routes,
            new,
            context,
            statistic,
            log_promote,
            tolerance,
            drawn,
            spread,
            fail_bar,
            null_rate if not compare else None,
            run.null_ratio * math.exp(widen),
            objective,
        )
        verdict, why = _verdict(case)
        wider = spread.ratio if spread else 1.0
        text = words.describe(check, new, run, null_rate, compare, context.alpha, wider)
        return result(verdict, f"{text}, {why}", new, statistic), new


def _objective(check: CheckSpec, compare: bool) -> float | None:
    """The absolute failure rate the canary must stay under, if the check sets one."""
    if check.max is None:
        return None
    if check.kind is CheckKind.ERROR_RATE:
        return max(check.max / 100.0, 0.0) if check.max < 100.0 else None
    return None if compare else LATENCY_SLOW_SHARE


def _accumulate(
    state: CheckState, run: Running, canary: SideSample, primary: SideSample | None, weight: int
) -> CheckState:
    """The totals and the running log-likelihoods with this window added."""
    c_fail = min(canary.failures, canary.requests)
    p_req = primary.requests if primary else 0
    p_fail = min(primary.failures, p_req) if primary else 0
    if weight != run.step_weight:
        run.step_weight, run.step_requests, run.step_exposure = float(weight), 0.0, 0.0
    run.canary_pods.add(canary.pods)
    if primary is not None:
        run.primary_pods.add(primary.pods)
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
class _Objective:
    """How a check's objective q0 enters the promotion evidence (canary.analysis.judges.
    baseline): ``rate`` is q0 (None: no objective); ``exact`` the ratio q0 / p̄⁺ the
    comparison may rule out instead of T when it is larger (0: not used); ``trough`` the
    guard's scale on the one-sample route (1: none); ``unguarded`` a compared check without
    a baseline (no history): its objective is judged at the rate during the analysis."""

    rate: float | None
    exact: float = 0.0
    trough: float = 1.0
    unguarded: bool = False
    usual: float | None = None  # the primary's usual rate (baseline), for the message

    @classmethod
    def of(
        cls,
        compare: bool,
        rate: float | None,
        usual: baseline.Usual | None,
        totals: CheckState,
        detect: float,
    ) -> _Objective:
        if rate is None or not compare:
            return cls(rate)
        if usual is None:  # no history: judged at the analysis' own conditions, and said so
            return cls(rate, unguarded=True)
        trough = usual.trough(totals.primary_failures, totals.primary_requests)
        ratio = usual.objective_ratio(rate)
        return cls(rate, ratio if ratio > detect else 0.0, trough, usual=usual.rate)


def _routes(
    check: CheckSpec,
    run: Running,
    totals: CheckState,
    compare: bool,
    objective: _Objective,
    context: JudgeContext,
    drawn: pods.PodBound | None,
    spread: dispersion.Dispersion | None,
) -> tuple[list[promotion.Route], float]:
    """The routes to promotion of a check, with their exposure (the step's windows, or at the
    last step the whole analysis'), and the ratio T the primary route rules out. Against the
    primary: "r <= 1" against "r >= T" (or, with a baseline, against r >= q0 / p̄⁺ when that
    is larger: the objective at the primary's usual rate). Against the objective (an
    error-rate check's ``max``; a latency check's 1% slow): "under it" against "at it"."""
    routes: list[promotion.Route] = []
    tolerance = max(context.detect, run.null_ratio * math.exp(stats.GRID_STEP))
    null_rate = objective.rate
    if compare:
        seen = run.exposure if context.final_step else run.step_exposure
        margin = drawn.ratio_margin if drawn else 0.0
        loglik = run.loglik / spread.ratio if spread else run.loglik
        usual = objective.usual if objective.exact else None
        tolerance = max(tolerance, objective.exact)
        route, tolerance = promotion.primary_route(
            loglik, run.null_ratio, tolerance, seen, margin, usual
        )
        routes.append(route)
    slo = LATENCY_SLOW_SHARE if check.kind is CheckKind.LATENCY else null_rate
    if slo is not None and 0.0 < slo < 1.0 and objective.trough < 1.0:
        slo *= objective.trough
    if slo is not None and 0.0 < slo < 1.0:
        requests = totals.canary_requests if context.final_step else run.step_requests
        worse = min(DETECT_RATIO * slo, (1.0 + slo) / 2.0)
        seen = requests * stats.rate_divergence(worse, slo)
        failures, total = totals.canary_failures, totals.canary_requests
        margin = drawn.rate_margin if drawn else 0.0
        wider = spread.rate if spread else 1.0
        routes.append(promotion.objective_route(failures, total, slo, seen, margin, wider))
    if not routes:  # max: 0 and nothing to compare with: no canary can be shown within it
        routes.append(promotion.Route("objective", "the objective 0%", 0.0, -math.inf))
    return routes, tolerance


def _pod_bound(
    run: Running, check: CheckSpec, compare: bool, null_rate: float | None, beta: float
) -> pods.PodBound | None:
    """What the draw of pods can hide, from the counts per pod so far (None without them):
    POD_SHARE of beta, split between the routes that may promote (as _routes builds them)."""
    slo = LATENCY_SLOW_SHARE if check.kind is CheckKind.LATENCY else null_rate
    routes = int(compare) + int(slo is not None and 0.0 < slo < 1.0)
    share = beta * pods.POD_SHARE / max(routes, 1)
    return pods.bound(run.canary_pods.serving(), run.primary_pods.serving(), share)


def _harm_margin(run: Running, alpha: float) -> float:
    """How far above the null the pods' draw could push a healthy canary's ratio, at
    POD_SHARE of alpha (0: no counts per pod, or their spread not told yet)."""
    return pods.harm_margin(
        run.canary_pods.serving(), run.primary_pods.serving(), alpha * pods.POD_SHARE
    )


def _dispersion(run: Running, tail: float) -> dispersion.Dispersion | None:
    """With as many canary pods as primary pods: what their spread adds to the tests'
    variance, at the bar 1/``tail`` (None: fewer canary pods, or no counts per pod)."""
    return dispersion.dispersion(run.canary_pods.serving(), run.primary_pods.serving(), tail)


def _count_beta(beta: float, drawn: pods.PodBound | None, exact: float = 0.0) -> float:
    """The count tests' share of beta: all of it, or what the pods' draw and the baseline's
    bound (when the comparison rules out its objective ratio) leave."""
    share = beta if drawn is None else beta * (1.0 - pods.POD_SHARE)
    return share * (1.0 - baseline.BASELINE_SHARE) if exact else share


@dataclass(frozen=True)
class _Case:
    """Everything one verdict is decided on."""

    run: Running
    tests: list[_Test]
    routes: list[promotion.Route]
    totals: CheckState
    context: JudgeContext
    evidence: float  # the e-value of harm shown
    log_promote: float  # ln of the promotion evidence (the mean of the routes' e-values)
    tolerance: float  # the ratio T the primary route rules out
    drawn: pods.PodBound | None  # what few canary pods could hide (None: no per-pod counts)
    spread: dispersion.Dispersion | None  # as many canary pods: what their spread adds
    fail_bar: float  # the e-value of harm that fails (1/alpha; more when pods widen the null)
    objective: float | None  # the fail test's objective rate (None: it compares with the primary)
    fail_null: float  # the ratio the fail test against the primary tests (pods may widen it)
    objective_use: _Objective  # how the objective enters the promotion evidence


def _verdict(case: _Case) -> tuple[Verdict, str]:
    """The rules of docs/analysis.md, in order: fail on a crossing of 1/alpha; pass on a
    crossing of 1/beta by the promotion evidence (both stick); hold on leaning evidence; at
    the last step nothing else passes; a step before it passes once exposed (unless the data
    lean against it) or after its quiet hold with no sign of harm."""
    run, context = case.run, case.context
    shown = f"evidence {words.num(case.evidence)}"
    crossed = words.crossing(run.crossed, run.abs_crossed, case.fail_bar)
    if crossed:
        return Verdict.FAIL, f"{shown}; {crossed}: fail"
    bar = 1 / _count_beta(context.beta, case.drawn, case.objective_use.exact)
    promote = f"{words.num(stats.evalue(case.log_promote))} of {bar:g}"
    if run.promoted:
        within = " or ".join(r.within for r in case.routes)
        if case.objective_use.unguarded and len(case.routes) > 1:
            within += " (no baseline of the primary's usual failure rate: judged at the rate "
            within += "during the analysis)"
        why = f"shown within {within} (promotion evidence crossed {bar:g} "
        return Verdict.PASS, f"{shown}; {why}at look {run.promoted:.0f}): pass"
    if any(t.log_harm >= math.log(HOLD_EVIDENCE) for t in case.tests):
        why = f"{shown} >= {HOLD_EVIDENCE:g} (fails at {case.fail_bar:g}): holding for more data"
        return Verdict.INCONCLUSIVE, f"{why}; {_fail_needs(case)}"
    at = f"at {context.weight}%"
    if run.step_requests < 1:
        return Verdict.INCONCLUSIVE, f"{shown}; no canary request {at} yet: waiting for traffic"
    if context.final_step:
        needs = _needs(case)
        return Verdict.INCONCLUSIVE, f"{shown}; promotion evidence {promote}, {needs}"
    could = words.could_show(max(r.exposure for r in case.routes), at, DETECT_RATIO, STEP_EXPOSURE)
    best = max(case.routes, key=lambda r: r.log_ok)
    for route in case.routes:
        if route.exposure >= STEP_EXPOSURE and route.log_ok >= math.log(OK_EVIDENCE):
            ok = f"pass test within {route.within} {words.num(stats.evalue(route.log_ok))}"
            return Verdict.PASS, f"{shown}; {could}, {ok}: step passes"
    exposed = any(r.exposure >= STEP_EXPOSURE for r in case.routes)
    ok = f"pass test within {best.within} {words.num(stats.evalue(best.log_ok))}"
    log_harm = max(t.log_harm for t in case.tests)
    return _quiet_step(context, log_harm, shown, could, ok if exposed else "")


def _needs(case: _Case) -> str:
    """What the last step is missing, in plain words: about how many more canary requests a
    canary like its primary would need, and at the step's traffic how long."""
    totals, run, context = case.totals, case.run, case.context
    primary_rate = (
        totals.primary_failures / totals.primary_requests if totals.primary_requests else 0.0
    )
    share = context.weight / 100.0
    objective = next((r.objective for r in case.routes if r.objective is not None), None)
    tolerance, drawn = case.tolerance, case.drawn
    if drawn is not None:  # what the pods' draw leaves to show
        tolerance *= math.exp(-drawn.ratio_margin)
        objective = objective * math.exp(-drawn.rate_margin) if objective else None
    growth = promotion.healthy_growth(primary_rate, share, tolerance, objective)
    spread = case.spread
    if spread is not None:  # the pods' spread slows the evidence, and may cap it
        growth = promotion.Growth(growth.primary / spread.ratio, growth.objective / spread.rate)
    count_beta = _count_beta(context.beta, drawn, case.objective_use.exact)
    requests = promotion.requests_needed(case.log_promote, growth, count_beta)
    per_minute = 60.0 * run.step_requests / context.step_seconds if context.step_seconds else 0.0
    detect = max(context.detect, case.tolerance)
    within = objective is not None
    if spread is not None:
        capped = words.spread_caps(spread, detect, context.beta)
        if capped:
            requests = math.inf
            text = f"cannot show the canary is not {words.x(detect)} worse yet{capped}"
        else:
            text = promotion.describe_needs(requests, per_minute, detect, within)
            text += words.few_degrees(spread, context.beta)
    elif drawn is None:
        text = promotion.describe_needs(requests, per_minute, detect, within)
    elif math.isfinite(requests):
        text = promotion.describe_needs(requests, per_minute, detect) + _pods_note(
            drawn, case, detect
        )
    else:
        text = f"cannot show the canary is not {words.x(detect)} worse or within its objective yet"
        text += _pods_note(drawn, case, detect)
    if case.objective_use.unguarded:
        text += (
            " (no baseline of the primary's usual failure rate: its objective is judged at the "
            "rate during the analysis)"
        )
    return text + words.deadline_note(requests, per_minute, context)


def _fail_needs(case: _Case) -> str:
    """What a held canary, leaning towards harm, is missing: about how many more canary
    requests would fail it if both sides keep failing as they have, and how long."""
    run, context = case.run, case.context
    growth = holding.growth_to_fail(
        case.totals, context.weight / 100.0, case.fail_null, case.objective
    )
    log_harm = max(t.log_harm for t in case.tests)
    requests = holding.requests_to_fail(log_harm, case.fail_bar, growth)
    per_minute = 60.0 * run.step_requests / context.step_seconds if context.step_seconds else 0.0
    text = holding.describe_fail_needs(requests, per_minute)
    return text + words.deadline_note(requests, per_minute, context)


def _pods_note(drawn: pods.PodBound, case: _Case, detect: float) -> str:
    """Why few canary pods ask for more, and how many would do."""
    if not math.isfinite(drawn.spread):
        shortfall = holding.spread_shortfall(case.run.primary_pods.serving())
        return (
            f" ({drawn.canary_pods} canary vs {drawn.primary_pods} primary pods: a canary pod "
            f"may be a lucky draw, and {shortfall})"
        )
    shown = f"under {words.x(detect * math.exp(-drawn.ratio_margin))}"
    text = f" ({drawn.describe()}: a canary pod may be a lucky draw, so it must show {shown}"
    share = case.context.beta * pods.POD_SHARE / max(len(case.routes), 1)
    enough = pods.canary_pods_needed(drawn, share, detect, FAIR_RATIO)
    if enough is not None and drawn.canary_pods < enough < drawn.primary_pods:
        text += f"; with {enough} canary pods a healthy canary could show it"
    elif enough is None or enough >= drawn.primary_pods:
        # as many pods as the primary: the spread is told from both sides, with more df
        text += (
            f"; fewer canary pods than the primary's would not let a healthy canary show it at "
            f"this spread: give the canary as many pods as the primary ({drawn.primary_pods})"
        )
    return text + ")"


def _quiet_step(
    context: JudgeContext,
    log_harm: float,
    shown: str,
    could: str,
    leaning: str,
) -> tuple[Verdict, str]:
    """A step before the last that no evidence has passed waits its quiet hold (longer for
    a suspect canary), then passes: a heuristic, as it moves risk and does not ship it.
    ``leaning`` is the pass test's reading when the step was exposed but the data lean
    against the canary."""
    hold = quiet_hold(context, log_harm)
    at = f"at {context.weight}%"
    if context.step_seconds + _JITTER_SECONDS < hold:
        suspect = " (suspect)" if hold > quiet_hold(context) else ""
        held = f"{words.seconds(context.step_seconds)} of {words.seconds(hold)}{suspect} {at}"
        return Verdict.INCONCLUSIVE, f"{shown}; {could}, {held}: gathering evidence"
    after = f"after {words.seconds(context.step_seconds)} {at}"
    if leaning:  # the data lean against it, but not towards harm
        why = f"{could}, {leaning} < {OK_EVIDENCE:g} {after}: no sign of harm"
    else:
        why = f"{could} {after}: too few failures to tell"
    return Verdict.PASS, f"{shown} < {HOLD_EVIDENCE:g}; {why}: step passes"


def quiet_hold(context: JudgeContext, log_harm: float = -math.inf) -> float:
    """Seconds at a weight (before the last) after which a quiet step passes: STEP_SECONDS,
    or SUSPECT_SECONDS for a suspect canary (ln E of harm at least ln SUSPECT_EVIDENCE); at
    most QUIET_SHARE of the inconclusive deadline, at least a look."""
    hold = SUSPECT_SECONDS if log_harm >= math.log(SUSPECT_EVIDENCE) else STEP_SECONDS
    return max(min(hold, QUIET_SHARE * context.inconclusive_deadline), context.look_interval)


def _crossed(saved: list[float], alpha: float) -> str:
    return words.crossing(saved[3], saved[4], 1.0 / alpha) if usable(saved) else ""


SEQUENTIAL = register_judge(SequentialJudge())
