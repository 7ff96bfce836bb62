"""Properties that hold for any sequence of observations (hypothesis, derandomized)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from engine_harness import T0, rollout
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from canary.engine import (
    Command,
    CommandKind,
    GateAnswer,
    InitializePrimary,
    Observations,
    PromoteCanary,
    Route,
    SetRoute,
    WorkloadState,
    step,
)
from canary.model import (
    ApprovalPoint,
    CheckResult,
    GateType,
    Phase,
    Rollout,
    RolloutStatus,
    Verdict,
)

STABLE_PHASES = {
    Phase.FAILED,
    Phase.ROLLING_BACK,
    Phase.INITIALIZED,
    Phase.SUCCEEDED,
    Phase.WAITING,
}

strategies = st.sampled_from(
    [
        {"canary": {"weights": [5, 10, 20, 50]}},
        {"canary": {"stepWeight": 30, "maxWeight": 80, "promotionStepWeight": 40}},
        {"abTest": {"iterations": 2, "match": [{"headers": {"x-canary": {"exact": "1"}}}]}},
        {"blueGreen": {"iterations": 2}, "mirror": {"percentage": 20}},
    ]
)


@st.composite
def rollouts(draw: st.DrawFn) -> Rollout:
    hook_types = draw(st.sets(st.sampled_from(list(GateType))))
    approvals = draw(st.sets(st.sampled_from(list(ApprovalPoint))))
    spec: dict[str, Any] = {
        "strategy": draw(strategies),
        "analysis": {
            "interval": "1m",
            "failureLimit": draw(st.integers(1, 3)),
            "inconclusiveDeadline": draw(st.sampled_from(["1m", "5m"])),
            **draw(st.sampled_from([{}, {"lookInterval": "15s"}, {"lookInterval": "1m"}])),
        },
        "gates": {
            "webhooks": [
                {"name": f"h-{t.value}", "type": t.value, "url": "http://127.0.0.1:1/"}
                for t in sorted(hook_types)
            ],
            "approvals": [p.value for p in sorted(approvals)],
        },
        "skipAnalysis": draw(st.booleans()),
        "progressDeadlineSeconds": draw(st.sampled_from([30, 600])),
    }
    return rollout(**spec)


revisions = st.sampled_from([None, "rev-1", "rev-2", "rev-3"])


@st.composite
def observations(draw: st.DrawFn, ro: Rollout, world: dict[str, Any]) -> Observations:
    checks = [
        CheckResult(name=f"c{i}", verdict=v, time=T0)
        for i, v in enumerate(draw(st.lists(st.sampled_from(list(Verdict)), max_size=3)))
    ]
    gates = []
    for hook in ro.spec.gates.webhooks:
        said = draw(st.sampled_from([True, False, None]))
        if said is not None:
            gates.append(GateAnswer(name=hook.name, type=hook.type, open=said))
    commands = [
        Command(kind=kind, point=draw(st.none() | st.sampled_from(list(ApprovalPoint))))
        for kind in draw(st.lists(st.sampled_from(list(CommandKind)), max_size=2))
    ]
    # The world mostly follows the engine's actions, with the odd surprise: a new target
    # revision, a canary or primary that is not ready, a primary on another revision.
    if draw(st.integers(0, 7)) == 0:
        world["target"] = draw(revisions)
    if draw(st.integers(0, 15)) == 0:
        world["primary"] = draw(revisions)
    workload = WorkloadState(
        target_revision=world["target"],
        canary_ready=draw(st.integers(0, 4)) > 0,
        primary_ready=draw(st.integers(0, 4)) > 0,
        primary_revision=world["primary"],
    )
    look = draw(st.sampled_from([None, 10.0, 20.0, 60.0, 90.0]))
    return Observations(
        workload=workload, checks=checks, gates=gates, commands=commands, look_interval=look
    )


def tick_passed(ro: Rollout, obs: Observations) -> bool:
    """Every check passed and every rollout webhook said yes, with at least one result."""
    hooks = ro.spec.gates.of_type(GateType.ROLLOUT)
    answers = {a.name: a.open for a in obs.gates if a.type is GateType.ROLLOUT}
    checks_ok = all(c.verdict is Verdict.PASS for c in obs.checks)
    hooks_ok = all(answers.get(h.name) is True for h in hooks)
    return checks_ok and hooks_ok and bool(obs.checks or hooks) and obs.workload.canary_ready


@settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.data())
def test_any_sequence_of_observations_keeps_the_invariants(data: st.DataObject) -> None:
    ro = data.draw(rollouts())
    status: RolloutStatus | None = None
    route = Route()
    now = T0
    world: dict[str, Any] = {"target": "rev-1", "primary": None}
    for _ in range(data.draw(st.integers(1, 40))):
        obs = data.draw(observations(ro, world))
        if data.draw(st.integers(0, 9)) == 0:
            suspended = not ro.spec.suspend
            ro = ro.model_copy(update={"spec": ro.spec.model_copy(update={"suspend": suspended})})
        result = step(ro, status, obs, now)  # never raises
        for action in result.actions:
            if isinstance(action, SetRoute):
                route = action.route
                assert 0 <= route.canary_weight <= 100
            if isinstance(action, PromoteCanary | InitializePrimary):
                world["primary"] = action.revision
            if isinstance(action, PromoteCanary):
                assert ro.spec.skip_analysis or tick_passed(ro, obs), (
                    "promoted on a tick whose checks did not all pass"
                )
        status = result.status
        assert 0 <= status.canary_weight <= 100
        assert status.canary_weight == route.canary_weight
        if status.phase in STABLE_PHASES:
            assert not route.sends_live_traffic_to_canary, (
                f"{status.phase.value} with traffic on the canary: {route}"
            )
        assert 0 < result.requeue_after <= ro.spec.analysis.interval
        if status.phase in (Phase.PROGRESSING, Phase.PAUSED):  # looks, never above the shell's
            assert result.requeue_after <= (obs.look_interval or ro.spec.analysis.interval)
        now += timedelta(seconds=data.draw(st.sampled_from([1, 5, 60, 700])))


@settings(max_examples=100, deadline=None, derandomize=True)
@given(data=st.data())
def test_step_is_a_pure_function(data: st.DataObject) -> None:
    ro = data.draw(rollouts())
    status = None
    world: dict[str, Any] = {"target": "rev-2", "primary": "rev-1"}
    for _ in range(10):
        obs = data.draw(observations(ro, world))
        first = step(ro, status, obs, T0)
        again = step(ro, status, obs, T0)
        assert first.model_dump() == again.model_dump()
        status = first.status
