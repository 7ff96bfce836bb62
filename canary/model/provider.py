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
    """A Gateway (or Service, for mesh routing) the route attaches to."""

    name: ObjectName
    namespace: ObjectName | None = None
    kind: str = "Gateway"
    group: str = "gateway.networking.k8s.io"
    section_name: Name | None = None

    def listener_overlaps(self, other: ParentRef) -> bool:
        """Both may attach to one listener: the same parent, and a section in common (no
        sectionName means every listener of the parent)."""
        same_parent = (self.group, self.kind, self.namespace, self.name) == (
            other.group,
            other.kind,
            other.namespace,
            other.name,
        )
        sections = {self.section_name, other.section_name}
        return same_parent and (None in sections or len(sections) == 1)


Hostname = Annotated[
    str,
    StringConstraints(
        min_length=1,
        max_length=253,
        pattern=r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
    ),
]
"""A Gateway API hostname: a DNS name, optionally with a leading '*.' label."""

MAX_ROUTES = 8
"""Routes of one Rollout: each is an object written, read and verified at every tick."""


class RouteKind(StrEnum):
    HTTP_ROUTE = "HTTPRoute"
    GRPC_ROUTE = "GRPCRoute"


class GatewayRoute(CamelModel):
    """One route canary writes for the service: an HTTPRoute or a GRPCRoute."""

    kind: RouteKind = Field(
        default=RouteKind.HTTP_ROUTE,
        description="HTTPRoute, or GRPCRoute for a gRPC service (matches on headers only).",
    )
    name: ObjectName | None = Field(
        default=None,
        description="Default: the target's name, which the gateway-api-envoy policy reads.",
    )
    parent_refs: list[ParentRef] | None = Field(
        default=None, min_length=1, max_length=32, description="Default: gatewayApi.parentRefs."
    )
    hostnames: list[Hostname] | None = Field(
        default=None, max_length=16, description="Default: gatewayApi.hostnames."
    )


class GatewayApiSettings(CamelModel):
    parent_refs: list[ParentRef] = Field(min_length=1, max_length=32)
    hostnames: list[Hostname] = Field(default_factory=list, max_length=16)
    routes: list[GatewayRoute] = Field(
        default_factory=list,
        max_length=MAX_ROUTES,
        description="The routes to weight; none given: one HTTPRoute named after the target.",
    )

    def route_list(self) -> list[GatewayRoute]:
        """The routes canary writes, in order (one HTTPRoute when none are listed)."""
        return list(self.routes) or [GatewayRoute()]

    def parents_of(self, route: GatewayRoute) -> list[ParentRef]:
        return list(route.parent_refs) if route.parent_refs is not None else list(self.parent_refs)

    def hostnames_of(self, route: GatewayRoute) -> list[str]:
        return list(route.hostnames) if route.hostnames is not None else list(self.hostnames)

    def kinds(self) -> set[RouteKind]:
        return {route.kind for route in self.route_list()}


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

    @property
    def flavours(self) -> list[str]:
        """Every flavour whose limits apply: the provider's, and 'gateway-api-grpc' when the
        Gateway API provider writes a GRPCRoute."""
        if self.gateway_api is not None and RouteKind.GRPC_ROUTE in self.gateway_api.kinds():
            return [self.flavour, "gateway-api-grpc"]
        return [self.flavour]


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
    "gateway-api-grpc": {"headers", "mirror"},
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
    "gateway-api-grpc": {"abTest", "mirrorToCanary"},
    "haproxy": {"abTest", "cookieMatch"},
}

_WHY_NOT = {
    "linkerd-smi": "an SMI TrafficSplit carries only backend weights",
    "linkerd": "Linkerd's HTTPRoute has no such field",
    "gateway-api": "the Gateway API standard channel has no such field",
    "gateway-api-grpc": "a GRPCRoute has no such field (gateway.networking.k8s.io/v1)",
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


def _hostnames_overlap(a: list[str], b: list[str]) -> bool:
    """Some request host could match both lists (an empty list matches every host)."""
    if not a or not b:
        return True
    return any(_host_overlap(x, y) for x in a for y in b)


def _host_overlap(a: str, b: str) -> bool:
    if a == b:
        return True
    for wild, other in ((a, b), (b, a)):
        if wild.startswith("*.") and other.endswith(wild[1:]):
            return True
    return False


def gateway_route_problems(
    settings: GatewayApiSettings, target: str
) -> list[tuple[tuple[str | int, ...], str]]:
    """Routes that would clash: two of one kind with one name, or an HTTPRoute and a GRPCRoute
    the Gateway would both be offered for one host on one listener (it accepts only the older:
    Gateway API, GRPCRoute hostnames)."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    where = ("provider", "gatewayApi", "routes")
    seen: dict[tuple[RouteKind, str], int] = {}
    routes = settings.route_list()
    for index, route in enumerate(routes):
        key = (route.kind, route.name or target)
        if key in seen:
            problems.append(
                (
                    (*where, index, "name"),
                    f"{route.kind.value} '{key[1]}' is already routes[{seen[key]}]: give each "
                    "route of one kind its own name (the default is the target's name)",
                )
            )
            continue
        seen[key] = index
        for earlier_index, earlier in enumerate(routes[:index]):
            if earlier.kind is route.kind or not _share_listener_and_host(settings, earlier, route):
                continue
            problems.append(
                (
                    (*where, index, "hostnames"),
                    f"this {route.kind.value} and the {earlier.kind.value} of "
                    f"routes[{earlier_index}] would attach to one listener for the same "
                    "hostnames, and a Gateway accepts only one of the two: give the GRPCRoute "
                    "its own 'hostnames' (e.g. grpc.example.com) or its own listener "
                    "('parentRefs' with a 'sectionName')",
                )
            )
    return problems


def _share_listener_and_host(
    settings: GatewayApiSettings, a: GatewayRoute, b: GatewayRoute
) -> bool:
    parents = any(
        x.listener_overlaps(y) for x in settings.parents_of(a) for y in settings.parents_of(b)
    )
    return parents and _hostnames_overlap(settings.hostnames_of(a), settings.hostnames_of(b))
