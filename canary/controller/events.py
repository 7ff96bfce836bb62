"""Recording Kubernetes Events on a Rollout (bodies from `canary.notify.kube_event`).

An Event that cannot be recorded is logged and dropped: Events inform, they never fail a tick.
An Event whose name exists already (409) was recorded before: the same Event delivered again
from an outbox (`canary.controller.effects`) is recorded once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import cast

import urllib3

from canary.controller.kube import ConflictError, Json, Kube, KubeError, NotLeaderError
from canary.engine.actions import Event
from canary.model.meta import ObjectMeta
from canary.model.rollout import Rollout, RolloutSpec
from canary.notify import kube_event

log = logging.getLogger("canary.controller.events")

UNANSWERED: tuple[type[Exception], ...] = (KubeError, OSError, urllib3.exceptions.HTTPError)
"""What a post raises when the API server refused it or did not answer: an error status, or a
connection refused or reset, or a read timeout, which urllib3 raises as its own exceptions (not
OSErrors). Posting the same Event again is safe: if the first post was stored, 409."""
NOT_RECORDED: tuple[type[Exception], ...] = (*UNANSWERED, NotLeaderError)
"""What a post raises when the Event was not (knowingly) recorded, this replica's shard lost
included."""


def addressee(obj: Json) -> Rollout:
    """Enough of a Rollout (even one the model refuses) to address Events to it."""
    meta = obj.get("metadata") or {}
    metadata = ObjectMeta.model_construct(
        name=str(meta.get("name")),
        namespace=meta.get("namespace"),
        uid=meta.get("uid"),
        resource_version=meta.get("resourceVersion"),
    )
    # kube_event reads only the metadata
    return Rollout.model_construct(metadata=metadata, spec=cast(RolloutSpec, None))


def post_events(
    kube: Kube, rollout: Rollout, events: Iterable[Event], now: datetime, identity: str
) -> int:
    """Log and record each event; returns how many were recorded."""
    recorded = 0
    for event in events:
        try:
            kube.post_event(event_body(rollout, event, now, identity))
            recorded += 1
        except ConflictError:
            recorded += 1  # recorded by an earlier delivery of the same outbox
        except NOT_RECORDED as exc:
            log.warning("%s: event %s not recorded: %s", rollout.key, event.reason, exc)
    return recorded


def event_body(rollout: Rollout, event: Event, now: datetime, identity: str) -> Json:
    """Log ``event``; the body of its Kubernetes Event (named after ``now``)."""
    level = logging.WARNING if event.warning else logging.INFO
    log.log(level, "%s: %s: %s", rollout.key, event.reason, event.message)
    return kube_event(rollout, event, now, instance=identity)
