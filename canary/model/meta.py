"""Kubernetes object metadata: what canary reads of it (the rest is kept as it came)."""

from __future__ import annotations

from datetime import datetime

from pydantic import ConfigDict, Field

from canary.model.base import CamelModel, ObjectName


class ObjectMeta(CamelModel):
    model_config = ConfigDict(extra="allow")

    name: ObjectName
    namespace: ObjectName | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    generation: int | None = None
    uid: str | None = None
    resource_version: str | None = None
    creation_timestamp: datetime | None = None
