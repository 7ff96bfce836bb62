"""The chart's RBAC grants what the router does with HTTPRoutes and GRPCRoutes: every request
the controller's `MeshRouter` makes to the test API server (apply, read back, the labelled list
of a restarted replica, the deletion of a route the Rollout no longer lists) is one the
rendered ClusterRole allows, and without `rbac.providers.gatewayApi` the GRPCRoute requests are
refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from chart_rbac import Request, rbac_allows, request_of
from chart_support import NAMESPACE, render
from kubernetes import config

from canary.controller.kube import Kube
from canary.controller.routing import MeshRouter
from canary.engine.actions import Route
from canary.model.rollout import Rollout
from canary.model.status import Phase, RolloutStatus
from canary.testing import ApiServer

ROOT = Path(__file__).resolve().parents[2]
GATEWAY_CRDS = sorted((ROOT / "tests" / "data" / "mesh-crds").glob("gateway-api-*.yaml"))


def rollout_with(*routes: dict[str, object]) -> Rollout:
    return Rollout.model_validate(
        {
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {
                "targetRef": {"name": "web"},
                "service": {"port": 9000},
                "provider": {
                    "name": "gateway-api",
                    "gatewayApi": {"parentRefs": [{"name": "eg"}], "routes": list(routes)},
                },
            },
        }
    )


@pytest.fixture
def router_requests(tmp_path: Path) -> Iterator[list[Request]]:
    """The RBAC requests of a router's life with an HTTPRoute and a GRPCRoute."""
    with ApiServer() as api:
        api.create_namespace("shop")
        api.apply_file(*GATEWAY_CRDS)
        made = config.new_client_from_config(config_file=str(api.kubeconfig(tmp_path / "kc")))
        kube = Kube(made)
        grpc_only = rollout_with({"kind": "GRPCRoute"})
        held: dict[tuple[str, str, str, str], tuple[dict[str, object], dict[str, object]]] = {}
        both_grpc = rollout_with(
            {"kind": "HTTPRoute", "hostnames": ["web.example.com"]},
            {"kind": "GRPCRoute", "hostnames": ["grpc.example.com"]},
        )
        MeshRouter(kube, both_grpc, {}, held).apply(Route(canary_weight=20))
        assert MeshRouter(kube, both_grpc).current() == Route(canary_weight=20)
        MeshRouter(kube, grpc_only, {}, held).apply(Route(canary_weight=20))  # deletes one
        MeshRouter(kube, rollout_with({"kind": "HTTPRoute"})).repair(
            RolloutStatus(phase=Phase.SUCCEEDED), unknown=True
        )  # a new replica: lists both kinds, deletes the GRPCRoute
        made.close()
        requests = [request_of(method, target) for method, target, _ in api.requests]
        yield [r for r in requests if r is not None and r.group == "gateway.networking.k8s.io"]


def test_the_charts_rbac_allows_every_route_request(router_requests: list[Request]) -> None:
    verbs = {(r.verb, r.resource) for r in router_requests}
    for resource in ("httproutes", "grpcroutes"):
        assert {("patch", resource), ("get", resource), ("list", resource)} <= verbs, verbs
        assert ("delete", resource) in verbs, verbs
    objects = render().objects()
    refused = [
        str(r) for r in router_requests if not rbac_allows(objects, (NAMESPACE, "canary"), r)
    ]
    assert refused == []


def test_without_the_gateway_api_rule_the_grpcroute_requests_are_refused(
    router_requests: list[Request],
) -> None:
    objects = render({"rbac": {"providers": {"gatewayApi": False}}}).objects()
    grpc = [r for r in router_requests if r.resource == "grpcroutes"]
    assert grpc
    assert not [r for r in grpc if rbac_allows(objects, (NAMESPACE, "canary"), r)]
