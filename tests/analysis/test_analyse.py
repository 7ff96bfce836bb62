"""The analysis tick: each check queried and judged; trouble is inconclusive, never a pass."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from canary.analysis.analyse import analyse, check_window, judge_context, query_variables
from canary.analysis.provider import MetricsUnavailableError, QueryError, Targets
from canary.analysis.samples import SideSample, WindowSample
from canary.model import (
    CheckKind,
    CheckSpec,
    CheckState,
    JudgeName,
    Rollout,
    RolloutStatus,
    Verdict,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
TARGETS = Targets(namespace="test", target="podinfo", canary="podinfo", primary="podinfo-primary")
ERRORS = CheckSpec(name="error-rate", kind=CheckKind.ERROR_RATE, max=1.0)
LATENCY = CheckSpec(name="latency", kind=CheckKind.LATENCY, max=500.0)


def rollout(judge: str = "threshold") -> Rollout:
    return Rollout.model_validate(
        {
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {
                "targetRef": {"name": "podinfo"},
                "service": {"port": 9898},
                "provider": {"name": "istio"},
                "analysis": {"judge": judge, "minRequests": 10},
            },
        }
    )


class Scripted:
    """A provider that answers from a table (or raises), recording what it was asked."""

    def __init__(self, answers: dict[str, WindowSample | Exception]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, dict[str, str]]] = []

    def window(self, check: CheckSpec, variables: Mapping[str, str], at: datetime) -> WindowSample:
        self.asked.append((check.name, dict(variables)))
        answer = self.answers[check.name]
        if isinstance(answer, Exception):
            raise answer
        return answer


def healthy() -> WindowSample:
    return WindowSample(
        canary=SideSample(requests=100, failures=0, value=120.0),
        primary=SideSample(requests=900, failures=1, value=110.0),
    )


def test_each_check_is_queried_once_and_judged() -> None:
    provider = Scripted({"error-rate": healthy(), "latency": healthy()})
    results, states = analyse(
        rollout(), RolloutStatus(canary_weight=10), [ERRORS, LATENCY], provider, TARGETS, 60, NOW
    )
    assert [r.verdict for r in results] == [Verdict.PASS, Verdict.PASS]
    assert [name for name, _ in provider.asked] == ["error-rate", "latency"]
    assert all(r.judge == "threshold" for r in results)
    assert [s.canary_requests for s in states] == [100, 100]


def test_metrics_trouble_is_inconclusive_with_the_reason_and_others_still_run() -> None:
    provider = Scripted(
        {"error-rate": MetricsUnavailableError("connection refused"), "latency": healthy()}
    )
    results, states = analyse(
        rollout(), RolloutStatus(canary_weight=10), [ERRORS, LATENCY], provider, TARGETS, 60, NOW
    )
    assert results[0].verdict is Verdict.INCONCLUSIVE
    assert results[0].no_data
    assert "connection refused" in results[0].message
    assert results[1].verdict is Verdict.PASS
    assert states[0].ticks == 0


def test_a_bad_query_is_inconclusive_not_a_crash() -> None:
    provider = Scripted({"error-rate": QueryError("parse error at char 7")})
    results, _ = analyse(
        rollout(), RolloutStatus(canary_weight=10), [ERRORS], provider, TARGETS, 60, NOW
    )
    assert results[0].verdict is Verdict.INCONCLUSIVE
    assert "parse error" in results[0].message


def test_judge_override_then_check_then_rollout() -> None:
    provider = Scripted({"error-rate": healthy(), "latency": healthy()})
    own = LATENCY.model_copy(update={"judge": JudgeName.SEQUENTIAL})
    results, _ = analyse(
        rollout(), RolloutStatus(canary_weight=10), [ERRORS, own], provider, TARGETS, 60, NOW
    )
    assert [r.judge for r in results] == ["threshold", "sequential"]
    results, _ = analyse(
        rollout(),
        RolloutStatus(canary_weight=10),
        [ERRORS, own],
        provider,
        TARGETS,
        60,
        NOW,
        judge_override=JudgeName.THRESHOLD,
    )
    assert [r.judge for r in results] == ["threshold", "threshold"]


def test_states_carry_over_between_ticks() -> None:
    provider = Scripted({"error-rate": healthy()})
    status = RolloutStatus(canary_weight=10)
    _, states = analyse(rollout(), status, [ERRORS], provider, TARGETS, 60, NOW)
    status.analysis = states
    _, states = analyse(rollout(), status, [ERRORS], provider, TARGETS, 60, NOW)
    assert states[0].ticks == 2
    assert states[0].canary_requests == 200


def test_query_variables() -> None:
    variables = query_variables(TARGETS, 59.6, LATENCY, {"extra": "x"})
    assert variables == {
        "extra": "x",
        "namespace": "test",
        "target": "podinfo",
        "canary": "podinfo",
        "primary": "podinfo-primary",
        "interval": "1m",
        "objective_ms": "500",
        "objective_seconds": "0.5",
    }


# --- timing: the judges' context and the windows of looks -----------------------------------


def test_the_judges_see_the_look_interval_the_deadline_and_the_time_at_the_weight() -> None:
    ro = rollout("sequential")
    status = RolloutStatus(
        canary_weight=10,
        analysis_started_at=NOW - timedelta(seconds=100),
        step_started_at=NOW - timedelta(seconds=40),
    )
    context = judge_context(ro, status, [ERRORS, LATENCY], NOW)
    assert context.look_interval == 20.0
    assert context.interval == 60.0
    assert context.inconclusive_deadline == 600.0
    assert context.step_seconds == 40.0
    assert context.analysis_seconds == 100.0
    assert context.weight == 10
    assert judge_context(ro, status, [ERRORS], NOW, JudgeName.THRESHOLD).look_interval == 60.0


def _interval(provider: Scripted) -> str:
    return provider.asked[-1][1]["interval"]


def test_a_sequential_check_reaches_back_over_a_look_without_data() -> None:
    ro = rollout("sequential")
    status = RolloutStatus(canary_weight=10)
    provider = Scripted({"error-rate": healthy()})
    _, states = analyse(ro, status, [ERRORS], provider, TARGETS, 20, NOW)
    assert _interval(provider) == "20s"
    assert states[0].window_end == NOW
    status.analysis = states
    provider.answers["error-rate"] = WindowSample()  # fewer than two samples: no data
    later = NOW + timedelta(seconds=20)
    _, states = analyse(ro, status, [ERRORS], provider, TARGETS, 20, later)
    assert _interval(provider) == "20s"
    assert states[0].window_end == NOW  # nothing taken in: the next window starts there
    status.analysis = states
    provider.answers["error-rate"] = healthy()
    _, states = analyse(ro, status, [ERRORS], provider, TARGETS, 20, later + timedelta(seconds=20))
    assert _interval(provider) == "40s"
    assert states[0].ticks == 2
    assert states[0].window_end == later + timedelta(seconds=20)


def test_a_long_gap_reaches_back_at_most_four_intervals() -> None:
    ro = rollout("sequential")
    state = CheckState(name="error-rate", ticks=1, window_end=NOW - timedelta(hours=2))
    assert check_window(ro, ERRORS, JudgeName.SEQUENTIAL, state, 20, NOW) == 240.0


def test_other_judges_and_custom_checks_take_the_window_they_are_given() -> None:
    ro = rollout("sequential")
    state = CheckState(name="c", ticks=1, window_end=NOW - timedelta(seconds=90))
    assert check_window(ro, ERRORS, JudgeName.THRESHOLD, state, 60, NOW) == 60
    assert check_window(ro, ERRORS, JudgeName.MANN_WHITNEY, state, 60, NOW) == 60
    custom = CheckSpec(name="c", kind=CheckKind.CUSTOM, query="q", max=1.0)
    assert check_window(ro, custom, JudgeName.SEQUENTIAL, state, 20, NOW) == 20
    assert check_window(ro, ERRORS, JudgeName.SEQUENTIAL, state, 20, NOW) == 90.0
    fresh = CheckState(name="c")
    assert check_window(ro, ERRORS, JudgeName.SEQUENTIAL, fresh, 20, NOW) == 20
