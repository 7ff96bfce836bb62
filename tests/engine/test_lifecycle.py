"""Initialising the primary, spotting revisions, and the happy path to Succeeded."""

from __future__ import annotations

from engine_harness import PASS, T0, World, rollout

from canary.engine import (
    InitializePrimary,
    Observations,
    PromoteCanary,
    RestorePrimary,
    ScaleCanaryDown,
    ScaleCanaryUp,
    SetRoute,
    WorkloadState,
    step,
)
from canary.model import Phase, RolloutStatus


def test_first_tick_creates_the_primary_and_routes_everything_to_it() -> None:
    w = World(ro=rollout())
    result = w.tick()
    assert result.status.phase is Phase.INITIALIZING
    assert InitializePrimary(revision="rev-1") in result.actions
    assert any(isinstance(a, SetRoute) and a.route.canary_weight == 0 for a in result.actions)
    assert result.requeue_after == 5.0


def test_primary_ready_makes_the_rollout_initialized_without_judging_rev_1() -> None:
    w = World(ro=rollout())
    w.tick()
    result = w.tick()
    assert result.status.phase is Phase.INITIALIZED
    assert result.status.stable_revision == "rev-1"
    assert [e.reason for e in result.events] == ["Initialized"]
    promoted = [c for c in result.status.conditions if c.type == "Promoted"]
    assert promoted
    assert promoted[0].status.value == "True"


def test_missing_target_waits_with_a_message_and_no_actions() -> None:
    w = World(ro=rollout(), target=None)
    result = w.tick()
    assert result.status.phase is Phase.INITIALIZING
    assert result.actions == []
    assert "Deployment 'podinfo'" in result.status.message


def test_new_revision_scales_canary_up_with_traffic_on_primary(world: World) -> None:
    world.target = "rev-2"
    result = world.tick()
    assert result.status.phase is Phase.PROGRESSING
    assert result.status.canary_revision == "rev-2"
    assert ScaleCanaryUp(revision="rev-2") in result.actions
    assert world.route.canary_weight == 0
    assert [e.notification.value for e in result.events if e.notification] == ["started"]


def test_same_revision_does_nothing(world: World) -> None:
    result = world.tick()
    assert result.status.phase is Phase.INITIALIZED
    assert result.actions == []
    assert result.requeue_after == 60.0


def test_happy_path_steps_through_every_weight_then_promotes(world: World) -> None:
    world.progressing()
    assert world.route.canary_weight == 5
    weights = []
    for _ in range(3):
        world.tick(checks=PASS)
        weights.append(world.route.canary_weight)
    assert weights == [10, 20, 50]
    result = world.tick(checks=PASS)
    assert result.status.phase is Phase.PROMOTING
    assert PromoteCanary(revision="rev-2") in result.actions
    assert world.route.canary_weight == 50  # traffic moves back only once the primary is updated
    result = world.tick()
    assert result.status.phase is Phase.FINALISING
    assert world.route.canary_weight == 0
    assert ScaleCanaryDown() in result.actions
    result = world.tick()
    assert result.status.phase is Phase.SUCCEEDED
    assert result.status.stable_revision == "rev-2"
    assert [e.notification.value for e in result.events if e.notification] == ["promoted"]


def test_canary_not_ready_waits_then_rolls_back_at_the_progress_deadline() -> None:
    w = World(ro=rollout(progressDeadlineSeconds=60), canary_ready_after_up=False).initialized()
    w.target = "rev-2"
    w.tick()
    result = w.tick(advance=30)
    assert result.status.phase is Phase.PROGRESSING
    assert "waiting for the canary" in result.status.message
    w.tick(advance=31)
    result = w.tick()
    assert result.status.phase is Phase.ROLLING_BACK
    assert "progressDeadlineSeconds" in result.status.message
    assert w.tick().status.phase is Phase.FAILED
    assert w.route.canary_weight == 0
    assert not w.canary_up


def test_primary_not_updated_in_time_fails_the_promotion() -> None:
    w = World(ro=rollout(progressDeadlineSeconds=30)).initialized().progressing()
    for _ in range(4):
        w.tick(checks=PASS)
    assert w.phase is Phase.PROMOTING
    w.primary_ready = False
    w.tick(advance=31)
    result = w.tick()
    assert result.status.phase is Phase.ROLLING_BACK
    assert "primary did not become ready" in result.status.message
    assert "restoring the primary to revision rev-1" in result.status.message
    assert RestorePrimary(revision="rev-1") in result.actions
    assert w.primary == "rev-1"
    assert w.route.canary_weight == 0
    assert w.tick().status.phase is Phase.FAILED


def test_promotion_step_weight_moves_traffic_back_gradually() -> None:
    ro = rollout(
        strategy={"canary": {"stepWeight": 30, "maxWeight": 60, "promotionStepWeight": 25}}
    )
    w = World(ro=ro).initialized().progressing()
    assert w.route.canary_weight == 30
    w.tick(checks=PASS)
    assert w.route.canary_weight == 60
    w.tick(checks=PASS)
    assert w.phase is Phase.PROMOTING
    seen = []
    while w.phase is Phase.PROMOTING:
        w.tick()
        seen.append(w.route.canary_weight)
    assert seen == [35, 10, 0]
    assert w.tick().status.phase is Phase.SUCCEEDED


def test_status_round_trips_through_json_and_resumes_identically(world: World) -> None:
    world.progressing()
    world.tick(checks=PASS)
    assert world.status is not None
    restored = RolloutStatus.model_validate_json(world.status.model_dump_json(by_alias=True))
    obs = Observations(workload=world.workload(), checks=PASS)
    a = step(world.ro, world.status, obs, world.now)
    b = step(world.ro, restored, obs, world.now)
    assert a.model_dump() == b.model_dump()


def test_step_does_not_modify_its_input_status(world: World) -> None:
    world.progressing()
    assert world.status is not None
    before = world.status.model_dump()
    step(world.ro, world.status, Observations(workload=world.workload(), checks=PASS), world.now)
    assert world.status.model_dump() == before


def test_naive_now_is_taken_as_utc() -> None:
    ro = rollout()
    obs = Observations(workload=WorkloadState(target_revision="rev-1"))
    aware = step(ro, None, obs, T0)
    naive = step(ro, None, obs, T0.replace(tzinfo=None))
    assert aware.model_dump() == naive.model_dump()


def test_observed_generation_is_recorded() -> None:
    ro = rollout()
    result = step(ro, None, Observations(), T0)
    assert result.status.observed_generation == 1
