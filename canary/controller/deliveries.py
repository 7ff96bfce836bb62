"""Delivering each Rollout's outbox, and remembering which ones this replica delivered.

The rules are `canary.controller.effects`' (what an outbox is, how it is delivered once or at
least once) and `canary.controller.event_sender`'s (Events off the tick); this is the state a
reconciler keeps across ticks: the ``decidedAt`` of the outbox of Events only that it delivered
and left in each Rollout's status for the next status write to drop.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime

from canary.controller.converge import PASSING_PHASES
from canary.controller.effects import Delivery, clear, deliver, not_recorded
from canary.controller.event_sender import EventSender
from canary.controller.kube import Json, Kube
from canary.gates.webhooks import WebhookCaller
from canary.model.rollout import Rollout
from canary.model.status import Outbox, RolloutStatus
from canary.notify import Notifier


@dataclass
class Deliveries:
    """Delivers the outboxes of every Rollout's ticks; thread-safe."""

    kube: Kube
    webhooks: WebhookCaller
    notifier: Notifier | None
    identity: str
    events: EventSender | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _left: dict[str, datetime] = field(default_factory=dict, init=False)
    """By Rollout, the ``decidedAt`` of the outbox it delivered and left in its status."""

    def catch_up(self, rollout: Rollout, status: RolloutStatus, stored: Json) -> Json:
        """Deliver an outbox a tick left in ``status`` without delivering it (it died, failed,
        or ran on another replica), and clear it; returns the Rollout as last stored.

        Raises EventsNotRecordedError (NotLeaderError) when an Event could not be recorded:
        the tick must not write a decision over it (effects.py)."""
        outbox = status.outbox
        if outbox is None or self._delivered(rollout.key, outbox):
            return stored
        delivery = self._deliver(rollout, status, outbox, sender=None)
        stored = clear(self.kube, stored, status, delivery.left) or stored
        if delivery.failure is not None:
            raise not_recorded(delivery.failure, outbox)
        return stored

    def tell(self, rollout: Rollout, status: RolloutStatus, stored: Json) -> tuple[Json, bool]:
        """Deliver the outbox of ``status``, just written; returns the Rollout as last stored
        and whether everything it tells was told."""
        outbox = status.outbox
        if outbox is None:
            return stored, True
        # handed to the sender unless this tick writes the status again (a passing phase):
        # that write would drop the outbox before the sender recorded it
        sender = None if status.phase in PASSING_PHASES else self.events
        delivery = self._deliver(rollout, status, outbox, sender)
        if delivery.left is None and delivery.replayable:  # the next status write drops it
            with self._lock:
                self._left[rollout.key] = outbox.decided_at
        else:
            stored = clear(self.kube, stored, status, delivery.left) or stored
        return stored, delivery.left is None

    def forget(self, key: str) -> None:
        with self._lock:
            self._left.pop(key, None)

    def _delivered(self, key: str, outbox: Outbox) -> bool:
        """This replica delivered ``outbox`` and left it for the next status write."""
        with self._lock:
            if self._left.get(key) != outbox.decided_at:
                return False
        # what the sender has not recorded yet is recorded now, before a status write drops
        # the outbox: else delivered again (event_sender.py)
        if self.events is None or self.events.settle(key):
            return True
        # no longer known to be delivered: `settle` reports a failure once, and if delivering
        # it again fails too, the next tick must not take it as delivered
        self.forget(key)
        return False

    def _deliver(
        self, rollout: Rollout, status: RolloutStatus, outbox: Outbox, sender: EventSender | None
    ) -> Delivery:
        return deliver(
            self.kube,
            rollout,
            status,
            outbox,
            webhooks=self.webhooks,
            notifier=self.notifier,
            identity=self.identity,
            sender=sender,
            refused=self.events.counters.failures if self.events is not None else _nothing,
        )


def _nothing() -> None:
    pass
