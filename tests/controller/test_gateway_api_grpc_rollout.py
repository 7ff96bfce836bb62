"""A gRPC service routed by a GRPCRoute (beside an HTTPRoute), rolled out by the reconciler
tick by tick on the test API server with the real GRPCRoute CRD: both routes carry every step's
weights, a healthy canary is promoted, a failing one rolled back with both routes on the
primary, a blue/green mirror is gone after the rollback, an A/B test's header rule comes and
goes, a hand edit to the GRPCRoute is put back at the next tick, and a route removed from the
spec is deleted."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from controller_support import (
    BAD,
    HEALTHY,
    NAME,
    Cluster,
    MetricsRelay,
    deployment,
    rollout,
)
from tick_support import HTTPROUTE, Json, Ticker, set_spec

from canary.testing.telemetry import ENVOY_GRPC, Behaviour, MeshTelemetry, Split, Workloads
from canary.testing.telemetry_routes import split_of_objects

GRPCROUTE = ("gateway.networking.k8s.io/v1", "GRPCRoute")
PROVIDER = {
    "name": "gateway-api",
    "gatewayApi": {
        "parentRefs": [{"name": "eg"}],
        "hostnames": ["web.example.com"],
        "routes": [
            {"kind": "HTTPRoute"},
            {"kind": "GRPCRoute", "hostnames": ["grpc.web.example.com"]},
        ],
    },
}


def start(ticker: Ticker, **spec: Json) -> None:
    cluster = ticker.cluster
    cluster.api.apply(deployment("web", cluster.namespace))
    body = rollout("web", cluster.namespace, **spec)
    body["spec"]["provider"] = copy.deepcopy(PROVIDER)
    body["spec"]["analysis"] = {"interval": "10m", "judge": "threshold", "failureLimit": 1}
    cluster.api.apply(body)
    ticker.until("Initialized", lambda s: s.get("phase") == "Initialized")


def canary_weights(route: Json, target: str = "web") -> list[int]:
    """The canary backendRef's weight in each rule (primary is backendRef 0)."""
    out = []
    for rule in route["spec"]["rules"]:
        primary, canary = rule["backendRefs"]
        assert primary["name"] == f"{target}-primary"
        assert canary["name"] == f"{target}-canary"
        assert primary["weight"] + canary["weight"] == 100
        out.append(canary["weight"])
    return out


def test_a_healthy_canary_moves_both_routes_step_by_step_and_is_promoted(ticker: Ticker) -> None:
    start(ticker)
    assert canary_weights(ticker.route(GRPCROUTE)) == [0]
    ticker.cluster.set_image("web", "podinfo:7.0.0")
    seen: set[int] = set()

    def both_routes_hold_the_status(status: Json) -> bool:
        (grpc,) = canary_weights(ticker.route(GRPCROUTE))
        (http,) = canary_weights(ticker.route(HTTPROUTE))
        assert grpc == http, f"the GRPCRoute holds {grpc}%, the HTTPRoute {http}%"
        if status.get("phase") == "Progressing":
            assert grpc == status.get("canaryWeight", 0)
        seen.add(grpc)
        return status.get("phase") == "Succeeded"

    ticker.until("Succeeded", both_routes_hold_the_status)
    assert {20, 50} <= seen
    assert canary_weights(ticker.route(GRPCROUTE)) == [0]
    assert ticker.cluster.image_of("web-primary") == "podinfo:7.0.0"
    assert not ticker.cluster.events("ReconcileError")


@pytest.mark.parametrize("ticker", [250], indirect=True)
def test_a_failing_canary_is_rolled_back_on_both_routes(ticker: Ticker) -> None:
    start(ticker)
    ticker.cluster.set_image("web", "podinfo:7.0.0")
    ticker.until("traffic on the canary", lambda s: canary_weights(ticker.route(GRPCROUTE)) == [20])
    status = ticker.until("Failed", lambda s: s.get("phase") == "Failed")
    assert status["canaryWeight"] == 0
    assert canary_weights(ticker.route(GRPCROUTE)) == [0]
    assert canary_weights(ticker.route(HTTPROUTE)) == [0]
    assert ticker.cluster.image_of("web-primary") == "podinfo:6.7.0"
    assert ticker.cluster.deployment("web")["spec"]["replicas"] == 0


