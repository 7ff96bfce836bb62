"""The Services in line with the spec at every tick: Linkerd's circuit breaker (failure accrual)
as annotations on Service ``<target>``, added, changed and removed beside the team's own
annotations; a changed port."""

from __future__ import annotations

import copy
from typing import Any

from controller_support import ROLLOUTS, Cluster, deployment, rollout, wait_for

ACCRUAL = "balancer.linkerd.io/failure-accrual"
MAX_FAILURES = "balancer.linkerd.io/failure-accrual-consecutive-max-failures"
MIN_PENALTY = "balancer.linkerd.io/failure-accrual-consecutive-min-penalty"
MAX_PENALTY = "balancer.linkerd.io/failure-accrual-consecutive-max-penalty"
RECORD = "canary.dev/managed-annotations"
TEAMS = {"team.example.com/owner": "payments"}


def annotations(cluster: Cluster) -> dict[str, str]:
    service = cluster.get("v1", "Service", "web")
    assert service is not None
    return dict(service["metadata"].get("annotations") or {})


def change_spec(cluster: Cluster, **service: Any) -> None:
    body = copy.deepcopy(cluster.rollout("web"))
    body["spec"]["service"] = service
    body["metadata"].pop("resourceVersion")
    body.pop("status", None)
    cluster.api.apply(body)


def test_linkerds_circuit_breaker_follows_the_spec_on_the_apex_service(cluster: Cluster) -> None:
    cluster.api.apply(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": cluster.namespace, "annotations": TEAMS},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 9898}]},
        }
    )
    cluster.api.apply(deployment("web", cluster.namespace))
    breaker = {"outlierDetection": {"consecutiveErrors": 7, "baseEjectionTime": "30s"}}
    service = {"port": 9898, "route": {"circuitBreaker": breaker}}
    cluster.api.apply(rollout("web", cluster.namespace, "linkerd", service=service))
    cluster.controller()
    cluster.wait_phase("web", "Initialized")
    assert annotations(cluster) == {
        **TEAMS,
        ACCRUAL: "consecutive",
        MAX_FAILURES: "7",
        MIN_PENALTY: "30s",
        MAX_PENALTY: "5m",
        RECORD: ",".join(sorted([ACCRUAL, MAX_FAILURES, MIN_PENALTY, MAX_PENALTY])),
    }
    for other in ("web-primary", "web-canary"):
        found = cluster.get("v1", "Service", other)
        assert found is not None
        assert not found["metadata"].get("annotations"), other

    breaker["outlierDetection"]["consecutiveErrors"] = 3
    change_spec(cluster, **service)
    wait_for("the breaker changed", lambda: annotations(cluster).get(MAX_FAILURES) == "3")
    assert annotations(cluster)[ACCRUAL] == "consecutive"

    change_spec(cluster, port=8080, targetPort=9898)  # no breaker any more, another port
    wait_for("the breaker gone", lambda: annotations(cluster) == TEAMS)

    def ports(name: str) -> list[tuple[int, int]]:
        found = cluster.get("v1", "Service", name)
        assert found is not None
        return [(p["port"], p["targetPort"]) for p in found["spec"]["ports"]]

    # One tick writes the three Services one after the other: wait for the last of them.
    for name in ("web", "web-primary", "web-canary"):
        wait_for(f"{name} on the new port", lambda name=name: ports(name) == [(8080, 9898)])

    def route_port() -> int | None:
        route = cluster.get("gateway.networking.k8s.io/v1", "HTTPRoute", "web")
        return None if route is None else int(route["spec"]["parentRefs"][0]["port"])

    wait_for("the route on the new port", lambda: route_port() == 8080)
    assert cluster.phase("web") == "Initialized"
    assert not cluster.events("ReconcileError")
    assert cluster.rollout("web")["apiVersion"] == ROLLOUTS
