"""abort, retry, promote and approve from people and pipelines; suspend from the spec."""

from __future__ import annotations

from engine_harness import FAIL, INCONCLUSIVE, PASS, World, rollout

from canary.engine import Command, CommandKind
from canary.model import Phase


def cmd(kind: CommandKind, by: str = "ci") -> list[Command]:
    return [Command(kind=kind, by=by)]


def test_abort_rolls_back_at_once(world: World) -> None:
    world.progressing()
    world.tick(checks=PASS)
    result = world.tick(checks=PASS, commands=cmd(CommandKind.ABORT, "carol"))
    assert result.status.phase is Phase.ROLLING_BACK
    assert "aborted by carol" in result.status.message
    assert world.route.canary_weight == 0
    assert world.tick().status.phase is Phase.FAILED


def test_abort_while_idle_is_ignored_with_an_event(world: World) -> None:
    result = world.tick(commands=cmd(CommandKind.ABORT))
    assert result.status.phase is Phase.INITIALIZED
    assert any(e.reason == "AbortIgnored" for e in result.events)


def test_abort_during_promotion_is_too_late(world: World) -> None:
    world.progressing()
    for _ in range(4):
        world.tick(checks=PASS)
    assert world.phase is Phase.PROMOTING
    world.primary_ready = False
    result = world.tick(commands=cmd(CommandKind.ABORT))
    assert result.status.phase is Phase.PROMOTING
    assert any(e.reason == "AbortIgnored" for e in result.events)


def test_retry_runs_the_failed_revision_again(world: World) -> None:
    world.progressing()
    world.tick(checks=FAIL)
    world.tick(checks=FAIL)
    world.tick()
    assert world.phase is Phase.FAILED
    result = world.tick(commands=cmd(CommandKind.RETRY))
    assert result.status.phase is Phase.PROGRESSING
    assert result.status.canary_revision == "rev-2"
    assert result.status.failed_checks == 0
    assert world.canary_up


def test_retry_without_a_failed_rollout_is_ignored(world: World) -> None:
    result = world.tick(commands=cmd(CommandKind.RETRY))
    assert result.status.phase is Phase.INITIALIZED
    assert any(e.reason == "RetryIgnored" for e in result.events)


def test_promote_skips_the_remaining_steps_on_a_passing_tick(world: World) -> None:
    world.progressing()
    result = world.tick(checks=FAIL, commands=cmd(CommandKind.PROMOTE))
    assert result.status.phase is Phase.PROGRESSING  # a failing tick never promotes
    assert result.status.promote_requested
    result = world.tick(checks=PASS)
    assert result.status.phase is Phase.PROMOTING
    assert "promotion requested" in result.status.message


def test_promote_when_nothing_is_judged_is_ignored(world: World) -> None:
    result = world.tick(commands=cmd(CommandKind.PROMOTE))
    assert any(e.reason == "PromoteIgnored" for e in result.events)


def test_approve_with_nothing_waiting_is_ignored(world: World) -> None:
    result = world.tick(commands=cmd(CommandKind.APPROVE))
    assert any(e.reason == "ApprovalIgnored" for e in result.events)


def test_suspend_pauses_in_place_and_resume_continues() -> None:
    w = World(ro=rollout()).initialized().progressing()
    w.tick(checks=PASS)
    assert w.route.canary_weight == 10
    w.ro = w.ro.model_copy(update={"spec": w.ro.spec.model_copy(update={"suspend": True})})
    result = w.tick(checks=PASS)
    assert result.status.phase is Phase.PAUSED
    assert result.actions == []
    assert w.route.canary_weight == 10
    assert w.needs() == []
    w.tick(checks=PASS)
    assert w.route.canary_weight == 10
    w.ro = w.ro.model_copy(update={"spec": w.ro.spec.model_copy(update={"suspend": False})})
    result = w.tick(checks=PASS)
    assert result.status.phase is Phase.PROGRESSING
    assert w.route.canary_weight == 20


def test_suspended_idle_rollout_does_not_start_a_new_revision() -> None:
    w = World(ro=rollout(suspend=True))
    w.tick()
    w.tick()
    assert w.phase is Phase.INITIALIZED
    w.target = "rev-2"
    result = w.tick()
    assert result.status.phase is Phase.INITIALIZED
    assert not w.canary_up
    assert "suspend" in result.status.message


def test_new_revision_mid_rollout_restarts_the_analysis(world: World) -> None:
    world.progressing()
    world.tick(checks=PASS)
    world.tick(checks=FAIL)
    world.target = "rev-3"
    result = world.tick(checks=PASS)
    assert result.status.phase is Phase.PROGRESSING
    assert result.status.canary_revision == "rev-3"
    assert result.status.failed_checks == 0
    assert result.status.step_index == 0
    assert world.route.canary_weight == 0
    assert any(e.reason == "NewRevision" for e in result.events)


def test_target_reverting_to_stable_withdraws_the_canary(world: World) -> None:
    world.progressing()
    world.target = "rev-1"
    result = world.tick(checks=PASS)
    assert result.status.phase is Phase.INITIALIZED
    assert world.route.canary_weight == 0
    assert not world.canary_up


def test_target_deleted_mid_rollout_rolls_back(world: World) -> None:
    world.progressing()
    world.target = None
    result = world.tick(checks=PASS)
    assert result.status.phase is Phase.ROLLING_BACK
    assert world.route.canary_weight == 0


def test_commands_after_an_abort_in_the_same_tick_are_reported_ignored(world: World) -> None:
    world.progressing()
    commands = [Command(kind=CommandKind.ABORT, by="a"), Command(kind=CommandKind.PROMOTE, by="b")]
    result = world.tick(checks=PASS, commands=commands)
    assert result.status.phase is Phase.ROLLING_BACK
    ignored = [e for e in result.events if e.reason == "CommandIgnored"]
    assert len(ignored) == 1
    assert "b asked to promote" in ignored[0].message


def test_time_suspended_does_not_count_towards_the_inconclusive_deadline() -> None:
    w = World(ro=rollout()).initialized().progressing()
    for _ in range(4):
        w.tick(checks=INCONCLUSIVE)
    w.ro = w.ro.model_copy(update={"spec": w.ro.spec.model_copy(update={"suspend": True})})
    w.tick(advance=3600)
    w.ro = w.ro.model_copy(update={"spec": w.ro.spec.model_copy(update={"suspend": False})})
    result = w.tick(checks=INCONCLUSIVE)
    assert result.status.phase is Phase.PROGRESSING


def test_deleted_target_while_waiting_says_so() -> None:
    ro = rollout(gates={"approvals": ["rollout"]})
    w = World(ro=ro).initialized()
    w.target = "rev-2"
    w.tick()
    w.target = None
    result = w.tick()
    assert "disappeared" in result.status.message
