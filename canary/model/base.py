"""The base of every model: camelCase on the wire, snake_case in Python, typos refused."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

Name = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)]
"""A DNS-1123 label: lower-case letters, digits and '-', starting and ending alphanumeric."""

ObjectName = Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)]
"""A Kubernetes object name (DNS-1123 subdomain)."""

ShortObjectName = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_SUBDOMAIN_PATTERN)]
"""An object name that other names are made from (a Rollout's, a target's): 63 at most."""

Weight = Annotated[int, Field(ge=0, le=100)]
"""A share of traffic in percent."""

Port = Annotated[int, Field(ge=1, le=65535)]


class CamelModel(BaseModel):
    """Fields are snake_case in Python and camelCase in YAML/JSON; typos are errors."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_assignment=False,
        use_enum_values=False,
    )

    def to_wire(self) -> dict[str, Any]:
        """The object as it is written to YAML, JSON or the Kubernetes API."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
