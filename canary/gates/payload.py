"""What a webhook receives: one JSON document describing the rollout at the gate.

Building it is pure: the time is passed in and nothing here reads a clock or the network.
The wire form is camelCase JSON, every key always present (``null`` when unknown), so a
receiver can rely on the shape. See docs/gates.md for an example.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from canary.model.base import CamelModel, Weight
from canary.model.gates import GateType, Webhook
from canary.model.rollout import Rollout
from canary.model.status import Phase, RolloutStatus, SideEvidence, Verdict

PAYLOAD_VERSION = "canary.dev/v1alpha1"
DEFAULT_NAMESPACE = "default"


class GateInfo(CamelModel):
    """The webhook being called."""

    name: str
    type: GateType
    metadata: dict[str, str] = Field(default_factory=dict, description="From the webhook spec.")


class RolloutInfo(CamelModel):
    """Where the rollout stands."""

    name: str
    namespace: str
    phase: Phase
    canary_weight: Weight = 0
    step_index: int = Field(default=0, description="Index in the weight schedule.")
    iteration: int = Field(default=0, description="Passed A/B or blue/green iterations.")
    canary_revision: str | None = Field(default=None, description="The revision being judged.")
    stable_revision: str | None = Field(default=None, description="The revision the primary runs.")
    failed_checks: int = Field(default=0, description="Failed ticks of the canary revision.")
    waiting_for: str | None = None
    message: str = ""


class CheckInfo(CamelModel):
    """One check's latest verdict, with its numbers."""

    name: str
    verdict: Verdict
    time: datetime
    weight: Weight = 0
    judge: str | None = None
    canary: SideEvidence | None = None
    primary: SideEvidence | None = None
    statistic: float | None = None
    no_data: bool = False
    message: str = ""


class GatePayload(CamelModel):
    """The body POSTed to a webhook."""

    api_version: str = PAYLOAD_VERSION
    delivery_id: str = Field(description="Unique per delivery; the same across its retries.")
    timestamp: datetime = Field(description="When the delivery was made (passed in).")
    attempt: int = Field(
        default=1,
        ge=1,
        description="1 for the first try, 2 for the first retry, ...: each attempt is signed "
        "apart, so a receiver refuses an exact copy of one (a replay) and takes a retry.",
    )
    gate: GateInfo
    rollout: RolloutInfo
    checks: list[CheckInfo] = Field(
        default_factory=list, description="The latest result of each check, in order."
    )
    reason: str | None = Field(
        default=None,
        description="Informative hooks: why they are called ('promoted', 'rolled back', or "
        "the event's reason such as 'Progressing'); null for gating hooks.",
    )

    def body(self) -> bytes:
        """The exact bytes sent (and signed)."""
        return self.model_dump_json(by_alias=True).encode("utf-8")


def new_delivery_id() -> str:
    """A random, unique delivery id (no clock involved)."""
    return uuid.uuid4().hex


def build_payload(
    rollout: Rollout,
    status: RolloutStatus | None,
    webhook: Webhook,
    *,
    now: datetime,
    reason: str | None = None,
    delivery_id: str | None = None,
) -> GatePayload:
    """The payload for ``webhook`` of ``rollout`` in ``status`` at ``now``.

    ``reason`` is given for informative hooks (a CallWebhook action's reason); ``delivery_id``
    defaults to a fresh random one.
    """
    current = status if status is not None else RolloutStatus()
    return GatePayload(
        delivery_id=delivery_id if delivery_id is not None else new_delivery_id(),
        timestamp=now,
        gate=GateInfo(name=webhook.name, type=webhook.type, metadata=dict(webhook.metadata)),
        rollout=RolloutInfo(
            name=rollout.metadata.name,
            namespace=rollout.metadata.namespace or DEFAULT_NAMESPACE,
            phase=current.phase,
            canary_weight=current.canary_weight,
            step_index=current.step_index,
            iteration=current.iteration,
            canary_revision=current.canary_revision,
            stable_revision=current.stable_revision,
            failed_checks=current.failed_checks,
            waiting_for=current.waiting_for,
            message=current.message,
        ),
        checks=latest_checks(current),
        reason=reason,
    )


def latest_checks(status: RolloutStatus) -> list[CheckInfo]:
    """The most recent result of each check in the status, ordered by first appearance."""
    latest: dict[str, CheckInfo] = {}
    for result in status.checks:
        latest[result.name] = CheckInfo(
            name=result.name,
            verdict=result.verdict,
            time=result.time,
            weight=result.weight,
            judge=result.judge,
            canary=result.canary,
            primary=result.primary,
            statistic=result.statistic,
            no_data=result.no_data,
            message=result.message,
        )
    return list(latest.values())
