"""A minimal webhook receiver, for local demos and tests: the other end of `canary.gates`.

It listens on 127.0.0.1 (port 0 picks a free one), verifies each request's signature with
`verify_signature` when given the secret (a bad one is answered 401), records what it
received, and answers from a script of replies (the last one repeats)::

    with Receiver([Reply(403, "change freeze"), Reply(200)], secret=b"s3cret") as gate:
        ...  # a webhook with url=gate.url says no, then yes

Standard library only, so it also shows receivers how little verification takes.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from canary.gates.caller import REASON_HEADER
from canary.gates.signing import (
    DEFAULT_TOLERANCE_SECONDS,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    why_invalid,
)

MAX_REQUEST_BYTES = 1 << 20


@dataclass(frozen=True)
class Reply:
    """One scripted answer: a status, a body, and how long to wait before sending it."""

    status: int = 200
    body: str = ""
    delay: float = 0.0


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes
    signature_problem: str | None
    """Why the signature was refused; None when it was valid or no secret is configured."""

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)


class Receiver:
    """A scripted webhook endpoint on a local port, served from a background thread."""

    def __init__(
        self,
        replies: Sequence[Reply] | Reply = Reply(),
        *,
        secret: bytes | str | None = None,
        clock: Callable[[], float] | None = None,
        tolerance: float = DEFAULT_TOLERANCE_SECONDS,
        on_request: Callable[[Received], Reply | None] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._replies = [replies] if isinstance(replies, Reply) else list(replies)
        if not self._replies:
            raise ValueError("a Receiver needs at least one reply")
        self.secret = secret
        self.clock = clock
        self.tolerance = tolerance
        self.on_request = on_request
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._seen: dict[str, float] = {}
        """Signatures of the requests received, with when: a copy of one is a replay."""
        self._server = _Server((host, port), _handler_for(self))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/hook"

    @property
    def attempts(self) -> int:
        with self._lock:
            return len(self.received)

    def start(self) -> Receiver:
        """Serve from a background thread (once; starting again does nothing)."""
        if self._thread is not None:
            return self
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="canary-receiver",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _answer(self, request: Received) -> Reply:
        """Record the request and choose the reply: 401 for a bad signature, else the script."""
        with self._lock:
            self.received.append(request)
            scripted = self._replies[min(len(self.received), len(self._replies)) - 1]
        if request.signature_problem is not None:
            return Reply(401, f"bad signature: {request.signature_problem}")
        signature = request.header(SIGNATURE_HEADER) if self.secret is not None else None
        if signature is not None and not self._first_time(signature):
            delivery = _delivery_id(request.body) or "?"
            return Reply(409, f"replayed request of delivery {delivery[:64]}: refused")
        return self._choose(request, scripted)

    def _choose(self, request: Received, scripted: Reply) -> Reply:
        if self.on_request is not None:
            try:
                chosen = self.on_request(request)
            except Exception as exc:
                return Reply(500, f"receiver error: {type(exc).__name__}: {exc}")
            if chosen is not None:
                return chosen
        return scripted

    def _now(self) -> float:
        return self.clock() if self.clock is not None else time.time()

    def _first_time(self, signature: str) -> bool:
        """True the first time a (valid) signature is seen. Each attempt of a delivery is
        signed apart (its body carries ``attempt``), so only an exact copy repeats one.
        Signatures are kept for twice the tolerance: an older copy fails the timestamp."""
        now = self._now()
        with self._lock:
            for old in [s for s, t in self._seen.items() if t < now - 2 * self.tolerance]:
                del self._seen[old]
            if signature in self._seen:
                return False
            self._seen[signature] = now
            return True

    def _check(self, headers: dict[str, str], body: bytes) -> str | None:
        if self.secret is None:
            return None
        lower = {k.lower(): v for k, v in headers.items()}
        return why_invalid(
            body,
            self.secret,
            lower.get(SIGNATURE_HEADER.lower()),
            lower.get(TIMESTAMP_HEADER.lower()),
            now=self.clock() if self.clock is not None else None,
            tolerance=self.tolerance,
        )


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False


def _delivery_id(body: bytes) -> str | None:
    """The signed body's deliveryId (the header is not signed), if it has one."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    found = data.get("deliveryId") if isinstance(data, dict) else None
    return found if isinstance(found, str) and found else None


def _header_safe(text: str) -> str:
    """One line of printable ASCII: what an HTTP header may carry."""
    line = " ".join(text.split())
    return "".join(c if 32 <= ord(c) < 127 else "?" for c in line)[:200]


def _handler_for(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            declared = (self.headers.get("Content-Length") or "0").strip()
            # a 5,000-digit length is no reason to fail: Python refuses to read it as an int
            length = 0
            if declared.isdigit():
                length = MAX_REQUEST_BYTES if len(declared) > 12 else int(declared)
            length = min(length, MAX_REQUEST_BYTES)
            body = self.rfile.read(length)
            headers = dict(self.headers.items())
            request = Received(
                path=self.path,
                headers=headers,
                body=body,
                signature_problem=receiver._check(headers, body),
            )
            reply = receiver._answer(request)
            if reply.delay > 0 and receiver._stopping.wait(reply.delay):
                return
            payload = reply.body.encode("utf-8")
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                if reply.body:
                    self.send_header(REASON_HEADER, _header_safe(reply.body))
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                pass  # the caller gave up (a timeout): nothing to answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
