"""Calling webhooks over HTTP: one POST of the signed payload, retried when worth it.

- 2xx is yes; any other answer (3xx, 4xx, 5xx after the retries), a timeout or an
  unreachable receiver is no. A message quotes the receiver's ``X-Canary-Reason`` header,
  never its body; a destination the policy refuses (canary.gates.destinations) is not
  called. Nothing here raises on network trouble: every outcome is a
  `Delivery` (or a `GateAnswer`) whose message says exactly what happened.
- Connection errors, timeouts and 5xx are retried ``webhook.retries`` times with exponential
  backoff; the sleep is injectable so tests do not wait.
- Each attempt waits at most ``webhook.timeout`` (connect, send and read each), cut to what
  is left of an overall deadline when one is given.
- A webhook with a ``secretRef`` whose secret cannot be had is not called: the answer is a
  no that names the missing secret.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime

import httpx

from canary import __version__
from canary.engine.clock import aware
from canary.engine.observations import GateAnswer
from canary.gates.destinations import DestinationRefusedError
from canary.gates.payload import GatePayload, build_payload
from canary.gates.secret_source import SecretError, SecretSource
from canary.gates.signing import (
    DELIVERY_HEADER,
    GATE_HEADER,
    TIMESTAMP_HEADER,
    signature_headers,
)
from canary.model.duration import format_duration
from canary.model.gates import GateType, Webhook
from canary.model.rollout import Rollout
from canary.model.status import RolloutStatus

logger = logging.getLogger("canary.gates")

Sleep = Callable[[float], None]

USER_AGENT = f"canary-webhook/{__version__}"
EXCERPT_CHARS = 200
"""How much of a receiver's reason is quoted in a message."""
REASON_HEADER = "X-Canary-Reason"
"""The one part of an answer quoted in messages, status and Events. The body never is: a
webhook URL is the tenant's to choose, and the answer of whatever it points at (an internal
service) must not reach the tenant through the gate's message."""
MAX_BODY_BYTES = 4096
"""How much of a receiver's body is read at all."""
DEFAULT_DEADLINE_SECONDS = 60.0
"""Overall deadline of `call_gates` when none is given."""
DEADLINE_GRACE_SECONDS = 0.5
"""Time given past the deadline to an attempt already under way before it is written off."""


@dataclass(frozen=True)
class Backoff:
    """Delay before retry n (1, 2, ...): ``initial * factor**(n-1)``, at most ``maximum``."""

    initial: float = 0.5
    factor: float = 2.0
    maximum: float = 8.0

    def delay(self, retry: int) -> float:
        return float(min(self.maximum, self.initial * self.factor ** (retry - 1)))


DEFAULT_BACKOFF = Backoff()


@dataclass(frozen=True)
class Delivery:
    """What happened when one webhook was called."""

    name: str
    type: GateType
    ok: bool
    """The receiver answered 2xx."""
    message: str
    attempts: int = 0
    status_code: int | None = None
    delivery_id: str = ""

    def answer(self) -> GateAnswer:
        """The engine's view: an open gate for 2xx, a closed one otherwise."""
        return GateAnswer(name=self.name, type=self.type, open=self.ok, message=self.message)


@dataclass(frozen=True)
class _Attempt:
    status_code: int | None
    what: str
    """The receiver's X-Canary-Reason for an HTTP answer (never its body), else what went
    wrong."""
    retryable: bool


def request_headers(
    webhook: Webhook, payload: GatePayload, body: bytes, secrets: SecretSource, now: datetime
) -> dict[str, str]:
    """Headers of the request; raises SecretError when the body must be signed and cannot."""
    timestamp = int(aware(now).timestamp())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        DELIVERY_HEADER: payload.delivery_id,
        GATE_HEADER: webhook.type.value,
        TIMESTAMP_HEADER: str(timestamp),
    }
    if webhook.secret_ref is not None:
        secret = secrets.secret(webhook.secret_ref, payload.rollout.namespace)
        headers.update(signature_headers(body, secret, timestamp))
    return headers


