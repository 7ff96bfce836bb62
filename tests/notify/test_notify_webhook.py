"""The generic webhook channel against a local receiver that checks the signature itself
(HMAC-SHA256 over "<timestamp>." + body, as a user's endpoint would)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from notify_support import (
    EngineRun,
    FakeClock,
    WebhookReceiver,
    error_rate,
    rollout,
    webhook_channel,
)

from canary.model import Verdict
from canary.notify import MappingSecretSource, Notifier, NotifyConfig

SECRET = "s3cret-shared-with-the-receiver"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver(SECRET)
    yield server
    server.close()


def notifier_for(receiver: WebhookReceiver, clock: FakeClock, secret: str = SECRET) -> Notifier:
    return Notifier(
        [webhook_channel(receiver.url)],
        MappingSecretSource({("hook", "secret"): secret}),
        NotifyConfig(initial_backoff=5.0, webhook_allow=("127.0.0.0/8",)),  # a local receiver
        clock=clock,
    )


def test_signed_json_with_status_and_numbers(receiver: WebhookReceiver) -> None:
    run = EngineRun(rollout(["hook"]))
    with notifier_for(receiver, FakeClock()) as notifier:
        for checks in (None, None, [error_rate(Verdict.FAIL, 2.4, 0.5, 812)]):
            result = run.tick(checks)
            notifier.notify(run.ro, result.status, result.events, run.now)
        assert notifier.flush(10)
    assert receiver.rejected == 0
    assert [p["event"]["kind"] for p in receiver.accepted] == ["started", "step", "verdict"]
    verdict = receiver.accepted[-1]
    assert verdict["rollout"] == {"name": "checkout", "namespace": "shop"}
    assert verdict["event"]["reason"] == "CheckFailed"
    assert verdict["event"]["warning"] is True
    assert verdict["status"]["phase"] == "Progressing"
    assert verdict["status"]["canaryWeight"] == 10
    assert verdict["status"]["failedChecks"] == 1
    (check,) = verdict["checks"]
    assert check["canary"] == {"requests": 812, "failures": 19, "value": 2.4}
    assert check["summary"].startswith("error-rate: canary 2.4% (n=812")
    headers = receiver.calls[-1].headers
    assert headers["X-Canary-Event"] == "verdict"
    assert headers["X-Canary-Signature"].startswith("sha256=")


def test_a_wrong_secret_is_refused_by_the_receiver(receiver: WebhookReceiver) -> None:
    run = EngineRun(rollout(["hook"]))
    with notifier_for(receiver, FakeClock(), secret="not-the-secret") as notifier:
        result = run.tick()
        notifier.notify(run.ro, result.status, result.events, run.now)
        assert receiver.wait_for(lambda: notifier.stats.failed_attempts >= 1)
    assert receiver.rejected == 1
    assert receiver.accepted == []


def test_a_busy_receiver_gets_the_message_on_retry(receiver: WebhookReceiver) -> None:
    receiver.fail_next = 2
    clock = FakeClock()
    run = EngineRun(rollout(["hook"]))
    with notifier_for(receiver, clock) as notifier:
        result = run.tick()
        notifier.notify(run.ro, result.status, result.events, run.now)
        for attempt in (1, 2):
            assert receiver.wait_for(lambda: notifier.stats.failed_attempts >= attempt)  # noqa: B023
            clock.advance(30)
            notifier.dispatcher.wake()
        assert notifier.flush(10)
    assert len(receiver.calls) == 3
    assert [p["event"]["kind"] for p in receiver.accepted] == ["started"]
    assert len({c.headers["X-Canary-Delivery"] for c in receiver.calls}) == 1
