"""Webhooks by type and manual approvals, as `plan` asks for them and `step` obeys them."""

from __future__ import annotations

from engine_harness import FAIL, PASS, World, answer, hook, rollout

from canary.engine import CallWebhook, Command, CommandKind
from canary.model import ApprovalPoint, Phase


def with_gates(*webhooks: dict[str, str], approvals: list[str] | None = None) -> World:
    ro = rollout(gates={"webhooks": list(webhooks), "approvals": approvals or []})
    return World(ro=ro).initialized()


def test_confirm_rollout_no_keeps_the_revision_waiting() -> None:
    w = with_gates(hook("ok", "confirm-rollout"))
    w.target = "rev-2"
    assert w.needs() == ["ok"]
    result = w.tick(gates=[answer("ok", "confirm-rollout", False, "change freeze")])
    assert result.status.phase is Phase.WAITING
    assert "change freeze" in result.status.message
    assert not w.canary_up
    assert w.needs() == ["ok"]
    result = w.tick(gates=[answer("ok", "confirm-rollout", True)])
    assert result.status.phase is Phase.PROGRESSING
    assert w.canary_up


def test_a_missing_answer_is_a_closed_gate() -> None:
    w = with_gates(hook("ok", "confirm-rollout"))
    w.target = "rev-2"
    result = w.tick(gates=[])
    assert result.status.phase is Phase.WAITING
    assert "has not answered" in result.status.message


def test_manual_approval_before_rollout() -> None:
    w = with_gates(approvals=["rollout"])
    w.target = "rev-2"
    result = w.tick()
    assert result.status.phase is Phase.WAITING
    assert "canary approve podinfo --point rollout" in result.status.message
    result = w.tick(commands=[Command(kind=CommandKind.APPROVE, by="alice")])
    assert result.status.phase is Phase.PROGRESSING
    assert any(e.reason == "Approved" and "alice" in e.message for e in result.events)


def test_pre_rollout_runs_once_canary_is_ready_and_a_no_is_a_failed_check() -> None:
    w = with_gates(hook("smoke", "pre-rollout"))
    w.target = "rev-2"
    assert w.needs() == []  # not before the canary exists
    w.tick()
    assert w.needs() == ["smoke"]
    result = w.tick(gates=[answer("smoke", "pre-rollout", False, "500")])
    assert result.status.failed_checks == 1
    assert w.route.canary_weight == 0
    result = w.tick(gates=[answer("smoke", "pre-rollout", True)])
    assert result.status.pre_rollout_passed
    assert w.route.canary_weight == 5
    assert "smoke" not in w.needs()


def test_pre_rollout_failures_reach_the_failure_limit() -> None:
    w = with_gates(hook("smoke", "pre-rollout"))
    w.target = "rev-2"
    w.tick()
    w.tick(gates=[answer("smoke", "pre-rollout", False)])
    result = w.tick(gates=[answer("smoke", "pre-rollout", False)])
    assert result.status.phase is Phase.ROLLING_BACK


def test_rollout_webhook_is_a_check_at_every_tick() -> None:
    w = with_gates(hook("load", "rollout")).progressing()
    assert w.needs() == ["load"]
    result = w.tick(checks=PASS, gates=[answer("load", "rollout", False, "p95 too high")])
    assert result.status.failed_checks == 1
    assert any(
        c.name == "webhook/load" and c.message == "p95 too high" for c in result.status.checks
    )
    w.tick(checks=PASS, gates=[answer("load", "rollout", True)])
    assert w.route.canary_weight == 10


def test_rollout_webhook_without_answer_is_inconclusive() -> None:
    w = with_gates(hook("load", "rollout")).progressing()
    result = w.tick(checks=PASS)
    assert result.status.failed_checks == 0
    assert w.route.canary_weight == 5
    assert result.status.inconclusive_since is not None


def test_confirm_traffic_increase_pauses_at_the_current_weight() -> None:
    w = with_gates(hook("more", "confirm-traffic-increase")).progressing()
    assert w.needs() == ["more"]
    result = w.tick(checks=PASS, gates=[answer("more", "confirm-traffic-increase", False)])
    assert result.status.phase is Phase.PAUSED
    assert result.status.waiting_for == "traffic-increase"
    assert w.route.canary_weight == 5
    # the canary is still judged while it waits
    result = w.tick(checks=FAIL, gates=[answer("more", "confirm-traffic-increase", True)])
    assert result.status.failed_checks == 1
    assert w.route.canary_weight == 5
    result = w.tick(checks=PASS, gates=[answer("more", "confirm-traffic-increase", True)])
    assert result.status.phase is Phase.PROGRESSING
    assert w.route.canary_weight == 10


