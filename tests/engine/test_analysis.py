"""Verdicts at each tick: failure limit, inconclusive data and its deadline."""

from __future__ import annotations

from engine_harness import FAIL, INCONCLUSIVE, PASS, World, check, rollout

from canary.engine import Command, CommandKind, tick_verdict
from canary.model import CheckState, Phase, Verdict


def test_a_failed_tick_holds_the_weight_and_counts(world: World) -> None:
    world.progressing()
    result = world.tick(checks=FAIL)
    assert result.status.phase is Phase.PROGRESSING
    assert result.status.failed_checks == 1
    assert world.route.canary_weight == 5
    assert "failed tick 1 of 2" in result.status.message
    assert any(e.reason == "CheckFailed" and e.warning for e in result.events)


def test_failure_limit_rolls_back_and_traffic_returns_to_primary(world: World) -> None:
    world.progressing()
    world.tick(checks=PASS)
    world.tick(checks=FAIL)
    result = world.tick(checks=FAIL)
    assert result.status.phase is Phase.ROLLING_BACK
    assert world.route.canary_weight == 0
    assert not world.canary_up
    assert "failureLimit 2" in result.status.message
    result = world.tick()
    assert result.status.phase is Phase.FAILED
    assert [e.notification.value for e in result.events if e.notification] == ["failed"]


def test_failed_revision_is_not_rolled_out_again_until_it_changes(world: World) -> None:
    world.progressing()
    world.tick(checks=FAIL)
    world.tick(checks=FAIL)
    world.tick()
    assert world.phase is Phase.FAILED
    assert world.tick().status.phase is Phase.FAILED
    assert not world.canary_up
    world.target = "rev-3"
    result = world.tick()
    assert result.status.phase is Phase.PROGRESSING
    assert result.status.canary_revision == "rev-3"
    assert result.status.failed_checks == 0


def test_inconclusive_holds_then_fails_at_the_deadline(world: World) -> None:
    world.progressing()
    for _ in range(5):
        result = world.tick(checks=INCONCLUSIVE)
        assert result.status.phase is Phase.PROGRESSING
        assert world.route.canary_weight == 5
    result = world.tick(checks=INCONCLUSIVE)
    assert result.status.phase is Phase.ROLLING_BACK
    assert "inconclusiveDeadline" in result.status.message


def test_a_pass_resets_the_inconclusive_clock(world: World) -> None:
    world.progressing()
    for _ in range(4):
        world.tick(checks=INCONCLUSIVE)
    world.tick(checks=PASS)
    assert world.status is not None
    assert world.status.inconclusive_since is None
    for _ in range(4):
        assert world.tick(checks=INCONCLUSIVE).status.phase is Phase.PROGRESSING


def test_no_check_results_is_inconclusive_never_a_pass(world: World) -> None:
    world.progressing()
    result = world.tick(checks=[])
    assert result.status.phase is Phase.PROGRESSING
    assert world.route.canary_weight == 5
    assert result.status.inconclusive_since is not None
    assert "no check results" in result.status.message


def test_one_failing_check_among_passing_ones_fails_the_tick(world: World) -> None:
    world.progressing()
    result = world.tick(checks=[*PASS, check(Verdict.FAIL, "latency")])
    assert result.status.failed_checks == 1
    assert "latency" in result.status.message


def test_tick_verdict_rules() -> None:
    assert tick_verdict([]) is Verdict.INCONCLUSIVE
    assert tick_verdict(PASS) is Verdict.PASS
    assert tick_verdict([*PASS, *INCONCLUSIVE]) is Verdict.INCONCLUSIVE
    assert tick_verdict([*INCONCLUSIVE, *FAIL]) is Verdict.FAIL


def test_check_results_are_kept_with_the_weight_and_capped(world: World) -> None:
    world.progressing()
    for _ in range(25):
        world.tick(checks=INCONCLUSIVE, advance=1)
    assert world.status is not None
    assert len(world.status.checks) == 20
    assert all(c.weight == 5 for c in world.status.checks)


