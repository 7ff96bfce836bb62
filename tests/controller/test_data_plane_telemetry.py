"""What the end-to-end tests' simulated mesh stands on: the split read from the route objects
as each mesh reads them (VirtualService, HTTPRoute, TrafficSplit), and the Envoy Gateway
series the shipped gateway-api-envoy policy queries."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from canary.analysis.policies import DEFAULT_ROLLOUT_VARIABLES, builtin_policy
from canary.engine.actions import Route
from canary.model.rollout import Rollout
from canary.model.strategy import MatchRule
from canary.testing.telemetry import (
    ENVOY_BUCKETS_MS,
    Behaviour,
    MeshTelemetry,
    Split,
    Workloads,
    envoy_cluster_name,
)
from canary.testing.telemetry_routes import split_of_objects
from canary.traffic.mesh import desired_objects

Json = dict[str, Any]
SIDES = {"canary": "podinfo-canary", "primary": "podinfo-primary"}
RULE = MatchRule.model_validate({"headers": {"x-canary": {"exact": "yes"}}})
PROVIDERS: dict[str, Json] = {
    "istio": {"name": "istio"},
    "linkerd": {"name": "linkerd"},
    "linkerd-smi": {"name": "linkerd", "linkerd": {"api": "smi"}},
    "gateway-api": {"name": "gateway-api", "gatewayApi": {"parentRefs": [{"name": "eg"}]}},
}


def a_rollout(provider: str, **route: Any) -> Rollout:
    service: Json = {"port": 9898}
    if route:
        service["route"] = route
    return Rollout.model_validate(
        {
            "apiVersion": "canary.dev/v1alpha1",
            "kind": "Rollout",
            "metadata": {"name": "podinfo", "namespace": "test", "uid": "u"},
            "spec": {
                "targetRef": {"name": "podinfo"},
                "service": service,
                "provider": copy.deepcopy(PROVIDERS[provider]),
            },
        }
    )


ROUTES = {
    "weights": [Route(canary_weight=w) for w in (0, 5, 20, 50, 100)],
    "ab": [Route(match=(RULE,)), Route(canary_weight=10, match=(RULE,))],
    "mirror": [Route(mirror_percentage=p) for p in (12.5, 50.0, 100.0)],
}
CAN = {
    "istio": ("weights", "ab", "mirror"),
    "linkerd": ("weights", "ab"),
    "linkerd-smi": ("weights",),
    "gateway-api": ("weights", "ab", "mirror"),
}
CASES = [
    (provider, route) for provider, kinds in CAN.items() for kind in kinds for route in ROUTES[kind]
]


@pytest.mark.parametrize(("provider", "route"), CASES)
def test_the_mesh_reads_from_the_objects_the_split_canary_meant(
    provider: str, route: Route
) -> None:
    objects = desired_objects(a_rollout(provider), route)
    assert split_of_objects(objects, **SIDES) == Split.of_route(route)


def test_the_services_own_mirror_is_not_traffic_to_the_canary() -> None:
    rollout = a_rollout("istio", mirror={"host": "shadow", "port": 80, "percentage": 30})
    objects = desired_objects(rollout, Route(canary_weight=20))
    assert split_of_objects(objects, **SIDES) == Split(canary_weight=20)
    both = desired_objects(rollout, Route(mirror_percentage=10.0))
    assert split_of_objects(both, **SIDES) == Split(mirror_percent=10.0)


def test_weights_are_shares_and_defaults_are_the_meshes() -> None:
    http_route: Json = {
        "kind": "HTTPRoute",
        "spec": {
            "rules": [{"backendRefs": [{"name": "podinfo-primary"}, {"name": "podinfo-canary"}]}]
        },
    }
    # The Gateway API's default weight is 1: an even split.
    assert split_of_objects([http_route], **SIDES) == Split(canary_weight=50)
    split: Json = {
        "kind": "TrafficSplit",
        "spec": {
            "backends": [
                {"service": "podinfo-primary", "weight": 300},
                {"service": "podinfo-canary", "weight": 100},
            ]
        },
    }
    assert split_of_objects([split], **SIDES) == Split(canary_weight=25)
    single: Json = {
        "kind": "VirtualService",
        "spec": {"http": [{"route": [{"destination": {"host": "podinfo-canary.test.svc"}}]}]},
    }
    assert split_of_objects([single], **SIDES) == Split(canary_weight=100)


def test_no_route_object_is_all_on_the_primary_and_an_unservable_one_an_error() -> None:
    assert split_of_objects([{"kind": "DestinationRule"}], **SIDES) == Split()
    nowhere = desired_objects(a_rollout("linkerd-smi"), Route(canary_weight=20))
    nowhere[0]["spec"]["backends"][0]["weight"] = 0
    nowhere[0]["spec"]["backends"][1]["weight"] = 0
    with pytest.raises(ValueError, match="no traffic"):
        split_of_objects(nowhere, **SIDES)
    two = desired_objects(a_rollout("linkerd"), Route()) + desired_objects(
        a_rollout("linkerd-smi"), Route()
    )
    with pytest.raises(ValueError, match="more than one"):
        split_of_objects(two, **SIDES)


# --- Envoy Gateway's statistics ----------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


LINE = re.compile(r"^(?P<name>[a-z_]+)\{(?P<labels>[^}]*)\} (?P<value>\S+)$")


def series(text: str) -> list[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of every sample line, names as written."""
    out = []
    for line in text.splitlines():
        found = LINE.match(line)
        if found:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', found["labels"]))
            out.append((found["name"], labels, float(found["value"])))
    return out


