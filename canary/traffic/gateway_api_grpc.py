"""The Gateway API GRPCRoute: a gRPC service's split, in the shape of canary's HTTPRoute.

Rules, in order: the A/B rule (its matches are the A/B rules' header conditions, all of its
traffic goes to the canary), then the weighted rule, which has no matches (a GRPCRoute rule
without matches takes every call). In every rule backendRef 0 is the primary Service and
backendRef 1 the canary Service, each with the side-naming filter when the layout asks for it
(Envoy Gateway then makes one cluster per backendRef, ``grpcroute/<ns>/<route>/rule/<i>/
backend/<j>``, which the shipped `gateway-api-envoy` policy counts by gRPC status).

A GRPCRoute matches on the gRPC service and method and on headers; the A/B rules are header
rules, so only ``headers`` is written (no service or method: every call of the service).
It has no timeouts and no CORS filter: the model refuses those settings when a GRPCRoute is
among the routes, and this renderer says so too rather than dropping them.
"""

from __future__ import annotations

from canary.engine.actions import Route
from canary.model.rollout import Rollout
from canary.model.route import RouteSettings
from canary.traffic.httproute import (
    API_VERSION,
    Layout,
    backend_ref,
    header_match,
    mirror_filter,
    settings_filters,
)
from canary.traffic.objects import Json, Names, RenderError, metadata

KIND = "GRPCRoute"


def grpc_route(rollout: Rollout, route: Route, layout: Layout) -> Json:
    """The GRPCRoute that holds ``route``."""
    names = Names.of(rollout)
    filters = _settings_filters(rollout.spec.service.route)
    rules: list[Json] = []
    if route.match:
        rules.append(
            _rule(
                names,
                layout,
                filters,
                [{"headers": header_match(rule)["headers"]} for rule in route.match],
                canary_weight=100,
            )
        )
    weighted = list(filters)
    if route.mirror_percentage is not None:
        weighted.append(
            mirror_filter({"name": names.canary, "port": names.port}, route.mirror_percentage)
        )
    rules.append(_rule(names, layout, weighted, [], canary_weight=route.canary_weight))
    spec: Json = {"parentRefs": [dict(ref) for ref in layout.parent_refs]}
    if layout.hostnames:
        spec["hostnames"] = list(layout.hostnames)
    spec["rules"] = rules
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": metadata(rollout, layout.name or names.service, layout.annotations),
        "spec": spec,
    }


def _settings_filters(settings: RouteSettings) -> list[Json]:
    """The header edits and the service's mirror; what a GRPCRoute cannot hold is an error."""
    missing = [name for name in ("timeout", "cors") if getattr(settings, name) is not None]
    if settings.retries is not None:
        missing.append("retries")
    if missing:
        raise RenderError(
            f"a GRPCRoute cannot hold {', '.join(missing)} (gateway.networking.k8s.io/v1 has "
            "no such field): remove it from spec.service.route or route through an HTTPRoute"
        )
    return settings_filters(settings)


def _rule(
    names: Names, layout: Layout, filters: list[Json], matches: list[Json], *, canary_weight: int
) -> Json:
    rule: Json = {}
    if matches:
        rule["matches"] = matches
    rule["backendRefs"] = [
        backend_ref(names.primary, names.port, 100 - canary_weight, "primary", layout),
        backend_ref(names.canary, names.port, canary_weight, "canary", layout),
    ]
    if filters:
        rule["filters"] = [dict(item) for item in filters]
    return rule
