"""Recording a tick's Kubernetes Events off the tick's critical path.

A step's outbox of Events only (`canary.controller.effects`: no webhook, no notification) is
handed to the `EventSender` instead of being posted by the tick: a thread posts the queued
Events in order, each under its fixed name, through the same guarded connection as the tick
(inside ``acting(key)``, so a replica posts only for the Rollouts whose shard it holds). A
failed post (connection error, 429, 5xx) is retried with exponential backoff; 409 means the
Event was recorded already. Nothing is lost:

- the outbox stays in the Rollout's status until the Rollout's next status write, and the tick
  that writes it first calls `settle`, which posts what is still queued for that Rollout in the
  tick's own thread and says whether all of it is recorded (if not, the tick delivers the
  outbox again and writes what is left of it, as without the sender);
- a replica that dies or loses the Rollout's shard before the sender posted leaves the outbox
  in the status, and the next holder delivers it (each Event once: its name is fixed);
- the queue is bounded (``capacity`` Events): a tick that finds it full posts its Events
  itself, counted in ``canary_event_queue_full_total``; an Event the sender gave up on is
  counted in ``canary_event_post_failures_total`` and delivered again by the tick;
- the thread outlives any failure of a post (a read timeout or a reset connection raise
  urllib3's exceptions, not OSErrors: they once ended the thread, and every Event after them
  waited for its Rollout's next tick), and a `settle` that cannot wait for the batch being
  posted says so: the tick delivers the outbox again rather than dropping it unrecorded.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

from canary.controller.events import NOT_RECORDED, UNANSWERED
from canary.controller.kube import ConflictError, Json, Kube, KubeError, NotLeaderError

log = logging.getLogger("canary.controller.event_sender")

CAPACITY = 10_000
"""Events queued at most (a thousand Rollouts stepping at once tell ~1,000)."""
ATTEMPTS = 5
"""Posts of one Event before the sender gives it up (`settle` delivers it again)."""
FIRST_BACKOFF = 0.2
"""Seconds before the second attempt; doubled before each next one (0.2 + ... + 1.6 s)."""

SETTLE_TIMEOUT = 30.0
"""Seconds `settle` waits for a batch the sender is posting (its retries wait 3 s in all, but
each post may take up to the request timeout); past it the tick delivers the outbox itself."""

Acting = Callable[[str], AbstractContextManager[None]]


class EventPostError(Exception):
    """An Event could not be recorded, and posting it again will not help (a 4xx)."""


NOT_POSTED: tuple[type[Exception], ...] = (EventPostError, *NOT_RECORDED)
"""What `post_once` raises when the Event is not (knowingly) recorded."""


@dataclass
class _Batch:
    key: str
    bodies: list[Json]


@dataclass
class EventCounters:
    """What the sender did, for /metrics (`canary.controller.metrics`)."""

    queue_full: Callable[[], None] = lambda: None
    failures: Callable[[], None] = lambda: None


@dataclass
class EventSender:
    """One thread posting the Events queued by the ticks (`send`), with backoff."""

    kube: Kube
    acting: Acting = field(default=lambda key: nullcontext())
    capacity: int = CAPACITY
    attempts: int = ATTEMPTS
    first_backoff: float = FIRST_BACKOFF
    counters: EventCounters = field(default_factory=EventCounters)
    _queue: deque[_Batch] = field(default_factory=deque, init=False)
    _queued: int = field(default=0, init=False)
    _pending: dict[str, int] = field(default_factory=dict, init=False)
    """By Rollout, its batches queued or being posted."""
    _failed: set[str] = field(default_factory=set, init=False)
    """Rollouts with an Event the sender gave up on since their last `settle`."""
    _cond: threading.Condition = field(default_factory=threading.Condition, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)

    def start(self) -> EventSender:
        self._thread = threading.Thread(target=self._run, name="event-sender", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def queued(self) -> int:
        """Events waiting for the sender."""
        with self._cond:
            return self._queued

    def wait_idle(self, timeout: float) -> bool:
        """Wait until the sender has nothing queued or being posted; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending, timeout)

    def send(self, key: str, bodies: Sequence[Json]) -> bool:
        """Queue the Events of Rollout ``key``; False when the queue is full (the caller
        posts them itself)."""
        if not bodies:
            return True
        if self._thread is not None and not self._thread.is_alive():
            return False  # stopped: nobody would post them
        with self._cond:
            if self._queued + len(bodies) > self.capacity:
                self.counters.queue_full()
                return False
            self._queue.append(_Batch(key, list(bodies)))
            self._queued += len(bodies)
            self._pending[key] = self._pending.get(key, 0) + 1
            self._cond.notify_all()
        return True

    def settle(self, key: str) -> bool:
        """Post now, in this thread, what is still queued for ``key`` (waiting for a batch the
        sender is posting); True when every Event handed over for ``key`` is recorded. False:
        one may not be (given up, or still being tried after ``SETTLE_TIMEOUT``); the caller
        delivers the outbox again (each Event once: 409)."""
        with self._cond:
            if not self._pending.get(key) and key not in self._failed:
                return True  # nothing queued or being posted for it: no scan of the queue
            mine = [batch for batch in self._queue if batch.key == key]
            if mine:
                self._queue = deque(batch for batch in self._queue if batch.key != key)
                self._queued -= sum(len(batch.bodies) for batch in mine)
                self._pending[key] -= len(mine)
            posted = self._cond.wait_for(lambda: not self._pending.get(key), SETTLE_TIMEOUT)
            if posted:
                self._pending.pop(key, None)
            failed = key in self._failed
            self._failed.discard(key)
        if failed or not posted:
            return False
        try:
            for batch in mine:
                for body in batch.bodies:
                    post_once(self.kube, body)
        except NOT_POSTED as exc:
            log.warning("%s: an Event was not recorded (%s): delivered again", key, exc)
            return False
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._stop.is_set())
                if self._stop.is_set():
                    return
                batch = self._queue.popleft()
                self._queued -= len(batch.bodies)
            try:
                ok = self._post(batch)
            except Exception:  # a bug must not end the thread: the tick delivers it again
                log.exception("%s: posting its Events failed", batch.key)
                self.counters.failures()
                ok = False
            with self._cond:
                if not ok:
                    self._failed.add(batch.key)
                self._pending[batch.key] -= 1
                if not self._pending[batch.key]:
                    del self._pending[batch.key]
                self._cond.notify_all()

    def _post(self, batch: _Batch) -> bool:
        """Post the batch's Events in order, each retried; False at the first given up."""
        for body in batch.bodies:
            delay = self.first_backoff
            for attempt in range(1, self.attempts + 1):
                try:
                    with self.acting(batch.key):
                        post_once(self.kube, body)
                    break
                except (NotLeaderError, EventPostError) as exc:
                    # not ours any more, or refused: the outbox in the status is delivered again
                    log.warning("%s: event not recorded: %s", batch.key, exc)
                    self.counters.failures()
                    return False
                except UNANSWERED as exc:
                    if attempt == self.attempts or self._stop.wait(delay):
                        log.warning(
                            "%s: event not recorded (%d tries): %s", batch.key, attempt, exc
                        )
                        self.counters.failures()
                        return False
                    delay *= 2
        return True


def post_once(kube: Kube, body: Json) -> None:
    """Record one Event; an Event of that name recorded before counts as recorded.
    EventPostError: refused for good (4xx other than 409 and 429)."""
    try:
        kube.post_event(body)
    except ConflictError:
        return
    except KubeError as exc:
        if 400 <= exc.status < 500 and exc.status != 429:
            raise EventPostError(str(exc)) from exc
        raise
