"""Policies that select the target's pods keep applying to the primary: an Istio
AuthorizationPolicy and a NetworkPolicy get managed copies selecting the primary's pods, kept
through a rollout, and deleted when their policy goes; a policy on other labels is left alone."""

from __future__ import annotations

from typing import Any

from controller_support import Cluster, deployment, rollout, wait_for

from canary.workload.policies import POLICY_KINDS, selector_of, selects

Json = dict[str, Any]
AUTHZ = ("security.istio.io/v1", "AuthorizationPolicy")
NETPOL = ("networking.k8s.io/v1", "NetworkPolicy")
AUTHZ_CRD: Json = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "authorizationpolicies.security.istio.io"},
    "spec": {
        "group": "security.istio.io",
        "names": {
            "kind": "AuthorizationPolicy",
            "plural": "authorizationpolicies",
            "singular": "authorizationpolicy",
            "listKind": "AuthorizationPolicyList",
        },
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                        },
                    }
                },
            }
        ],
    },
}


def policies(ns: str) -> list[Json]:
    allow_frontend = {
        "apiVersion": AUTHZ[0],
        "kind": AUTHZ[1],
        "metadata": {"name": "web-allow", "namespace": ns},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "action": "ALLOW",
            "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/x/sa/frontend"]}}]}],
        },
    }
    ingress = {
        "apiVersion": NETPOL[0],
        "kind": NETPOL[1],
        "metadata": {"name": "web-ingress", "namespace": ns},
        "spec": {
            "podSelector": {
                "matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]
            },
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "frontend"}}}]}],
        },
    }
    by_tier = {
        "apiVersion": NETPOL[0],
        "kind": NETPOL[1],
        "metadata": {"name": "tier", "namespace": ns},
        "spec": {"podSelector": {"matchLabels": {"tier": "web"}}, "policyTypes": ["Ingress"]},
    }
    return [allow_frontend, ingress, by_tier]


def primary_pods(cluster: Cluster) -> dict[str, str]:
    template = cluster.deployment("web-primary")["spec"]["template"]
    return dict(template["metadata"]["labels"])


def kind_of(obj: Json) -> Any:
    return next(k for k in POLICY_KINDS if k.kind == obj["kind"])


def test_policies_that_select_the_target_select_the_primary_too(cluster: Cluster) -> None:
    ns = cluster.namespace
    cluster.api.apply(AUTHZ_CRD)
    for policy in policies(ns):
        cluster.api.apply(policy)
    target = deployment("web", ns)
    template = target["spec"]["template"]
    template["metadata"]["labels"] = {**template["metadata"]["labels"], "tier": "web"}
    cluster.api.apply(target)
    cluster.api.apply(rollout("web", ns, skipAnalysis=True))
    controller = cluster.controller()
    cluster.wait_phase("web", "Initialized")
    wait_for(
        "both copies",
        lambda: (
            cluster.get(*AUTHZ, "web-allow-primary") and cluster.get(*NETPOL, "web-ingress-primary")
        ),
    )
    assert cluster.get(*NETPOL, "tier-primary") is None, "a selector on other labels covers both"

    def check() -> None:
        pods = primary_pods(cluster)
        for name, kind in (("web-allow-primary", AUTHZ), ("web-ingress-primary", NETPOL)):
            copy = cluster.get(*kind, name)
            assert copy is not None, name
            assert selects(selector_of(copy, kind_of(copy)), pods), f"{name} selects the primary"
            assert copy["metadata"]["ownerReferences"][0]["kind"] == "Rollout"
            original = cluster.get(*kind, name.removesuffix("-primary"))
            assert original is not None
            rest = {k: v for k, v in copy["spec"].items() if k not in ("selector", "podSelector")}
            assert rest == {
                k: v for k, v in original["spec"].items() if k not in ("selector", "podSelector")
            }, "the same rules"

    check()
    cluster.set_image("web", "podinfo:7.0.0")
    cluster.wait_phase("web", "Succeeded")
    check()  # after the rollout: the primary's pods (same labels) still selected
    cluster.api.delete(*NETPOL, "web-ingress", ns)
    controller.reconciler.services.forget()  # (as the 5-minute resync would)
    controller.scheduler.trigger(f"{ns}/web")
    wait_for("the stale copy deleted", lambda: cluster.get(*NETPOL, "web-ingress-primary") is None)
    assert cluster.get(*AUTHZ, "web-allow-primary") is not None
