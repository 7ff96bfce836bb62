"""GRPCRoute support in the Gateway API router: the `gatewayApi.routes` field and its errors,
the GRPCRoute checked against the real CRD schema (tests/data/mesh-crds) over strategies,
settings and every route the engine asks for, and read back; `canary validate` and `canary
render` on examples/podinfo-grpc.yaml; the shipped gateway-api-envoy policy's reading of the
clusters Envoy Gateway makes of it. On the test API server: test_gateway_api_grpc_router.py."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError
from test_mesh_schemas import crd_errors, engine_routes, schema_for, with_defaults

from canary.analysis.policies import builtin_policy, rollout_variables
from canary.engine.actions import Route
from canary.engine.routes import STABLE
from canary.model.rollout import Rollout
from canary.traffic import mesh
from canary.traffic.router import RouterError

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "tests" / "data" / "mesh-crds"
Json = dict[str, Any]
GRPC = ("gateway.networking.k8s.io/v1", "GRPCRoute")
HTTP = ("gateway.networking.k8s.io/v1", "HTTPRoute")
PUBLIC = {"name": "public", "namespace": "gateway-system"}


def rollout_of(gateway_api: Json, strategy: Json | None = None, **route_settings: Any) -> Rollout:
    return Rollout.model_validate(
        {
            "metadata": {"name": "greeter", "namespace": "test"},
            "spec": {
                "targetRef": {"name": "greeter"},
                "service": {"port": 9000, "portName": "grpc", "route": route_settings},
                "provider": {"name": "gateway-api", "gatewayApi": gateway_api},
                "strategy": strategy or {},
            },
        }
    )


def grpc_only(**extra: Any) -> Json:
    route = {"kind": "GRPCRoute", **extra}
    return {"parentRefs": [PUBLIC], "hostnames": ["grpc.example.com"], "routes": [route]}


BOTH = {
    "parentRefs": [PUBLIC],
    "hostnames": ["api.example.com"],
    "routes": [
        {"kind": "HTTPRoute"},
        {"kind": "GRPCRoute", "hostnames": ["grpc.example.com"]},
    ],
}


def backend_weights(obj: Json) -> list[list[int]]:
    return [[ref["weight"] for ref in rule["backendRefs"]] for rule in obj["spec"]["rules"]]


def errors_of(exc: ValidationError) -> dict[str, str]:
    return {".".join(map(str, e["loc"])): e["msg"] for e in exc.errors()}


# --- the field -------------------------------------------------------------------------------


def test_without_routes_the_provider_writes_one_httproute_named_after_the_target() -> None:
    rollout = rollout_of({"parentRefs": [PUBLIC]})
    (obj,) = mesh.desired_objects(rollout, Route(canary_weight=10))
    assert (obj["kind"], obj["metadata"]["name"]) == ("HTTPRoute", "greeter")


def test_routes_of_both_kinds_are_written_in_order_with_their_own_hostnames() -> None:
    objects = mesh.desired_objects(rollout_of(BOTH), Route(canary_weight=10))
    assert [(o["kind"], o["metadata"]["name"]) for o in objects] == [
        ("HTTPRoute", "greeter"),
        ("GRPCRoute", "greeter"),
    ]
    assert objects[0]["spec"]["hostnames"] == ["api.example.com"]
    assert objects[1]["spec"]["hostnames"] == ["grpc.example.com"]
    assert objects[1]["spec"]["parentRefs"] == objects[0]["spec"]["parentRefs"]


def test_a_route_can_have_its_own_name_and_parents() -> None:
    internal = {"name": "internal", "sectionName": "grpc"}
    rollout = rollout_of(grpc_only(name="greeter-internal", parentRefs=[internal]))
    (obj,) = mesh.desired_objects(rollout, STABLE)
    assert obj["metadata"]["name"] == "greeter-internal"
    assert obj["spec"]["parentRefs"] == [
        {
            "name": "internal",
            "kind": "Gateway",
            "group": "gateway.networking.k8s.io",
            "sectionName": "grpc",
        }
    ]


@pytest.mark.parametrize(
    ("routes", "where", "says"),
    [
        (
            [{"kind": "GRPCRoute"}, {"kind": "GRPCRoute", "name": "greeter"}],
            "spec.provider.gatewayApi.routes.1.name",
            "GRPCRoute 'greeter' is already routes[0]: give each route of one kind its own name",
        ),
        (
            [{"kind": "HTTPRoute"}, {"kind": "GRPCRoute"}],
            "spec.provider.gatewayApi.routes.1.hostnames",
            "a Gateway accepts only one of the two: give the GRPCRoute its own 'hostnames'",
        ),
        (
            [{"kind": "HTTPRoute"}, {"kind": "GRPCRoute", "hostnames": ["*.example.com"]}],
            "spec.provider.gatewayApi.routes.1.hostnames",
            "would attach to one listener for the same hostnames",
        ),
        (
            [{"kind": "gRPCRoute"}],
            "spec.provider.gatewayApi.routes.0.kind",
            "'HTTPRoute' or 'GRPCRoute'",
        ),
        (
            [{"kind": "GRPCRoute", "hostnames": ["Grpc_Example"]}],
            "spec.provider.gatewayApi.routes.0.hostnames.0",
            "should match pattern",
        ),
        (
            [
                {"kind": "GRPCRoute", "name": f"g{n}", "hostnames": ["g.example.com"]}
                for n in range(9)
            ],
            "spec.provider.gatewayApi.routes",
            "at most 8 items",
        ),
    ],
    ids=["same-name", "same-listener-and-host", "wildcard-host", "kind", "hostname", "too-many"],
)
def test_routes_that_cannot_work_are_refused_naming_the_field(
    routes: list[Json], where: str, says: str
) -> None:
    settings = {"parentRefs": [PUBLIC], "hostnames": ["api.example.com"], "routes": routes}
    with pytest.raises(ValidationError) as caught:
        rollout_of(settings)
    found = errors_of(caught.value)
    assert where in found, found
    assert says in found[where]


@pytest.mark.parametrize(
    "other",
    [
        {"kind": "GRPCRoute", "hostnames": ["grpc.example.com"]},
        {"kind": "GRPCRoute", "parentRefs": [PUBLIC | {"sectionName": "grpc"}]},
        {"kind": "GRPCRoute", "parentRefs": [{"name": "internal"}]},
        {"kind": "HTTPRoute", "name": "greeter-admin"},
    ],
    ids=["other-host", "other-listener", "other-gateway", "same-kind-other-name"],
)
def test_routes_on_separate_listeners_hosts_or_names_are_accepted(other: Json) -> None:
    settings = {
        "parentRefs": [PUBLIC | {"sectionName": "https"}],
        "hostnames": ["api.example.com"],
        "routes": [{}, other],
    }
    assert len(mesh.desired_objects(rollout_of(settings), STABLE)) == 2


@pytest.mark.parametrize(
    ("setting", "value"),
    [("timeout", "10s"), ("cors", {"allowOrigins": ["*"]})],
)
def test_settings_a_grpcroute_has_no_field_for_are_refused_when_one_is_listed(
    setting: str, value: Any
) -> None:
    rollout_of({"parentRefs": [PUBLIC]}, **{setting: value})  # an HTTPRoute holds it
    with pytest.raises(ValidationError) as caught:
        rollout_of(BOTH, **{setting: value})
    found = errors_of(caught.value)
    message = found[f"spec.service.route.{setting}"]
    assert message.startswith(
        f"a GRPCRoute (spec.provider.gatewayApi.routes) cannot honour {setting}"
    )
    assert "route the service through HTTPRoutes only" in message


def test_a_cookie_match_is_refused_as_for_httproutes() -> None:
    cookie = {"abTest": {"match": [{"cookie": {"name": "beta", "value": "1"}}]}}
    with pytest.raises(ValidationError) as caught:
        rollout_of(grpc_only(), cookie)
    assert "spec.strategy.abTest.match.0.cookie" in errors_of(caught.value)


# --- the objects, against the real GRPCRoute CRD -----------------------------------------------

HEADERS = {
    "exact": [{"headers": {"x-canary": {"exact": "insider"}}}],
    "empty-exact": [{"headers": {"x-canary": {"exact": ""}}}],
    "prefix": [{"headers": {"x-user": {"prefix": "beta.(1)"}}}],
    "regex": [{"headers": {"user-agent": {"regex": "^grpc-go/.*$"}}}],
    "several": [
        {"headers": {"x-canary": {"exact": "insider"}, "x-region": {"prefix": "eu-"}}},
        {"headers": {"x-user": {"regex": "^[a-z]+@example\\.com$"}}},
    ],
}
STRATEGIES: dict[str, Json] = {
    "canary": {"canary": {"weights": [5, 50, 100]}},
    **{f"abTest-{name}": {"abTest": {"match": rules}} for name, rules in HEADERS.items()},
    "blueGreen-mirror": {"blueGreen": {}, "mirror": {"percentage": 12.5}},
    "blueGreen-mirror-all": {"blueGreen": {}, "mirror": {}},
}
SETTINGS: dict[str, Json] = {
    "none": {},
    "all": {
        "headers": {
            "request": {"set": {"x-env": "prod"}, "add": {"x-via": "gw"}, "remove": ["x-debug"]},
            "response": {"set": {"x-served-by": "greeter"}},
        },
        "mirror": {"host": "shadow.testing", "port": 9000, "percentage": 33},
    },
}
LAYOUTS = {"grpc": grpc_only(), "both": BOTH}
CASES = [
    pytest.param(rollout_of(LAYOUTS[layout], STRATEGIES[strategy], **SETTINGS[shape]), id=case)
    for layout, strategy, shape in itertools.product(LAYOUTS, STRATEGIES, SETTINGS)
    for case in [f"{layout}-{strategy}-{shape}"]
]


def grpc_routes(objects: list[Json]) -> list[Json]:
    return [o for o in objects if o["kind"] == "GRPCRoute"]


@pytest.mark.parametrize("rollout", CASES)
def test_every_grpcroute_is_accepted_by_the_crd_and_reads_back(rollout: Rollout) -> None:
    routes = engine_routes(rollout)
    assert {r.canary_weight for r in routes} >= {0, 100}
    for route in routes:
        objects = mesh.desired_objects(rollout, route)
        (grpc,) = grpc_routes(objects)
        for obj in objects:
            errors = crd_errors(obj)
            assert not errors, f"{obj['kind']} at {route}:\n" + "\n".join(errors)
        live = [with_defaults(schema_for(o), o) | {"status": {}} for o in objects]
        assert mesh.route_from_objects(rollout, objects) == route
        assert mesh.route_from_objects(rollout, live) == route
        assert mesh.differences(grpc, live[objects.index(grpc)]) == []


@pytest.mark.parametrize("rollout", CASES)
def test_primary_is_backend_0_and_canary_backend_1_each_with_its_own_filter(
    rollout: Rollout,
) -> None:
    for route in engine_routes(rollout):
        (grpc,) = grpc_routes(mesh.desired_objects(rollout, route))
        rules = grpc["spec"]["rules"]
        assert len(rules) == (2 if route.match else 1)
        for rule in rules:
            primary, canary = rule["backendRefs"]
            assert (primary["name"], canary["name"]) == ("greeter-primary", "greeter-canary")
            assert primary["weight"] + canary["weight"] == 100
            for ref, side in ((primary, "primary"), (canary, "canary")):
                (header,) = ref["filters"][0]["requestHeaderModifier"]["set"]
                assert header == {"name": "x-canary-backend", "value": side}
        assert rules[-1]["backendRefs"][1]["weight"] == route.canary_weight
        assert "matches" not in rules[-1], "the weighted rule takes every call"
        if route.match:
            assert rules[0]["backendRefs"][1]["weight"] == 100


def test_ab_matches_are_header_matches_only() -> None:
    rollout = rollout_of(grpc_only(), STRATEGIES["abTest-several"])
    assert rollout.spec.strategy.ab_test is not None
    (grpc,) = mesh.desired_objects(rollout, Route(match=tuple(rollout.spec.strategy.ab_test.match)))
    assert grpc["spec"]["rules"][0]["matches"] == [
        {
            "headers": [
                {"name": "x-canary", "type": "Exact", "value": "insider"},
                {"name": "x-region", "type": "RegularExpression", "value": "^eu-.*$"},
            ]
        },
        {
            "headers": [
                {"name": "x-user", "type": "RegularExpression", "value": "^[a-z]+@example\\.com$"}
            ]
        },
    ]


def test_the_blue_green_mirror_goes_on_the_weighted_rule() -> None:
    rollout = rollout_of(grpc_only(), STRATEGIES["blueGreen-mirror"])
    (grpc,) = mesh.desired_objects(rollout, Route(mirror_percentage=12.5))
    (rule,) = grpc["spec"]["rules"]
    (mirror,) = [f["requestMirror"] for f in rule["filters"] if f["type"] == "RequestMirror"]
    assert mirror == {
        "backendRef": {"group": "", "kind": "Service", "name": "greeter-canary", "port": 9000},
        "fraction": {"numerator": 1, "denominator": 8},
    }


def test_routes_that_disagree_or_are_missing_are_a_router_error() -> None:
    rollout = rollout_of(BOTH)
    http, grpc = mesh.desired_objects(rollout, Route(canary_weight=20))
    (stale,) = mesh.desired_objects(rollout_of(grpc_only(hostnames=["grpc.example.com"])), STABLE)
    with pytest.raises(
        RouterError,
        match=r"the routes disagree: HTTPRoute 'greeter' holds \{'canary_weight': 20\}; "
        r"GRPCRoute 'greeter' holds \{\}",
    ):
        mesh.route_from_objects(rollout, [http, stale])
    with pytest.raises(RouterError, match="no GRPCRoute 'greeter'"):
        mesh.route_from_objects(rollout, [http])
    assert mesh.route_from_objects(rollout, [http, grpc]) == Route(canary_weight=20)


# --- `canary validate` and `canary render` on the example ---------------------------------------

EXAMPLE = ROOT / "examples" / "podinfo-grpc.yaml"


def canary_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "canary.cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )


def test_the_example_validates_and_renders_a_grpcroute_the_crd_accepts() -> None:
    validated = canary_cli("validate", EXAMPLE)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert validated.stdout == f"{EXAMPLE}: ok (Rollout/podinfo)\n"
    rendered = canary_cli("render", EXAMPLE, "--weight", "25")
    assert rendered.returncode == 0, rendered.stderr
    (obj,) = [d for d in yaml.safe_load_all(rendered.stdout) if d]
    assert (obj["kind"], obj["metadata"]["name"]) == ("GRPCRoute", "podinfo")
    assert backend_weights(obj) == [[75, 25]]
    assert crd_errors(obj) == []


def test_validate_names_the_field_a_grpcroute_cannot_hold(tmp_path: Path) -> None:
    docs = list(yaml.safe_load_all(EXAMPLE.read_text(encoding="utf-8")))
    docs[1]["spec"]["service"]["route"]["timeout"] = "10s"
    bad = tmp_path / "grpc-timeout.yaml"
    bad.write_text(yaml.safe_dump_all(docs), encoding="utf-8")
    run = canary_cli("validate", bad)
    assert run.returncode == 1
    assert "spec.service.route.timeout: a GRPCRoute (spec.provider.gatewayApi.routes) cannot " in (
        run.stdout + run.stderr
    )


# --- what the shipped gateway-api-envoy policy reads of these routes ----------------------------


def envoy_gateway_clusters(obj: Json) -> list[tuple[str, str]]:
    """(cluster, Service) as Envoy Gateway names the clusters of a route: per rule
    ``<kind>/<namespace>/<route>/rule/<i>``, and per backendRef (``/backend/<j>``) when a
    backendRef of the rule carries a filter (docs/policies.md, "How Envoy Gateway names
    clusters")."""
    meta = obj["metadata"]
    stem = f"{obj['kind'].lower()}/{meta['namespace']}/{meta['name']}"
    out: list[tuple[str, str]] = []
    for i, rule in enumerate(obj["spec"]["rules"]):
        refs = rule["backendRefs"]
        if any(ref.get("filters") for ref in refs):
            out += [(f"{stem}/rule/{i}/backend/{j}", ref["name"]) for j, ref in enumerate(refs)]
        else:
            out.append((f"{stem}/rule/{i}", "both"))
    return out


def policy_pattern(name: str, rollout: Rollout) -> re.Pattern[str]:
    """The policy's variable ``name`` expanded for ``rollout`` (its variables nest)."""
    values = {
        **builtin_policy("gateway-api-envoy").spec.variables,
        **rollout_variables(rollout),
        "namespace": rollout.metadata.namespace or "default",
        "target": rollout.spec.target_ref.name,
    }
    text = values[name]
    while "{{" in text:
        text = re.sub(r"\{\{ (\w+) \}\}", lambda m: values[m.group(1)], text)
    return re.compile(f"^(?:{text})$")  # PromQL anchors =~ at both ends


@pytest.mark.parametrize("name", [None, "greeter-internal"], ids=["target-name", "other-name"])
def test_the_policy_reads_each_side_of_the_grpcroute_the_rollout_lists_and_no_other(
    name: str | None,
) -> None:
    ab = {"abTest": {"match": HEADERS["exact"]}}
    rollout = rollout_of(grpc_only(**({"name": name} if name else {})), ab)
    assert rollout.spec.strategy.ab_test is not None
    route = Route(canary_weight=30, match=tuple(rollout.spec.strategy.ab_test.match))
    (grpc,) = mesh.desired_objects(rollout, route)
    grpc_clusters = re.compile(
        builtin_policy("gateway-api-envoy").spec.variables["grpc_clusters"].split('=~"')[-1][:-1]
    )
    clusters = envoy_gateway_clusters(grpc)
    assert len(clusters) == 4, "a cluster per backendRef, two rules"
    other = rollout_of(grpc_only(name="someone-elses"), ab)
    for cluster, service in clusters:
        read_as_canary = policy_pattern("canary_cluster", rollout).match(cluster)
        read_as_primary = policy_pattern("primary_cluster", rollout).match(cluster)
        assert bool(read_as_canary) == (service == "greeter-canary"), cluster
        assert bool(read_as_primary) == (service == "greeter-primary"), cluster
        assert grpc_clusters.match(cluster), "counted by gRPC status"
        assert not policy_pattern("canary_cluster", other).match(cluster), "another route's"
        assert not policy_pattern("primary_cluster", other).match(cluster), "another route's"