def total(text: str, name: str, **labels: str) -> float:
    return sum(
        value
        for sample, have, value in series(text)
        if sample == name and all(have.get(k) == v for k, v in labels.items())
    )


NAMES = Workloads(namespace="shop", canary="cart", primary="cart-primary", service="cart")


def envoy(split: Split, clock: Clock, **kwargs: Any) -> MeshTelemetry:
    return MeshTelemetry(
        lambda: split, clock=clock, workloads=NAMES, meshes=("envoy",), seed=5, **kwargs
    )


def test_envoy_counts_each_backend_in_its_own_cluster_as_envoy_writes_it() -> None:
    clock = Clock()
    mesh = envoy(Split(canary_weight=25), clock, rate=1000.0, canary=Behaviour(error_rate=0.1))
    clock.now += 60
    text = mesh.exposition().decode()
    assert "# TYPE envoy_cluster_upstream_rq_xx counter" in text
    assert "_total" not in text, "Envoy's counters carry no _total suffix"
    assert "istio_requests_total" not in text
    canary = envoy_cluster_name(NAMES, 0, 1)
    primary = envoy_cluster_name(NAMES, 0, 0)
    assert canary == "httproute/shop/cart/rule/0/backend/1"
    totals = mesh.totals()
    rq = "envoy_cluster_upstream_rq_xx"
    assert total(text, rq, envoy_cluster_name=canary) == totals["canary"].requests
    assert total(text, rq, envoy_cluster_name=primary) == totals["primary"].requests
    errors = total(text, rq, envoy_cluster_name=canary, envoy_response_code_class="5")
    assert errors == totals["canary"].errors > 0
    assert total(text, rq, envoy_cluster_name=primary, envoy_response_code_class="5") == 0
    by_code = total(text, "envoy_cluster_upstream_rq", envoy_cluster_name=canary)
    assert by_code == totals["canary"].requests
    # The latency histogram: all codes together, Envoy's boundaries, 500 ms among them.
    buckets = [
        (labels["le"], value)
        for name, labels, value in series(text)
        if name == "envoy_cluster_upstream_rq_time_bucket"
        and labels["envoy_cluster_name"] == canary
    ]
    assert [le for le, _ in buckets][:-1] == [
        f"{b:g}" if b < 1e6 else str(int(b)) for b in ENVOY_BUCKETS_MS
    ]
    assert "500" in dict(buckets)
    values = [value for _, value in buckets]
    assert values == sorted(values)
    count = total(text, "envoy_cluster_upstream_rq_time_count", envoy_cluster_name=canary)
    assert values[-1] == count == totals["canary"].requests


def test_ab_requests_are_counted_on_the_ab_rule_and_the_rest_on_the_weighted_rule() -> None:
    clock = Clock()
    mesh = envoy(Split(canary_weight=0, matched_share=0.2), clock, rate=1000.0)
    clock.now += 60
    text = mesh.exposition().decode()
    rq = "envoy_cluster_upstream_rq_xx"
    matched = total(text, rq, envoy_cluster_name=envoy_cluster_name(NAMES, 0, 1))
    assert matched == mesh.totals()["canary"].requests
    assert abs(matched / 60_000 - 0.2) < 0.01
    rest = total(text, rq, envoy_cluster_name=envoy_cluster_name(NAMES, 1, 0))
    assert matched + rest == 60_000


def test_the_gateway_api_policy_reads_the_clusters_the_simulator_names() -> None:
    """The shipped policy's cluster patterns (RE2, anchored as PromQL anchors them) select the
    simulated clusters of each side, and nothing of the other side."""
    variables = builtin_policy("gateway-api-envoy").spec.variables
    values = {
        **variables,
        **DEFAULT_ROLLOUT_VARIABLES,  # (its routes named after the target)
        "namespace": NAMES.namespace,
        "target": NAMES.service,
    }

    def pattern(name: str) -> re.Pattern[str]:
        text = variables[name]
        while "{{" in text:  # the variables nest
            for key, value in values.items():
                text = text.replace("{{ " + key + " }}", value)
        return re.compile(f"^(?:{text})$")

    canary, primary = pattern("canary_cluster"), pattern("primary_cluster")
    for rule in (0, 1):
        assert canary.match(envoy_cluster_name(NAMES, rule, 1))
        assert not canary.match(envoy_cluster_name(NAMES, rule, 0))
        assert primary.match(envoy_cluster_name(NAMES, rule, 0))
        assert not primary.match(envoy_cluster_name(NAMES, rule, 1))
