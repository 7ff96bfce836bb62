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

A tick that finds an outbox left undelivered and cannot record all of its Events (a post failed
or went unanswered) does not decide: its status write would drop them. It fails with
`EventsNotRecordedError` (or NotLeaderError), and the next tick delivers them again. An Event
the API server refuses for good (a 4xx other than 409 and 429) is not: it is logged and counted
in ``canary_event_post_failures_total``, and dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from canary.controller.event_sender import EventPostError, EventSender, post_once
from canary.controller.events import NOT_RECORDED, event_body
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


@dataclass(frozen=True)
class Delivery:
    """What delivering an outbox did."""

    left: Outbox | None
    """What is left to deliver: the Events, when one could not be recorded (those recorded are
    not recorded twice); None: everything."""
    replayable: bool
    """Delivering it again could only record Events (no webhook fired, no notification)."""
    failure: Exception | None = None
    """The first post that failed and may succeed if tried again (why ``left`` is not None)."""


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
    refused: Callable[[], None] = lambda: None,
) -> Delivery:
    """Fire the outbox's webhooks, record its Events (each under a name fixed by the outbox),
    notify. Webhooks and notifications are sent once here (with their own retries); a failed
    one is reported, not kept. An Event the API server refuses for good (a 4xx) is logged and
    counted (``refused``): posting it again would not help.

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
    bodies = [event_body(rollout, e, at, identity) for e, at in zip(events, stamps, strict=True)]
    if replayable and sender is not None and bodies and sender.send(rollout.key, bodies):
        return Delivery(None, True)  # the sender records them (event_sender.py)
    failure = record_all(kube, rollout.key, bodies, refused)
    if failure is None:
        return Delivery(None, replayable)
    left = outbox.model_copy(update={"webhooks": [], "notified": True})
    return Delivery(left, replayable, failure)


def record_all(
    kube: Kube, key: str, bodies: Sequence[Json], refused: Callable[[], None]
) -> Exception | None:
    """Post each Event here; the first failure another post may cure (None: each one recorded,
    or refused for good)."""
    failure: Exception | None = None
    for body in bodies:
        try:
            post_once(kube, body)
        except EventPostError as exc:
            log.warning("%s: event refused, not recorded: %s", key, exc)
            refused()
        except NOT_RECORDED as exc:
            log.warning("%s: event not recorded: %s", key, exc)
            failure = failure or exc
    return failure


class EventsNotRecordedError(KubeError):
    """An outbox's Events could not all be recorded: the tick must not decide (its status write
    would drop them); the next tick delivers them again."""


def not_recorded(failure: Exception, outbox: Outbox) -> Exception:
    """The error that fails a tick whose outbox could not be delivered (NotLeaderError as is:
    the shard is no longer this replica's)."""
    if isinstance(failure, NotLeaderError):
        return failure
    status = failure.status if isinstance(failure, KubeError) else 0
    reason = failure.reason if isinstance(failure, KubeError) else type(failure).__name__
    decided = outbox.decided_at.isoformat()
    return EventsNotRecordedError(
        status, reason, f"the Events decided at {decided} are not all recorded: tried again"
    )


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
