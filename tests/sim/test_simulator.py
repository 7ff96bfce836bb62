"""The simulator drives the real engine through whole rollouts in virtual time."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from sim_support import AB_TEST, BLUE_GREEN, rollout

from canary.model import JudgeName, Phase, Verdict
from canary.sim import NEW_REVISION, STABLE_REVISION, SimulationResult, get_scenario, simulate


def run(
    tmp_path: Path, scenario: str, seed: int = 1, strategy: str | None = None
) -> SimulationResult:
    ro = rollout(tmp_path) if strategy is None else rollout(tmp_path, strategy)
    return simulate(ro, get_scenario(scenario), seed)


def dumped(result: SimulationResult) -> str:
    return json.dumps(result.to_json_data())


def test_healthy_canary_is_promoted_and_traffic_returns_to_the_primary(tmp_path: Path) -> None:
    result = run(tmp_path, "healthy")
    assert result.phase is Phase.SUCCEEDED
    assert result.final_weight == 0
    assert result.timeline[-1].weight == 0
    assert result.primary_revision == NEW_REVISION
    assert result.stable_revision == NEW_REVISION
    assert not result.timed_out
    assert not result.notes
    assert result.canary_requests > 0
    # It went through every weight of the schedule, and every judged tick before the
    # promotion passed.
    weights = [e.weight for e in result.timeline]
    assert {10, 25, 50} <= set(weights)
    judged = [e for e in result.timeline if e.checks]
    assert judged
    assert all(c.verdict is Verdict.PASS for c in judged[-1].checks)
    assert [c.name for c in judged[-1].checks] == ["error-rate", "latency"]


def test_error_regression_is_rolled_back(tmp_path: Path) -> None:
    result = run(tmp_path, "error-regression")
    assert result.phase is Phase.FAILED
    assert result.final_weight == 0
    assert result.primary_revision == STABLE_REVISION
    assert result.stable_revision == STABLE_REVISION
    failed = [c for e in result.timeline for c in e.checks if c.verdict is Verdict.FAIL]
    assert failed
    assert all(c.name == "error-rate" for c in failed)
    assert 0 < result.canary_errors < result.canary_requests
    assert "failureLimit" in " ".join(e.message for e in result.timeline)


def test_latency_regression_is_rolled_back(tmp_path: Path) -> None:
    result = run(tmp_path, "latency-regression")
    assert result.phase is Phase.FAILED
    assert result.final_weight == 0
    failed = [c for e in result.timeline for c in e.checks if c.verdict is Verdict.FAIL]
    slow = [c for c in failed if c.name == "latency"]
    assert slow
    assert all(c.canary_value is not None and c.canary_value > 500 for c in slow)


def test_outcomes_hold_over_most_seeds(tmp_path: Path) -> None:
    """Not one lucky seed: the threshold rule catches both regressions nearly always."""
    ro = rollout(tmp_path)
    outcomes = {
        name: Counter(
            simulate(ro, get_scenario(name), seed, record_timeline=False).phase
            for seed in range(40)
        )
        for name in ("healthy", "error-regression", "latency-regression")
    }
    assert outcomes["healthy"][Phase.SUCCEEDED] >= 32
    assert outcomes["error-regression"][Phase.FAILED] >= 38
    assert outcomes["latency-regression"][Phase.FAILED] == 40


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    ro = rollout(tmp_path)
    scenario = get_scenario("healthy")
    first = dumped(simulate(ro, scenario, 7))
    assert dumped(simulate(ro, scenario, 7)) == first
    assert dumped(simulate(ro, scenario, 8)) != first


def test_timeline_starts_at_detection_and_spans_the_duration(tmp_path: Path) -> None:
    result = run(tmp_path, "healthy")
    times = [e.time for e in result.timeline]
    assert times[0] == 0.0
    assert times == sorted(times)
    assert times[-1] == result.duration_seconds
    assert result.timeline[0].phase is Phase.PROGRESSING
    # The canary takes no traffic before it is ready (30 virtual seconds in this scenario).
    assert all(e.weight == 0 for e in result.timeline if e.time < 30)


@pytest.mark.parametrize("strategy", [AB_TEST, BLUE_GREEN], ids=["ab-test", "blue-green"])
def test_other_strategies_run_to_an_end(tmp_path: Path, strategy: str) -> None:
    ro = rollout(tmp_path, strategy)
    healthy = [simulate(ro, get_scenario("healthy"), seed) for seed in range(10)]
    for result in healthy:
        assert result.phase in (Phase.SUCCEEDED, Phase.FAILED)
        assert not result.timed_out
        assert result.final_weight == 0
        assert result.canary_requests > 0
        promoted = result.phase is Phase.SUCCEEDED
        assert result.primary_revision == (NEW_REVISION if promoted else STABLE_REVISION)
    # The A/B canary sees 60 requests a minute: the threshold rule's false rollbacks show.
    assert sum(r.phase is Phase.SUCCEEDED for r in healthy) >= 5
    broken = simulate(ro, get_scenario("latency-regression"), 1)
    assert broken.phase is Phase.FAILED
    assert broken.final_weight == 0


def test_judge_override(tmp_path: Path) -> None:
    ro = rollout(tmp_path)
    sequential_spec = ro.model_copy(deep=True)
    sequential_spec.spec.analysis.judge = JudgeName.SEQUENTIAL
    result = simulate(sequential_spec, get_scenario("healthy"), 1, judge=JudgeName.THRESHOLD)
    assert {c.judge for c in result.checks} == {"threshold"}
    assert dumped(result) == dumped(simulate(ro, get_scenario("healthy"), 1))


def test_time_limit_stops_a_rollout_that_cannot_finish(tmp_path: Path) -> None:
    ro = rollout(tmp_path)
    ro.spec.gates.approvals = []
    ro.spec.suspend = True
    result = simulate(ro, get_scenario("healthy"), 1, time_limit=3600)
    assert result.timed_out
    assert result.notes
    assert "3600s of virtual time" in result.notes[0]


def test_blue_green_is_judged_without_live_traffic_then_switched(tmp_path: Path) -> None:
    result = simulate(rollout(tmp_path, BLUE_GREEN), get_scenario("healthy"), 1)
    assert result.phase is Phase.SUCCEEDED
    judged = [e for e in result.timeline if e.checks]
    assert judged
    assert all(c.canary_requests for e in judged for c in e.checks)
    weights = [e.weight for e in result.timeline]
    assert 100 in weights
    assert weights[-1] == 0


def test_gates_are_answered_and_approvals_given(tmp_path: Path) -> None:
    ro = rollout(tmp_path).model_copy(deep=True)
    gates = {
        "approvals": ["rollout", "promotion"],
        "webhooks": [
            {"name": "load", "type": "pre-rollout", "url": "http://tester/"},
            {"name": "ci", "type": "confirm-promotion", "url": "http://ci/"},
            {"name": "pager", "type": "rollback", "url": "http://pager/"},
            {"name": "chat", "type": "post-rollout", "url": "http://chat/"},
        ],
    }
    ro.spec.gates = type(ro.spec.gates).model_validate(gates)
    result = simulate(ro, get_scenario("healthy"), 3)
    assert result.phase is Phase.SUCCEEDED
    phases = [e.phase for e in result.timeline]
    assert Phase.WAITING in phases
    assert Phase.PAUSED in phases
