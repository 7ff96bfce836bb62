"""What the engine asks the shells to do, and what it tells the people watching."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from canary.model.base import CamelModel, Weight
from canary.model.gates import GateType
from canary.model.notification import NotificationEvent
from canary.model.status import RolloutStatus
from canary.model.strategy import MatchRule


class Route(CamelModel):
    """The traffic split the router must hold. Applying it twice is applying it once."""

    model_config = ConfigDict(frozen=True)

    canary_weight: Weight = 0
    match: tuple[MatchRule, ...] = Field(
        default=(), description="A/B rules: matching requests go to the canary."
    )
    mirror_percentage: float | None = Field(
        default=None, description="Share of live traffic copied to the canary."
    )

    @property
    def sends_live_traffic_to_canary(self) -> bool:
        return self.canary_weight > 0 or bool(self.match)


class _Action(CamelModel):
    model_config = ConfigDict(frozen=True)


class InitializePrimary(_Action):
    """Create or refresh '<target>-primary' and the Services from the target; scale target to 0."""

    kind: Literal["InitializePrimary"] = "InitializePrimary"
    revision: str


class ScaleCanaryUp(_Action):
    kind: Literal["ScaleCanaryUp"] = "ScaleCanaryUp"
    revision: str


class ScaleCanaryDown(_Action):
    kind: Literal["ScaleCanaryDown"] = "ScaleCanaryDown"


class SetRoute(_Action):
    kind: Literal["SetRoute"] = "SetRoute"
    route: Route


class PromoteCanary(_Action):
    """Copy the canary's pod spec (and what it references) into the primary."""

    kind: Literal["PromoteCanary"] = "PromoteCanary"
    revision: str


class RestorePrimary(_Action):
    """Put the primary back on the stable revision's pod spec (a promotion that failed)."""

    kind: Literal["RestorePrimary"] = "RestorePrimary"
    revision: str | None = Field(description="The stable revision; None if never recorded.")


class CallWebhook(_Action):
    """An informative webhook (post-rollout, event): called, its answer changes nothing."""

    kind: Literal["CallWebhook"] = "CallWebhook"
    name: str
    type: GateType
    reason: str = ""


Action = Annotated[
    InitializePrimary
    | ScaleCanaryUp
    | ScaleCanaryDown
    | SetRoute
    | PromoteCanary
    | RestorePrimary
    | CallWebhook,
    Field(discriminator="kind"),
]


class Event(CamelModel):
    """Something people may want to know: a Kubernetes Event, a log line, a chat message."""

    model_config = ConfigDict(frozen=True)

    reason: str
    message: str
    warning: bool = False
    notification: NotificationEvent | None = None


class StepResult(CamelModel):
    status: RolloutStatus
    actions: list[Action] = Field(default_factory=list)
    events: list[Event] = Field(default_factory=list)
    requeue_after: float = Field(description="Seconds until this rollout's next tick.")