def deliver(
    webhook: Webhook,
    payload: GatePayload,
    secrets: SecretSource,
    client: httpx.Client,
    now: datetime,
    *,
    sleep: Sleep = time.sleep,
    backoff: Backoff = DEFAULT_BACKOFF,
    deadline: float | None = None,
) -> Delivery:
    """POST ``payload`` to ``webhook`` with its timeout and retries; never raises.

    ``now`` stamps (and signs) the request; ``deadline`` is a `time.monotonic()` instant
    after which no attempt starts and no backoff is slept.
    """

    def result(ok: bool, message: str, attempts: int = 0, code: int | None = None) -> Delivery:
        return Delivery(
            name=webhook.name,
            type=webhook.type,
            ok=ok,
            message=message,
            attempts=attempts,
            status_code=code,
            delivery_id=payload.delivery_id,
        )

    def prepare(number: int) -> tuple[bytes, dict[str, str]]:
        numbered = payload.model_copy(update={"attempt": number})
        body = numbered.body()
        return body, request_headers(webhook, numbered, body, secrets, now)

    try:
        try:
            prepare(1)
        except SecretError as exc:
            return result(False, f"not called: {exc}")
        attempt, attempts, cut_short = _attempts(webhook, prepare, client, sleep, backoff, deadline)
    except Exception as exc:  # a bug must not stop a rollout's shell
        logger.exception("webhook %s: unexpected error", webhook.name)
        return result(False, f"not called: unexpected error: {type(exc).__name__}: {exc}")
    if attempt is None:
        return result(False, "not called: the overall deadline for webhooks had passed")
    message = _describe(attempt, attempts)
    if cut_short:
        message += "; no more retries: the overall deadline for webhooks was reached"
    ok = attempt.status_code is not None and 200 <= attempt.status_code < 300
    return result(ok, message, attempts, attempt.status_code)


def _attempts(
    webhook: Webhook,
    prepare: Callable[[int], tuple[bytes, dict[str, str]]],
    client: httpx.Client,
    sleep: Sleep,
    backoff: Backoff,
    deadline: float | None,
) -> tuple[_Attempt | None, int, bool]:
    """Attempts until one is final; returns the last, how many were made, and whether the
    deadline stopped further retries."""
    allowed = webhook.retries + 1
    attempt: _Attempt | None = None
    made = 0
    while made < allowed:
        timeout = webhook.timeout
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return attempt, made, attempt is not None
            timeout = min(timeout, remaining)
        made += 1
        body, headers = prepare(made)
        attempt = _attempt(client, webhook.url, body, headers, timeout)
        logger.debug("webhook %s attempt %d: %s", webhook.name, made, attempt)
        if not attempt.retryable or made >= allowed:
            break
        delay = backoff.delay(made)
        if deadline is not None and time.monotonic() + delay >= deadline:
            return attempt, made, True
        sleep(delay)
    return attempt, made, False


def _attempt(
    client: httpx.Client, url: str, body: bytes, headers: dict[str, str], timeout: float
) -> _Attempt:
    try:
        with client.stream(
            "POST", url, content=body, headers=headers, timeout=httpx.Timeout(timeout)
        ) as response:
            code = response.status_code
            _read_some(response)  # read (and dropped): the body is not quoted, see REASON_HEADER
            what = excerpt(response.headers.get(REASON_HEADER, "").encode("utf-8", "replace"))
    except DestinationRefusedError as exc:
        return _Attempt(None, f"not called: {exc}", retryable=False)
    except httpx.TimeoutException:
        return _Attempt(None, f"timed out after {format_duration(timeout)}", retryable=True)
    except httpx.ConnectError as exc:
        return _Attempt(None, f"could not connect to {url}: {_error(exc)}", retryable=True)
    except httpx.TransportError as exc:  # the connection broke: worth another try
        return _Attempt(None, f"{type(exc).__name__} from {url}: {_error(exc)}", retryable=True)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:  # not a network problem: no retry
        return _Attempt(None, f"could not call {url}: {_error(exc)}", retryable=False)
    return _Attempt(code, what, retryable=code >= 500)


