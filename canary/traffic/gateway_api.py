"""Gateway API (any implementation, e.g. Envoy Gateway): HTTPRoutes and GRPCRoutes on the
provider's Gateways.

`provider.gatewayApi.routes` lists the routes (none: one HTTPRoute); each is named after the
target unless it names itself, and attaches to its own `parentRefs`/`hostnames` or else the
provider's. Every route holds the same Route: the same weights, A/B rules and mirror. Each
backendRef carries a RequestHeaderModifier filter that sets ``x-canary-backend:
primary|canary``: with a filter on a backendRef, Envoy Gateway makes one Envoy cluster per
backendRef (``httproute/<ns>/<route>/rule/<i>/backend/<j>``, ``grpcroute/...`` for a
GRPCRoute), which is what the shipped `gateway-api-envoy` policy reads (primary = backend 0,
canary = backend 1).
"""

from __future__ import annotations

from canary.engine.actions import Route
from canary.engine.routes import STABLE
from canary.model.provider import GatewayApiSettings, GatewayRoute, RouteKind
from canary.model.rollout import Rollout
from canary.traffic.gateway_api_grpc import grpc_route
from canary.traffic.httproute import GROUP, Layout, http_route, route_from_http_route
from canary.traffic.objects import MANAGED_BY, ROLLOUT_LABEL, Json, Names, RenderError
from canary.traffic.router import RouterError


def settings_of(rollout: Rollout) -> GatewayApiSettings:
    settings = rollout.spec.provider.gateway_api
    if settings is None:
        raise RenderError("provider 'gateway-api' needs spec.provider.gatewayApi.parentRefs")
    return settings


def layout(rollout: Rollout, route: GatewayRoute | None = None) -> Layout:
    """How ``route`` (default: the first listed) is laid out."""
    settings = settings_of(rollout)
    route = route or settings.route_list()[0]
    return Layout(
        parent_refs=[ref.to_wire() for ref in settings.parents_of(route)],
        hostnames=settings.hostnames_of(route),
        name=route.name,
        backend_filters=True,
        backend_request_timeout=True,
    )


def desired_objects(rollout: Rollout, route: Route) -> list[Json]:
    """The HTTPRoutes and GRPCRoutes that hold ``route``, in the order they are listed."""
    out: list[Json] = []
    for listed in settings_of(rollout).route_list():
        if listed.kind is RouteKind.GRPC_ROUTE:
            out.append(grpc_route(rollout, route, layout(rollout, listed)))
        else:
            out.append(http_route(rollout, route, layout(rollout, listed)))
    return out


def route_from_objects(rollout: Rollout, objects: list[Json]) -> Route:
    """The Route every listed route holds; RouterError when one is missing or unreadable, or
    when they disagree (a hand edit to one of them: apply the desired objects again)."""
    target = Names.of(rollout).service
    held: list[tuple[str, Route]] = []
    for listed in settings_of(rollout).route_list():
        name = listed.name or target
        found = route_from_http_route(rollout, objects, kind=listed.kind.value, name=name)
        held.append((f"{listed.kind.value} '{name}'", found))
    first = held[0][1]
    if any(other != first for _, other in held[1:]):
        says = "; ".join(
            f"{where} holds {route.model_dump(exclude_defaults=True)}" for where, route in held
        )
        raise RouterError(f"the routes disagree: {says}")
    return first


ROUTE_KINDS = tuple(kind.value for kind in RouteKind)
"""The Gateway API route kinds this provider writes (each in `GROUP`, any version)."""


def stale_routes(rollout: Rollout, objects: list[Json]) -> list[Json]:
    """The routes among ``objects`` that canary wrote for this rollout (its labels, in its
    namespace) and that the rollout no longer lists (a route removed from or renamed in
    `provider.gatewayApi.routes`): left alone they would keep the split they last held, the
    canary's share too after the canary is scaled down, so the controller deletes them. Nothing
    for another provider (its objects do not change with the spec)."""
    if rollout.spec.provider.gateway_api is None or not objects:
        return []
    names = Names.of(rollout)
    wanted = {(obj["kind"], obj["metadata"]["name"]) for obj in desired_objects(rollout, STABLE)}
    stale: list[Json] = []
    for obj in objects:
        meta = obj.get("metadata") or {}
        labels = meta.get("labels") or {}
        if (
            str(obj.get("apiVersion", "")).rpartition("/")[0] == GROUP
            and obj.get("kind") in ROUTE_KINDS
            and meta.get("namespace") == names.namespace
            and labels.get(MANAGED_BY) == "canary"
            and labels.get(ROLLOUT_LABEL) == rollout.metadata.name
            and (obj["kind"], meta.get("name")) not in wanted
        ):
            stale.append(obj)
    return stale
