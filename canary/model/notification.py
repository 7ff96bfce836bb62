"""Chat and webhook channels, and which rollout events reach them."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field, model_validator

from canary.model.base import CamelModel, ObjectName
from canary.model.gates import SecretKeyRef
from canary.model.limits import MAX_CHANNELS, Url
from canary.model.meta import ObjectMeta


class NotificationEvent(StrEnum):
    STARTED = "started"
    STEP = "step"
    VERDICT = "verdict"
    WAITING = "waiting"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled-back"
    FAILED = "failed"


class ChannelRef(CamelModel):
    name: ObjectName


class NotificationsSpec(CamelModel):
    channels: list[ChannelRef] = Field(default_factory=list, max_length=MAX_CHANNELS)
    events: list[NotificationEvent] = Field(
        default_factory=lambda: list(NotificationEvent),
        description="Events sent; all by default.",
    )


class SlackChannel(CamelModel):
    channel: str | None = Field(
        default=None,
        max_length=80,
        pattern=r"^[#@]?[A-Za-z0-9._-]+$",
        description="Channel name or id (bot-token mode).",
    )
    token_secret_ref: SecretKeyRef | None = Field(default=None, description="Bot token Secret.")
    webhook_url_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Incoming-webhook URL Secret (webhook mode)."
    )

    @model_validator(mode="after")
    def _one_mode(self) -> SlackChannel:
        if (self.token_secret_ref is None) == (self.webhook_url_secret_ref is None):
            raise ValueError(
                "choose one Slack mode: tokenSecretRef (with channel) or webhookUrlSecretRef"
            )
        if self.token_secret_ref is not None and not self.channel:
            raise ValueError("bot-token mode needs 'channel', e.g. '#deploys'")
        return self


class WebhookChannel(CamelModel):
    url: Url
    secret_ref: SecretKeyRef | None = None


class NotificationChannelSpec(CamelModel):
    slack: SlackChannel | None = None
    webhook: WebhookChannel | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> NotificationChannelSpec:
        if (self.slack is None) == (self.webhook is None):
            raise ValueError("a channel is either 'slack' or 'webhook': give exactly one")
        return self


class NotificationChannel(CamelModel):
    api_version: Literal["canary.dev/v1alpha1"] = "canary.dev/v1alpha1"
    kind: Literal["NotificationChannel"] = "NotificationChannel"
    metadata: ObjectMeta
    spec: NotificationChannelSpec


__all__ = ["ChannelRef", "NotificationChannel", "NotificationEvent", "NotificationsSpec"]
