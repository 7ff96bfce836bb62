"""What a tick came to (`TickOutcome`), what counts as a change, and the requeues of the ticks
that decide nothing."""

from __future__ import annotations

from dataclasses import dataclass

from canary.controller.kube import Json
from canary.model.status import RolloutStatus

INVALID_REQUEUE = 60.0
"""Seconds between looks at a Rollout the model refuses (a change of it ticks at once)."""
AUTOSCALER_REQUEUE = 5.0
"""Seconds between looks at a Rollout whose HPA is missing or scales something else: the fix
is a change of the HPA, which the controller does not watch."""
MIN_REQUEUE = 0.05


@dataclass
class TickOutcome:
    outcome: str
    """ok, skipped (an early tick with nothing to do), invalid, gone, error."""
    requeue_after: float
    message: str = ""
    changed: bool = True
    """An ok tick changed the engine's state (the status other than ``lastTickAt`` and the
    outbox) or wrote something; False: it found everything as it was."""

    @property
    def effect(self) -> str:
        """The ``effect`` label of ``canary_ticks_total``: changed, idle, or the outcome."""
        if self.outcome != "ok":
            return self.outcome
        return "changed" if self.changed else "idle"


def engine_state(status: RolloutStatus) -> Json:
    """What of a status the engine decides: all but when it was written and what it tells."""
    return status.model_dump(exclude={"last_tick_at", "outbox"})
