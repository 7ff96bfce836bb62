"""The simulated cluster: the target's revision, the two Deployments and the route.

It applies the engine's actions the way the Kubernetes shell would, with delays: a canary
becomes ready some seconds after it is scaled up, and the primary takes some seconds to roll
out a revision (it keeps serving the old one meanwhile). Creating the primary from the first
revision happens before the rollout under study, so it takes no time. Time is virtual seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from canary.engine.actions import (
    Action,
    CallWebhook,
    InitializePrimary,
    PromoteCanary,
    Route,
    ScaleCanaryDown,
    ScaleCanaryUp,
    SetRoute,
)
from canary.engine.observations import WorkloadState


@dataclass(slots=True)
class World:
    target_revision: str | None
    canary_ready_seconds: float
    promotion_seconds: float
    route: Route = field(default_factory=Route)
    canary_revision: str | None = None
    canary_ready_at: float | None = None
    primary_revision: str | None = None
    primary_next: str | None = None
    primary_switch_at: float = 0.0
    webhook_calls: list[str] = field(default_factory=list)

    def settle(self, t: float) -> None:
        """Let the primary finish a rollout that is due by ``t``."""
        if self.primary_next is not None and t >= self.primary_switch_at:
            self.primary_revision = self.primary_next
            self.primary_next = None

    def canary_ready(self, t: float) -> bool:
        return self.canary_ready_at is not None and t >= self.canary_ready_at

    def observe(self, t: float) -> WorkloadState:
        self.settle(t)
        return WorkloadState(
            target_revision=self.target_revision,
            canary_ready=self.canary_ready(t),
            primary_ready=self.primary_revision is not None,
            primary_revision=self.primary_revision,
        )

    def apply(self, actions: Sequence[Action], t: float) -> None:
        for action in actions:
            if isinstance(action, SetRoute):
                self.route = action.route
            elif isinstance(action, InitializePrimary):
                self._roll_primary(action.revision, t)
            elif isinstance(action, PromoteCanary):
                self._roll_primary(action.revision, t + self.promotion_seconds)
            elif isinstance(action, ScaleCanaryUp):
                if self.canary_revision != action.revision or self.canary_ready_at is None:
                    self.canary_revision = action.revision
                    self.canary_ready_at = t + self.canary_ready_seconds
            elif isinstance(action, ScaleCanaryDown):
                self.canary_revision = None
                self.canary_ready_at = None
            elif isinstance(action, CallWebhook):
                self.webhook_calls.append(f"{action.type.value}/{action.name}")

    def _roll_primary(self, revision: str, done_at: float) -> None:
        """Idempotent: asking again for the revision already on its way changes nothing."""
        if revision in (self.primary_revision, self.primary_next):
            return
        self.primary_next = revision
        self.primary_switch_at = done_at
