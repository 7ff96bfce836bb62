"""The queue between the rollout and the chat: bounded, retried, optionally kept on disk.

`Dispatcher.submit` only appends to memory and wakes the worker, so a rollout never waits
for Slack. The worker sends each channel's messages in order; a failing message holds its
channel (later messages must not overtake it: an update before the post it updates is
useless) and is retried with exponential backoff until ``retry_window`` has passed since it
was queued, then dropped with an error log and a counter. Other channels go on meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import Counter
from pydantic import BaseModel, Field, ValidationError

from canary.model.notification import NotificationChannel
from canary.notify.config import NotifyConfig
from canary.notify.notice import Notice

log = logging.getLogger(__name__)

SENT = Counter("canary_notifications_sent_total", "Notifications delivered.", ["channel"])
RETRIED = Counter(
    "canary_notification_failures_total", "Failed attempts to deliver (retried).", ["channel"]
)
DROPPED = Counter(
    "canary_notifications_dropped_total",
    "Notifications given up: 'expired' (retry window passed) or 'overflow' (queue full).",
    ["channel", "reason"],
)


class RetryLaterError(Exception):
    """A send failed in a way worth retrying; ``after`` is the server's wish (Retry-After)."""

    def __init__(self, message: str, after: float | None = None) -> None:
        super().__init__(message)
        self.after = after


class Delivery(BaseModel):
    """One notice on its way to one channel; ``done`` records the parts already sent."""

    id: str
    channel: NotificationChannel
    notice: Notice
    queued_at: float
    attempts: int = 0
    next_attempt_at: float = 0.0
    done: list[str] = Field(default_factory=list)

    @property
    def destination(self) -> str:
        meta = self.channel.metadata
        return f"{meta.namespace or self.notice.namespace}/{meta.name}"


@dataclass
class DeliveryStats:
    sent: int = 0
    failed_attempts: int = 0
    expired: int = 0
    overflowed: int = 0


Send = Callable[[Delivery], None]


