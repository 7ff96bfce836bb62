"""Test doubles for notifications: a local stand-in for Slack's Web API and incoming
webhooks, a generic-webhook receiver that checks signatures, a fake clock, and a small
driver that runs the real engine to produce real events.

`SlackAPI` is not Slack: it is a local HTTP server that answers the Web API methods canary
uses (chat.postMessage, chat.update, files.getUploadURLExternal, the upload URL it hands out,
files.completeUploadExternal) and an incoming-webhook URL, in Slack's JSON shape, and records
every call so tests can assert what Slack would have received.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from canary.engine import Command, Observations, StepResult, WorkloadState, step
from canary.engine.actions import PromoteCanary, ScaleCanaryDown, ScaleCanaryUp
from canary.model import CheckResult, Phase, Rollout, RolloutStatus, Verdict
from canary.model.notification import NotificationChannel
from canary.model.status import SideEvidence

TOKEN = "xoxb-test-token"
CHANNEL_ID = "C0DEPLOYS"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    headers: dict[str, str]
    body: bytes = b""


Answer = tuple[int, dict[str, str], bytes]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Recorder:
    """Shared by both fakes: a server on 127.0.0.1, calls recorded, requests holdable."""

    def __init__(self, port: int = 0) -> None:
        self.calls: list[Call] = []
        self.lock = threading.Lock()
        self.released = threading.Event()
        self.released.set()
        self.held = 0
        self.server = _Server(("127.0.0.1", port), self._handler())
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def hold(self) -> None:
        """From now on requests wait (unanswered) until `release`."""
        self.released.clear()

    def release(self) -> None:
        self.released.set()

    def close(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, predicate: Any, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if predicate():
                    return True
            time.sleep(0.01)
        return False

    def answer(self, call: Call) -> Answer:
        raise NotImplementedError

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                url = urlsplit(self.path)
                params: dict[str, Any] = dict(parse_qsl(url.query))
                kind = self.headers.get("Content-Type", "")
                if kind.startswith("application/json"):
                    params.update(json.loads(body or b"{}"))
                elif kind.startswith("application/x-www-form-urlencoded") and (
                    url.path.startswith("/api/")
                ):
                    params.update(parse_qsl(body.decode()))
                call = Call(url.path, params, dict(self.headers.items()), body)
                with recorder.lock:
                    recorder.held += 1
                recorder.released.wait(30)
                with recorder.lock:
                    recorder.held -= 1
                    status, headers, payload = recorder.answer(call)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        return Handler


class SlackAPI(_Recorder):
    """Slack's Web API shape on a local port (see the module docstring)."""

    def __init__(self, port: int = 0) -> None:
        self.down = False
        self.script: deque[tuple[int, dict[str, str], dict[str, Any]]] = deque()
        self.messages: dict[str, dict[str, Any]] = {}
        self.uploads: dict[str, bytes] = {}
        self.webhook_posts: list[dict[str, Any]] = []
        self.refused = 0
        self._n = 0
        super().__init__(port)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/services/T000/B000/XXXX"

    def api_calls(self, method: str | None = None) -> list[Call]:
        """Successful Web API calls, in order (refused ones are not recorded)."""
        with self.lock:
            return [c for c in self.calls if method is None or c.method == method]

    def answer(self, call: Call) -> Answer:
        if self.down:
            self.refused += 1
            return 500, {}, b'{"ok": false, "error": "internal_error"}'
        if self.script:
            self.refused += 1
            status, headers, payload = self.script.popleft()
            return status, headers, json.dumps(payload).encode()
        path = call.method
        if path.startswith("/services/"):
            self.calls.append(Call("webhook", call.params, call.headers))
            self.webhook_posts.append(call.params)
            return 200, {"Content-Type": "text/plain"}, b"ok"
        if path.startswith("/upload/"):
            self.uploads[path.rsplit("/", 1)[1]] = call.body
            self.calls.append(Call("upload", {"file": path.rsplit("/", 1)[1]}, call.headers))
            return 200, {"Content-Type": "text/plain"}, f"OK - {len(call.body)}".encode()
        method = path.removeprefix("/api/")
        if call.headers.get("Authorization") != f"Bearer {TOKEN}":
            return 200, {}, b'{"ok": false, "error": "invalid_auth"}'
        self._n += 1
        result: dict[str, Any] = {"ok": True}
        if method == "chat.postMessage":
            ts = f"{1772366400 + self._n}.000100"
            self.messages[ts] = call.params
            result |= {"channel": CHANNEL_ID, "ts": ts, "message": {"ts": ts}}
        elif method == "chat.update":
            if call.params.get("ts") not in self.messages:
                result = {"ok": False, "error": "message_not_found"}
            else:
                self.messages[call.params["ts"]] = call.params
                result |= {"channel": call.params["channel"], "ts": call.params["ts"]}
        elif method == "files.getUploadURLExternal":
            file_id = f"F{self._n:04d}"
            result |= {
                "file_id": file_id,
                "upload_url": f"http://127.0.0.1:{self.port}/upload/{file_id}",
            }
        elif method == "files.completeUploadExternal":
            files = json.loads(call.params["files"])
            result |= {"files": [{"id": f["id"], "title": f.get("title")} for f in files]}
        else:
            result = {"ok": False, "error": "unknown_method"}
        self.calls.append(Call(method, call.params, call.headers))
        return 200, {"Content-Type": "application/json"}, json.dumps(result).encode()