def test_a_hand_edit_to_the_grpcroute_is_put_back_and_other_fields_kept(ticker: Ticker) -> None:
    start(ticker)
    applied = ticker.route(GRPCROUTE)
    edited = copy.deepcopy(applied)
    edited["metadata"].pop("resourceVersion")
    edited["metadata"]["labels"]["team"] = "payments"  # another manager's own field
    edited["spec"]["rules"][0]["backendRefs"][0]["weight"] = 50
    edited["spec"]["rules"][0]["backendRefs"][1]["weight"] = 50
    ticker.cluster.api.apply(edited)
    ticker.tick()
    live = ticker.route(GRPCROUTE)
    assert live["spec"]["rules"] == applied["spec"]["rules"], "canary's rules put back"
    assert live["metadata"]["labels"]["team"] == "payments"
    assert not ticker.cluster.events("ReconcileError")


def test_a_route_removed_from_the_spec_is_deleted_at_the_next_tick(ticker: Ticker) -> None:
    start(ticker)
    assert ticker.cluster.get(*HTTPROUTE, "web") is not None

    def grpc_only(spec: Json) -> None:
        spec["provider"]["gatewayApi"]["routes"] = [{"kind": "GRPCRoute"}]

    set_spec(ticker.cluster, grpc_only)
    ticker.tick()
    assert ticker.cluster.get(*HTTPROUTE, "web") is None
    assert canary_weights(ticker.route(GRPCROUTE)) == [0]
    assert not ticker.cluster.events("ReconcileError")


def mirrors(route: Json) -> list[Json]:
    return [
        f["requestMirror"]
        for rule in route["spec"]["rules"]
        for f in rule.get("filters") or []
        if f["type"] == "RequestMirror"
    ]


@pytest.mark.parametrize("ticker", [250], indirect=True)
def test_a_failing_blue_green_canary_leaves_no_mirror_on_the_grpcroute(ticker: Ticker) -> None:
    start(ticker, strategy={"blueGreen": {"iterations": 3}, "mirror": {"percentage": 100}})
    ticker.cluster.set_image("web", "podinfo:7.0.0")
    ticker.until("the mirror", lambda s: len(mirrors(ticker.route(GRPCROUTE))) == 1)
    (mirror,) = mirrors(ticker.route(GRPCROUTE))
    assert mirror["backendRef"]["name"] == "web-canary"
    assert canary_weights(ticker.route(GRPCROUTE)) == [0], "a mirror, no live traffic"
    ticker.until("Failed", lambda s: s.get("phase") == "Failed")
    assert mirrors(ticker.route(GRPCROUTE)) == []
    assert mirrors(ticker.route(HTTPROUTE)) == []


def test_an_ab_test_routes_matching_calls_to_the_canary_then_ends(ticker: Ticker) -> None:
    match = [{"headers": {"x-canary": {"exact": "insider"}}}]
    start(ticker, strategy={"abTest": {"match": match, "iterations": 2}})
    ticker.cluster.set_image("web", "podinfo:7.0.0")
    ticker.until("the A/B rule", lambda s: len(ticker.route(GRPCROUTE)["spec"]["rules"]) == 2)
    ab_rule = ticker.route(GRPCROUTE)["spec"]["rules"][0]
    assert ab_rule["matches"] == [
        {"headers": [{"name": "x-canary", "type": "Exact", "value": "insider"}]}
    ]
    assert canary_weights(ticker.route(GRPCROUTE)) == [100, 0]
    ticker.until("Succeeded", lambda s: s.get("phase") == "Succeeded")
    assert canary_weights(ticker.route(GRPCROUTE)) == [0], "no A/B rule left"
    assert ticker.cluster.image_of("web-primary") == "podinfo:7.0.0"


