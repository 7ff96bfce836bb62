"""The engine driven through webhooks that are real, signature-checking HTTP servers.

Each tick runs as a shell runs it: `plan` names the gating webhooks, `WebhookCaller.ask`
calls them, `step` decides, and the informative hooks of its `CallWebhook` actions are fired.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from canary.engine import CallWebhook, StepResult, plan
from canary.gates.caller import Delivery
from canary.gates.destinations import DestinationPolicy
from canary.gates.receiver import Receiver, Reply
from canary.gates.secret_source import StaticSecrets
from canary.gates.webhooks import WebhookCaller, new_client
from canary.model import CheckResult, Phase, RolloutStatus

LOOPBACK = DestinationPolicy.of(allow=("127.0.0.0/8",))

try:
    import engine_harness
except ModuleNotFoundError:  # this directory alone was collected
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
    import engine_harness

World = engine_harness.World
PASS = engine_harness.PASS
FAIL = engine_harness.FAIL

SECRET = b"gate-secret"


@dataclass
class Shell:
    """A world plus the webhook caller: one `tick` is plan, ask, step, fire."""

    world: Any
    caller: WebhookCaller
    fired: list[Delivery] = field(default_factory=list)

    def tick(self, checks: list[CheckResult] | None = None) -> StepResult:
        w = self.world
        status = w.status or RolloutStatus()
        needs = plan(w.ro, status, w.workload())
        now = w.now
        answers = self.caller.ask(w.ro, w.status, needs.webhooks, now)
        result: StepResult = w.tick(checks=checks if needs.analyse else None, gates=answers)
        hooks = [a for a in result.actions if isinstance(a, CallWebhook)]
        self.fired += self.caller.fire_all(hooks, w.ro, result.status, now)
        return result

    @property
    def phase(self) -> Phase:
        phase: Phase = self.world.phase
        return phase


@pytest.fixture
def caller() -> Iterator[WebhookCaller]:
    client = new_client(LOOPBACK)  # the receivers bind 127.0.0.1: allowed explicitly
    yield WebhookCaller(
        client=client,
        secrets=StaticSecrets({"hooks/token": SECRET}),
        deadline_seconds=10,
        sleep=lambda _: None,
    )
    client.close()


def shell(caller: WebhookCaller, timeout: str = "2s", **receivers: tuple[str, Receiver]) -> Shell:
    """A rollout (failureLimit 2, weights 5/10/20/50) with one signed webhook per receiver."""
    hooks = [
        {
            "name": name,
            "type": gate_type,
            "url": receiver.url,
            "timeout": timeout,
            "retries": 1,
            "secretRef": {"name": "hooks", "key": "token"},
        }
        for name, (gate_type, receiver) in receivers.items()
    ]
    world = World(ro=engine_harness.rollout(gates={"webhooks": hooks})).initialized()
    for _, receiver in receivers.values():
        receiver.clock = lambda: world.now.timestamp()
    return Shell(world=world, caller=caller)


def signed(gate: Receiver) -> Receiver:
    gate.secret = SECRET
    return gate.start()


def test_confirm_rollout_says_no_then_yes(caller: WebhookCaller) -> None:
    with signed(Receiver([Reply(403, "change freeze"), Reply(200, "go")])) as gate:
        s = shell(caller, ok=("confirm-rollout", gate))
        s.world.target = "rev-2"
        result = s.tick()
        assert result.status.phase is Phase.WAITING
        assert "said no: HTTP 403: change freeze" in result.status.message
        assert not s.world.canary_up
        result = s.tick()
        assert result.status.phase is Phase.PROGRESSING
        assert s.world.canary_up
        assert gate.attempts == 2
        assert [r.signature_problem for r in gate.received] == [None, None]
        assert gate.received[0].json()["rollout"]["canaryRevision"] is None


def test_a_confirm_gate_that_times_out_waits_then_a_prompt_yes_starts(
    caller: WebhookCaller,
) -> None:
    slow, prompt = Reply(200, "too late", delay=5), Reply(200, "go")
    with signed(Receiver([slow, slow, prompt])) as gate:
        s = shell(caller, timeout="200ms", calendar=("confirm-rollout", gate))
        s.world.target = "rev-2"
        result = s.tick()
        assert result.status.phase is Phase.WAITING
        assert "timed out after 200ms (2 attempts)" in result.status.message
        assert not s.world.canary_up
        result = s.tick()
        assert result.status.phase is Phase.PROGRESSING
        assert gate.attempts == 3


def test_a_pre_rollout_gate_that_times_out_is_a_failed_check(caller: WebhookCaller) -> None:
    with signed(Receiver(Reply(200, delay=5))) as gate:
        s = shell(caller, timeout="200ms", smoke=("pre-rollout", gate))
        s.world.target = "rev-2"
        s.tick()
        result = s.tick()
        assert result.status.failed_checks == 1
        assert "timed out after 200ms" in result.status.message
        assert s.world.route.canary_weight == 0


def test_failing_pre_rollout_counts_failed_checks_up_to_rollback(caller: WebhookCaller) -> None:
    with signed(Receiver(Reply(500, "smoke test crashed"))) as gate:
        s = shell(caller, smoke=("pre-rollout", gate))
        s.world.target = "rev-2"
        s.tick()
        assert gate.attempts == 0  # not before the canary is ready
        result = s.tick()
        assert result.status.failed_checks == 1
        assert "HTTP 500 after 2 attempts: smoke test crashed" in result.status.message
        assert s.world.route.canary_weight == 0
        result = s.tick()
        assert result.status.phase is Phase.ROLLING_BACK
        assert s.tick().status.phase is Phase.FAILED
        assert gate.attempts == 4
        assert not s.world.canary_up


def test_rollout_webhook_is_a_check_at_every_tick(caller: WebhookCaller) -> None:
    with signed(Receiver([Reply(200), Reply(409, "p95 too high")])) as gate:
        s = shell(caller, load=("rollout", gate))
        s.world.target = "rev-2"
        s.tick()
        s.tick()
        s.tick(checks=PASS)
        assert s.world.route.canary_weight == 10
        result = s.tick(checks=PASS)
        assert result.status.failed_checks == 1
        assert any(
            c.name == "webhook/load" and c.message == "HTTP 409: p95 too high"
            for c in result.status.checks
        )
        sent = gate.received[-1].json()
        assert sent["rollout"]["canaryWeight"] == 10
        assert {c["name"] for c in sent["checks"]} == {"error-rate", "webhook/load"}


def test_rollback_webhook_saying_yes_rolls_back(caller: WebhookCaller) -> None:
    with signed(Receiver([Reply(404, "all quiet"), Reply(200, "pager fired")])) as gate:
        s = shell(caller, panic=("rollback", gate))
        s.world.target = "rev-2"
        s.tick()
        result = s.tick()
        assert result.status.phase is Phase.PROGRESSING
        assert s.world.route.canary_weight == 5
        result = s.tick(checks=PASS)
        assert result.status.phase is Phase.ROLLING_BACK
        assert "pager fired" in result.status.message
        assert s.world.route.canary_weight == 0


def test_confirm_traffic_increase_pauses_at_the_weight_then_lets_it_rise(
    caller: WebhookCaller,
) -> None:
    with signed(Receiver([Reply(409, "load test busy"), Reply(200, "go on")])) as gate:
        s = shell(caller, more=("confirm-traffic-increase", gate))
        s.world.target = "rev-2"
        s.tick()
        s.tick()
        assert s.world.route.canary_weight == 5
        assert gate.attempts == 0  # asked only when a passing tick would raise the weight
        result = s.tick(checks=PASS)
        assert result.status.phase is Phase.PAUSED
        assert result.status.waiting_for == "traffic-increase"
        assert "load test busy" in result.status.message
        assert s.world.route.canary_weight == 5, "paused at the current weight"
        assert gate.received[0].json()["gate"]["type"] == "confirm-traffic-increase"
        result = s.tick(checks=PASS)
        assert result.status.phase is Phase.PROGRESSING
        assert s.world.route.canary_weight == 10
        assert [r.signature_problem for r in gate.received] == [None] * gate.attempts


def test_confirm_promotion_pauses_then_promotes(caller: WebhookCaller) -> None:
    with signed(Receiver([Reply(409, "waiting for QA"), Reply(204)])) as gate:
        s = shell(caller, ship=("confirm-promotion", gate))
        s.world.target = "rev-2"
        s.tick()
        s.tick()
        for _ in range(3):
            s.tick(checks=PASS)
        assert s.world.route.canary_weight == 50
        assert gate.attempts == 0  # asked only at the last step
        result = s.tick(checks=PASS)
        assert result.status.phase is Phase.PAUSED
        assert result.status.waiting_for == "promotion"
        assert "waiting for QA" in result.status.message
        result = s.tick(checks=PASS)
        assert result.status.phase is Phase.PROMOTING
        assert gate.attempts == 2


def run_to_the_end(s: Shell, checks: list[CheckResult]) -> Phase:
    s.world.target = "rev-2"
    for _ in range(12):
        s.tick(checks=checks)
        if s.phase in (Phase.SUCCEEDED, Phase.FAILED):
            break
    return s.phase


def test_post_rollout_is_called_once_with_the_outcome(caller: WebhookCaller) -> None:
    with signed(Receiver(Reply(200))) as after, signed(Receiver(Reply(500))) as audit:
        s = shell(caller, after=("post-rollout", after), audit=("event", audit))
        assert run_to_the_end(s, PASS) is Phase.SUCCEEDED
        (request,) = after.received
        body = request.json()
        assert request.signature_problem is None
        assert body["reason"] == "promoted"
        assert body["gate"] == {"name": "after", "type": "post-rollout", "metadata": {}}
        assert body["rollout"]["phase"] == "Succeeded"
        assert body["rollout"]["stableRevision"] == "rev-2"
        # event hooks hear every event; their failures change nothing
        reasons = [r.json()["reason"] for r in audit.received]
    assert {"Progressing", "Promoting", "Finalising", "Succeeded"} <= set(reasons)
    assert all(not d.ok for d in s.fired if d.name == "audit")
    assert [d.ok for d in s.fired if d.name == "after"] == [True]


def test_post_rollout_hears_a_rollback(caller: WebhookCaller) -> None:
    with signed(Receiver(Reply(200))) as after:
        s = shell(caller, after=("post-rollout", after))
        assert run_to_the_end(s, FAIL) is Phase.FAILED
        (request,) = after.received
        assert request.json()["reason"] == "rolled back"
        assert request.json()["rollout"]["phase"] == "Failed"
