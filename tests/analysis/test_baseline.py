"""The primary's usual failure rate (spec.analysis.baseline): the provider's query against a
real Prometheus, asked once per analysis through the tick, and what the judge makes of it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_support import SCENARIOS, FakePrometheus, LoadedPrometheus, Sleeps, vector
from scipy.stats import poisson

from canary.analysis.analyse import analyse, query_variables
from canary.analysis.judges import baseline
from canary.analysis.policies import builtin_policy, expand
from canary.analysis.prometheus import TAG, PrometheusProvider, PrometheusSettings
from canary.analysis.provider import Targets
from canary.analysis.samples import SideSample
from canary.model import CheckKind, CheckSpec, Rollout, RolloutStatus

AT = datetime(2026, 1, 1, tzinfo=UTC)
TARGETS = Targets(namespace="test", target="app", canary="app", primary="app-primary")
ERRORS = CheckSpec(
    name="errors",
    kind=CheckKind.ERROR_RATE,
    max=1.0,
    requests_query='sum by (app) (increase(requests{app=~"{{ canary }}|{{ primary }}"}'
    "[{{ interval }}]))",
    failures_query='sum by (app) (increase(errors{app=~"{{ canary }}|{{ primary }}"}'
    "[{{ interval }}]))",
)


def provider(url: str) -> PrometheusProvider:
    return PrometheusProvider(PrometheusSettings(url=url), sleep=Sleeps())


def error_check(policy: str) -> CheckSpec:
    (check,) = [c for c in expand(builtin_policy(policy)) if c.kind is CheckKind.ERROR_RATE]
    return check


@pytest.mark.parametrize("policy", sorted(SCENARIOS))
def test_the_baseline_is_the_primarys_counts_over_the_window_before_the_start(
    prometheus: LoadedPrometheus, policy: str
) -> None:
    """Ten minutes before the query time, on the backfilled series (a constant rate): ten
    times the primary's counts a minute, from the policy's own queries."""
    check = error_check(policy)
    case = SCENARIOS[policy]["bad"]
    variables = query_variables(case.targets, 60, check)
    found = provider(prometheus.url).baseline(check, variables, prometheus.at, 600)
    assert found is not None
    assert (found.requests, found.failures) == (
        10 * case.primary.requests,
        10 * case.primary.errors,
    )


def test_no_series_before_the_start_is_no_history(prometheus: LoadedPrometheus) -> None:
    check = error_check("istio")
    nobody = Targets(namespace="empty", target="podinfo", canary="podinfo", primary="podinfo-p")
    variables = query_variables(nobody, 60, check)
    assert provider(prometheus.url).baseline(check, variables, prometheus.at, 600) is None


def sequential_rollout(**analysis: Any) -> Rollout:
    return Rollout.model_validate(
        {
            "metadata": {"name": "app", "namespace": "test"},
            "spec": {
                "targetRef": {"name": "app"},
                "service": {"port": 9898},
                "provider": {"name": "istio"},
                "analysis": {"judge": "sequential", **analysis},
            },
        }
    )


def answers(recorded: Any) -> tuple[int, Any, float]:
    """The window (1 minute) and, asked over 24h, the baseline: 60x the primary's minute."""
    hours = "[24h]" in recorded.params["query"]
    scale = 1440 if hours else 1
    rows = [
        ("requests", "app", 100),
        ("failures", "app", 0),
        ("requests", "app-primary", 900 * scale),
        ("failures", "app-primary", 1 * scale),
    ]
    return 200, vector(*(({TAG: part, "app": who}, value) for part, who, value in rows)), 0


def test_the_baseline_is_asked_once_per_analysis_at_its_start() -> None:
    """The first look asks for the window and for the 24 hours before the analysis started
    (time= its start); the counts are kept in the check's state, and later looks ask for
    the window only."""
    rollout = sequential_rollout()
    started = AT - timedelta(minutes=3)
    status = RolloutStatus(canary_weight=50, analysis_started_at=started)
    with FakePrometheus(answers) as fake:
        _, (state,) = analyse(rollout, status, [ERRORS], provider(fake.url), TARGETS, 20, AT)
        status = status.model_copy(update={"analysis": [state]})
        later = AT + timedelta(seconds=20)
        _, (again,) = analyse(rollout, status, [ERRORS], provider(fake.url), TARGETS, 20, later)
    first, second, third = fake.received
    assert "[24h]" in second.params["query"]
    assert float(second.params["time"]) == started.timestamp()
    assert "[24h]" not in first.params["query"] + third.params["query"]
    assert (state.baseline_requests, state.baseline_failures) == (900 * 1440, 1440)
    assert (again.baseline_requests, again.baseline_failures) == (900 * 1440, 1440)


def test_a_refused_baseline_query_is_no_history_and_the_look_is_still_judged() -> None:
    """A 422 for the longer window: asked once, kept as no history (0); the check is judged
    on its window, and a compared objective is then no route to promotion."""

    def refuse_the_day(recorded: Any) -> tuple[int, Any, float]:
        if "[24h]" in recorded.params["query"]:
            return 422, {"status": "error", "errorType": "bad_data", "error": "too long"}, 0
        return answers(recorded)

    rollout = sequential_rollout()
    status = RolloutStatus(canary_weight=50, analysis_started_at=AT)
    with FakePrometheus(refuse_the_day) as fake:
        (result,), (state,) = analyse(
            rollout, status, [ERRORS], provider(fake.url), TARGETS, 20, AT
        )
    assert len(fake.received) == 2
    assert (state.baseline_requests, state.ticks) == (0, 1)
    assert result.canary is not None


def test_baseline_zero_asks_nothing() -> None:
    rollout = sequential_rollout(baseline="0s")
    status = RolloutStatus(canary_weight=50, analysis_started_at=AT)
    with FakePrometheus(answers) as fake:
        analyse(rollout, status, [ERRORS], provider(fake.url), TARGETS, 20, AT)
    assert len(fake.received) == 1


def test_a_baseline_longer_than_a_week_is_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match="baseline must be between 0s and 168h"):
        sequential_rollout(baseline="200h")


def test_the_usual_rates_upper_bound_is_the_exact_poisson_one() -> None:
    """P(Poisson(m) <= k) = level at the bound (checked against the distribution itself)."""
    for count in (0, 3, 180, 1800):
        upper = baseline.poisson_upper(count, 0.005)
        assert poisson.cdf(count, upper) == pytest.approx(0.005, rel=1e-6)
    usual = baseline.usual(SideSample(requests=36_000, failures=180), 0.05)
    assert usual is not None
    assert usual.rate == 0.005
    assert 0.0055 < usual.upper < 0.0065
    assert usual.objective_ratio(0.01) == pytest.approx(0.01 / usual.upper)


def test_the_guard_sees_a_trough_and_not_a_calm_primary() -> None:
    """The primary failing at half its usual rate during the analysis scales the objective
    by about a half; failing at its usual rate, not below 0.9."""
    usual = baseline.usual(SideSample(requests=864_000, failures=4_320), 0.05)
    assert usual is not None
    assert usual.trough(50, 20_000) == pytest.approx(0.5, abs=0.05)
    assert usual.trough(100, 20_000) > 0.9
    assert usual.trough(300, 20_000) == 1.0
    assert usual.trough(0, 0) == 1.0
