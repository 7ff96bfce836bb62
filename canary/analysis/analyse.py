"""One tick of analysis: every check queried, judged, and turned into the engine's input.

This is what the shells call when `engine.plan` asks for analysis. A check whose data cannot
be had (Prometheus down, a bad query, a judge missing) is inconclusive with the reason; it is
never passed, and one check's trouble never stops the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from canary.analysis.judges import JudgeError, get_judge
from canary.analysis.judges.common import described
from canary.analysis.judges.score import apply_score
from canary.analysis.provider import (
    BaselineProvider,
    MetricsError,
    MetricsProvider,
    MetricsUnavailableError,
    Targets,
    windows_of,
)
from canary.analysis.samples import JudgeContext, SideSample, WindowSample
from canary.engine.clock import seconds_since
from canary.engine.plan import at_last_step
from canary.engine.timing import (
    COUNTED_KINDS,
    EVIDENCE_DRIVEN_JUDGES,
    MAX_WINDOWS_PER_GAP,
    analysis_seconds,
    judge_of,
    look_interval,
    step_seconds,
)
from canary.model.analysis import CheckKind, CheckSpec, JudgeName
from canary.model.duration import format_duration
from canary.model.rollout import Rollout
from canary.model.status import CheckResult, CheckState, RolloutStatus, Verdict


def query_variables(
    targets: Targets, window_seconds: float, check: CheckSpec, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """The {{ variables }} a check's queries may use."""
    variables = dict(extra or {})
    variables.update(
        namespace=targets.namespace,
        target=targets.target,
        canary=targets.canary,
        primary=targets.primary,
        interval=format_duration(max(round(window_seconds), 1)),
    )
    if check.max is not None:
        variables["objective_ms"] = f"{check.max:g}"
        variables["objective_seconds"] = f"{check.max / 1000.0:g}"
    return variables


def judge_name(rollout: Rollout, check: CheckSpec, override: JudgeName | None) -> JudgeName:
    """An explicit override (e.g. `simulate --judge`), then the check's own, then the rollout's."""
    return judge_of(rollout, check, override)


def judge_context(
    rollout: Rollout,
    status: RolloutStatus,
    checks: Sequence[CheckSpec],
    now: datetime,
    judge_override: JudgeName | None = None,
) -> JudgeContext:
    """What the judges may know of the rollout at ``now``: the step and the timing."""
    analysis = rollout.spec.analysis
    return JudgeContext(
        weight=status.canary_weight,
        min_requests=analysis.min_requests,
        final_step=at_last_step(rollout, status),
        look_interval=look_interval(rollout, checks, judge_override),
        interval=analysis.interval,
        inconclusive_deadline=analysis.inconclusive_deadline,
        step_seconds=step_seconds(rollout, status, now),
        analysis_seconds=analysis_seconds(status, now),
        detect=analysis.detect,
        alpha=analysis.alpha,
        beta=analysis.beta,
    )


def analyse(
    rollout: Rollout,
    status: RolloutStatus,
    checks: list[CheckSpec],
    provider: MetricsProvider,
    targets: Targets,
    window_seconds: float,
    now: datetime,
    *,
    judge_override: JudgeName | None = None,
    variables: dict[str, str] | None = None,
) -> tuple[list[CheckResult], list[CheckState]]:
    """Query and judge every check over the last ``window_seconds`` (the time since the
    previous look: canary.engine.timing.analysis_window); returns this tick's results and the
    checks' new states."""
    context = judge_context(rollout, status, checks, now, judge_override)
    states = {s.name: s for s in status.analysis}
    looks = [
        _look(rollout, check, states, judge_override, targets, window_seconds, now, variables)
        for check in checks
    ]
    windows = _windows(provider, looks, now)
    results: list[CheckResult] = []
    new_states: list[CheckState] = []
    for look, window in zip(looks, windows, strict=True):
        check, state, name, given = look.check, look.state, look.judge, look.variables
        if not isinstance(window, WindowSample):
            results.append(_inconclusive(check, name, status, now, window))
            new_states.append(state)
            continue
        judge = get_judge(name)
        if wants_baseline(rollout, check, name):
            state = with_baseline(rollout, check, state, provider, given, now, context)
            window = window.model_copy(update={"baseline": baseline_of(state)})
        result, new_state = judge.judge(check, window, state, context, now)
        new_state = new_state.model_copy(
            update={
                "baseline_requests": state.baseline_requests,
                "baseline_failures": state.baseline_failures,
            }
        )
        result = described(check, result, window)
        if new_state.ticks > state.ticks:  # the window's data went into the running totals
            new_state = new_state.model_copy(update={"window_end": now})
        results.append(result)
        new_states.append(new_state)
    # Kayenta's weighted score settles the mann-whitney verdicts (others are left as they are).
    return apply_score(results, checks), new_states


