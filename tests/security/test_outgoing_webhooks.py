"""Outgoing webhooks: the destination policy, answers kept out of messages, replay refusal by
the reference receiver, and a receiver that survives hostile timestamps. Real sockets on
127.0.0.1; the policy allows loopback only where a test says so."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread
from typing import Any

import httpx
import pytest

from canary.gates.caller import call_gate
from canary.gates.destinations import DestinationPolicy
from canary.gates.payload import build_payload
from canary.gates.receiver import Receiver, Reply
from canary.gates.secret_source import StaticSecrets
from canary.gates.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER
from canary.gates.webhooks import new_client
from canary.model import Rollout
from canary.model.gates import Webhook

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SECRET = b"s3cret-key"
LOOPBACK = DestinationPolicy.of(allow=("127.0.0.0/8",))


def hook(url: str, **fields: Any) -> Webhook:
    return Webhook.model_validate(
        {"name": "gate", "type": "confirm-rollout", "url": url, "retries": 0, **fields}
    )


def rollout(webhook: Webhook) -> Rollout:
    return Rollout.model_validate(
        {
            "metadata": {"name": "podinfo", "namespace": "shop"},
            "spec": {
                "targetRef": {"name": "podinfo"},
                "service": {"port": 9898},
                "provider": {"name": "istio"},
                "gates": {"webhooks": [webhook.to_wire()]},
            },
        }
    )


def ask(webhook: Webhook, client: httpx.Client) -> Any:
    payload = build_payload(rollout(webhook), None, webhook, now=NOW)
    secrets = StaticSecrets({"hooks/token": SECRET})
    return call_gate(webhook, payload, secrets, client, NOW, sleep=lambda _: None)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1:{port}/hook", "loopback"),
        ("http://localhost:{port}/hook", "cluster-internal name"),
        ("http://169.254.169.254/latest/meta-data/", "link-local (cloud metadata)"),
        ("http://[::1]:{port}/hook", "loopback"),
        ("http://[::ffff:127.0.0.1]:{port}/hook", "loopback"),
        ("http://kubernetes.default.svc/api", "cluster-internal name"),
        ("http://metadata.google.internal/computeMetadata/v1/", "cluster-internal name"),
    ],
)
def test_refused_destinations_are_never_called(url: str, why: str) -> None:
    with Receiver(Reply(200, "yes")) as gate, new_client() as client:
        port = gate.url.rsplit(":", 1)[1].split("/", 1)[0]
        answer = ask(hook(url.format(port=port)), client)
        assert gate.attempts == 0
    assert not answer.open
    assert answer.message.startswith("not called: ")
    assert why in answer.message
    assert "refused by the webhook destination policy" in answer.message


def test_the_api_server_address_is_refused() -> None:
    policy = DestinationPolicy(api_server=("10.96.0.1",))
    assert policy.why_refused("10.96.0.1") is not None
    assert policy.why_refused("10.96.0.2") is None  # other in-cluster Services are allowed
    by_name = DestinationPolicy(resolve=lambda _: ["169.254.169.254"])
    assert "link-local" in (by_name.why_refused("innocent.example.com") or "")


def test_an_allowed_range_is_called() -> None:
    with Receiver(Reply(200, "yes")) as gate, new_client(LOOPBACK) as client:
        answer = ask(hook(gate.url), client)
        assert gate.attempts == 1
    assert answer.open


class _Internal(BaseHTTPRequestHandler):
    """An internal service: answers with data, no X-Canary-Reason."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'{"db_password": "hunter2", "users": 1042}'
        self.send_response(403)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def internal() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Internal)
    Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_an_answer_body_never_reaches_the_message(internal: str) -> None:
    with new_client(LOOPBACK) as client:
        answer = ask(hook(internal), client)
    assert not answer.open
    assert answer.message == "HTTP 403"
    assert "hunter2" not in answer.message


def _signed_request(gate: Receiver) -> tuple[bytes, dict[str, str]]:
    with new_client(LOOPBACK) as client:
        ask(hook(gate.url, secretRef={"name": "hooks", "key": "token"}), client)
    first = gate.received[-1]
    wanted = {SIGNATURE_HEADER, TIMESTAMP_HEADER, "Content-Type"}
    return first.body, {k: v for k, v in first.headers.items() if k in wanted}


def test_the_reference_receiver_refuses_a_replay() -> None:
    with Receiver(Reply(200, "go"), secret=SECRET, clock=NOW.timestamp) as gate:
        body, headers = _signed_request(gate)
        replayed = httpx.post(gate.url, content=body, headers=headers)
        assert replayed.status_code == 409
        assert "replayed request of delivery" in replayed.text
        assert [r.signature_problem for r in gate.received] == [None, None]


def test_the_reference_receiver_survives_a_4300_digit_timestamp() -> None:
    with Receiver(Reply(200, "go"), secret=SECRET, clock=time.time) as gate:
        hostile = {TIMESTAMP_HEADER: "9" * 4300, SIGNATURE_HEADER: "sha256=" + "0" * 64}
        answer = httpx.post(gate.url, content=b"{}", headers=hostile)
        assert answer.status_code == 401
        assert "not whole Unix seconds" in answer.text
        host, port = gate.url.split("//", 1)[1].split("/", 1)[0].split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                f"POST /hook HTTP/1.1\r\nContent-Length: {'9' * 5000}\r\n\r\n{{}}".encode()
            )
            sock.shutdown(socket.SHUT_WR)
            assert sock.recv(4096).startswith(b"HTTP/1.0 401")
        still = httpx.post(gate.url, content=b"{}", headers={TIMESTAMP_HEADER: "1"})
        assert still.status_code == 401  # alive, and still checking
