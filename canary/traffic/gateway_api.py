"""Gateway API (any implementation, e.g. Envoy Gateway): an HTTPRoute on the provider's Gateways.

The HTTPRoute is named after the target and attaches to `provider.gatewayApi.parentRefs` for
`provider.gatewayApi.hostnames`. Each backendRef carries a RequestHeaderModifier filter that
sets ``x-canary-backend: primary|canary``: with a filter on a backendRef, Envoy Gateway makes
one Envoy cluster per backendRef (``httproute/<ns>/<route>/rule/<i>/backend/<j>``), which is
what the shipped `gateway-api-envoy` policy reads (primary = backend 0, canary = backend 1).
"""

from __future__ import annotations

from canary.engine.actions import Route
from canary.model.rollout import Rollout
from canary.traffic.httproute import Layout, http_route, route_from_http_route
from canary.traffic.objects import Json, RenderError


def layout(rollout: Rollout) -> Layout:
    settings = rollout.spec.provider.gateway_api
    if settings is None:
        raise RenderError("provider 'gateway-api' needs spec.provider.gatewayApi.parentRefs")
    return Layout(
        parent_refs=[ref.to_wire() for ref in settings.parent_refs],
        hostnames=list(settings.hostnames),
        backend_filters=True,
        backend_request_timeout=True,
    )


def desired_objects(rollout: Rollout, route: Route) -> list[Json]:
    """The HTTPRoute that holds ``route``."""
    return [http_route(rollout, route, layout(rollout))]


def route_from_objects(rollout: Rollout, objects: list[Json]) -> Route:
    """The Route the live HTTPRoute holds (RouterError when it is missing or unreadable)."""
    return route_from_http_route(rollout, objects)
