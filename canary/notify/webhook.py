"""A generic webhook channel: each notice POSTed as JSON, optionally signed with HMAC-SHA256.

Signature scheme (the receiver recomputes it with the shared secret)::

    X-Canary-Timestamp: <unix seconds>
    X-Canary-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>

Signing the timestamp with the body lets a receiver refuse replays of old requests.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx

from canary.gates.destinations import DestinationPolicy
from canary.notify.notice import Notice, check_summary
from canary.notify.queue import Delivery, RetryLaterError

SIGNATURE_HEADER = "X-Canary-Signature"
TIMESTAMP_HEADER = "X-Canary-Timestamp"
EVENT_HEADER = "X-Canary-Event"
DELIVERY_HEADER = "X-Canary-Delivery"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The value of the signature header for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def verify(
    secret: str,
    timestamp: str,
    body: bytes,
    signature: str,
    *,
    now: float | None = None,
    tolerance: float = 300.0,
) -> bool:
    """What a receiver does: the signature matches and the timestamp is recent."""
    try:
        sent = float(timestamp)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - sent) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def payload(notice: Notice) -> dict[str, Any]:
    """The JSON a webhook receives: rollout, event, status summary, checks with numbers."""
    return {
        "rollout": {"name": notice.name, "namespace": notice.namespace},
        "event": {
            "kind": notice.event.value,
            "reason": notice.reason,
            "message": notice.message,
            "warning": notice.warning,
            "time": notice.time.isoformat(),
        },
        "status": {
            "phase": notice.phase.value,
            "canaryWeight": notice.canary_weight,
            "progress": notice.progress,
            "failedChecks": notice.failed_checks,
            "failureLimit": notice.failure_limit,
            "canaryRevision": notice.revision,
            "stableRevision": notice.stable_revision,
            "waitingFor": notice.waiting_for,
            "message": notice.status_message,
            "startedAt": notice.started_at.isoformat() if notice.started_at else None,
        },
        "checks": [
            {**c.to_wire(), "summary": check_summary(c, notice.units.get(c.name, ""))}
            for c in notice.checks
        ],
        "commands": notice.commands,
        "link": notice.link,
    }


class WebhookSender:
    """POSTs a notice; anything but 2xx (or no answer) is a failure the queue retries."""

    def __init__(
        self,
        url: str,
        secret: str | None,
        *,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        session: httpx.Client | None = None,
        destinations: DestinationPolicy | None = None,
    ) -> None:
        self.url = url
        self.destinations = destinations if destinations is not None else DestinationPolicy()
        self.secret = secret
        self.timeout = timeout
        self.clock = clock
        # A redirect is not followed (a POST would be replayed as a GET): it is a failure.
        self.session = session or httpx.Client(follow_redirects=False)

    def send(self, delivery: Delivery) -> None:
        body = json.dumps(payload(delivery.notice), separators=(",", ":")).encode()
        timestamp = str(int(self.clock()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "canary-notify",
            TIMESTAMP_HEADER: timestamp,
            EVENT_HEADER: delivery.notice.event.value,
            DELIVERY_HEADER: delivery.id,
        }
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(self.secret, timestamp, body)
        refused = self.destinations.why_refused(urlsplit(self.url).hostname or "")
        if refused is not None:
            raise RetryLaterError(f"webhook not called: {refused}")
        try:
            response = self.session.post(
                self.url, content=body, headers=headers, timeout=self.timeout
            )
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise RetryLaterError(f"webhook {self.url} unreachable: {exc}") from exc
        if not 200 <= response.status_code < 300:
            after = response.headers.get("Retry-After")
            raise RetryLaterError(
                f"webhook {self.url} answered {response.status_code}",
                after=float(after) if after and after.isdigit() else None,
            )
