"""The look interval: how often a judged rollout is looked at, and how steps are timed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from engine_harness import INCONCLUSIVE, PASS, T0, World, rollout

from canary.engine.timing import (
    LOOK_INTERVAL_SECONDS,
    analysis_seconds,
    analysis_window,
    look_interval,
    step_seconds,
)
from canary.model import CheckKind, CheckSpec, JudgeName, Phase, RolloutStatus

ERRORS = CheckSpec(
    name="error-rate", kind=CheckKind.ERROR_RATE, requests_query="r", failures_query="f"
)
LATENCY = CheckSpec(name="latency", kind=CheckKind.LATENCY, requests_query="r", failures_query="f")
CUSTOM = CheckSpec(name="saturation", kind=CheckKind.CUSTOM, query="q", max=0.8)
AB_TEST = {"abTest": {"iterations": 3, "match": [{"headers": {"x-canary": {"exact": "1"}}}]}}


# --- the default look interval --------------------------------------------------------------


def test_sequential_count_checks_are_looked_at_every_20_seconds() -> None:
    assert look_interval(rollout(), [ERRORS, LATENCY]) == LOOK_INTERVAL_SECONDS == 20.0


def test_the_look_interval_is_never_longer_than_the_interval() -> None:
    fast = rollout(analysis={"interval": "10s"})
    assert look_interval(fast, [ERRORS, LATENCY]) == 10.0


@pytest.mark.parametrize(
    ("checks", "judge", "why"),
    [
        ([ERRORS, CUSTOM], None, "a custom check is judged per window"),
        ([ERRORS.model_copy(update={"judge": JudgeName.MANN_WHITNEY}), LATENCY], None, "per check"),
        ([ERRORS, LATENCY], JudgeName.THRESHOLD, "an override (simulate --judge)"),
        ([], None, "no checks at all"),
    ],
)
def test_other_judges_keep_one_window_per_interval(
    checks: list[CheckSpec], judge: JudgeName | None, why: str
) -> None:
    assert look_interval(rollout(), checks, judge) == 60.0, why


def test_a_rollout_judged_by_threshold_keeps_flaggers_pace() -> None:
    flagger = rollout(analysis={"interval": "1m", "judge": "threshold"})
    assert look_interval(flagger, [ERRORS, LATENCY]) == 60.0


def test_look_interval_in_the_spec_wins() -> None:
    ro = rollout(analysis={"interval": "1m", "judge": "threshold", "lookInterval": "30s"})
    assert look_interval(ro, [ERRORS, CUSTOM]) == 30.0
    ro = rollout(analysis={"interval": "1m", "lookInterval": "45s"})
    assert look_interval(ro, [ERRORS, LATENCY]) == 45.0


# --- the engine keeps to it -----------------------------------------------------------------


def test_without_a_look_interval_from_the_shell_analysis_ticks_every_interval(
    world: World,
) -> None:
    world.progressing()
    assert world.history[-1].requeue_after == 60.0  # the first look, an interval after 5%
    assert world.tick(checks=PASS).requeue_after == 60.0


def test_a_judged_rollout_is_looked_at_every_look_interval() -> None:
    w = World(ro=rollout(), look_interval=20.0).initialized()
    assert w.history[-1].requeue_after == 60.0  # idle: an interval
    w.progressing()
    assert w.route.canary_weight == 5
    assert w.history[-1].requeue_after == 20.0
    result = w.tick(checks=PASS)  # a pass at a look steps up at once
    assert w.route.canary_weight == 10
    assert result.requeue_after == 20.0


def test_spec_look_interval_is_used_when_the_shell_says_nothing() -> None:
    ro = rollout(analysis={"interval": "1m", "inconclusiveDeadline": "5m", "lookInterval": "15s"})
    w = World(ro=ro).initialized().progressing()
    assert w.history[-1].requeue_after == 15.0


def test_a_look_interval_above_the_interval_is_cut_to_it() -> None:
    w = World(ro=rollout(), look_interval=300.0).initialized().progressing()
    assert w.history[-1].requeue_after == 60.0


def test_waiting_on_the_world_is_still_fast() -> None:
    w = World(ro=rollout(), look_interval=20.0).initialized()
    w.canary_ready_after_up = False
    w.target = "rev-2"
    w.tick()
    assert w.tick().requeue_after == 5.0


def test_the_inconclusive_deadline_counts_seconds_not_looks() -> None:
    w = World(ro=rollout(), look_interval=20.0).initialized().progressing()
    looks = 0
    while w.phase is Phase.PROGRESSING:
        w.tick(checks=INCONCLUSIVE)
        looks += 1
    assert w.phase is Phase.ROLLING_BACK
    assert looks == 16  # 5 minutes (the deadline) from the first inconclusive look, at 20 s


# --- step timing ------------------------------------------------------------------------------


def test_steps_are_timed_from_their_weight_change() -> None:
    w = World(ro=rollout(), look_interval=20.0).initialized().progressing()
    assert w.status is not None
    started = w.status.analysis_started_at
    assert started is not None
    assert w.status.step_started_at == started
    w.tick()  # a look without results: inconclusive, same step
    assert w.status.step_started_at == started
    assert step_seconds(w.ro, w.status, w.now) == 40.0
    before = w.now
    w.tick(checks=PASS)
    assert w.route.canary_weight == 10
    assert w.status.step_started_at == before
    assert analysis_seconds(w.status, w.now) == 60.0
    assert step_seconds(w.ro, w.status, w.now) == 20.0


def test_a_new_revision_clears_the_step_times(world: World) -> None:
    world.progressing()
    world.tick(checks=PASS)
    world.target = "rev-3"
    result = world.tick()
    assert result.status.analysis_started_at is None
    assert result.status.step_started_at is None


def test_a_status_from_before_step_times_gets_them_at_the_next_look(world: World) -> None:
    world.progressing()
    assert world.status is not None
    world.status = world.status.model_copy(
        update={"step_started_at": None, "analysis_started_at": None}
    )
    now = world.now
    result = world.tick()
    assert result.status.step_started_at == now
    assert result.status.analysis_started_at == now


def test_a_b_iterations_last_an_interval_whatever_the_look_interval() -> None:
    ro = rollout(strategy=AB_TEST)
    w = World(ro=ro, look_interval=20.0).initialized().progressing()
    iterations = []
    for _ in range(9):
        w.tick(checks=PASS)
        assert w.status is not None
        iterations.append(w.status.iteration)
    assert iterations == [0, 0, 1, 1, 1, 2, 2, 2, 3]
    assert w.phase is Phase.PROMOTING
    assert "an iteration lasts one interval" not in w.status.message
    held = World(ro=ro, look_interval=20.0).initialized().progressing()
    held.tick(checks=PASS)
    assert held.status is not None
    assert "iteration 1 ends in" in held.status.message


def test_step_seconds_of_a_b_and_blue_green_cover_the_whole_analysis() -> None:
    ro = rollout(strategy=AB_TEST)
    start = T0 + timedelta(seconds=10)
    status = RolloutStatus(analysis_started_at=start, step_started_at=start + timedelta(seconds=60))
    now = start + timedelta(seconds=90)
    assert step_seconds(ro, status, now) == 90.0
    assert step_seconds(rollout(), status, now) == 30.0
    assert step_seconds(rollout(), RolloutStatus(), now) == 0.0


# --- the window of a look -------------------------------------------------------------------


def test_the_window_is_the_time_since_the_previous_tick() -> None:
    ro = rollout()
    assert analysis_window(ro, RolloutStatus(), T0) == 60.0  # no tick yet: an interval
    status = RolloutStatus(last_tick_at=T0)
    assert analysis_window(ro, status, T0 + timedelta(seconds=20)) == 20.0
    assert analysis_window(ro, status, T0) == 1.0  # at least a second
    assert analysis_window(ro, status, T0 + timedelta(hours=1)) == 240.0  # four intervals
