"""Istio: a VirtualService that splits the service's traffic, and DestinationRules for both sides.

The VirtualService ``<target>`` routes the host ``<target>`` (and the provider's extra hosts,
on the provider's gateways): first the A/B route (requests matching any rule go to the canary),
then the default route with the primary and canary weights (and, during blue/green, a mirror
of live traffic to the canary). Every http route carries the service's own timeout, retries,
CORS policy, header edits and mirror. The DestinationRules ``<target>-primary`` and
``<target>-canary`` carry the circuit breaker (connection pool, outlier detection) and the TLS
mode, so both sides are protected the same way.
"""

from __future__ import annotations

from typing import Any

from canary.engine.actions import Route
from canary.model.rollout import Rollout
from canary.model.route import HeaderEdits, RouteSettings
from canary.model.strategy import MatchRule, StringMatch
from canary.traffic.objects import (
    Json,
    Names,
    RenderError,
    cookie_of,
    cookie_regex,
    find_object,
    istio_duration,
    metadata,
    split_weight,
)
from canary.traffic.router import RouterError

GROUP = "networking.istio.io"
API_VERSION = f"{GROUP}/v1"
AB_ROUTE = "ab-test"
WEIGHTED_ROUTE = "weighted"


def desired_objects(rollout: Rollout, route: Route) -> list[Json]:
    """The VirtualService and the two DestinationRules that hold ``route``."""
    names = Names.of(rollout)
    return [
        virtual_service(rollout, route),
        destination_rule(rollout, names.primary),
        destination_rule(rollout, names.canary),
    ]


def virtual_service(rollout: Rollout, route: Route) -> Json:
    names = Names.of(rollout)
    istio = rollout.spec.provider.istio
    settings = rollout.spec.service.route
    http: list[Json] = []
    if route.match:
        http.append(
            {
                "name": AB_ROUTE,
                "match": [match_request(rule) for rule in route.match],
                "route": _destinations(names, 100),
                **_route_settings(settings),
            }
        )
    weighted: Json = {
        "name": WEIGHTED_ROUTE,
        "route": _destinations(names, route.canary_weight),
        **_route_settings(settings),
    }
    if route.mirror_percentage is not None:
        canary = {"host": names.canary, "port": {"number": names.port}}
        _add_mirror(weighted, canary, route.mirror_percentage)
    http.append(weighted)
    spec: Json = {"hosts": [names.service, *(istio.hosts if istio else [])]}
    if istio and istio.gateways:
        spec["gateways"] = list(istio.gateways)
    spec["http"] = http
    return {
        "apiVersion": API_VERSION,
        "kind": "VirtualService",
        "metadata": metadata(rollout, names.service),
        "spec": spec,
    }


def destination_rule(rollout: Rollout, host: str) -> Json:
    spec: Json = {"host": host}
    policy = traffic_policy(rollout.spec.service.route)
    if policy:
        spec["trafficPolicy"] = policy
    return {
        "apiVersion": API_VERSION,
        "kind": "DestinationRule",
        "metadata": metadata(rollout, host),
        "spec": spec,
    }


def traffic_policy(settings: RouteSettings) -> Json:
    """Connection pool, outlier detection and TLS mode of a DestinationRule."""
    policy: Json = {}
    breaker = settings.circuit_breaker
    pool = breaker.connection_pool if breaker else None
    if pool is not None:
        tcp: Json = {}
        if pool.max_connections is not None:
            tcp["maxConnections"] = pool.max_connections
        if pool.connect_timeout is not None:
            tcp["connectTimeout"] = istio_duration(pool.connect_timeout, "connectTimeout")
        http: Json = {}
        if pool.http1_max_pending_requests is not None:
            http["http1MaxPendingRequests"] = pool.http1_max_pending_requests
        if pool.http2_max_requests is not None:
            http["http2MaxRequests"] = pool.http2_max_requests
        if pool.max_requests_per_connection is not None:
            http["maxRequestsPerConnection"] = pool.max_requests_per_connection
        connection_pool = {k: v for k, v in (("tcp", tcp), ("http", http)) if v}
        if connection_pool:
            policy["connectionPool"] = connection_pool
    outlier = breaker.outlier_detection if breaker else None
    if outlier is not None:
        policy["outlierDetection"] = {
            "consecutive5xxErrors": outlier.consecutive_errors,
            "interval": istio_duration(outlier.interval, "outlierDetection.interval"),
            "baseEjectionTime": istio_duration(
                outlier.base_ejection_time, "outlierDetection.baseEjectionTime"
            ),
            "maxEjectionPercent": outlier.max_ejection_percent,
        }
    if settings.mtls_mode is not None:
        policy["tls"] = {"mode": settings.mtls_mode.value}
    return policy


