"""The shipped gateway-api-envoy policy reads the Envoy clusters of the routes the Rollout lists,
whatever their names: the Rollout gives ``{{ http_routes }}`` and ``{{ grpc_routes }}`` when its
checks are taken. The clusters of another route (another Rollout's, one canary does not write)
are never read. The cluster pattern is checked as Prometheus would read it: rendered for a
tick, its PromQL string unescaped, matched whole."""

from __future__ import annotations

import re
from typing import Any

import pytest

from canary.analysis.analyse import query_variables
from canary.analysis.checks import resolve_checks
from canary.analysis.policies import (
    PolicyError,
    builtin_policy,
    expand,
    rollout_variables,
)
from canary.analysis.prometheus import render_check
from canary.analysis.provider import Targets
from canary.model import CheckSpec, ClusterAnalysisPolicy, Rollout

TARGETS = Targets(namespace="shop", target="web", canary="web", primary="web-primary")


def rollout(routes: list[dict[str, Any]] | None, provider: str = "gateway-api") -> Rollout:
    settings: dict[str, Any] = {"parentRefs": [{"name": "eg"}]}
    if routes is not None:
        settings["routes"] = routes
    block = {"name": provider, "gatewayApi": settings} if provider == "gateway-api" else None
    return Rollout.model_validate(
        {
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {
                "targetRef": {"name": "web"},
                "service": {"port": 9898},
                "provider": block or {"name": provider},
            },
        }
    )


def canary_clusters(subject: Rollout) -> re.Pattern[str]:
    """The canary's cluster pattern of the shipped policy, as the tick's query holds it."""
    shipped = builtin_policy("gateway-api-envoy")
    probe = shipped.model_copy(
        update={
            "spec": shipped.spec.model_copy(
                update={
                    "checks": [
                        CheckSpec.model_validate(
                            {
                                "name": "probe",
                                "kind": "custom",
                                "max": 1,
                                "query": 'x{envoy_cluster_name=~"{{ canary_cluster }}"}',
                            }
                        )
                    ]
                }
            )
        }
    )
    (check,) = expand(probe, given=rollout_variables(subject))
    query = render_check(check, query_variables(TARGETS, 60, check))
    quoted = re.search(r'=~"((?:[^"\\]|\\.)*)"', query)
    assert quoted is not None, query
    return re.compile(quoted.group(1).encode().decode("unicode_escape"))


def read(pattern: re.Pattern[str], cluster: str) -> bool:
    return pattern.fullmatch(cluster) is not None


def test_routes_named_after_the_target_as_before() -> None:
    pattern = canary_clusters(rollout(None))
    assert read(pattern, "httproute/shop/web/rule/0/backend/1")
    assert read(pattern, "grpcroute/shop/web/rule/1/backend/1"), "(none listed: harmless)"
    assert not read(pattern, "httproute/shop/web/rule/0/backend/0"), "the primary's"
    assert not read(pattern, "httproute/shop/web-internal/rule/0/backend/1")
    assert not read(pattern, "httproute/other/web/rule/0/backend/1")


def test_a_grpcroute_of_another_name_is_read_and_others_are_not() -> None:
    grpc = {"kind": "GRPCRoute", "name": "web-grpc", "hostnames": ["grpc.example.com"]}
    routes: list[dict[str, Any]] = [{"kind": "HTTPRoute", "hostnames": ["web.example.com"]}, grpc]
    pattern = canary_clusters(rollout(routes))
    assert read(pattern, "grpcroute/shop/web-grpc/rule/0/backend/1")
    assert read(pattern, "grpcroute_shop_web-grpc_rule_0_backend_1"), "a sink's underscores"
    assert read(pattern, "httproute/shop/web/rule/0/backend/1")
    assert not read(pattern, "grpcroute/shop/web/rule/0/backend/1"), "no such GRPCRoute"
    assert not read(pattern, "httproute/shop/web-grpc/rule/0/backend/1"), "the kind counts"
    assert not read(pattern, "grpcroute/shop/web-grpc-2/rule/0/backend/1")


def test_two_httproutes_of_their_own_names_are_both_read() -> None:
    routes = [{"kind": "HTTPRoute", "name": "web.public"}, {"kind": "HTTPRoute", "name": "int"}]
    pattern = canary_clusters(rollout(routes))
    assert read(pattern, "httproute/shop/web.public/rule/0/backend/1")
    assert read(pattern, "httproute/shop/int/rule/2/backend/1")
    assert not read(pattern, "httproute/shop/webXpublic/rule/0/backend/1"), "a dot is a dot"
    assert not read(pattern, "httproute/shop/web/rule/0/backend/1"), "not listed"


def test_other_providers_give_the_target() -> None:
    assert rollout_variables(rollout(None, provider="istio")) == {
        "http_routes": "{{ target }}",
        "grpc_routes": "{{ target }}",
    }


def test_a_rollouts_checks_read_its_routes() -> None:
    subject = rollout([{"kind": "GRPCRoute", "name": "web-grpc"}])
    checks = {c.name: c for c in resolve_checks(subject)}
    assert "(web-grpc)" in str(checks["error-rate"].requests_query)
    assert "(web-grpc)" in str(checks["latency"].quantile_query)


@pytest.mark.parametrize("name", ["http_routes", "grpc_routes"])
def test_a_policy_cannot_set_the_routes(name: str) -> None:
    policy = ClusterAnalysisPolicy.model_validate(
        {
            "apiVersion": "canary.dev/v1alpha1",
            "kind": "ClusterAnalysisPolicy",
            "metadata": {"name": "mine"},
            "spec": {
                "variables": {name: "anything"},
                "checks": [{"name": "c", "kind": "custom", "max": 1, "query": "up"}],
            },
        }
    )
    with pytest.raises(PolicyError, match="given by the Rollout"):
        expand(policy)