@dataclass(frozen=True)
class _Look:
    """One check's look this tick: its state, its judge, its {{ variables }}."""

    check: CheckSpec
    state: CheckState
    judge: JudgeName
    missing: JudgeError | None
    """Why there is no such judge (None: there is)."""
    variables: dict[str, str]


def _look(
    rollout: Rollout,
    check: CheckSpec,
    states: dict[str, CheckState],
    judge_override: JudgeName | None,
    targets: Targets,
    window_seconds: float,
    now: datetime,
    variables: dict[str, str] | None,
) -> _Look:
    state = states.get(check.name, CheckState(name=check.name))
    name = judge_name(rollout, check, judge_override)
    seconds = check_window(rollout, check, name, state, window_seconds, now)
    missing = None
    try:
        get_judge(name)
    except JudgeError as exc:
        missing = exc
    given = query_variables(targets, seconds, check, variables)
    # The exact window's start: the previous look's end, so consecutive looks add up.
    given.setdefault("window_start", f"{now.timestamp() - seconds:.3f}")
    return _Look(check, state, name, missing, given)


def _windows(
    provider: MetricsProvider, looks: list[_Look], now: datetime
) -> list[WindowSample | MetricsError | JudgeError]:
    """The window of each look with a judge (why there is none for the others), asked of the
    provider together: one request for the checks it can answer at once
    (canary.analysis.prometheus)."""
    judged = [look for look in looks if look.missing is None]
    found = iter(windows_of(provider, [(look.check, look.variables) for look in judged], now))
    return [next(found) if look.missing is None else look.missing for look in looks]


def wants_baseline(rollout: Rollout, check: CheckSpec, judge: JudgeName) -> bool:
    """Whether the judge reads the primary's usual failure rate for ``check``: the sequential
    judge's compared error-rate checks with an objective (canary.analysis.judges.baseline)."""
    return (
        judge is JudgeName.SEQUENTIAL
        and check.kind is CheckKind.ERROR_RATE
        and check.max is not None
        and check.max < 100.0
        and check.compare_to_primary is not False
        and rollout.spec.analysis.baseline > 0
    )


def with_baseline(
    rollout: Rollout,
    check: CheckSpec,
    state: CheckState,
    provider: MetricsProvider,
    variables: dict[str, str],
    now: datetime,
    context: JudgeContext,
) -> CheckState:
    """``state`` with the primary's counts over spec.analysis.baseline before the analysis,
    asked once per analysis (the engine clears the state when one starts). A provider that
    cannot tell them, a refused query or no series there is no history (0: not asked again);
    an unreachable Prometheus is asked again at the next look."""
    if state.baseline_requests is not None:
        return state
    found: SideSample | None = None
    if isinstance(provider, BaselineProvider):
        start = now - timedelta(seconds=context.analysis_seconds)
        try:
            found = provider.baseline(check, variables, start, rollout.spec.analysis.baseline)
        except MetricsUnavailableError:
            return state
        except MetricsError:
            found = None
    requests = found.requests if found else 0
    failures = min(found.failures, requests) if found else 0
    return state.model_copy(update={"baseline_requests": requests, "baseline_failures": failures})


def baseline_of(state: CheckState) -> SideSample | None:
    """The baseline the judge reads (None: not known)."""
    if not state.baseline_requests:
        return None
    return SideSample(requests=state.baseline_requests, failures=state.baseline_failures)


def check_window(
    rollout: Rollout,
    check: CheckSpec,
    judge: JudgeName,
    state: CheckState,
    window_seconds: float,
    now: datetime,
) -> float:
    """The seconds a check's queries cover. An evidence-driven check (counts, sequential
    judge) reaches back to the end of the last window it took in: a look without data (a
    window holding fewer than two Prometheus samples, an outage) is made up by the next one,
    and its windows never overlap. Other checks take the window they are given."""
    if (
        state.window_end is None
        or check.kind not in COUNTED_KINDS
        or judge not in EVIDENCE_DRIVEN_JUDGES
    ):
        return window_seconds
    since = seconds_since(state.window_end, now)
    return min(max(since, 1.0), MAX_WINDOWS_PER_GAP * rollout.spec.analysis.interval)


def _inconclusive(
    check: CheckSpec, judge: JudgeName, status: RolloutStatus, now: datetime, exc: Exception
) -> CheckResult:
    source = "metrics" if isinstance(exc, MetricsError) else "judge"
    result = CheckResult(
        name=check.name,
        verdict=Verdict.INCONCLUSIVE,
        time=now,
        weight=status.canary_weight,
        judge=judge.value,
        no_data=True,
        message=f"no verdict: {source} unavailable ({exc})",
    )
    return described(check, result, None)
