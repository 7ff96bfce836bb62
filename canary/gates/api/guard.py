"""The API's front door (an ASGI middleware): who may send a body, how big, and how often a
client may fail to authenticate. It runs before FastAPI reads anything of a request:

- a request to the API (``/api/...``) without a known bearer token is answered 401 before one
  byte of its body is read, so an unauthenticated 64 MiB POST costs nothing;
- a declared body over ``max_body`` bytes is refused 413 at once; a body sent without a length
  (chunked) is read up to ``max_body`` and refused 413 past it;
- each failed authentication is logged (client address, method, path; never the token), and a
  client with ``max_failures`` failures within ``window`` seconds gets 429 with Retry-After
  until the window has passed, whatever it sends.

The routes check the token again (``app._authenticated``): the guard only makes refusing cheap.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from canary.gates.api.auth import TokenSet

log = logging.getLogger("canary.api.auth")

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[Message], Any]
App = Callable[[Scope, Receive, Send], Any]

MAX_BODY = 64 * 1024
"""Bytes of a request body: the largest the API takes is an approval's point (a few bytes)."""


@dataclass
class FailureLimiter:
    """Failed authentications per client address within a sliding window."""

    max_failures: int = 10
    window: float = 60.0
    clock: Callable[[], float] = time.monotonic
    max_clients: int = 10_000
    _failures: dict[str, deque[float]] = field(default_factory=dict)

    def _recent(self, client: str) -> deque[float]:
        now = self.clock()
        seen = self._failures.get(client)
        if seen is None:
            return deque()
        while seen and seen[0] <= now - self.window:
            seen.popleft()
        if not seen:
            del self._failures[client]
        return seen

    def blocked_for(self, client: str) -> float:
        """Seconds until ``client`` may try again (0: it may)."""
        seen = self._recent(client)
        if len(seen) < self.max_failures:
            return 0.0
        return max(seen[0] + self.window - self.clock(), 0.001)

    def failed(self, client: str) -> None:
        if client not in self._failures and len(self._failures) >= self.max_clients:
            # bounded memory: the oldest client is forgotten (it had the earliest failures)
            self._failures.pop(next(iter(self._failures)))
        self._failures.setdefault(client, deque()).append(self.clock())


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or []:
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _bearer(scope: Scope) -> str | None:
    value = _header(scope, b"authorization")
    if value is None:
        return None
    kind, _, token = value.partition(" ")
    return token.strip() if kind.lower() == "bearer" and token.strip() else None


async def _answer(send: Send, status: int, reason: str, message: str, **headers: str) -> None:
    body = json.dumps({"reason": reason, "message": message}).encode()
    extra = [(k.lower().replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class Guard:
    """Wraps the API app; ``prefix`` is the part of the paths that need a token."""

    def __init__(
        self,
        app: App,
        tokens: TokenSet,
        *,
        prefix: str = "/api/",
        max_body: int = MAX_BODY,
        limiter: FailureLimiter | None = None,
    ) -> None:
        self.app = app
        self.tokens = tokens
        self.prefix = prefix
        self.max_body = max_body
        self.limiter = limiter or FailureLimiter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http" or not str(scope.get("path", "")).startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        client = str((scope.get("client") or ("unknown", 0))[0])
        wait = self.limiter.blocked_for(client)
        if wait > 0:
            await _answer(
                send,
                429,
                "TooManyRequests",
                "too many failed authentications from this address: try again later",
                retry_after=str(int(wait) + 1),
            )
            return
        token = _bearer(scope)
        caller = self.tokens.identify(token) if token is not None else None
        if caller is None:
            self.limiter.failed(client)
            log.warning(
                "authentication failed: %s %s from %s (%s)",
                scope.get("method"),
                scope.get("path"),
                client,
                "no bearer token" if token is None else "unknown token",
            )
            message = (
                "send 'Authorization: Bearer TOKEN'"
                if token is None
                else "the bearer token is not known"
            )
            await _answer(
                send, 401, "Unauthorized", message, www_authenticate='Bearer realm="canary"'
            )
            return
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            await _answer(send, 413, "TooLarge", f"a request body is at most {self.max_body} bytes")
            return
        await self._bounded(scope, receive, send)

    async def _bounded(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Read the body (at most max_body bytes) before the app sees it."""
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message]), send)
                return
            chunk = bytes(message.get("body", b""))
            size += len(chunk)
            if size > self.max_body:
                await _answer(
                    send, 413, "TooLarge", f"a request body is at most {self.max_body} bytes"
                )
                return
            chunks.append(chunk)
            more = bool(message.get("more_body"))
        body = b"".join(chunks)
        await self.app(scope, _replay([{"type": "http.request", "body": body}], receive), send)


def _replay(messages: list[Message], then: Receive | None = None) -> Receive:
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        if then is not None:
            message: Message = await then()
            return message
        return {"type": "http.disconnect"}

    return receive
