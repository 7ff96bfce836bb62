"""The pure parts of canary.notify: Kubernetes Event bodies, secrets, messages, the queue."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from notify_support import FakeClock, error_rate, rollout, slack_channel

from canary.engine.actions import Event
from canary.model import RolloutStatus, Verdict
from canary.model.analysis import CheckKind
from canary.model.gates import SecretKeyRef
from canary.model.notification import NotificationEvent
from canary.model.status import CheckResult, Phase, SideEvidence
from canary.notify import (
    Delivery,
    DirectorySecretSource,
    Dispatcher,
    MappingSecretSource,
    Notifier,
    NotifyConfig,
    SecretMissingError,
    build_notice,
    check_summary,
    kube_event,
    sign,
    verify,
)
from canary.notify.slack_blocks import BLUE, GREEN, RED, YELLOW, color, parent_message

NOW = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)


def test_kube_event_body() -> None:
    ro = rollout([])
    ro.metadata.uid = "1234-abcd"
    event = Event(reason="CheckFailed", message="failed tick 1 of 2", warning=True)
    body = kube_event(ro, event, NOW, instance="canary-0")
    assert body["apiVersion"] == "v1"
    assert body["kind"] == "Event"
    assert body["type"] == "Warning"
    assert body["reason"] == "CheckFailed"
    assert body["message"] == "failed tick 1 of 2"
    assert body["involvedObject"] == {
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "Rollout",
        "name": "checkout",
        "namespace": "shop",
        "uid": "1234-abcd",
    }
    assert body["metadata"]["namespace"] == "shop"
    assert body["metadata"]["name"].startswith("checkout.")
    assert body["firstTimestamp"] == body["lastTimestamp"] == "2026-03-01T12:30:00Z"
    assert body == kube_event(ro, event, NOW, instance="canary-0")  # pure
    other = kube_event(ro, Event(reason="Step", message="weight 10%"), NOW)
    assert other["type"] == "Normal"
    assert other["metadata"]["name"] != body["metadata"]["name"]


def test_directory_secrets(tmp_path: Path) -> None:
    (tmp_path / "slack").mkdir()
    (tmp_path / "slack" / "token").write_text("xoxb-1\n")
    (tmp_path / "shop" / "slack").mkdir(parents=True)
    (tmp_path / "shop" / "slack" / "token").write_text("xoxb-shop")
    source = DirectorySecretSource(tmp_path)
    ref = SecretKeyRef(name="slack", key="token")
    assert source.read(ref) == "xoxb-1"
    assert source.read(ref, "shop") == "xoxb-shop"
    assert source.read(ref, "other") == "xoxb-1"
    with pytest.raises(SecretMissingError, match="secret 'slack' has no key 'nope'"):
        source.read(SecretKeyRef(name="slack", key="nope"))


def test_a_missing_secret_is_logged_once_and_retried(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    notifier = Notifier(
        [slack_channel()], MappingSecretSource({}), NotifyConfig(), clock=clock, start=False
    )
    ro = rollout(["deploys"])
    status = RolloutStatus(phase=Phase.PROGRESSING, canary_revision="rev-2")
    event = Event(reason="Progressing", message="go", notification=NotificationEvent.STARTED)
    with caplog.at_level(logging.ERROR, logger="canary.notify"):
        assert notifier.notify(ro, status, [event], NOW) == 1
        for _ in range(3):
            assert notifier.dispatcher.run_once()  # no crash: a failed attempt
            clock.advance(120)
    assert notifier.stats.failed_attempts == 3
    assert notifier.dispatcher.pending() == 1  # still waiting for the secret
    missing = [r for r in caplog.records if "has no key 'token'" in r.message]
    assert len(missing) == 1


def _delivery(reason: str = "Step", queued_at: float = FakeClock().now) -> Delivery:
    ro = rollout(["deploys"])
    status = RolloutStatus(phase=Phase.PROGRESSING, canary_revision="rev-2")
    event = Event(reason=reason, message=reason, notification=NotificationEvent.STEP)
    notice = build_notice(ro, status, event, NOW)
    return Delivery(id=reason, channel=slack_channel(), notice=notice, queued_at=queued_at)


def test_check_summary_shows_the_numbers() -> None:
    failing = error_rate(Verdict.FAIL, 2.4, 0.5, 812)
    assert check_summary(failing, "%") == (
        "error-rate: canary 2.4% (n=812, bad=19) vs primary 0.5% (n=8,120, bad=41) — fail"
    )
    latency = CheckResult(
        name="latency",
        verdict=Verdict.PASS,
        time=NOW,
        canary=SideEvidence(value=231.0, requests=1200),
        primary=SideEvidence(value=204.5),
    )
    assert check_summary(latency, "ms") == (
        "latency: canary 231 ms (n=1,200) vs primary 204 ms — pass"
    )
    empty = CheckResult(name="error-rate", verdict=Verdict.INCONCLUSIVE, time=NOW, no_data=True)
    assert check_summary(empty) == "error-rate: no data — inconclusive"


def test_a_latency_check_that_says_its_kind_reads_as_the_slow_share_and_an_estimate() -> None:
    # the sequential judge's value is the slow share in percent: "0.25 ms" would be a lie
    latency = CheckResult(
        name="latency",
        kind=CheckKind.LATENCY,
        objective=500,
        quantile_label="p99",
        verdict=Verdict.PASS,
        time=NOW,
        canary=SideEvidence(
            value=1.2, requests=1000, failures=12, quantile=520, quantile_low=500,
            quantile_high=1000,
        ),
        primary=SideEvidence(value=0.25, requests=4000, failures=10, quantile=2600,
                             quantile_low=2500),
    )  # fmt: skip
    assert check_summary(latency, "ms") == (
        "latency: canary 1.2% >500ms (12/1000), p99~520ms (500-1000) vs primary 0.25% >500ms "
        "(10/4000), p99~2600ms (>2500) — pass"
    )


@pytest.mark.parametrize(
    ("phase", "waiting_for", "expected"),
    [
        (Phase.PROGRESSING, None, BLUE),
        (Phase.PAUSED, "promotion", YELLOW),
        (Phase.WAITING, "rollout", YELLOW),
        (Phase.SUCCEEDED, None, GREEN),
        (Phase.ROLLING_BACK, None, RED),
        (Phase.FAILED, None, RED),
    ],
)
def test_colour_by_outcome(phase: Phase, waiting_for: str | None, expected: str) -> None:
    status = RolloutStatus(phase=phase, canary_revision="rev-2", waiting_for=waiting_for)
    event = Event(reason=phase.value, message="m", notification=NotificationEvent.STEP)
    assert color(build_notice(rollout([]), status, event, NOW)) == expected


def test_a_suspended_rollout_says_how_to_resume() -> None:
    status = RolloutStatus(
        phase=Phase.PAUSED, canary_revision="rev-2", waiting_for="resume: spec.suspend is true"
    )
    event = Event(reason="Paused", message="suspended", notification=NotificationEvent.WAITING)
    notice = build_notice(rollout([]), status, event, NOW)
    text = str(parent_message(notice).attachments)
    assert "kubectl patch rollouts.canary.dev checkout -n shop --type merge" in text


def test_a_gate_held_by_a_webhook_asks_nobody_to_approve() -> None:
    ro = rollout([])  # no approvals: a confirm-promotion webhook holds the gate
    status = RolloutStatus(phase=Phase.PAUSED, canary_revision="rev-2", waiting_for="promotion")
    event = Event(reason="Paused", message="hook said no", notification=NotificationEvent.WAITING)
    assert build_notice(ro, status, event, NOW).commands == []


def test_signatures() -> None:
    body = b'{"a":1}'
    header = sign("k", "1700000000", body)
    assert verify("k", "1700000000", body, header, now=1700000100)
    assert not verify("k", "1700000000", body + b" ", header, now=1700000100)
    assert not verify("other", "1700000000", body, header, now=1700000100)
    assert not verify("k", "1700000000", body, header, now=1700009999)  # a replay


def test_a_full_queue_drops_its_oldest_and_counts() -> None:
    dispatcher = Dispatcher(lambda d: None, NotifyConfig(max_queued=2), clock=FakeClock())
    for name in ("a", "b", "c"):
        dispatcher.submit(_delivery(name))
    assert dispatcher.pending() == 2
    assert dispatcher.stats.overflowed == 1
    assert [d.id for d in dispatcher._queues["shop/deploys"]] == ["b", "c"]


def test_one_channel_down_does_not_hold_another() -> None:
    clock = FakeClock()
    sent: list[str] = []

    def send(delivery: Delivery) -> None:
        if delivery.channel.metadata.name == "deploys":
            raise ConnectionError("down")
        sent.append(delivery.id)

    dispatcher = Dispatcher(send, NotifyConfig(), clock=clock)
    dispatcher.submit(_delivery("a"))
    other = _delivery("b")
    other.channel = slack_channel("other")
    dispatcher.submit(other)
    while dispatcher.run_once():
        pass
    assert sent == ["b"]
    assert dispatcher.pending() == 1


def test_notify_never_raises_into_the_rollout() -> None:
    def broken(namespace: str, name: str) -> None:
        raise RuntimeError("cache exploded")

    notifier = Notifier(broken, MappingSecretSource({}), start=False)
    event = Event(reason="Progressing", message="go", notification=NotificationEvent.STARTED)
    status = RolloutStatus(phase=Phase.PROGRESSING, canary_revision="rev-2")
    assert notifier.notify(rollout(["deploys"]), status, [event], NOW) == 0


def test_only_the_rollouts_chosen_events_are_sent() -> None:
    notifier = Notifier([slack_channel()], MappingSecretSource({}), start=False)
    ro = rollout(["deploys"])
    ro.spec.notifications.events = [NotificationEvent.PROMOTED]
    status = RolloutStatus(phase=Phase.PROGRESSING, canary_revision="rev-2")
    step = Event(reason="Step", message="10%", notification=NotificationEvent.STEP)
    plain = Event(reason="Promoting", message="promoting")
    assert notifier.notify(ro, status, [step, plain], NOW) == 0
    done = RolloutStatus(phase=Phase.SUCCEEDED, canary_revision="rev-2")
    promoted = Event(reason="Succeeded", message="ok", notification=NotificationEvent.PROMOTED)
    assert notifier.notify(ro, done, [promoted], NOW) == 1


def test_submit_does_not_wait_for_a_send_in_progress() -> None:
    entered, release = threading.Event(), threading.Event()

    def slow(delivery: Delivery) -> None:
        entered.set()
        release.wait(5)

    dispatcher = Dispatcher(slow, NotifyConfig(), clock=FakeClock())
    dispatcher.start()
    try:
        dispatcher.submit(_delivery("a"))
        assert entered.wait(5)
        dispatcher.submit(_delivery("b"))  # returns although the worker is stuck in a send
        assert dispatcher.pending() == 2
    finally:
        release.set()
        assert dispatcher.flush(5)
        dispatcher.close()