# --- judged end to end: the controller, a real Prometheus, the shipped gateway-api-envoy policy --


def grpc_split(cluster: Cluster, route: str = NAME) -> Split:
    """How Envoy Gateway splits the calls by the live GRPCRoute ``route``, read as the data
    plane reads it (`canary.testing.telemetry_routes`): all on the primary while there is
    none."""
    found = cluster.get(*GRPCROUTE, route)
    if found is None:
        return Split()
    try:
        return split_of_objects([found], canary=f"{NAME}-canary", primary=f"{NAME}-primary")
    except ValueError:
        return Split()


@contextmanager
def grpc_gateway(
    cluster: Cluster, relay: MetricsRelay, canary: Behaviour, route: str = NAME
) -> Iterator[None]:
    """Envoy Gateway's statistics of gRPC calls routed by the GRPCRoute ``route``: only the
    ``grpcroute/<namespace>/<route>/...`` clusters, where a failed call is an HTTP 200 with a
    grpc-status, so the policy can only see failures in the gRPC statistics."""
    names = Workloads(cluster.namespace, NAME, f"{NAME}-primary", service=NAME, route=route)
    mesh = MeshTelemetry(
        lambda: grpc_split(cluster, route),
        workloads=names,
        rate=500.0,
        canary=canary,
        primary=HEALTHY,
        seed=7,
        meshes=(ENVOY_GRPC,),
    )
    with relay.serving(mesh):
        yield


@pytest.mark.parametrize("route", [None, "podinfo-grpc"], ids=["target-name", "other-name"])
@pytest.mark.parametrize(
    ("canary", "verdict", "image"),
    [(HEALTHY, "Succeeded", "podinfo:6.8.0"), (BAD, "Failed", "podinfo:6.7.0")],
    ids=["healthy-promoted", "failing-rolled-back"],
)
def test_the_shipped_policy_judges_the_grpc_calls_the_grpcroute_sends_to_the_canary(
    mesh_cluster: Cluster,
    relay: MetricsRelay,
    canary: Behaviour,
    verdict: str,
    image: str,
    route: str | None,
) -> None:
    """Whatever the GRPCRoute's name (the target's, or one given in ``routes``): Envoy
    Gateway's clusters are named after the route, and the policy reads the Rollout's own
    routes. A route it did not read would be no data, which never passes: the promotion
    says the calls were judged."""
    cluster = mesh_cluster
    cluster.api.apply(deployment(NAME, cluster.namespace, image="podinfo:6.7.0"))
    body = rollout(NAME, cluster.namespace)
    grpc_route: Json = {"kind": "GRPCRoute"} | ({"name": route} if route else {})
    body["spec"]["provider"] = {
        "name": "gateway-api",
        "gatewayApi": {"parentRefs": [{"name": "eg"}], "routes": [grpc_route]},
    }
    cluster.api.apply(body)
    with grpc_gateway(cluster, relay, canary, route or NAME):
        cluster.controller()
        cluster.wait_phase(NAME, "Initialized")
        assert cluster.get(*HTTPROUTE, NAME) is None, "a GRPCRoute only"
        cluster.set_image(NAME, "podinfo:6.8.0")
        status = cluster.wait_phase(NAME, verdict)
    grpc = cluster.get(*GRPCROUTE, route or NAME)
    assert grpc is not None
    assert canary_weights(grpc, NAME) == [0]
    assert cluster.image_of(f"{NAME}-primary") == image
    judged = {c["name"]: c for c in status["checks"]}
    assert judged["error-rate"]["canary"]["requests"] > 0, "judged on the calls to the canary"
    if verdict == "Succeeded":
        assert {c["verdict"] for c in judged.values()} == {"pass"}
    else:
        assert judged["error-rate"]["verdict"] == "fail", "gRPC failures on HTTP 200 counted"
