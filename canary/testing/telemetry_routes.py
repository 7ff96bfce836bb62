"""The split a data plane makes of the route objects in the API server, read from their fields.

The simulated mesh (`canary.testing.telemetry`) routes its requests by a `Split`. A test of the
controller gives it this reading of the live route objects, so what the sidecars "do" follows
what the controller *wrote*, read the way the mesh reads it and independently of canary's own
parser (`canary.traffic`):

- Istio ``VirtualService``: the ``http`` routes in order; one with ``match`` conditions is an
  A/B route (the matching requests go where its destinations' weights say), the first without
  is the default route (its destinations' weights; ``mirror``/``mirrors`` to the canary with
  ``mirrorPercentage``, 100 when absent, as Istio does);
- Gateway API ``HTTPRoute`` (Linkerd, Envoy Gateway, any implementation): a rule whose
  ``matches`` test headers, query parameters or the method is an A/B rule, the first rule
  matching every request (no matches, or paths only) the weighted one; ``backendRefs``
  weights (1 when absent, as the Gateway API defaults it) and a ``RequestMirror`` filter to
  the canary (``percent``, ``fraction``, else 100);
- Gateway API ``GRPCRoute``: read as the HTTPRoute (a rule whose ``matches`` test headers or
  the method is an A/B rule; a rule without matches takes every call);
- SMI ``TrafficSplit``: its ``backends``' weights.

Backends are told apart by Service (host) name: the canary's and the primary's. With no route
object at all, Service ``<target>`` selects the primary: everything goes there. A route that
sends nothing to either side cannot be served: `ValueError` (the scrape then fails, as a mesh
would answer 503).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from canary.testing.telemetry import Split

Json = dict[str, Any]

ROUTE_KINDS = ("VirtualService", "HTTPRoute", "GRPCRoute", "TrafficSplit")


def split_of_objects(
    objects: Iterable[Json], *, canary: str, primary: str, matched_share: float = 0.1
) -> Split:
    """The split the route objects among ``objects`` make between Services ``canary`` and
    ``primary``; ``matched_share`` of requests match A/B rules when there are any."""
    routes = [o for o in objects if o.get("kind") in ROUTE_KINDS]
    if not routes:
        return Split()
    if len(routes) > 1:
        kinds = ", ".join(f"{o['kind']} {(o.get('metadata') or {}).get('name')}" for o in routes)
        raise ValueError(f"more than one route object for the service: {kinds}")
    route = routes[0]
    spec = route.get("spec") or {}
    sides = _Sides(canary, primary)
    if route["kind"] == "TrafficSplit":
        weights = [(b.get("service", ""), b.get("weight", 0)) for b in spec.get("backends") or []]
        return Split(canary_weight=sides.canary_percent(weights, "the TrafficSplit"))
    if route["kind"] == "VirtualService":
        return _virtual_service(spec, sides, matched_share)
    return _http_route(spec, sides, matched_share)


class _Sides:
    def __init__(self, canary: str, primary: str) -> None:
        self.canary = canary
        self.primary = primary

    def canary_percent(self, weights: list[tuple[str, Any]], where: str) -> float:
        """The canary's share, in percent, of what goes to either side."""
        to_canary = to_primary = 0.0
        for host, weight in weights:
            name = str(host).split(".")[0]
            if name == self.canary:
                to_canary += float(weight)
            elif name == self.primary:
                to_primary += float(weight)
        if to_canary + to_primary <= 0:
            raise ValueError(f"{where} sends no traffic to {self.primary} or {self.canary}")
        return 100.0 * to_canary / (to_canary + to_primary)

    def is_canary(self, host: Any) -> bool:
        return str(host or "").split(".")[0] == self.canary


def _split(weighted: float, ab: float | None, matched_share: float, mirror: float) -> Split:
    share = None if ab is None else matched_share * ab / 100.0
    return Split(canary_weight=weighted, matched_share=share, mirror_percent=mirror)


def _virtual_service(spec: Json, sides: _Sides, matched_share: float) -> Split:
    ab: float | None = None
    for index, http in enumerate(spec.get("http") or []):
        destinations = http.get("route") or []
        default = 100 if len(destinations) == 1 else 0
        weights = [
            ((d.get("destination") or {}).get("host", ""), d.get("weight", default))
            for d in destinations
        ]
        where = f"VirtualService http[{index}]"
        if http.get("match"):
            if ab is None:
                ab = sides.canary_percent(weights, where)
            continue
        mirror = 0.0
        single = http.get("mirror")
        if single and sides.is_canary(single.get("host")):
            mirror = float((http.get("mirrorPercentage") or {}).get("value", 100.0))
        for copy in http.get("mirrors") or []:
            if sides.is_canary((copy.get("destination") or {}).get("host")):
                mirror = float((copy.get("percentage") or {}).get("value", 100.0))
        return _split(sides.canary_percent(weights, where), ab, matched_share, mirror)
    raise ValueError("the VirtualService has no http route for every request")


_ANY_REQUEST_KEYS = {"path"}


def _http_route(spec: Json, sides: _Sides, matched_share: float) -> Split:
    ab: float | None = None
    for index, rule in enumerate(spec.get("rules") or []):
        weights = [(b.get("name", ""), b.get("weight", 1)) for b in rule.get("backendRefs") or []]
        where = f"HTTPRoute rules[{index}]"
        matches = rule.get("matches") or []
        if any(set(m) - _ANY_REQUEST_KEYS for m in matches):
            if ab is None:
                ab = sides.canary_percent(weights, where)
            continue
        mirror = 0.0
        for item in rule.get("filters") or []:
            settings = item.get("requestMirror") or {}
            if item.get("type") != "RequestMirror":
                continue
            if not sides.is_canary((settings.get("backendRef") or {}).get("name")):
                continue
            if "percent" in settings:
                mirror = float(settings["percent"])
            elif "fraction" in settings:
                fraction = settings["fraction"]
                mirror = 100.0 * fraction["numerator"] / fraction.get("denominator", 100)
            else:
                mirror = 100.0
        return _split(sides.canary_percent(weights, where), ab, matched_share, mirror)
    raise ValueError("the HTTPRoute has no rule for every request")
