"""Points where a rollout waits for an outside yes: webhooks and manual approvals."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, model_validator

from canary.model.base import CamelModel, Name, ObjectName
from canary.model.duration import Duration
from canary.model.limits import MAX_METADATA_ENTRIES, MAX_WEBHOOKS, ShortText, Url


class GateType(StrEnum):
    """When a webhook is called, and what its answer means.

    confirm-*: the rollout waits until the hook says yes. pre-rollout and rollout: a no is a
    failed check. rollback: a yes rolls the canary back. post-rollout and event: informative.
    """

    CONFIRM_ROLLOUT = "confirm-rollout"
    PRE_ROLLOUT = "pre-rollout"
    ROLLOUT = "rollout"
    CONFIRM_TRAFFIC_INCREASE = "confirm-traffic-increase"
    CONFIRM_PROMOTION = "confirm-promotion"
    POST_ROLLOUT = "post-rollout"
    ROLLBACK = "rollback"
    EVENT = "event"


class ApprovalPoint(StrEnum):
    """Where a person must approve (`canary approve NAME`) before the rollout goes on."""

    ROLLOUT = "rollout"
    TRAFFIC_INCREASE = "traffic-increase"
    PROMOTION = "promotion"


CONFIRM_GATE_OF_POINT = {
    ApprovalPoint.ROLLOUT: GateType.CONFIRM_ROLLOUT,
    ApprovalPoint.TRAFFIC_INCREASE: GateType.CONFIRM_TRAFFIC_INCREASE,
    ApprovalPoint.PROMOTION: GateType.CONFIRM_PROMOTION,
}


class SecretKeyRef(CamelModel):
    name: ObjectName
    key: str = Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")


class Webhook(CamelModel):
    name: Name
    type: GateType
    url: Url = Field(description="http(s) URL that receives a POST.")
    timeout: Duration = Field(default=10.0)
    retries: int = Field(default=2, ge=0, le=10)
    metadata: dict[ShortText, ShortText] = Field(
        default_factory=dict, max_length=MAX_METADATA_ENTRIES, description="Sent with the payload."
    )
    secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret key whose value signs the body (HMAC-SHA256)."
    )


class GatesSpec(CamelModel):
    webhooks: list[Webhook] = Field(default_factory=list, max_length=MAX_WEBHOOKS)
    approvals: list[ApprovalPoint] = Field(
        default_factory=list, description="Points that wait for a person's approval."
    )

    @model_validator(mode="after")
    def _unique(self) -> GatesSpec:
        names = [w.name for w in self.webhooks]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"webhook names must be unique: {', '.join(duplicated)} repeated")
        if len(set(self.approvals)) != len(self.approvals):
            raise ValueError("an approval point is listed twice")
        return self

    def of_type(self, gate_type: GateType) -> list[Webhook]:
        return [w for w in self.webhooks if w.type is gate_type]
