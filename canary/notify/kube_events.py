"""Engine events as Kubernetes Events (core/v1), for the controller to create.

Pure: the body depends only on its arguments, so the controller decides when to post it.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from canary.engine.actions import Event
from canary.model.rollout import API_VERSION, Rollout

COMPONENT = "canary-controller"
_MESSAGE_LIMIT = 1024  # what the API server keeps of an Event's message


def kube_event(
    rollout: Rollout, event: Event, now: datetime, *, instance: str = ""
) -> dict[str, Any]:
    """The body of a ``POST /api/v1/namespaces/{ns}/events`` for one engine event."""
    namespace = rollout.metadata.namespace or "default"
    stamp = _utc(now)
    digest = hashlib.sha256(f"{event.reason}\0{event.message}".encode()).hexdigest()[:8]
    involved: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "Rollout",
        "name": rollout.metadata.name,
        "namespace": namespace,
    }
    if rollout.metadata.uid:
        involved["uid"] = rollout.metadata.uid
    if rollout.metadata.resource_version:
        involved["resourceVersion"] = rollout.metadata.resource_version
    return event_body(
        involved,
        name=f"{rollout.metadata.name[:200]}.{int(stamp.timestamp() * 1e9):x}.{digest}",
        namespace=namespace,
        reason=event.reason,
        message=event.message,
        warning=event.warning,
        now=stamp,
        instance=instance,
    )


def event_body(
    involved: dict[str, Any],
    *,
    name: str,
    namespace: str,
    reason: str,
    message: str,
    warning: bool,
    now: datetime,
    instance: str = "",
) -> dict[str, Any]:
    """The body of a core/v1 Event named ``name`` in ``namespace`` about ``involved`` (its
    involvedObject), posted by this component (``instance``: the replica)."""
    timestamp = _utc(now).strftime("%Y-%m-%dT%H:%M:%SZ")
    if len(message) > _MESSAGE_LIMIT:
        message = message[: _MESSAGE_LIMIT - 1] + "…"
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": namespace},
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "type": "Warning" if warning else "Normal",
        "source": {"component": COMPONENT, **({"host": instance} if instance else {})},
        "reportingComponent": COMPONENT,
        "reportingInstance": instance or COMPONENT,
        "firstTimestamp": timestamp,
        "lastTimestamp": timestamp,
        "count": 1,
    }


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