def test_confirm_promotion_is_asked_only_at_the_last_step() -> None:
    w = with_gates(hook("ship", "confirm-promotion")).progressing()
    assert w.needs() == []
    for _ in range(3):
        w.tick(checks=PASS)
    assert w.route.canary_weight == 50
    assert w.needs() == ["ship"]
    result = w.tick(checks=PASS, gates=[answer("ship", "confirm-promotion", False)])
    assert result.status.phase is Phase.PAUSED
    result = w.tick(checks=PASS, gates=[answer("ship", "confirm-promotion", True)])
    assert result.status.phase is Phase.PROMOTING


def test_manual_promotion_approval() -> None:
    w = with_gates(approvals=["promotion"]).progressing()
    for _ in range(4):
        w.tick(checks=PASS)
    assert w.phase is Phase.PAUSED
    assert w.status is not None
    assert w.status.waiting_for == "promotion"
    approve = Command(kind=CommandKind.APPROVE, point=ApprovalPoint.PROMOTION, by="bob")
    result = w.tick(checks=PASS, commands=[approve])
    assert result.status.phase is Phase.PROMOTING
    assert result.status.approvals == []


def test_approval_of_traffic_increase_is_spent_on_one_step() -> None:
    w = with_gates(approvals=["traffic-increase"]).progressing()
    w.tick(checks=PASS)
    assert w.phase is Phase.PAUSED
    w.tick(checks=PASS, commands=[Command(kind=CommandKind.APPROVE)])
    assert w.route.canary_weight == 10
    result = w.tick(checks=PASS)
    assert result.status.phase is Phase.PAUSED
    assert w.route.canary_weight == 10


def test_rollback_webhook_saying_yes_rolls_back() -> None:
    w = with_gates(hook("panic", "rollback")).progressing()
    assert "panic" in w.needs()
    result = w.tick(checks=PASS, gates=[answer("panic", "rollback", False)])
    assert result.status.phase is Phase.PROGRESSING
    result = w.tick(checks=PASS, gates=[answer("panic", "rollback", True, "pager fired")])
    assert result.status.phase is Phase.ROLLING_BACK
    assert "pager fired" in result.status.message
    assert w.route.canary_weight == 0


def test_post_rollout_webhook_is_called_on_success_and_on_failure() -> None:
    w = with_gates(hook("after", "post-rollout")).progressing()
    for _ in range(4):
        w.tick(checks=PASS)
    w.tick()
    result = w.tick()
    assert result.status.phase is Phase.SUCCEEDED
    assert CallWebhook(name="after", type="post-rollout", reason="promoted") in result.actions
    w.target = "rev-3"
    w.tick()
    w.tick()
    w.tick(checks=FAIL)
    w.tick(checks=FAIL)
    result = w.tick()
    assert result.status.phase is Phase.FAILED
    assert CallWebhook(name="after", type="post-rollout", reason="rolled back") in result.actions


def test_event_webhooks_receive_every_event() -> None:
    w = with_gates(hook("audit", "event"))
    w.target = "rev-2"
    result = w.tick()
    calls = [a for a in result.actions if isinstance(a, CallWebhook)]
    assert [c.reason for c in calls] == [e.reason for e in result.events]
    assert calls
    assert all(c.name == "audit" for c in calls)


def test_plan_asks_nothing_when_idle_without_a_new_revision() -> None:
    w = with_gates(hook("ok", "confirm-rollout"), hook("load", "rollout"))
    assert w.needs() == []


def test_a_newer_revision_mid_rollout_waits_for_its_own_confirmation() -> None:
    w = with_gates(approvals=["rollout"])
    w.target = "rev-2"
    w.tick()
    w.tick(commands=[Command(kind=CommandKind.APPROVE, by="alice")])
    w.tick()
    assert w.phase is Phase.PROGRESSING
    w.target = "rev-3"
    result = w.tick(checks=PASS)
    assert result.status.phase is Phase.WAITING
    assert result.status.canary_revision == "rev-3"
    assert w.route.canary_weight == 0
    result = w.tick(commands=[Command(kind=CommandKind.APPROVE, by="alice")])
    assert result.status.phase is Phase.PROGRESSING


def test_rollback_webhook_is_asked_even_while_the_canary_is_not_ready() -> None:
    w = with_gates(hook("panic", "rollback")).progressing()
    w.canary_ready_after_up = False
    assert w.needs() == ["panic"]


def test_skip_analysis_asks_no_rollout_webhooks() -> None:
    ro = rollout(skipAnalysis=True, gates={"webhooks": [hook("load", "rollout")]})
    w = World(ro=ro).initialized().progressing()
    assert w.needs() == []
