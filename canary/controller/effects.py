"""What a tick tells, delivered at least once: the outbox written with the status.

A tick's Events, notifications and informative webhooks (post-rollout, event) are written into
``status.outbox`` by the same status write that records the decision, delivered after it, and
cleared by one more status write. A controller that dies (or loses the Lease) between the two
writes leaves the outbox in the status; the next tick, on this replica or another, delivers it
again before deciding anything. So nothing decided is lost. Kubernetes Events are recorded
once: an Event's name is derived from the tick's time (``outbox.decidedAt``) and its place in
the outbox, and a second create of the same name (409 AlreadyExists) counts as recorded.
Notifications and webhooks are delivered at least once (again only after such a death).

An outbox whose delivery sent no webhook and queued no notification (Events only: the usual
step of a rollout) is not cleared by a write of its own: delivering it again could only record
its Events again, which counts each once (409). The Rollout's next status write drops it (each
tick writes its own outbox, or none); until then the reconciler remembers it was delivered, so
its next tick does not deliver it again, and another replica that finds it does so harmlessly.
That saves a status write on most ticks.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from canary.controller.event_sender import EventPostError, EventSender, post_once
from canary.controller.events import event_body, post_events
from canary.controller.kube import Json, Kube, KubeError, NotLeaderError
from canary.controller.status import StatusConflictError, write_status
from canary.engine import CallWebhook, Event
from canary.gates.webhooks import WebhookCaller
from canary.model.gates import GateType
from canary.model.notification import NotificationEvent
from canary.model.rollout import Rollout
from canary.model.status import Outbox, PendingEvent, PendingWebhook, RolloutStatus
from canary.notify import Notifier

log = logging.getLogger("canary.controller.effects")


def outbox_of(
    events: Sequence[Event], hooks: Sequence[CallWebhook], now: datetime
) -> Outbox | None:
    """The outbox of a tick that decided ``events`` and ``hooks`` (None: nothing to tell)."""
    if not events and not hooks:
        return None
    return Outbox(
        decided_at=now,
        events=[
            PendingEvent(
                reason=e.reason,
                message=e.message,
                warning=e.warning,
                notification=e.notification.value if e.notification else None,
            )
            for e in events
        ],
        webhooks=[PendingWebhook(name=h.name, type=h.type.value, reason=h.reason) for h in hooks],
    )


def engine_events(outbox: Outbox) -> list[Event]:
    return [
        Event(
            reason=e.reason,
            message=e.message,
            warning=e.warning,
            notification=NotificationEvent(e.notification) if e.notification else None,
        )
        for e in outbox.events
    ]


def webhook_actions(outbox: Outbox) -> list[CallWebhook]:
    return [
        CallWebhook(name=w.name, type=GateType(w.type), reason=w.reason) for w in outbox.webhooks
    ]


def deliver(
    kube: Kube,
    rollout: Rollout,
    status: RolloutStatus,
    outbox: Outbox,
    *,
    webhooks: WebhookCaller,
    notifier: Notifier | None,
    identity: str,
    sender: EventSender | None = None,
) -> tuple[Outbox | None, bool]:
    """Fire the outbox's webhooks, record its Events (each under a name fixed by the outbox),
    notify; returns what is left to deliver: the Events, when one could not be recorded (those
    recorded are not recorded twice), else None; and whether delivering it again could only
    record Events (no webhook was fired, no notification queued). Webhooks and notifications
    are sent once here (with their own retries); a failed one is reported, not kept.

    With a ``sender``, an outbox that could only record Events is handed to it (recorded off
    the tick's critical path; `canary.controller.event_sender`) and counts as delivered."""
    hooks = webhook_actions(outbox)
    if hooks:
        webhooks.fire_all(hooks, rollout, status, outbox.decided_at)
    events = engine_events(outbox)
    notified = [e for e in events if e.reason != "CommandsInvalid"]
    queued = 0
    if notifier is not None and notified and not outbox.notified:
        queued = notifier.notify(rollout, status, notified, outbox.decided_at)
    replayable = not hooks and queued == 0
    # one microsecond apart: two Events of one tick never share a name
    stamps = [outbox.decided_at + timedelta(microseconds=n) for n in range(len(events))]
    if replayable and sender is not None and events:
        bodies = [
            event_body(rollout, e, at, identity) for e, at in zip(events, stamps, strict=True)
        ]
        if sender.send(rollout.key, bodies):
            return None, True  # the sender records them (event_sender.py)
        return _posted(kube, rollout, outbox, bodies), True
    recorded = 0
    for event, stamp in zip(events, stamps, strict=True):
        recorded += post_events(kube, rollout, [event], stamp, identity)
    if recorded == len(events):
        return None, replayable
    return outbox.model_copy(update={"webhooks": [], "notified": True}), replayable


def _posted(kube: Kube, rollout: Rollout, outbox: Outbox, bodies: list[Json]) -> Outbox | None:
    """Post the Event ``bodies`` of ``outbox`` here; what is left of it (None: all recorded)."""
    recorded = 0
    for body in bodies:
        try:
            post_once(kube, body)
            recorded += 1
        except (EventPostError, KubeError, NotLeaderError, OSError) as exc:
            log.warning("%s: event not recorded: %s", rollout.key, exc)
    if recorded == len(bodies):
        return None
    return outbox.model_copy(update={"webhooks": [], "notified": True})


def clear(kube: Kube, stored: Json, status: RolloutStatus, left: Outbox | None) -> Json | None:
    """Write ``status`` again with only what is ``left`` of its outbox; None when the write
    failed (the next tick delivers the outbox again, Events once)."""
    if status.outbox is None or status.outbox == left:
        return stored
    cleared = status.model_copy(update={"outbox": left})
    try:
        return write_status(kube, stored, cleared.to_wire())
    except (KubeError, StatusConflictError, NotLeaderError, OSError) as exc:
        log.warning("the delivered outbox stays in the status (%s): delivered again", exc)
        return None
