"""What each mesh renderer writes for each setting, what it refuses, and how drift reads back."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from canary.engine.actions import Route
from canary.model.rollout import Rollout
from canary.model.strategy import CookieMatch, MatchRule, StringMatch
from canary.traffic import istio, linkerd, mesh
from canary.traffic.objects import (
    RenderError,
    cookie_of,
    cookie_regex,
    gateway_duration,
    istio_duration,
    prefix_of,
    prefix_regex,
    single_unit_duration,
)
from canary.traffic.router import RouterError

Json = dict[str, Any]

GATEWAY = {
    "name": "gateway-api",
    "gatewayApi": {"parentRefs": [{"name": "public", "namespace": "gw"}], "hostnames": ["a.io"]},
}
AB = {"abTest": {"match": [{"headers": {"X-Canary": {"exact": "insider"}}}]}}


def rollout(
    provider: Json,
    route: Json | None = None,
    strategy: Json | None = None,
    metadata: Json | None = None,
) -> Rollout:
    return Rollout.model_validate(
        {
            "apiVersion": "canary.dev/v1alpha1",
            "kind": "Rollout",
            "metadata": metadata or {"name": "web", "namespace": "shop"},
            "spec": {
                "targetRef": {"name": "podinfo"},
                "service": {"port": 9898, "route": route or {}},
                "provider": provider,
                "strategy": strategy or {},
            },
        }
    )


def objects_by_kind(objects: list[Json]) -> dict[str, list[Json]]:
    out: dict[str, list[Json]] = {}
    for obj in objects:
        out.setdefault(obj["kind"], []).append(obj)
    return out


# --- formats ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "istio_text", "gateway_text", "linkerd_text"),
    [
        (10, "10s", "10s", "10s"),
        (90, "90s", "1m30s", "90s"),
        (0.25, "0.25s", "250ms", "250ms"),
        (2.5, "2.5s", "2s500ms", "2500ms"),
        (5400, "5400s", "1h30m", "90m"),
        (3600, "3600s", "1h", "1h"),
    ],
)
def test_durations_in_each_mesh_format(
    seconds: float, istio_text: str, gateway_text: str, linkerd_text: str
) -> None:
    assert istio_duration(seconds, "t") == istio_text
    assert gateway_duration(seconds, "t") == gateway_text
    assert single_unit_duration(seconds, "t") == linkerd_text


def test_durations_below_a_millisecond_are_refused() -> None:
    with pytest.raises(RenderError, match="at least 1ms"):
        istio_duration(0.0001, "timeout")
    with pytest.raises(RenderError, match="below one millisecond"):
        gateway_duration(0.0001, "timeout")


def test_cookie_regex_matches_the_cookie_anywhere_and_only_it() -> None:
    pattern = re.compile(cookie_regex(CookieMatch(name="canary", value="always")))
    for header in (
        "canary=always",
        "a=1; canary=always",
        "canary=always; b=2",
        "a=1;canary=always",
    ):
        assert pattern.fullmatch(header), header
    for header in ("xcanary=always", "canary=alwaysx", "canary=never", "a=canary=always"):
        assert not pattern.fullmatch(header), header
    assert cookie_of(pattern.pattern) == CookieMatch(name="canary", value="always")


def test_prefix_regex_escapes_what_regular_expressions_read() -> None:
    pattern = prefix_regex("v1.2(beta)*")
    assert re.fullmatch(pattern, "v1.2(beta)*-rc1")
    assert not re.fullmatch(pattern, "v1x2(beta)*")
    assert prefix_of(pattern) == "v1.2(beta)*"
    assert prefix_of("^foo|bar.*$") is None


# --- Istio --------------------------------------------------------------------------------------

FULL_ISTIO = {
    "timeout": "10s",
    "retries": {"attempts": 3, "perTryTimeout": "2500ms", "retryOn": ["5xx", "connect-failure"]},
    "cors": {"allowOrigins": ["*", "https://a.io"], "allowMethods": ["GET"], "maxAge": "1m"},
    "headers": {"request": {"set": {"x-env": "prod"}}, "response": {"remove": ["server"]}},
    "mirror": {"host": "shadow.testing", "port": 8080, "percentage": 10},
    "circuitBreaker": {
        "connectionPool": {"maxConnections": 100, "connectTimeout": "250ms", "http2MaxRequests": 9},
        "outlierDetection": {"consecutiveErrors": 7, "interval": "5s", "baseEjectionTime": "1m"},
    },
    "mtlsMode": "ISTIO_MUTUAL",
}


def test_istio_virtual_service_carries_weights_and_every_setting() -> None:
    r = rollout({"name": "istio", "istio": {"hosts": ["web.example.com"]}}, FULL_ISTIO, AB)
    objects = objects_by_kind(mesh.desired_objects(r, Route(canary_weight=30)))
    (vs,) = objects["VirtualService"]
    assert vs["metadata"]["name"] == "podinfo"
    assert vs["metadata"]["namespace"] == "shop"
    assert vs["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "canary",
        "canary.dev/rollout": "web",
    }
    assert vs["spec"]["hosts"] == ["podinfo", "web.example.com"]
    assert "gateways" not in vs["spec"]
    (http,) = vs["spec"]["http"]
    assert http["route"] == [
        {"destination": {"host": "podinfo-primary", "port": {"number": 9898}}, "weight": 70},
        {"destination": {"host": "podinfo-canary", "port": {"number": 9898}}, "weight": 30},
    ]
    assert http["timeout"] == "10s"
    assert http["retries"] == {
        "attempts": 3,
        "perTryTimeout": "2.5s",
        "retryOn": "5xx,connect-failure",
    }
    assert http["corsPolicy"] == {
        "allowOrigins": [{"regex": ".*"}, {"exact": "https://a.io"}],
        "allowMethods": ["GET"],
        "maxAge": "60s",
    }
    assert http["headers"] == {
        "request": {"set": {"x-env": "prod"}},
        "response": {"remove": ["server"]},
    }
    assert http["mirror"] == {"host": "shadow.testing", "port": {"number": 8080}}
    assert http["mirrorPercentage"] == {"value": 10.0}
    rules = {dr["metadata"]["name"]: dr["spec"] for dr in objects["DestinationRule"]}
    assert set(rules) == {"podinfo-primary", "podinfo-canary"}
    for host, spec in rules.items():
        assert spec["host"] == host
        assert spec["trafficPolicy"] == {
            "connectionPool": {
                "tcp": {"maxConnections": 100, "connectTimeout": "0.25s"},
                "http": {"http2MaxRequests": 9},
            },
            "outlierDetection": {
                "consecutive5xxErrors": 7,
                "interval": "5s",
                "baseEjectionTime": "60s",
                "maxEjectionPercent": 10,
            },
            "tls": {"mode": "ISTIO_MUTUAL"},
        }


def test_istio_ab_route_comes_first_with_lower_case_headers_and_cookie() -> None:
    strategy = {
        "abTest": {
            "match": [
                {"headers": {"X-Canary": {"exact": "insider"}, "x-user": {"prefix": "beta"}}},
                {"cookie": {"name": "canary", "value": "always"}},
            ]
        }
    }
    r = rollout({"name": "istio"}, {"timeout": "5s"}, strategy)
    assert r.spec.strategy.ab_test is not None
    rules = tuple(r.spec.strategy.ab_test.match)
    vs = mesh.desired_objects(r, Route(match=rules))[0]
    ab, default = vs["spec"]["http"]
    assert ab["name"] == istio.AB_ROUTE
    assert ab["match"] == [
        {"headers": {"x-canary": {"exact": "insider"}, "x-user": {"prefix": "beta"}}},
        {
            "headers": {
                "cookie": {"regex": cookie_regex(CookieMatch(name="canary", value="always"))}
            }
        },
    ]
    assert [d["weight"] for d in ab["route"]] == [0, 100]
    assert [d["weight"] for d in default["route"]] == [100, 0]
    assert ab["timeout"] == default["timeout"] == "5s"
    assert mesh.route_from_objects(r, [vs]) == Route(match=rules)


def test_istio_blue_green_mirror_beside_the_service_mirror_uses_mirrors() -> None:
    r = rollout(
        {"name": "istio", "istio": {"gateways": ["istio-system/public", "mesh"]}},
        {"mirror": {"host": "shadow", "percentage": 5}},
        {"blueGreen": {}, "mirror": {"percentage": 50}},
    )
    vs = mesh.desired_objects(r, Route(mirror_percentage=50))[0]
    assert vs["spec"]["gateways"] == ["istio-system/public", "mesh"]
    (http,) = vs["spec"]["http"]
    assert "mirror" not in http
    assert http["mirrors"] == [
        {"destination": {"host": "shadow"}, "percentage": {"value": 5.0}},
        {
            "destination": {"host": "podinfo-canary", "port": {"number": 9898}},
            "percentage": {"value": 50.0},
        },
    ]
    assert mesh.route_from_objects(r, [vs]) == Route(mirror_percentage=50)


def test_istio_without_settings_writes_bare_destination_rules() -> None:
    objects = mesh.desired_objects(rollout({"name": "istio"}), Route())
    assert [o["spec"] for o in objects if o["kind"] == "DestinationRule"] == [
        {"host": "podinfo-primary"},
        {"host": "podinfo-canary"},
    ]


def test_objects_are_owned_by_a_rollout_read_from_the_cluster() -> None:
    meta = {"name": "web", "uid": "1234-abcd"}  # no namespace: the default one
    obj = mesh.desired_objects(rollout({"name": "istio"}, metadata=meta), Route())[0]
    assert obj["metadata"]["namespace"] == "default"
    assert obj["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "canary.dev/v1alpha1",
            "kind": "Rollout",
            "name": "web",
            "uid": "1234-abcd",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


# --- Gateway API ----------------------------------------------------------------------------------


def test_gateway_http_route_for_envoy_gateway() -> None:
    settings = {
        "timeout": "10s",
        "cors": {"allowOrigins": ["https://a.io"], "allowMethods": ["get"], "maxAge": "1500ms"},
        "headers": {"request": {"set": {"x-env": "prod"}, "remove": ["x-debug"]}},
        "mirror": {"host": "shadow.testing", "port": 8080, "percentage": 12.5},
    }
    r = rollout(GATEWAY, settings, {"blueGreen": {}, "mirror": {"percentage": 40}})
    (hr,) = mesh.desired_objects(r, Route(mirror_percentage=40))
    assert hr["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert hr["metadata"]["name"] == "podinfo"
    spec = hr["spec"]
    assert spec["parentRefs"] == [
        {"name": "public", "namespace": "gw", "kind": "Gateway", "group": GROUP_GW}
    ]
    assert spec["hostnames"] == ["a.io"]
    (rule,) = spec["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]
    primary, canary = rule["backendRefs"]
    assert (primary["name"], primary["weight"], canary["name"], canary["weight"]) == (
        "podinfo-primary",
        100,
        "podinfo-canary",
        0,
    )
    for ref, side in ((primary, "primary"), (canary, "canary")):
        assert ref["port"] == 9898
        assert ref["filters"] == [
            {
                "type": "RequestHeaderModifier",
                "requestHeaderModifier": {"set": [{"name": "x-canary-backend", "value": side}]},
            }
        ]
    assert rule["timeouts"] == {"request": "10s"}
    filters = {f["type"]: f for f in rule["filters"][:2]}
    assert filters["RequestHeaderModifier"]["requestHeaderModifier"] == {
        "set": [{"name": "x-env", "value": "prod"}],
        "remove": ["x-debug"],
    }
    assert filters["CORS"]["cors"] == {
        "allowOrigins": ["https://a.io"],
        "allowMethods": ["GET"],
        "maxAge": 2,
    }
    own, to_canary = rule["filters"][2:]
    assert own["requestMirror"] == {
        "backendRef": {
            "group": "",
            "kind": "Service",
            "name": "shadow",
            "namespace": "testing",
            "port": 8080,
        },
        "fraction": {"numerator": 1, "denominator": 8},
    }
    assert to_canary["requestMirror"]["backendRef"]["name"] == "podinfo-canary"
    assert to_canary["requestMirror"]["percent"] == 40
    assert mesh.route_from_objects(r, [hr]) == Route(mirror_percentage=40)


GROUP_GW = "gateway.networking.k8s.io"


def test_gateway_ab_rule_matches_headers_and_prefix_by_expression() -> None:
    strategy = {
        "abTest": {
            "match": [
                {"headers": {"x-user": {"prefix": "beta."}, "x-canary": {"exact": "yes"}}},
                {"headers": {"user-agent": {"regex": ".*Firefox.*"}}},
            ]
        }
    }
    r = rollout(GATEWAY, {}, strategy)
    assert r.spec.strategy.ab_test is not None
    rules = tuple(r.spec.strategy.ab_test.match)
    (hr,) = mesh.desired_objects(r, Route(canary_weight=10, match=rules))
    ab, weighted = hr["spec"]["rules"]
    assert ab["matches"] == [
        {
            "path": {"type": "PathPrefix", "value": "/"},
            "headers": [
                {"name": "x-canary", "type": "Exact", "value": "yes"},
                {"name": "x-user", "type": "RegularExpression", "value": r"^beta\..*$"},
            ],
        },
        {
            "path": {"type": "PathPrefix", "value": "/"},
            "headers": [
                {"name": "user-agent", "type": "RegularExpression", "value": ".*Firefox.*"}
            ],
        },
    ]
    assert [b["weight"] for b in ab["backendRefs"]] == [0, 100]
    assert [b["weight"] for b in weighted["backendRefs"]] == [90, 10]
    assert mesh.route_from_objects(r, [hr]) == Route(canary_weight=10, match=rules)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"mirror": {"host": "shadow"}}, "mirror.port is required"),
        ({"mirror": {"host": "shadow.example.com", "port": 80}}, "mirrors to a Service"),
        ({"cors": {"allowOrigins": ["example.com"]}}, "scheme://host"),
        ({"cors": {"allowOrigins": ["*", "https://a.io"]}}, "stands alone"),
        ({"cors": {"allowOrigins": ["*"], "allowMethods": ["FETCH"]}}, "allowMethods"),
        ({"headers": {"request": {"set": {"x-a": ""}}}}, "needs a value"),
    ],
)
def test_gateway_refuses_what_an_http_route_cannot_hold(settings: Json, message: str) -> None:
    r = rollout(GATEWAY, settings)
    with pytest.raises(RenderError, match=message):
        mesh.desired_objects(r, Route())


def test_a_header_matched_twice_is_refused() -> None:
    rule = MatchRule(
        headers={"Cookie": StringMatch(exact="a=b")},
        cookie=CookieMatch(name="canary", value="always"),
    )
    with pytest.raises(RenderError, match="twice"):
        mesh.desired_objects(rollout(GATEWAY), Route(match=(rule,)))
    with pytest.raises(RenderError, match="cookie"):
        mesh.desired_objects(rollout({"name": "istio"}), Route(match=(rule,)))


# --- Linkerd --------------------------------------------------------------------------------------


def test_linkerd_http_route_on_the_service_with_retry_annotations() -> None:
    settings = {
        "timeout": "10s",
        "retries": {"attempts": 2, "perTryTimeout": "1500ms", "retryOn": ["5xx", "retriable-4xx"]},
        "headers": {"response": {"add": {"x-served-by": "mesh"}}},
        "circuitBreaker": {"outlierDetection": {"consecutiveErrors": 4, "baseEjectionTime": "30s"}},
    }
    r = rollout({"name": "linkerd"}, settings, AB)
    (hr,) = mesh.desired_objects(r, Route(canary_weight=25))
    assert hr["spec"]["parentRefs"] == [
        {"group": "", "kind": "Service", "name": "podinfo", "port": 9898}
    ]
    assert "hostnames" not in hr["spec"]
    assert hr["metadata"]["annotations"] == {
        "retry.linkerd.io/http": "5xx,409",
        "retry.linkerd.io/limit": "2",
        "retry.linkerd.io/timeout": "1500ms",
    }
    (rule,) = hr["spec"]["rules"]
    assert rule["timeouts"] == {"request": "10s"}  # the per-try timeout is the annotation
    assert all("filters" not in ref for ref in rule["backendRefs"])
    assert rule["filters"] == [
        {
            "type": "ResponseHeaderModifier",
            "responseHeaderModifier": {"add": [{"name": "x-served-by", "value": "mesh"}]},
        }
    ]
    assert linkerd.service_annotations(r) == {
        "balancer.linkerd.io/failure-accrual": "consecutive",
        "balancer.linkerd.io/failure-accrual-consecutive-max-failures": "4",
        "balancer.linkerd.io/failure-accrual-consecutive-min-penalty": "30s",
        "balancer.linkerd.io/failure-accrual-consecutive-max-penalty": "5m",
    }


def test_linkerd_retry_defaults_and_refusals() -> None:
    r = rollout({"name": "linkerd"}, {"retries": {"attempts": 1}})
    (hr,) = mesh.desired_objects(r, Route())
    assert hr["metadata"]["annotations"]["retry.linkerd.io/http"] == "gateway-error"
    r = rollout({"name": "linkerd"}, {"retries": {"attempts": 1, "retryOn": ["500-504", "429"]}})
    (hr,) = mesh.desired_objects(r, Route())
    assert hr["metadata"]["annotations"]["retry.linkerd.io/http"] == "500-504,429"
    r = rollout({"name": "linkerd"}, {"retries": {"attempts": 1, "retryOn": ["connect-failure"]}})
    with pytest.raises(RenderError, match="no Linkerd equivalent"):
        mesh.desired_objects(r, Route())


def test_linkerd_smi_traffic_split() -> None:
    r = rollout({"name": "linkerd", "linkerd": {"api": "smi"}})
    (split,) = mesh.desired_objects(r, Route(canary_weight=35))
    assert split["apiVersion"] == "split.smi-spec.io/v1alpha2"
    assert split["spec"] == {
        "service": "podinfo",
        "backends": [
            {"service": "podinfo-primary", "weight": 65},
            {"service": "podinfo-canary", "weight": 35},
        ],
    }
    assert mesh.route_from_objects(r, [split]) == Route(canary_weight=35)
    rule = MatchRule(headers={"x-a": StringMatch(exact="b")})
    with pytest.raises(RenderError, match="only backend weights"):
        mesh.desired_objects(r, Route(match=(rule,)))
    assert linkerd.service_annotations(r) == {}


def test_haproxy_writes_no_kubernetes_objects() -> None:
    r = rollout({"name": "haproxy", "haproxy": {}})
    with pytest.raises(RenderError, match="runtime API"):
        mesh.desired_objects(r, Route())


# --- reading back, drift --------------------------------------------------------------------------


def test_drift_in_weights_reads_back_as_another_route() -> None:
    r = rollout({"name": "istio"}, {"timeout": "5s"})
    objects = mesh.desired_objects(r, Route(canary_weight=20))
    live = copy.deepcopy(objects)
    live[0]["spec"]["http"][0]["route"][0]["weight"] = 100
    live[0]["spec"]["http"][0]["route"][1]["weight"] = 0
    assert mesh.route_from_objects(r, live) == Route()
    assert mesh.differences(objects[0], live[0]) == [
        ".spec.http[0].route[0].weight: 100 instead of 80",
        ".spec.http[0].route[1].weight: 0 instead of 20",
    ]


def test_a_removed_setting_is_drift_though_the_route_is_the_same() -> None:
    r = rollout(GATEWAY, {"timeout": "5s"})
    (desired,) = mesh.desired_objects(r, Route(canary_weight=20))
    live = copy.deepcopy(desired)
    del live["spec"]["rules"][0]["timeouts"]
    assert mesh.route_from_objects(r, [live]) == Route(canary_weight=20)
    assert mesh.differences(desired, live) == [".spec.rules[0].timeouts: missing"]


def test_an_ab_rule_pointed_back_at_the_primary_no_longer_counts() -> None:
    r = rollout(GATEWAY, {}, AB)
    assert r.spec.strategy.ab_test is not None
    route = Route(match=tuple(r.spec.strategy.ab_test.match))
    (live,) = mesh.desired_objects(r, route)
    live["spec"]["rules"][0]["backendRefs"][0]["weight"] = 100
    live["spec"]["rules"][0]["backendRefs"][1]["weight"] = 0
    assert mesh.route_from_objects(r, [live]) == Route()


def test_unreadable_or_missing_objects_are_router_errors() -> None:
    r = rollout({"name": "istio"})
    with pytest.raises(RouterError, match="no VirtualService 'podinfo'"):
        mesh.route_from_objects(r, [])
    (vs, *_) = mesh.desired_objects(r, Route())
    for item in vs["spec"]["http"][0]["route"]:
        item["weight"] = 0
    with pytest.raises(RouterError, match="weight 0"):
        mesh.route_from_objects(r, [vs])
    r = rollout(GATEWAY)
    with pytest.raises(RouterError, match="no HTTPRoute"):
        mesh.route_from_objects(r, [vs])


def test_foreign_match_rules_read_back_as_what_they_say() -> None:
    r = rollout(GATEWAY)
    rules = (
        MatchRule(headers={"x-a": StringMatch(prefix="b.")}),
        MatchRule(cookie=CookieMatch(name="c", value="d")),
    )
    objects = mesh.desired_objects(r, Route(match=rules))
    assert mesh.route_from_objects(r, objects) == Route(match=rules)
