"""The controller end to end, for Istio, Linkerd (HTTPRoute, and SMI TrafficSplit) and the
Gateway API on Envoy Gateway: the test API server, the simulated mesh's telemetry (routed by
the weights in the route objects the controller wrote, read as the mesh reads them, and
exporting only that mesh's series), a real Prometheus, the shipped policies. A healthy canary
is stepped through its weights and promoted; a bad one is rolled back."""

from __future__ import annotations

from typing import Any

import pytest
from controller_support import (
    BAD,
    HEALTHY,
    MESH_OF,
    NAME,
    ROLLOUTS,
    Cluster,
    MetricsRelay,
    WeightLog,
    deployment,
    rollout,
    simulated_mesh,
    wait_for,
)

ROUTES = {
    "istio": [
        ("networking.istio.io/v1", "VirtualService", NAME),
        ("networking.istio.io/v1", "DestinationRule", f"{NAME}-primary"),
        ("networking.istio.io/v1", "DestinationRule", f"{NAME}-canary"),
    ],
    "linkerd": [("gateway.networking.k8s.io/v1", "HTTPRoute", NAME)],
    "linkerd-smi": [("split.smi-spec.io/v1alpha2", "TrafficSplit", NAME)],
    "gateway-api": [("gateway.networking.k8s.io/v1", "HTTPRoute", NAME)],
}
PROVIDERS = list(ROUTES)
Json = dict[str, Any]


def backend_weights(objects: list[Json]) -> dict[str, int]:
    """Backend -> weight in the route object of the SMI or Gateway API providers (the
    HTTPRoute's rule for every request)."""
    (route,) = objects
    if route["kind"] == "TrafficSplit":
        return {b["service"]: b["weight"] for b in route["spec"]["backends"]}
    (rule,) = route["spec"]["rules"]
    return {b["name"]: b["weight"] for b in rule["backendRefs"]}


def check_route_objects(provider: str, log: WeightLog) -> None:
    """What the data plane read at the first step is in the objects, as the provider wants."""
    if provider not in ("linkerd-smi", "gateway-api"):
        return
    at_20 = log.held(20)
    assert backend_weights(at_20) == {f"{NAME}-primary": 80, f"{NAME}-canary": 20}
    assert backend_weights(log.held(0)) == {f"{NAME}-primary": 100, f"{NAME}-canary": 0}
    if provider == "gateway-api":
        (route,) = at_20
        assert route["spec"]["parentRefs"][0]["name"] == "eg"
        # one Envoy cluster per backendRef: each carries a filter (docs/routing.md)
        for ref in route["spec"]["rules"][0]["backendRefs"]:
            side = ref["name"].removeprefix(f"{NAME}-")
            (header,) = ref["filters"][0]["requestHeaderModifier"]["set"]
            assert header == {"name": "x-canary-backend", "value": side}


def start_rollout(cluster: Cluster, provider: str) -> None:
    """Deployment and Rollout applied; the controller builds primary, Services and routes."""
    cluster.api.apply(deployment(NAME, cluster.namespace, image="podinfo:6.7.0"))
    cluster.api.apply(rollout(NAME, cluster.namespace, provider))
    cluster.controller()
    cluster.wait_phase(NAME, "Initialized")
    assert cluster.image_of(f"{NAME}-primary") == "podinfo:6.7.0"
    for service in (NAME, f"{NAME}-primary", f"{NAME}-canary"):
        assert cluster.get("v1", "Service", service) is not None, service
    for api_version, kind, name in ROUTES[provider]:
        assert cluster.get(api_version, kind, name) is not None, f"{kind} {name}"
    assert cluster.split(NAME).canary_weight == 0
    wait_for("the target scaled to zero", lambda: cluster.deployment(NAME)["spec"]["replicas"] == 0)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_healthy_canary_is_stepped_through_its_weights_and_promoted(
    mesh_cluster: Cluster, relay: MetricsRelay, provider: str
) -> None:
    cluster = mesh_cluster
    with simulated_mesh(cluster, relay, HEALTHY, (MESH_OF[provider],)):
        start_rollout(cluster, provider)
        with WeightLog(cluster) as log:
            cluster.set_image(NAME, "podinfo:6.8.0")
            status = cluster.wait_phase(NAME, "Succeeded")
    assert log.weights == [0, 20, 50, 0], "the route objects held each step's weight in turn"
    check_route_objects(provider, log)
    assert cluster.image_of(f"{NAME}-primary") == "podinfo:6.8.0"
    assert cluster.deployment(NAME)["spec"]["replicas"] == 0
    assert cluster.split(NAME).canary_weight == 0
    assert status["stableRevision"] == status["canaryRevision"]
    passed = [c for c in status["checks"] if c["verdict"] == "pass"]
    assert {c["name"] for c in passed} == {"error-rate", "latency"}
    assert all(c["canary"]["requests"] > 0 for c in passed), "judged on the mesh's requests"
    cluster.wait_events("Succeeded")
    reasons = [e["reason"] for e in cluster.events()]
    for reason in ("Progressing", "Step", "Promoting", "Finalising"):
        assert reason in reasons
    assert not [e for e in cluster.events() if e["type"] == "Warning"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_bad_canary_is_rolled_back(
    mesh_cluster: Cluster, relay: MetricsRelay, provider: str
) -> None:
    cluster = mesh_cluster
    with simulated_mesh(cluster, relay, BAD, (MESH_OF[provider],)):
        start_rollout(cluster, provider)
        with WeightLog(cluster) as log:
            cluster.set_image(NAME, "podinfo:6.8.0")
            status = cluster.wait_phase(NAME, "Failed")
    assert log.weights == [0, 20, 0], "back to the primary, never more traffic to the canary"
    check_route_objects(provider, log)
    assert cluster.split(NAME).canary_weight == 0
    assert cluster.image_of(f"{NAME}-primary") == "podinfo:6.7.0"
    assert cluster.deployment(NAME)["spec"]["replicas"] == 0
    assert status["stableRevision"] != status["canaryRevision"]
    failed = [c for c in status["checks"] if c["verdict"] == "fail"]
    assert failed
    assert all(c["name"] == "error-rate" for c in failed)
    cluster.wait_events("Failed")
    warnings = [e for e in cluster.events() if e["type"] == "Warning"]
    assert {"RollingBack", "Failed"} <= {e["reason"] for e in warnings}
    rolled_back = next(e for e in warnings if e["reason"] == "RollingBack")
    assert rolled_back["involvedObject"]["kind"] == "Rollout"
    assert rolled_back["involvedObject"]["name"] == NAME
    assert cluster.rollout(NAME)["apiVersion"] == ROLLOUTS
