"""One tick of analysis: every check queried, judged, and turned into the engine's input.

This is what the shells call when `engine.plan` asks for analysis. A check whose data cannot
be had (Prometheus down, a bad query, a judge missing) is inconclusive with the reason; it is
never passed, and one check's trouble never stops the others.
"""

from __future__ import annotations

from datetime import datetime

from canary.analysis.judges import JudgeError, get_judge
from canary.analysis.judges.score import apply_score
from canary.analysis.provider import MetricsError, MetricsProvider, Targets
from canary.analysis.samples import JudgeContext
from canary.engine.plan import at_last_step
from canary.model.analysis import CheckSpec, JudgeName
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
    return override or check.judge or rollout.spec.analysis.judge


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
    """Query and judge every check; returns this tick's results and the checks' new states."""
    context = JudgeContext(
        weight=status.canary_weight,
        min_requests=rollout.spec.analysis.min_requests,
        final_step=at_last_step(rollout, status),
    )
    states = {s.name: s for s in status.analysis}
    results: list[CheckResult] = []
    new_states: list[CheckState] = []
    for check in checks:
        state = states.get(check.name, CheckState(name=check.name))
        name = judge_name(rollout, check, judge_override)
        try:
            judge = get_judge(name)
            window = provider.window(
                check, query_variables(targets, window_seconds, check, variables), now
            )
        except (MetricsError, JudgeError) as exc:
            results.append(_inconclusive(check, name, status, now, exc))
            new_states.append(state)
            continue
        result, state = judge.judge(check, window, state, context, now)
        results.append(result)
        new_states.append(state)
    # Kayenta's weighted score settles the mann-whitney verdicts (others are left as they are).
    return apply_score(results, checks), new_states


def _inconclusive(
    check: CheckSpec, judge: JudgeName, status: RolloutStatus, now: datetime, exc: Exception
) -> CheckResult:
    source = "metrics" if isinstance(exc, MetricsError) else "judge"
    return CheckResult(
        name=check.name,
        verdict=Verdict.INCONCLUSIVE,
        time=now,
        weight=status.canary_weight,
        judge=judge.value,
        no_data=True,
        message=f"no verdict: {source} unavailable ({exc})",
    )
