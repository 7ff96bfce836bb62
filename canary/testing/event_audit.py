"""Auditing the Events a controller was told to record against those the API server holds.

Every tick that tells something writes it into its Rollout's ``status.outbox`` with the
decision (`canary.controller.effects`), so the stored versions of the statuses say which Events
the controller owes: `OutboxAudit` subscribes to the test API server's store, collects each
Event of a given reason from every outbox it sees (one per Rollout, ``decidedAt`` and place in
the outbox), and `OutboxAudit.tally` compares them with the Events recorded:

- ``recorded``: owed and recorded (under the name the controller gives it);
- ``pending``: not recorded yet, but still in the Rollout's outbox as stored now: owed, and
  delivered by the Rollout's next tick on whichever replica holds it (late, not lost);
- ``lost``: not recorded, and the outbox that carried it overwritten;
- ``unexpected``: recorded Events of that reason that no outbox called for (a second Event for
  one step would be one), and ``collisions``: two owed Events under one name.

A count of Events taken while controllers still hold Events in their queues, or after they were
stopped with some queued, is short by ``pending``: that is not a loss.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pydantic import ValidationError

from canary.controller.effects import engine_events
from canary.controller.events import addressee
from canary.model.status import RolloutStatus
from canary.notify import kube_event
from canary.testing.apiserver import ApiServer
from canary.testing.storage import Event as StoreEvent

Json = dict[str, Any]
ROLLOUT = ("canary.dev/v1alpha1", "Rollout")

Owed = tuple[str, str, int]
"""(Rollout, its outbox's decidedAt, the Event's place in the outbox)."""


@dataclass(frozen=True)
class Tally:
    owed: int
    recorded: int
    pending: int
    lost: int
    unexpected: int
    collisions: int
    lost_names: tuple[str, ...] = ()

    @property
    def delivered_or_pending(self) -> int:
        return self.recorded + self.pending


@dataclass(eq=False)
class OutboxAudit:
    """Collects the Events of ``reason`` that the Rollouts' outboxes in ``namespace`` call for
    (a subscriber of the store from its creation on; `close` when done)."""

    api: ApiServer
    namespace: str
    reason: str = "Step"
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _owed: dict[Owed, str] = field(default_factory=dict, init=False)
    """Each owed Event, by where it comes from, to its name."""

    def __post_init__(self) -> None:
        self.key = self.api.registry.find_kind(*ROLLOUT).key
        now, _ = self.api.store.subscribe(self, None, lambda obj: True)
        for version in now:  # the Rollouts as stored when the audit began
            self.push(version)

    def close(self) -> None:
        self.api.store.unsubscribe(self)

    # --- the store's subscriber protocol ------------------------------------------------------

    def push(self, event: StoreEvent) -> None:
        if event.key != self.key or event.type == "DELETED":
            return
        if (event.obj.get("metadata") or {}).get("namespace") != self.namespace:
            return
        called_for = self.called_for(event.obj)
        with self._lock:
            self._owed.update(called_for)

    def progress(self, rv: int) -> None:
        pass

    # --- what is owed and what is recorded ----------------------------------------------------

    def called_for(self, rollout: Json) -> dict[Owed, str]:
        """The Events of ``reason`` the outbox in ``rollout``'s status calls for, by name."""
        told = ((rollout.get("status") or {}).get("outbox") or {}).get("events") or []
        if not any(isinstance(e, dict) and e.get("reason") == self.reason for e in told):
            return {}  # (most versions: no model to build)
        try:
            status = RolloutStatus.model_validate(rollout.get("status") or {})
        except ValidationError:
            return {}
        outbox = status.outbox
        if outbox is None:
            return {}
        name = str((rollout.get("metadata") or {}).get("name"))
        found = {}
        for place, told in enumerate(engine_events(outbox)):
            if told.reason != self.reason:
                continue
            # the controller's own naming (canary.controller.effects.deliver)
            at = outbox.decided_at + timedelta(microseconds=place)
            body = kube_event(addressee(rollout), told, at)
            found[(name, outbox.decided_at.isoformat(), place)] = str(body["metadata"]["name"])
        return found

    @property
    def owed(self) -> int:
        with self._lock:
            return len(self._owed)

    def tally(self) -> Tally:
        """Compare what was owed with the Events the API server holds now."""
        recorded = self._recorded_names()
        still_owed = set(self._called_for_now().values())
        with self._lock:
            owed = dict(self._owed)
        names = set(owed.values())
        missing = names - recorded
        pending = missing & still_owed
        lost = sorted(missing - pending)
        return Tally(
            owed=len(owed),
            recorded=len(names & recorded),
            pending=len(pending),
            lost=len(lost),
            unexpected=len(recorded - names),
            collisions=len(owed) - len(names),
            lost_names=tuple(lost[:20]),
        )

    def _recorded_names(self) -> set[str]:
        return {
            str(e["metadata"]["name"])
            for e in self.api.list("v1", "Event", self.namespace)
            if e.get("reason") == self.reason
        }

    def _called_for_now(self) -> dict[Owed, str]:
        found: dict[Owed, str] = {}
        for rollout in self._rollouts():
            found.update(self.called_for(rollout))
        return found

    def _rollouts(self) -> Iterable[Json]:
        return self.api.list(*ROLLOUT, self.namespace)