def match_request(rule: MatchRule) -> Json:
    """One HTTPMatchRequest: all of the rule's headers (and its cookie) must match."""
    headers: dict[str, Json] = {}
    for name, match in sorted(rule.headers.items()):
        key = name.lower()  # Istio matches lower-case header names
        if key in headers:
            raise RenderError(f"header {name!r} is matched twice (header names ignore case)")
        headers[key] = _string_match(match)
    if rule.cookie is not None:
        if "cookie" in headers:
            raise RenderError(
                "a rule matches both the 'cookie' header and a cookie: match the cookie only"
            )
        headers["cookie"] = {"regex": cookie_regex(rule.cookie)}
    return {"headers": headers}


def _string_match(match: StringMatch) -> Json:
    if match.exact is not None:
        return {"exact": match.exact}
    if match.prefix is not None:
        return {"prefix": match.prefix}
    return {"regex": match.regex}


def _destinations(names: Names, canary_weight: int) -> list[Json]:
    port = {"number": names.port}
    return [
        {"destination": {"host": names.primary, "port": port}, "weight": 100 - canary_weight},
        {"destination": {"host": names.canary, "port": dict(port)}, "weight": canary_weight},
    ]


def _route_settings(settings: RouteSettings) -> Json:
    """The service's own settings, the same on every http route."""
    out: Json = {}
    if settings.timeout is not None:
        out["timeout"] = istio_duration(settings.timeout, "timeout")
    retries = settings.retries
    if retries is not None:
        out["retries"] = {"attempts": retries.attempts}
        if retries.per_try_timeout is not None:
            out["retries"]["perTryTimeout"] = istio_duration(
                retries.per_try_timeout, "retries.perTryTimeout"
            )
        if retries.retry_on:
            out["retries"]["retryOn"] = ",".join(retries.retry_on)
    cors = settings.cors
    if cors is not None:
        policy: Json = {
            "allowOrigins": [
                {"regex": ".*"} if origin == "*" else {"exact": origin}
                for origin in cors.allow_origins
            ]
        }
        for key, values in (
            ("allowMethods", cors.allow_methods),
            ("allowHeaders", cors.allow_headers),
            ("exposeHeaders", cors.expose_headers),
        ):
            if values:
                policy[key] = list(values)
        if cors.max_age is not None:
            policy["maxAge"] = istio_duration(cors.max_age, "cors.maxAge")
        if cors.allow_credentials:
            policy["allowCredentials"] = True
        out["corsPolicy"] = policy
    if settings.headers is not None:
        headers = {
            side: _header_edits(edits)
            for side, edits in (
                ("request", settings.headers.request),
                ("response", settings.headers.response),
            )
            if not edits.is_empty()
        }
        if headers:
            out["headers"] = headers
    if settings.mirror is not None:
        target: Json = {"host": settings.mirror.host}
        if settings.mirror.port is not None:
            target["port"] = {"number": settings.mirror.port}
        _add_mirror(out, target, settings.mirror.percentage)
    return out


def _header_edits(edits: HeaderEdits) -> Json:
    out: Json = {}
    if edits.set:
        out["set"] = dict(edits.set)
    if edits.add:
        out["add"] = dict(edits.add)
    if edits.remove:
        out["remove"] = list(edits.remove)
    return out


