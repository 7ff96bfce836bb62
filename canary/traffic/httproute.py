"""The Gateway API HTTPRoute both the Gateway API and the Linkerd renderers write.

Rules, in order: the A/B rule (its matches are the A/B rules, all of its traffic goes to the
canary), then the weighted rule. Each rule lists the primary Service as backendRef 0 and the
canary Service as backendRef 1 (the shipped Envoy Gateway policy counts on that), and carries
the service's own settings: the request timeout, header modifiers, CORS and its mirror.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from canary.engine.actions import Route
from canary.model.rollout import Rollout
from canary.model.route import Cors, HeaderEdits, Mirror, RouteSettings
from canary.model.strategy import MatchRule, StringMatch
from canary.traffic.objects import (
    Json,
    Names,
    RenderError,
    cookie_of,
    cookie_regex,
    find_object,
    fraction_of,
    gateway_duration,
    metadata,
    percent_of,
    prefix_of,
    prefix_regex,
    split_weight,
)
from canary.traffic.router import RouterError

GROUP = "gateway.networking.k8s.io"
API_VERSION = f"{GROUP}/v1"
BACKEND_HEADER = "x-canary-backend"
"""Set on requests by each backendRef's filter, naming the side (Envoy Gateway convention)."""

_ROOT = {"type": "PathPrefix", "value": "/"}
_ORIGIN = re.compile(
    r"(^\*$)|(^(http(s)?):\/\/(((\*\.)?([a-zA-Z0-9\-]+\.)*[a-zA-Z0-9-]+|\*)(:([0-9]{1,5}))?)$)"
)
_TOKEN = re.compile(r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$")
_METHODS = {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "*"}
_MAX_MODIFIERS = 16


@dataclass(frozen=True)
class Layout:
    """How one provider wants its HTTPRoute."""

    parent_refs: list[Json]
    hostnames: list[str] = field(default_factory=list)
    name: str | None = None
    """The route's name (default: the target's)."""
    backend_filters: bool = False
    """Give each backendRef a filter (Envoy Gateway then makes a cluster per backendRef)."""
    backend_request_timeout: bool = True
    """Write retries.perTryTimeout as timeouts.backendRequest."""
    annotations: dict[str, str] = field(default_factory=dict)


def http_route(rollout: Rollout, route: Route, layout: Layout) -> Json:
    names = Names.of(rollout)
    settings = rollout.spec.service.route
    rules: list[Json] = []
    if route.match:
        rules.append(
            _rule(
                names,
                settings,
                layout,
                [header_match(rule) for rule in route.match],
                canary_weight=100,
                mirror=None,
            )
        )
    rules.append(
        _rule(
            names,
            settings,
            layout,
            [{"path": dict(_ROOT)}],
            canary_weight=route.canary_weight,
            mirror=route.mirror_percentage,
        )
    )
    spec: Json = {"parentRefs": [dict(ref) for ref in layout.parent_refs]}
    if layout.hostnames:
        spec["hostnames"] = list(layout.hostnames)
    spec["rules"] = rules
    return {
        "apiVersion": API_VERSION,
        "kind": "HTTPRoute",
        "metadata": metadata(rollout, layout.name or names.service, layout.annotations),
        "spec": spec,
    }


def header_match(rule: MatchRule) -> Json:
    """One HTTPRouteMatch: every header (and the cookie) of the rule, on any path."""
    headers: list[Json] = []
    for name, match in sorted(rule.headers.items()):
        headers.append({"name": name, **_header_condition(match)})
    if rule.cookie is not None:
        headers.append(
            {"name": "cookie", "type": "RegularExpression", "value": cookie_regex(rule.cookie)}
        )
    seen = [h["name"].lower() for h in headers]
    if len(set(seen)) != len(seen):
        raise RenderError(
            f"a rule matches the same header twice ({', '.join(sorted(seen))}; names ignore "
            "case, and a cookie is matched on the 'cookie' header)"
        )
    return {"path": dict(_ROOT), "headers": headers}


def _header_condition(match: StringMatch) -> Json:
    if match.exact is not None:
        # The HTTPRoute cannot hold an empty value: an empty header is matched by expression.
        if match.exact:
            return {"type": "Exact", "value": match.exact}
        return {"type": "RegularExpression", "value": "^$"}
    if match.prefix is not None:
        return {"type": "RegularExpression", "value": prefix_regex(match.prefix)}
    return {"type": "RegularExpression", "value": match.regex}


def _rule(
    names: Names,
    settings: RouteSettings,
    layout: Layout,
    matches: list[Json],
    *,
    canary_weight: int,
    mirror: float | None,
) -> Json:
    rule: Json = {
        "matches": matches,
        "backendRefs": [
            backend_ref(names.primary, names.port, 100 - canary_weight, "primary", layout),
            backend_ref(names.canary, names.port, canary_weight, "canary", layout),
        ],
    }
    filters = settings_filters(settings)
    if mirror is not None:
        filters.append(mirror_filter({"name": names.canary, "port": names.port}, mirror))
    if filters:
        rule["filters"] = filters
    timeouts: Json = {}
    if settings.timeout is not None:
        timeouts["request"] = gateway_duration(settings.timeout, "timeout")
    per_try = settings.retries.per_try_timeout if settings.retries else None
    if layout.backend_request_timeout and per_try is not None:
        timeouts["backendRequest"] = gateway_duration(per_try, "retries.perTryTimeout")
    if timeouts:
        rule["timeouts"] = timeouts
    return rule


def backend_ref(name: str, port: int, weight: int, side: str, layout: Layout) -> Json:
    ref: Json = {"group": "", "kind": "Service", "name": name, "port": port, "weight": weight}
    if layout.backend_filters:
        ref["filters"] = [
            {
                "type": "RequestHeaderModifier",
                "requestHeaderModifier": {"set": [{"name": BACKEND_HEADER, "value": side}]},
            }
        ]
    return ref


def settings_filters(settings: RouteSettings) -> list[Json]:
    """The service's header edits, CORS and mirror as HTTPRoute filters."""
    filters: list[Json] = []
    if settings.headers is not None:
        for kind, key, edits in (
            ("RequestHeaderModifier", "requestHeaderModifier", settings.headers.request),
            ("ResponseHeaderModifier", "responseHeaderModifier", settings.headers.response),
        ):
            if not edits.is_empty():
                filters.append({"type": kind, key: _modifier(edits, key)})
    if settings.cors is not None:
        filters.append({"type": "CORS", "cors": _cors(settings.cors)})
    if settings.mirror is not None:
        filters.append(mirror_filter(_mirror_ref(settings.mirror), settings.mirror.percentage))
    return filters


def _modifier(edits: HeaderEdits, where: str) -> Json:
    out: Json = {}
    for key, values in (("set", edits.set), ("add", edits.add)):
        if values:
            for name, value in values.items():
                if not value:
                    raise RenderError(
                        f"{where}: header {name!r} needs a value: an HTTPRoute cannot {key} an "
                        "empty header (remove it instead)"
                    )
            out[key] = [{"name": n, "value": v} for n, v in sorted(values.items())]
    if edits.remove:
        out["remove"] = list(edits.remove)
    if any(len(v) > _MAX_MODIFIERS for v in out.values()):
        raise RenderError(f"{where}: an HTTPRoute takes at most 16 headers to set, add or remove")
    return out


def _cors(cors: Cors) -> Json:
    bad = [o for o in cors.allow_origins if not _ORIGIN.match(o)]
    if bad:
        raise RenderError(
            f"cors.allowOrigins {bad}: the HTTPRoute takes '*' or scheme://host[:port] origins"
        )
    methods = [m.upper() for m in cors.allow_methods]
    if not set(methods) <= _METHODS:
        raise RenderError(
            f"cors.allowMethods {sorted(set(methods) - _METHODS)}: the HTTPRoute takes "
            f"{', '.join(sorted(_METHODS))}"
        )
    for key, values in (
        ("allowOrigins", cors.allow_origins),
        ("allowMethods", methods),
        ("allowHeaders", cors.allow_headers),
    ):
        if "*" in values and len(values) > 1:
            raise RenderError(f"cors.{key}: '*' stands alone, it cannot sit beside other values")
    bad = [h for h in cors.allow_headers + cors.expose_headers if not _TOKEN.match(h)]
    if bad:
        raise RenderError(f"cors headers {bad} are not header names")
    out: Json = {"allowOrigins": list(cors.allow_origins)}
    if methods:
        out["allowMethods"] = methods
    if cors.allow_headers:
        out["allowHeaders"] = list(cors.allow_headers)
    if cors.expose_headers:
        out["exposeHeaders"] = list(cors.expose_headers)
    if cors.max_age is not None:
        out["maxAge"] = max(1, math.ceil(cors.max_age))
    if cors.allow_credentials:
        out["allowCredentials"] = True
    return out


def _mirror_ref(mirror: Mirror) -> Json:
    """The Service a host names: 'svc', 'svc.ns' or 'svc.ns.svc[.cluster.local]'."""
    parts = mirror.host.split(".")
    if len(parts) > 2 and parts[2] != "svc":
        raise RenderError(
            f"mirror.host {mirror.host!r}: an HTTPRoute mirrors to a Service; write "
            "<service> or <service>.<namespace>"
        )
    if mirror.port is None:
        raise RenderError("mirror.port is required: an HTTPRoute mirror names the Service port")
    ref: Json = {"name": parts[0], "port": mirror.port}
    if len(parts) > 1:
        ref["namespace"] = parts[1]
    return ref


def mirror_filter(backend: Json, percentage: float) -> Json:
    mirror: Json = {"backendRef": {"group": "", "kind": "Service", **backend}}
    if percentage == int(percentage):
        mirror["percent"] = int(percentage)
    else:
        numerator, denominator = fraction_of(percentage)
        mirror["fraction"] = {"numerator": numerator, "denominator": denominator}
    return {"type": "RequestMirror", "requestMirror": mirror}


# --- reading a Route back from the live HTTPRoute ----------------------------------------------


def route_from_http_route(
    rollout: Rollout, objects: list[Json], *, kind: str = "HTTPRoute", name: str | None = None
) -> Route:
    """The Route the live HTTPRoute (or a GRPCRoute: ``kind``, whose rules canary writes in
    the same shape) named ``name`` (default: the target's) holds; RouterError when it is
    missing or unreadable."""
    names = Names.of(rollout)
    name = name or names.service
    obj = find_object(objects, GROUP, kind, name)
    rules = obj.get("spec", {}).get("rules") or []
    default = next((r for r in rules if not _header_matches(r)), None)
    if default is None:
        raise RouterError(f"{kind} '{name}' has no rule without header matches")
    matched: list[Json] = []
    for rule in rules:
        if _header_matches(rule) and _canary_weight(rule, names) == 100:
            matched.extend(rule["matches"])
    return Route(
        canary_weight=_canary_weight(default, names),
        match=_rules_from(rollout, matched),
        mirror_percentage=_mirror_to(default, names.canary),
    )


def _header_matches(rule: Json) -> bool:
    return any(m.get("headers") for m in rule.get("matches") or [])


def _canary_weight(rule: Json, names: Names) -> int:
    weights = {names.primary: 0.0, names.canary: 0.0}
    for ref in rule.get("backendRefs") or []:
        if ref.get("name") in weights and ref.get("kind", "Service") == "Service":
            weights[ref["name"]] += ref.get("weight", 1)
    return split_weight(weights[names.primary], weights[names.canary])


def _mirror_to(rule: Json, service: str) -> float | None:
    for item in rule.get("filters") or []:
        mirror = item.get("requestMirror") or {}
        if item.get("type") == "RequestMirror" and mirror.get("backendRef", {}).get("name") == (
            service
        ):
            if "fraction" in mirror:
                fraction = mirror["fraction"]
                return percent_of(fraction["numerator"], fraction.get("denominator", 100))
            return float(mirror.get("percent", 100))
    return None


def _headers_of(match: Json) -> list[tuple[str, str, str]]:
    return [(h["name"], h.get("type", "Exact"), h["value"]) for h in match.get("headers") or []]


def _rules_from(rollout: Rollout, matched: list[Json]) -> tuple[MatchRule, ...]:
    """The rollout's own A/B rules when the live matches are theirs, else what they say."""
    if not matched:
        return ()
    ab = rollout.spec.strategy.ab_test
    live = [_headers_of(m) for m in matched]
    if ab is not None and [_headers_of(header_match(r)) for r in ab.match] == live:
        return tuple(ab.match)
    return tuple(_rule_from(headers) for headers in live)


def _rule_from(headers: list[tuple[str, str, str]]) -> MatchRule:
    conditions: dict[str, StringMatch] = {}
    cookie = None
    for name, kind, value in headers:
        if kind == "Exact":
            conditions[name] = StringMatch(exact=value)
            continue
        if name.lower() == "cookie" and (found := cookie_of(value)) is not None:
            cookie = found
            continue
        prefix = prefix_of(value)
        conditions[name] = (
            StringMatch(prefix=prefix) if prefix is not None else StringMatch(regex=value)
        )
    return MatchRule(headers=conditions, cookie=cookie)