class WebhookReceiver(_Recorder):
    """A generic webhook endpoint that verifies canary's signature like a real receiver."""

    def __init__(self, secret: str | None) -> None:
        self.secret = secret
        self.fail_next = 0
        self.accepted: list[dict[str, Any]] = []
        self.rejected = 0
        super().__init__()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/canary"

    def answer(self, call: Call) -> Answer:
        self.calls.append(call)
        if self.fail_next > 0:
            self.fail_next -= 1
            return 503, {}, b"busy"
        if self.secret is not None:
            timestamp = call.headers.get("X-Canary-Timestamp", "")
            expected = hmac.new(
                self.secret.encode(), timestamp.encode() + b"." + call.body, hashlib.sha256
            ).hexdigest()
            given = call.headers.get("X-Canary-Signature", "")
            fresh = timestamp.isdigit() and abs(time.time() - int(timestamp)) < 300
            if not fresh or not hmac.compare_digest(f"sha256={expected}", given):
                self.rejected += 1
                return 401, {}, b"bad signature"
        self.accepted.append(json.loads(call.body))
        return 204, {}, b""


@dataclass
class FakeClock:
    """Time for the notifier's retry logic, moved by the test (no real waiting)."""

    now: float = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def slack_channel(name: str = "deploys", *, webhook: bool = False) -> NotificationChannel:
    slack = (
        {"webhookUrlSecretRef": {"name": "slack", "key": "webhook-url"}}
        if webhook
        else {"channel": "#deploys", "tokenSecretRef": {"name": "slack", "key": "token"}}
    )
    return NotificationChannel.model_validate(
        {"metadata": {"name": name, "namespace": "shop"}, "spec": {"slack": slack}}
    )


def webhook_channel(url: str, name: str = "hook", signed: bool = True) -> NotificationChannel:
    spec: dict[str, Any] = {"url": url}
    if signed:
        spec["secretRef"] = {"name": "hook", "key": "secret"}
    return NotificationChannel.model_validate(
        {"metadata": {"name": name, "namespace": "shop"}, "spec": {"webhook": spec}}
    )


def rollout(channels: list[str], **spec: Any) -> Rollout:
    base: dict[str, Any] = {
        "targetRef": {"name": "checkout"},
        "service": {"port": 8080},
        "provider": {"name": "istio"},
        "strategy": {"canary": {"weights": [10, 50]}},
        "analysis": {
            "interval": "1m",
            "failureLimit": 2,
            "checks": [{"name": "error-rate", "kind": "error-rate"}],
        },
        "notifications": {"channels": [{"name": c} for c in channels]},
    }
    base.update(spec)
    return Rollout.model_validate(
        {"metadata": {"name": "checkout", "namespace": "shop"}, "spec": base}
    )


def error_rate(verdict: Verdict, canary: float, primary: float, n: int) -> CheckResult:
    return CheckResult(
        name="error-rate",
        verdict=verdict,
        time=T0,
        canary=SideEvidence(requests=n, failures=round(n * canary / 100), value=canary),
        primary=SideEvidence(
            requests=n * 10, failures=round(n * 10 * primary / 100), value=primary
        ),
        message=f"canary error rate {canary}% against the primary's {primary}%",
    )


@dataclass
class EngineRun:
    """Drives the real engine through a rollout of revision rev-2 and keeps each step."""

    ro: Rollout
    status: RolloutStatus = field(
        default_factory=lambda: RolloutStatus(phase=Phase.INITIALIZED, stable_revision="rev-1")
    )
    now: datetime = T0
    target: str = "rev-2"
    primary: str = "rev-1"
    canary_up: bool = False
    ticks: int = 0

    def tick(
        self, checks: list[CheckResult] | None = None, commands: list[Command] | None = None
    ) -> StepResult:
        """One engine step at ``now`` (a minute after the previous one)."""
        if self.ticks:
            self.now += timedelta(seconds=60)
        self.ticks += 1
        obs = Observations(
            workload=WorkloadState(
                target_revision=self.target,
                canary_ready=self.canary_up,
                primary_ready=True,
                primary_revision=self.primary,
            ),
            checks=[c.model_copy(update={"time": self.now}) for c in checks or []],
            commands=commands or [],
        )
        result = step(self.ro, self.status, obs, self.now)
        for action in result.actions:
            if isinstance(action, ScaleCanaryUp):
                self.canary_up = True
            elif isinstance(action, ScaleCanaryDown):
                self.canary_up = False
            elif isinstance(action, PromoteCanary):
                self.primary = action.revision
        self.status = result.status
        return result