def _add_mirror(http_route: Json, destination: Json, percentage: float) -> None:
    """One mirror as `mirror` + `mirrorPercentage`; a second one turns both into `mirrors`."""
    if "mirror" in http_route:
        # Istio refuses `mirror` beside `mirrors`: two mirrors (the service's own and the
        # canary) are both written as `mirrors` (Istio 1.22 and later).
        first = {"destination": http_route.pop("mirror")}
        first["percentage"] = http_route.pop("mirrorPercentage")
        http_route["mirrors"] = [
            first,
            {"destination": destination, "percentage": {"value": percentage}},
        ]
        return
    http_route["mirror"] = destination
    http_route["mirrorPercentage"] = {"value": percentage}


# --- reading a Route back from the live VirtualService --------------------------------------


def route_from_objects(rollout: Rollout, objects: list[Json]) -> Route:
    """The Route the live VirtualService holds (RouterError when it is missing or unreadable)."""
    names = Names.of(rollout)
    service = find_object(objects, GROUP, "VirtualService", names.service)
    http = service.get("spec", {}).get("http") or []
    default = next((r for r in http if not r.get("match")), None)
    if default is None:
        raise RouterError(f"VirtualService '{names.service}' has no default (unmatched) route")
    weight = _canary_weight(default.get("route") or [], names)
    matched: list[Json] = []
    for http_route in http:
        if http_route.get("match") and _canary_weight(http_route.get("route") or [], names) == 100:
            matched.extend(http_route["match"])
    return Route(
        canary_weight=weight,
        match=_rules_from(rollout, matched),
        mirror_percentage=_mirror_to(default, names.canary),
    )


def _canary_weight(destinations: list[Json], names: Names) -> int:
    weights = {names.primary: 0.0, names.canary: 0.0}
    for item in destinations:
        host = item.get("destination", {}).get("host")
        if host in weights:
            # Istio: a lone destination without a weight takes all the traffic.
            weights[host] += item.get("weight", 100 if len(destinations) == 1 else 0)
    return split_weight(weights[names.primary], weights[names.canary])


def _mirror_to(http_route: Json, host: str) -> float | None:
    mirrors = [{"destination": http_route["mirror"]}] if "mirror" in http_route else []
    if mirrors and "mirrorPercentage" in http_route:
        mirrors[0]["percentage"] = http_route["mirrorPercentage"]
    mirrors += http_route.get("mirrors") or []
    for mirror in mirrors:
        if mirror.get("destination", {}).get("host") == host:
            return float(mirror.get("percentage", {}).get("value", 100.0))
    return None


def _rules_from(rollout: Rollout, matched: list[Json]) -> tuple[MatchRule, ...]:
    """The rollout's own A/B rules when the live matches are theirs, else what they say."""
    if not matched:
        return ()
    ab = rollout.spec.strategy.ab_test
    if ab is not None and [match_request(rule) for rule in ab.match] == [
        {"headers": m.get("headers", {})} for m in matched
    ]:
        return tuple(ab.match)
    return tuple(_rule_from(m) for m in matched)


def _rule_from(match: Json) -> MatchRule:
    headers: dict[str, StringMatch] = {}
    cookie = None
    for name, condition in (match.get("headers") or {}).items():
        if name == "cookie" and "regex" in condition:
            cookie = cookie_of(condition["regex"])
            if cookie is not None:
                continue
        headers[name] = StringMatch(**_only_string_match(condition))
    extra = set(match) - {"headers"}
    if extra or (not headers and cookie is None):
        raise RouterError(
            f"the A/B route matches on {sorted(extra) or 'nothing'}, which canary never writes"
        )
    return MatchRule(headers=headers, cookie=cookie)


def _only_string_match(condition: Any) -> dict[str, str]:
    if not isinstance(condition, dict) or len(condition) != 1:
        raise RouterError(f"unreadable header condition {condition!r} in the A/B route")
    return {str(k): str(v) for k, v in condition.items()}
