"""Outgoing webhooks against real HTTP servers on 127.0.0.1: answers, timeouts, retries,
signatures, payloads and concurrency."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from canary.engine import CallWebhook, GateAnswer
from canary.gates.caller import Backoff, call_gate, call_gates
from canary.gates.destinations import DestinationPolicy
from canary.gates.payload import build_payload
from canary.gates.receiver import Receiver, Reply
from canary.gates.secret_source import NoSecrets, StaticSecrets
from canary.gates.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from canary.gates.webhooks import WebhookCaller, fire, new_client
from canary.model import Rollout, RolloutStatus
from canary.model.gates import GateType, Webhook

LOOPBACK = DestinationPolicy.of(allow=("127.0.0.0/8",))

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SECRET = b"s3cret-key"
SECRETS = StaticSecrets({"hooks/token": SECRET})


def webhook(url: str, gate_type: str = "confirm-rollout", **fields: Any) -> Webhook:
    return Webhook.model_validate({"name": "gate", "type": gate_type, "url": url, **fields})


def make_rollout(*hooks: Webhook) -> Rollout:
    return Rollout.model_validate(
        {
            "metadata": {"name": "podinfo", "namespace": "shop"},
            "spec": {
                "targetRef": {"name": "podinfo"},
                "service": {"port": 9898},
                "provider": {"name": "istio"},
                "gates": {"webhooks": [h.to_wire() for h in hooks]},
            },
        }
    )


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with new_client(LOOPBACK) as c:  # the receivers bind 127.0.0.1: allowed explicitly
        yield c


@pytest.fixture
def sleeps() -> list[float]:
    return []


def ask(
    hook: Webhook,
    client: httpx.Client,
    sleeps: list[float] | None = None,
    secrets: Any = SECRETS,
    status: RolloutStatus | None = None,
) -> GateAnswer:
    payload = build_payload(make_rollout(hook), status, hook, now=NOW)
    record = sleeps if sleeps is not None else []
    return call_gate(hook, payload, secrets, client, NOW, sleep=record.append)


@pytest.mark.parametrize(
    ("status", "body", "message"), [(200, "go", "HTTP 200: go"), (204, "", "HTTP 204")]
)
def test_2xx_opens_the_gate(client: httpx.Client, status: int, body: str, message: str) -> None:
    with Receiver(Reply(status, body)) as gate:
        answer = ask(webhook(gate.url), client)
    assert answer.open
    assert answer.message == message
    assert (answer.name, answer.type.value) == ("gate", "confirm-rollout")


@pytest.mark.parametrize("status", [403, 409])
def test_4xx_closes_the_gate_with_what_the_receiver_said(client: httpx.Client, status: int) -> None:
    with Receiver(Reply(status, "change freeze\n  until Monday")) as gate:
        answer = ask(webhook(gate.url), client)
        assert gate.attempts == 1  # a 4xx is an answer, not a failure: no retry
    assert not answer.open
    assert answer.message == f"HTTP {status}: change freeze until Monday"


def test_a_long_refusal_is_quoted_to_200_characters(client: httpx.Client) -> None:
    # the reference receiver puts the reason in X-Canary-Reason (at most 200 characters)
    with Receiver(Reply(409, "x" * 150 + " " + "y" * 5000)) as gate:
        answer = ask(webhook(gate.url), client)
    quoted = answer.message.removeprefix("HTTP 409: ")
    assert quoted == "x" * 150 + " " + "y" * 49


def test_a_redirect_is_a_no(client: httpx.Client) -> None:
    with Receiver(Reply(302, "moved")) as gate:
        answer = ask(webhook(gate.url), client)
    assert not answer.open
    assert answer.message == "HTTP 302: moved"


def test_timeout_closes_the_gate(client: httpx.Client, sleeps: list[float]) -> None:
    with Receiver(Reply(200, delay=30)) as gate:
        answer = ask(webhook(gate.url, timeout="200ms", retries=0), client, sleeps)
        assert gate.attempts == 1
    assert not answer.open
    assert answer.message == "timed out after 200ms"
    assert sleeps == []


def test_timeouts_are_retried_with_backoff(client: httpx.Client, sleeps: list[float]) -> None:
    with Receiver(Reply(200, delay=30)) as gate:
        answer = ask(webhook(gate.url, timeout="150ms", retries=2), client, sleeps)
        assert gate.attempts == 3
    assert not answer.open
    assert answer.message == "timed out after 150ms (3 attempts)"
    assert sleeps == [0.5, 1.0]


def test_slow_but_within_the_timeout_is_an_answer(client: httpx.Client) -> None:
    with Receiver(Reply(200, "took a while", delay=0.2)) as gate:
        answer = ask(webhook(gate.url, timeout="5s"), client)
    assert answer.open
    assert answer.message == "HTTP 200: took a while"


def test_500_then_200_is_retried_into_a_yes(client: httpx.Client, sleeps: list[float]) -> None:
    with Receiver([Reply(500, "warming up"), Reply(200, "ok")]) as gate:
        answer = ask(webhook(gate.url, retries=2), client, sleeps)
        assert gate.attempts == 2
        ids = {r.header("X-Canary-Delivery") for r in gate.received}
        attempts = [json.loads(r.body)["attempt"] for r in gate.received]
    assert answer.open
    assert answer.message == "HTTP 200 after 2 attempts: ok"
    assert sleeps == [0.5]
    assert len(ids) == 1  # the same delivery, retried
    assert attempts == [1, 2]  # each attempt signed apart: a copy of one is a replay


def test_always_500_closes_after_every_attempt(client: httpx.Client, sleeps: list[float]) -> None:
    with Receiver(Reply(503, "overloaded")) as gate:
        answer = ask(webhook(gate.url, retries=2), client, sleeps)
        assert gate.attempts == 3
    assert not answer.open
    assert answer.message == "HTTP 503 after 3 attempts: overloaded"
    assert sleeps == [0.5, 1.0]


def test_backoff_grows_exponentially_up_to_its_maximum() -> None:
    backoff = Backoff(initial=0.5, factor=2, maximum=3)
    assert [backoff.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_connection_refused_is_a_no(client: httpx.Client, sleeps: list[float]) -> None:
    url = f"http://127.0.0.1:{closed_port()}/hook"
    answer = ask(webhook(url, retries=1), client, sleeps)
    assert not answer.open
    assert answer.message.startswith(f"could not connect to {url}: ")
    assert answer.message.endswith("(2 attempts)")
    assert sleeps == [0.5]


def test_signature_is_verified_by_the_receiver(client: httpx.Client) -> None:
    hook = webhook("http://placeholder/", secretRef={"name": "hooks", "key": "token"})
    with Receiver(Reply(200), secret=SECRET, clock=NOW.timestamp) as gate:
        answer = ask(hook.model_copy(update={"url": gate.url}), client)
        (request,) = gate.received
    assert answer.open
    assert request.signature_problem is None
    signature = request.header(SIGNATURE_HEADER)
    timestamp = request.header(TIMESTAMP_HEADER)
    assert signature is not None
    assert signature.startswith("sha256=")
    assert timestamp == str(int(NOW.timestamp()))
    at = NOW.timestamp()
    assert verify_signature(request.body, SECRET, signature, timestamp, now=at)
    assert verify_signature(request.body, SECRET.decode(), signature, timestamp, now=at + 60)
    tampered = request.body.replace(b'"podinfo"', b'"podinfx"')
    assert tampered != request.body
    assert not verify_signature(tampered, SECRET, signature, timestamp, now=at)
    assert not verify_signature(request.body, b"other", signature, timestamp, now=at)
    assert not verify_signature(request.body, SECRET, signature, str(int(at) + 1), now=at)
    assert not verify_signature(request.body, SECRET, signature, timestamp, now=at + 3600)
    assert not verify_signature(request.body, SECRET, None, timestamp, now=at)
    assert not verify_signature(request.body, SECRET, signature, "soon", now=at)


def test_a_tampered_request_is_refused_by_the_receiver(client: httpx.Client) -> None:
    hook = webhook("http://placeholder/", secretRef={"name": "hooks", "key": "token"})
    with Receiver(Reply(200), secret=SECRET, clock=NOW.timestamp) as gate:
        ask(hook.model_copy(update={"url": gate.url}), client)
        original = gate.received[0]
        headers = {k: v for k, v in original.headers.items() if k.lower() != "content-length"}
        response = client.post(gate.url, content=original.body + b" ", headers=headers)
    assert response.status_code == 401
    assert "signature does not match" in response.text


def test_missing_secret_keeps_the_gate_closed_and_calls_nobody(client: httpx.Client) -> None:
    with Receiver(Reply(200)) as gate:
        hook = webhook(gate.url, secretRef={"name": "hooks", "key": "absent"})
        answer = ask(hook, client)
        no_source = ask(hook, client, secrets=NoSecrets())
        assert gate.attempts == 0
    assert not answer.open
    assert answer.message == "not called: secret 'hooks' key 'absent' not found"
    assert not no_source.open
    assert "--secrets-dir" in no_source.message


def test_payload_carries_the_rollout_the_gate_and_the_checks(client: httpx.Client) -> None:
    status = RolloutStatus.model_validate(
        {
            "phase": "Progressing",
            "canaryWeight": 20,
            "stepIndex": 2,
            "canaryRevision": "rev-2",
            "stableRevision": "rev-1",
            "checks": [
                {"name": "error-rate", "verdict": "fail", "time": NOW, "message": "old"},
                {
                    "name": "latency",
                    "verdict": "pass",
                    "time": NOW,
                    "canary": {"requests": 900, "failures": 3, "value": 120.5},
                    "primary": {"requests": 1000, "failures": 2, "value": 110.0},
                },
                {"name": "error-rate", "verdict": "pass", "time": NOW, "message": "0.1% < 1%"},
            ],
        }
    )
    hook = webhook("http://placeholder/", "rollout", metadata={"suite": "smoke"})
    with Receiver(Reply(200)) as gate:
        ask(hook.model_copy(update={"url": gate.url}), client, status=status)
        ask(hook.model_copy(update={"url": gate.url}), client, status=status)
        first, second = gate.received
    body = first.json()
    assert body["rollout"] == {
        "name": "podinfo",
        "namespace": "shop",
        "phase": "Progressing",
        "canaryWeight": 20,
        "stepIndex": 2,
        "iteration": 0,
        "canaryRevision": "rev-2",
        "stableRevision": "rev-1",
        "failedChecks": 0,
        "waitingFor": None,
        "message": "",
    }
    assert body["gate"] == {"name": "gate", "type": "rollout", "metadata": {"suite": "smoke"}}
    assert [(c["name"], c["verdict"], c["message"]) for c in body["checks"]] == [
        ("error-rate", "pass", "0.1% < 1%"),
        ("latency", "pass", ""),
    ]
    assert body["checks"][1]["canary"] == {
        "requests": 900,
        "failures": 3,
        "value": 120.5,
        "quantile": None,
        "quantileLow": None,
        "quantileHigh": None,
    }
    assert body["timestamp"] == "2026-03-01T12:00:00Z"
    assert body["reason"] is None
    assert body["apiVersion"] == "canary.dev/v1alpha1"
    assert first.header("X-Canary-Delivery") == body["deliveryId"]
    assert first.header("X-Canary-Gate") == "rollout"
    assert first.header("Content-Type") == "application/json"
    assert second.json()["deliveryId"] != body["deliveryId"]


def test_call_gates_asks_every_webhook_at_once(client: httpx.Client) -> None:
    together = threading.Barrier(3, timeout=5)

    def wait_for_the_others(_: object) -> None:
        together.wait()  # only passes when all three requests are in flight together

    receivers = [Receiver(Reply(200, f"yes {i}"), on_request=wait_for_the_others) for i in range(3)]
    for r in receivers:
        r.start()
    try:
        hooks = [
            webhook(r.url, "confirm-promotion", name=f"hook-{i}", retries=0)
            for i, r in enumerate(receivers)
        ]
        answers = call_gates(hooks, make_rollout(*hooks), None, SECRETS, client, NOW)
    finally:
        for r in receivers:
            r.stop()
    assert [(a.name, a.open, a.message) for a in answers] == [
        (f"hook-{i}", True, f"HTTP 200: yes {i}") for i in range(3)
    ]


def test_call_gates_gives_up_at_the_overall_deadline(client: httpx.Client) -> None:
    with Receiver(Reply(200, delay=30)) as slow, Receiver(Reply(200)) as quick:
        hooks = [
            webhook(slow.url, "pre-rollout", name="slow", timeout="10s", retries=3),
            webhook(quick.url, "pre-rollout", name="quick"),
        ]
        answers = call_gates(
            hooks, make_rollout(*hooks), None, SECRETS, client, NOW, deadline_seconds=0.3
        )
        assert slow.attempts == 1
    assert [(a.name, a.open) for a in answers] == [("slow", False), ("quick", True)]
    assert "overall deadline" in answers[0].message  # timed out, and no retry past it


def test_call_gates_with_nothing_to_ask(client: httpx.Client) -> None:
    assert call_gates([], make_rollout(), None, SECRETS, client, NOW) == []


def test_fire_reports_and_never_raises(client: httpx.Client, sleeps: list[float]) -> None:
    with Receiver(Reply(200)) as ok, Receiver(Reply(500, "down")) as broken:
        good = webhook(ok.url, "post-rollout", name="good")
        bad = webhook(broken.url, "post-rollout", name="bad", retries=1)
        gone = webhook(f"http://127.0.0.1:{closed_port()}/x", "event", name="gone")
        ro = make_rollout(good, bad, gone)
        status = RolloutStatus.model_validate({"phase": "Succeeded"})

        def fire_one(name: str, reason: str) -> Any:
            action = CallWebhook(name=name, type=GateType.POST_ROLLOUT, reason=reason)
            return fire(action, ro, status, SECRETS, client, NOW, sleep=sleeps.append)

        delivered = fire_one("good", "promoted")
        failed = fire_one("bad", "promoted")
        unreachable = fire_one("gone", "Progressing")
        unknown = fire_one("nobody", "promoted")
        sent = ok.received[0].json()
    assert delivered.ok
    assert delivered.attempts == 1
    assert sent["reason"] == "promoted"
    assert sent["rollout"]["phase"] == "Succeeded"
    assert (failed.ok, failed.status_code, failed.message) == (
        False,
        500,
        "HTTP 500 after 2 attempts: down",
    )
    assert not unreachable.ok
    assert "could not connect" in unreachable.message
    assert not unknown.ok
    assert unknown.message == "not called: no webhook named 'nobody' in spec.gates.webhooks"


def test_the_caller_bundles_client_secrets_and_policy(tmp_path: Any) -> None:
    (tmp_path / "hooks").mkdir()
    (tmp_path / "hooks" / "token").write_bytes(SECRET + b"\n")
    with Receiver(Reply(200), secret=SECRET, clock=NOW.timestamp) as gate:
        hook = webhook(gate.url, secretRef={"name": "hooks", "key": "token"})
        ro = make_rollout(hook)
        with WebhookCaller.create(tmp_path, deadline_seconds=5, destinations=LOOPBACK) as caller:
            (answer,) = caller.ask(ro, None, [hook], NOW)
            action = CallWebhook(name="gate", type=GateType.EVENT, reason="Progressing")
            (delivery,) = caller.fire_all([action], ro, None, NOW)
        assert [r.signature_problem for r in gate.received] == [None, None]
        assert json.loads(gate.received[1].body)["reason"] == "Progressing"
    assert answer.open
    assert delivery.ok