class Dispatcher:
    """Per-channel FIFO queues and one worker thread that drains them."""

    def __init__(
        self,
        send: Send,
        config: NotifyConfig,
        *,
        clock: Callable[[], float] = time.time,
        path: Path | None = None,
    ) -> None:
        self._send = send
        self._config = config
        self._clock = clock
        self._path = path
        self._queues: dict[str, deque[Delivery]] = {}
        self._cond = threading.Condition()
        self._send_lock = threading.Lock()
        self._in_flight: Delivery | None = None
        self._dirty = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.stats = DeliveryStats()
        self._load()

    # --- the caller's side: never blocks on the network -----------------------------------

    def submit(self, delivery: Delivery) -> None:
        with self._cond:
            queue = self._queues.setdefault(delivery.destination, deque())
            queue.append(delivery)
            while len(queue) > self._config.max_queued:
                victim = next((d for d in queue if d is not self._in_flight), None)
                if victim is None:
                    break
                queue.remove(victim)
                self._drop(victim, "overflow", "the queue is full")
            self._dirty = True
            self._cond.notify_all()

    def wake(self) -> None:
        """Look at the queue now (after a fake clock moved, or a channel came back)."""
        with self._cond:
            self._cond.notify_all()

    def pending(self) -> int:
        with self._cond:
            return sum(len(q) for q in self._queues.values())

    def flush(self, timeout: float) -> bool:
        """Wait (real time) until everything queued was sent or dropped; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while any(self._queues.values()):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    # --- the worker -------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="canary-notify", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the worker (what is pending stays queued, and on disk when a path is set)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._save()

    def run_once(self) -> bool:
        """Try the first due delivery, if any; True if one was tried."""
        with self._send_lock:
            with self._cond:
                delivery = self._due()
                if delivery is None:
                    return False
                self._in_flight = delivery
            try:
                self._send(delivery)
            except Exception as exc:  # every failure is retried or dropped, never raised
                self._failed(delivery, exc)
            else:
                self._succeeded(delivery)
            finally:
                with self._cond:
                    self._in_flight = None
                    self._cond.notify_all()
            self._save()
            return True

    def _loop(self) -> None:
        while True:
            with self._cond:
                if self._stopping:
                    return
            self._save()
            if self.run_once():
                continue
            with self._cond:
                if self._stopping:
                    return
                self._cond.wait(self._idle_wait())

    def _due(self) -> Delivery | None:
        now = self._clock()
        heads = [q[0] for q in self._queues.values() if q]
        due = [d for d in heads if d.next_attempt_at <= now]
        return min(due, key=lambda d: d.next_attempt_at, default=None)

    def _idle_wait(self) -> float:
        heads = [q[0].next_attempt_at for q in self._queues.values() if q]
        if not heads:
            return self._config.idle_poll
        return max(0.0, min(min(heads) - self._clock(), self._config.idle_poll))

    def _succeeded(self, delivery: Delivery) -> None:
        with self._cond:
            self._remove(delivery)
            self.stats.sent += 1
        SENT.labels(delivery.destination).inc()
        if delivery.attempts:
            log.info(
                "notification %s to %s delivered after %d failed attempts",
                delivery.notice.reason,
                delivery.destination,
                delivery.attempts,
            )

    def _failed(self, delivery: Delivery, exc: Exception) -> None:
        now = self._clock()
        RETRIED.labels(delivery.destination).inc()
        with self._cond:
            self.stats.failed_attempts += 1
            delivery.attempts += 1
            if now - delivery.queued_at >= self._config.retry_window:
                self._remove(delivery)
                self._drop(delivery, "expired", f"retried for {now - delivery.queued_at:.0f}s")
                return
            backoff = min(
                self._config.initial_backoff * 2 ** (delivery.attempts - 1),
                self._config.max_backoff,
            )
            after = exc.after if isinstance(exc, RetryLaterError) and exc.after else 0.0
            delivery.next_attempt_at = now + max(backoff, after)
            self._dirty = True
        first = delivery.attempts == 1
        log.log(
            logging.WARNING if first else logging.DEBUG,
            "notification %s to %s failed (attempt %d), retrying in %.0fs: %s",
            delivery.notice.reason,
            delivery.destination,
            delivery.attempts,
            delivery.next_attempt_at - now,
            exc,
            # An unexpected error (not the network, not the server) deserves its traceback.
            exc_info=first and not isinstance(exc, RetryLaterError | OSError),
        )

    def _remove(self, delivery: Delivery) -> None:
        queue = self._queues.get(delivery.destination)
        if queue and delivery in queue:
            queue.remove(delivery)
        self._dirty = True

    def _drop(self, delivery: Delivery, reason: str, why: str) -> None:
        if reason == "expired":
            self.stats.expired += 1
        else:
            self.stats.overflowed += 1
        DROPPED.labels(delivery.destination, reason).inc()
        log.error(
            "notification dropped (%s): %s of %s to %s after %d attempts",
            why,
            delivery.notice.reason,
            delivery.notice.key,
            delivery.destination,
            delivery.attempts,
        )

    # --- persistence --------------------------------------------------------------------------

    def _save(self) -> None:
        if self._path is None:
            return
        with self._cond:
            if not self._dirty:
                return
            items = [d.model_dump(mode="json") for q in self._queues.values() for d in q]
            self._dirty = False
        try:
            write_json_atomically(self._path, items)
        except OSError as exc:
            log.error("cannot keep the notification queue in %s: %s", self._path, exc)

    def _load(self) -> None:
        if self._path is None or not self._path.exists():
            return
        try:
            items = json.loads(self._path.read_text(encoding="utf-8"))
            loaded = [Delivery.model_validate(item) for item in items]
        except (OSError, ValueError, ValidationError) as exc:
            log.error("ignoring the unreadable notification queue %s: %s", self._path, exc)
            return
        for delivery in loaded:
            self._queues.setdefault(delivery.destination, deque()).append(delivery)
        if loaded:
            log.info("resuming %d queued notifications from %s", len(loaded), self._path)


def write_json_atomically(path: Path, value: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value), encoding="utf-8")
    try:
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
