"""Traffic providers, their own settings, and what each can honour."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field, StringConstraints, model_validator

from canary.model.base import CamelModel, Name, ObjectName


class ProviderName(StrEnum):
    ISTIO = "istio"
    LINKERD = "linkerd"
    GATEWAY_API = "gateway-api"
    HAPROXY = "haproxy"


class IstioSettings(CamelModel):
    """Where the VirtualService applies: mesh-internal by default, or on gateways and hosts."""

    gateways: list[str] = Field(
        default_factory=list, description="Gateways, e.g. istio-system/public."
    )
    hosts: list[str] = Field(default_factory=list, description="Extra hosts besides the service.")


class LinkerdApi(StrEnum):
    GATEWAY_API = "gateway-api"
    SMI = "smi"


class LinkerdSettings(CamelModel):
    api: LinkerdApi = Field(
        default=LinkerdApi.GATEWAY_API,
        description="gateway-api: an HTTPRoute (current Linkerd); smi: an SMI TrafficSplit.",
    )


class ParentRef(CamelModel):
    """A Gateway (or Service, for mesh routing) the HTTPRoute attaches to."""

    name: ObjectName
    namespace: ObjectName | None = None
    kind: str = "Gateway"
    group: str = "gateway.networking.k8s.io"
    section_name: Name | None = None


class GatewayApiSettings(CamelModel):
    parent_refs: list[ParentRef] = Field(min_length=1)
    hostnames: list[str] = Field(default_factory=list)


HaproxyName = Annotated[
    str, StringConstraints(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
]
"""A backend or server name HAProxy accepts, safe in haproxy.cfg and on its runtime API."""
HostPort = Annotated[
    str,
    StringConstraints(min_length=3, max_length=261, pattern=r"^[A-Za-z0-9.:\[\]_-]+:[0-9]{1,5}$"),
]
"""host:port with no whitespace or separators HAProxy would read as more words."""


class HaproxySettings(CamelModel):
    """Local mode: a running HAProxy driven through its runtime API."""

    runtime_api: str = Field(
        default="127.0.0.1:9999",
        max_length=1024,
        pattern=r"^\S+$",
        description="Runtime API address: host:port or the path of a unix socket.",
    )
    backend: HaproxyName = "app"
    primary_server: HaproxyName = "primary"
    canary_server: HaproxyName = "canary"
    primary_address: HostPort | None = Field(default=None, description="host:port of the primary.")
    canary_address: HostPort | None = Field(default=None, description="host:port of the canary.")


class ProviderSpec(CamelModel):
    """Which router writes the traffic split, and its own settings."""

    name: ProviderName
    istio: IstioSettings | None = None
    linkerd: LinkerdSettings | None = None
    gateway_api: GatewayApiSettings | None = None
    haproxy: HaproxySettings | None = None

    @model_validator(mode="after")
    def _settings_match_provider(self) -> ProviderSpec:
        blocks = {
            ProviderName.ISTIO: ("istio", self.istio),
            ProviderName.LINKERD: ("linkerd", self.linkerd),
            ProviderName.GATEWAY_API: ("gatewayApi", self.gateway_api),
            ProviderName.HAPROXY: ("haproxy", self.haproxy),
        }
        for provider, (key, block) in blocks.items():
            if block is not None and provider is not self.name:
                raise ValueError(
                    f"settings '{key}' belong to provider '{provider.value}' but the provider "
                    f"is '{self.name.value}': remove '{key}' or change 'name'"
                )
        if self.name is ProviderName.GATEWAY_API and self.gateway_api is None:
            raise ValueError(
                "provider 'gateway-api' needs 'gatewayApi.parentRefs': the Gateway the "
                "HTTPRoute attaches to"
            )
        return self

    @property
    def flavour(self) -> str:
        """The provider with its variant, as capabilities know it (e.g. 'linkerd-smi')."""
        if (
            self.name is ProviderName.LINKERD
            and self.linkerd
            and self.linkerd.api is LinkerdApi.SMI
        ):
            return "linkerd-smi"
        return self.name.value


# What each provider's router can render. Route settings by their camelCase path; features
# of the strategy by name. A setting outside its provider's set is a validation error.
_ROUTE_SETTINGS = {
    "istio": {
        "timeout",
        "retries",
        "cors",
        "headers",
        "mirror",
        "circuitBreaker.connectionPool",
        "circuitBreaker.outlierDetection",
        "mtlsMode",
    },
    "linkerd": {"timeout", "retries", "headers", "circuitBreaker.outlierDetection"},
    "linkerd-smi": set(),
    "gateway-api": {"timeout", "cors", "headers", "mirror"},
    "haproxy": {
        "timeout",
        "retries",
        "headers",
        "circuitBreaker.connectionPool",
        "circuitBreaker.outlierDetection",
    },
}

_FEATURES = {
    "istio": {"abTest", "cookieMatch", "mirrorToCanary"},
    "linkerd": {"abTest"},
    "linkerd-smi": set(),
    "gateway-api": {"abTest", "mirrorToCanary"},
    "haproxy": {"abTest", "cookieMatch"},
}

_WHY_NOT = {
    "linkerd-smi": "an SMI TrafficSplit carries only backend weights",
    "linkerd": "Linkerd's HTTPRoute has no such field",
    "gateway-api": "the Gateway API standard channel has no such field",
    "haproxy": "the local HAProxy router does not render it",
}


def unsupported_route_settings(flavour: str, used: list[str]) -> list[str]:
    """The settings in ``used`` that provider ``flavour`` cannot honour."""
    supported = _ROUTE_SETTINGS[flavour]
    return [name for name in used if name not in supported]


def supports_feature(flavour: str, feature: str) -> bool:
    return feature in _FEATURES[flavour]


def why_unsupported(flavour: str) -> str:
    return _WHY_NOT.get(flavour, "the provider does not support it")
