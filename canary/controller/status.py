"""Writing a Rollout's status: through the status subresource, never over someone else's.

The tick's new status is written with the resourceVersion the Rollout was read at. A 409 means
the object changed since: it is read again and, if its status is still the one the tick
started from (a change of spec, labels or annotations), the new status is written onto the
fresh object; if the status itself changed (another writer), nothing is overwritten and the
tick is abandoned (the next one starts from the fresh status).

A tick whose status differs from the stored one only in ``lastTickAt``, outside the judged
phases (Progressing, Paused), writes nothing (`needs_write`): an idle Rollout's tick, or one
waiting on a Deployment, changes nothing a reader or the next tick needs (the analysis window
starts at the last judged tick, which is always written). ``lastTickAt`` is still written at
least every ``HEARTBEAT_SECONDS``, so it says the controller is alive.

The ``Valid`` condition says whether the spec can be run: False with ``path.to.field:
message`` for a Rollout the model refuses, True otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from canary.controller.kinds import ROLLOUT
from canary.controller.kube import ConflictError, Json, Kube
from canary.engine.clock import seconds_since
from canary.engine.plan import JUDGED_PHASES
from canary.model.status import Condition, ConditionStatus, RolloutStatus

log = logging.getLogger("canary.controller.status")

VALID = "Valid"
ATTEMPTS = 5
HEARTBEAT_SECONDS = 300.0
"""An unchanged status is written again (its ``lastTickAt``) at least this often."""
TICK_TIME = "lastTickAt"


class StatusConflictError(Exception):
    """The status changed under the tick (another writer): it was not overwritten."""


def with_valid(status: RolloutStatus, now: datetime) -> RolloutStatus:
    """``status`` with ``Valid: True`` (its transition time kept when it already was)."""
    current = next((c for c in status.conditions if c.type == VALID), None)
    if current is not None and current.status is ConditionStatus.TRUE:
        return status
    condition = Condition(
        type=VALID,
        status=ConditionStatus.TRUE,
        reason="SpecValid",
        message="the spec is valid",
        last_transition_time=now,
    )
    others = [c for c in status.conditions if c.type != VALID]
    return status.model_copy(update={"conditions": [*others, condition]})


def invalid_status(status: Json | None, message: str, now: datetime) -> Json | None:
    """The raw status with ``Valid: False`` and ``message``; None when it already says so."""
    current = dict(status or {})
    conditions = [c for c in current.get("conditions") or [] if isinstance(c, dict)]
    mine = next((c for c in conditions if c.get("type") == VALID), None)
    if mine is not None and mine.get("status") == "False" and mine.get("message") == message:
        return None
    condition = Condition(
        type=VALID,
        status=ConditionStatus.FALSE,
        reason="InvalidSpec",
        message=message,
        last_transition_time=now,
    ).to_wire()
    current["conditions"] = [*(c for c in conditions if c.get("type") != VALID), condition]
    return current


def needs_write(stored: Json | None, new: RolloutStatus, now: datetime) -> bool:
    """``new`` must be written over ``stored`` (the status the tick read): it changed other
    than in ``lastTickAt``, or the canary is judged, or the heartbeat is due."""
    if stored is None or new.phase in JUDGED_PHASES:
        return True
    wire = new.to_wire()
    if {k: v for k, v in wire.items() if k != TICK_TIME} != {
        k: v for k, v in stored.items() if k != TICK_TIME
    }:
        return True
    recorded = RolloutStatus.model_validate(stored).last_tick_at
    return recorded is None or seconds_since(recorded, now) >= HEARTBEAT_SECONDS


def write_status(
    kube: Kube,
    obj: Json,
    status: Json,
    *,
    on_conflict: Callable[[], Any] = lambda: None,
) -> Json:
    """Write ``status`` onto ``obj`` (as the tick read it); returns the stored Rollout.

    Raises StatusConflictError when the status was changed by someone else meanwhile."""
    base_status = obj.get("status")
    body = dict(obj, status=status)
    meta = obj.get("metadata") or {}
    namespace, name = str(meta.get("namespace")), str(meta.get("name"))
    for _ in range(ATTEMPTS):
        try:
            return kube.replace_status(body)
        except ConflictError:
            on_conflict()
            fresh = kube.read(ROLLOUT, namespace, name)
            if fresh is None:
                raise StatusConflictError(f"rollout {namespace}/{name} was deleted") from None
            if fresh.get("status") != base_status:
                raise StatusConflictError(
                    f"the status of {namespace}/{name} was changed by another writer; "
                    "not overwritten"
                ) from None
            log.info("%s/%s changed during the tick; writing the status again", namespace, name)
            body = dict(fresh, status=status)
    raise StatusConflictError(f"rollout {namespace}/{name} kept changing; status not written")