def test_check_states_are_stored_and_cleared_on_a_new_rollout(world: World) -> None:
    world.progressing()
    state = CheckState(name="error-rate", ticks=1, canary_requests=50)
    from canary.engine import Observations, step

    obs = Observations(workload=world.workload(), checks=PASS, check_states=[state])
    result = step(world.ro, world.status, obs, world.now)
    assert result.status.analysis == [state]
    world.status = result.status
    world.target = "rev-3"
    assert world.tick().status.analysis == []


def test_skip_analysis_promotes_once_the_canary_is_ready() -> None:
    w = World(ro=rollout(skipAnalysis=True)).initialized()
    w.target = "rev-2"
    w.tick()
    result = w.tick()
    assert result.status.phase is Phase.PROGRESSING  # pre-rollout passed, route set
    result = w.tick()
    assert result.status.phase is Phase.PROMOTING
    assert "skipAnalysis" in result.status.message


def test_a_decisive_failure_rolls_back_without_waiting_for_the_failure_limit(
    world: World,
) -> None:
    world.progressing()
    decisive = check(Verdict.FAIL).model_copy(update={"decisive": True})
    result = world.tick(checks=[*PASS, decisive])
    assert result.status.phase is Phase.ROLLING_BACK
    assert "the evidence is conclusive" in result.status.message
    assert world.route.canary_weight == 0


def test_a_decisive_pass_is_just_a_pass(world: World) -> None:
    world.progressing()
    decisive = check(Verdict.PASS).model_copy(update={"decisive": True})
    world.tick(checks=[decisive])
    assert world.route.canary_weight == 10


def _undecided(outcome: str) -> World:
    analysis = {"interval": "1m", "inconclusiveDeadline": "5m", "onUndecided": outcome}
    return World(rollout(analysis=analysis)).initialized().progressing()


def test_undecided_at_the_deadline_rolls_back_by_default(world: World) -> None:
    assert world.ro.spec.analysis.on_undecided.value == "rollback"
    world.progressing()
    for _ in range(5):
        world.tick(checks=INCONCLUSIVE)
    result = world.tick(checks=INCONCLUSIVE)
    assert result.status.phase is Phase.ROLLING_BACK
    assert "onUndecided: rollback" in result.status.message


def test_undecided_may_promote_but_never_without_data() -> None:
    world = _undecided("promote")
    for _ in range(6):
        result = world.tick(checks=INCONCLUSIVE)
    assert result.status.phase is Phase.PROMOTING
    assert "onUndecided: promote" in result.status.message
    blind = _undecided("promote")
    no_data = [check(Verdict.INCONCLUSIVE).model_copy(update={"no_data": True})]
    for _ in range(6):
        result = blind.tick(checks=no_data)
    assert result.status.phase is Phase.ROLLING_BACK
    assert "error-rate had no data: rolling back instead" in result.status.message


def test_undecided_may_pause_for_a_person_who_promotes_or_aborts() -> None:
    world = _undecided("pause")
    for _ in range(6):
        result = world.tick(checks=INCONCLUSIVE)
    assert result.status.phase is Phase.PAUSED
    assert result.status.waiting_for is not None
    assert "canary promote" in result.status.waiting_for
    assert any(e.notification and e.notification.value == "waiting" for e in result.events)
    for _ in range(20):  # nobody answers: it waits, at the same weight
        assert world.tick(checks=INCONCLUSIVE).status.phase is Phase.PAUSED
    assert world.route.canary_weight == 5
    promote = Command(kind=CommandKind.PROMOTE, by="alice")
    result = world.tick(checks=INCONCLUSIVE, commands=[promote])
    assert result.status.phase is Phase.PROMOTING
    # evidence still decides while it waits: a fail rolls back
    failing = _undecided("pause")
    for _ in range(6):
        failing.tick(checks=INCONCLUSIVE)
    failing.tick(checks=[check(Verdict.FAIL).model_copy(update={"decisive": True})])
    assert failing.phase is Phase.ROLLING_BACK