def _read_some(response: httpx.Response) -> bytes:
    """Up to MAX_BODY_BYTES of the body; a body that fails to arrive reads as empty."""
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size >= MAX_BODY_BYTES:
                break
    except httpx.HTTPError:
        pass
    return b"".join(chunks)[:MAX_BODY_BYTES]


def _error(exc: Exception) -> str:
    return str(exc) or type(exc).__name__


def excerpt(body: bytes) -> str:
    """The first EXCERPT_CHARS characters of a body, whitespace collapsed, for a message."""
    text = " ".join(body.decode("utf-8", errors="replace").split())
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "…"


def _describe(attempt: _Attempt, attempts: int) -> str:
    if attempt.status_code is None:
        return attempt.what if attempts == 1 else f"{attempt.what} ({attempts} attempts)"
    said = f": {attempt.what}" if attempt.what else ""
    after = f" after {attempts} attempts" if attempts > 1 else ""
    return f"HTTP {attempt.status_code}{after}{said}"


def call_gate(
    webhook: Webhook,
    payload: GatePayload,
    secrets: SecretSource,
    client: httpx.Client,
    now: datetime,
    *,
    sleep: Sleep = time.sleep,
    backoff: Backoff = DEFAULT_BACKOFF,
    deadline: float | None = None,
) -> GateAnswer:
    """Ask one gating webhook: open on 2xx, closed otherwise; never raises."""
    delivery = deliver(
        webhook, payload, secrets, client, now, sleep=sleep, backoff=backoff, deadline=deadline
    )
    log = logger.info if delivery.ok else logger.warning
    log(
        "webhook %s (%s) %s: %s",
        webhook.name,
        webhook.type.value,
        "said yes" if delivery.ok else "said no",
        delivery.message,
    )
    return delivery.answer()


def call_gates(
    webhooks: Sequence[Webhook],
    rollout: Rollout,
    status: RolloutStatus | None,
    secrets: SecretSource,
    client: httpx.Client,
    now: datetime,
    *,
    deadline_seconds: float = DEFAULT_DEADLINE_SECONDS,
    sleep: Sleep = time.sleep,
    backoff: Backoff = DEFAULT_BACKOFF,
    max_workers: int = 8,
) -> list[GateAnswer]:
    """Ask several gating webhooks at once; one answer per webhook, in their order.

    No retry or attempt starts after ``deadline_seconds``; a webhook still unanswered then
    is a closed gate saying so. Never raises on network trouble.
    """
    if not webhooks:
        return []
    deadline = time.monotonic() + deadline_seconds
    pool = ThreadPoolExecutor(
        max_workers=max(1, min(max_workers, len(webhooks))), thread_name_prefix="canary-gate"
    )
    futures: list[Future[GateAnswer]] = []
    try:
        futures = [
            pool.submit(_ask, hook, rollout, status, secrets, client, now, sleep, backoff, deadline)
            for hook in webhooks
        ]
        wait(futures, timeout=deadline_seconds + DEADLINE_GRACE_SECONDS)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return [
        _answer_of(hook, future, deadline_seconds)
        for hook, future in zip(webhooks, futures, strict=True)
    ]


def _ask(
    hook: Webhook,
    rollout: Rollout,
    status: RolloutStatus | None,
    secrets: SecretSource,
    client: httpx.Client,
    now: datetime,
    sleep: Sleep,
    backoff: Backoff,
    deadline: float,
) -> GateAnswer:
    payload = build_payload(rollout, status, hook, now=now)
    return call_gate(
        hook, payload, secrets, client, now, sleep=sleep, backoff=backoff, deadline=deadline
    )


def _answer_of(hook: Webhook, future: Future[GateAnswer], deadline_seconds: float) -> GateAnswer:
    if future.done() and not future.cancelled() and future.exception() is None:
        return future.result()
    if future.done() and not future.cancelled():
        message = f"not called: unexpected error: {future.exception()}"
    else:
        message = f"no answer within the overall deadline of {format_duration(deadline_seconds)}"
    logger.warning("webhook %s (%s): %s", hook.name, hook.type.value, message)
    return GateAnswer(name=hook.name, type=hook.type, open=False, message=message)
