"""The controller end to end, for Istio and for Linkerd: the test API server, the simulated
mesh's telemetry (routed by the weights in the route objects the controller wrote), a real
Prometheus, the shipped policies. A healthy canary is stepped through its weights and
promoted; a bad one is rolled back."""

from __future__ import annotations

import pytest
from controller_support import (
    BAD,
    HEALTHY,
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
}


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


@pytest.mark.parametrize("provider", ["istio", "linkerd"])
def test_a_healthy_canary_is_stepped_through_its_weights_and_promoted(
    mesh_cluster: Cluster, relay: MetricsRelay, provider: str
) -> None:
    cluster = mesh_cluster
    with simulated_mesh(cluster, relay, HEALTHY):
        start_rollout(cluster, provider)
        with WeightLog(cluster) as log:
            cluster.set_image(NAME, "podinfo:6.8.0")
            status = cluster.wait_phase(NAME, "Succeeded")
    assert log.weights == [0, 20, 50, 0], "the route objects held each step's weight in turn"
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


@pytest.mark.parametrize("provider", ["istio", "linkerd"])
def test_a_bad_canary_is_rolled_back(
    mesh_cluster: Cluster, relay: MetricsRelay, provider: str
) -> None:
    cluster = mesh_cluster
    with simulated_mesh(cluster, relay, BAD):
        start_rollout(cluster, provider)
        with WeightLog(cluster) as log:
            cluster.set_image(NAME, "podinfo:6.8.0")
            status = cluster.wait_phase(NAME, "Failed")
    assert log.weights == [0, 20, 0], "back to the primary, never more traffic to the canary"
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
