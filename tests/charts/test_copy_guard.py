"""The copy guard (templates/admission-policy.yaml): the ValidatingAdmissionPolicy that holds
the controller's ConfigMap and Secret writes to the copies it makes. Its CEL rules, as helm
renders them, evaluated with cel-python on the requests a real API server would send it:
the controller's own copies (made by canary.workload, the code the controller runs) are
admitted; writes to anything else, service-account-token Secrets and protected namespaces
are refused; other users' requests are not its business. What a real API server adds (it
calls the policy at all, with these variables) is Kubernetes' part and is not run here."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from chart_rbac import Verdict, judge
from chart_support import NAMESPACE, HelmError, Rendered, render, rendered

from canary.workload.names import Owner
from canary.workload.primary import primary_configs

Json = dict[str, Any]


GUARD = "canary-config-copies"


def _named(result: Rendered, name: str) -> list[Json]:
    kinds = ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")
    return [o for o in result.objects() if o["kind"] in kinds and o["metadata"]["name"] == name]


def policy(variant: str = "defaults") -> Json:
    return rendered(variant).one("ValidatingAdmissionPolicy", GUARD)


def the_controllers_copies() -> list[Json]:
    """The copies canary.workload makes of a target's ConfigMap and Secret."""
    target = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "web:1",
                            "envFrom": [
                                {"configMapRef": {"name": "web-config"}},
                                {"secretRef": {"name": "web-secrets"}},
                            ],
                        }
                    ]
                },
            },
        },
    }
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "web-config", "namespace": "shop"},
        "data": {"LEVEL": "info"},
    }
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "web-secrets", "namespace": "shop"},
        "type": "Opaque",
        "data": {"TOKEN": base64.b64encode(b"s3cret").decode()},
    }
    owner = Owner(name="web", uid="0b6a-42", namespace="shop")
    made = primary_configs(target, [config], [secret], owner=owner, revision="5f7d8")
    copies = [*made.configmaps, *made.secrets]
    assert [c["kind"] for c in copies] == ["ConfigMap", "Secret"]
    return copies


def test_the_policy_is_bound_and_denies() -> None:
    result = rendered()
    binding = result.one("ValidatingAdmissionPolicyBinding", GUARD)
    assert binding["spec"] == {
        "policyName": "canary-config-copies",
        "validationActions": ["Deny"],
    }
    assert policy()["spec"]["failurePolicy"] == "Fail"


def test_the_controllers_own_copies_are_admitted_through_their_life() -> None:
    rules = policy()
    for copy in the_controllers_copies():
        label = f"{copy['kind']} {copy['metadata']['name']}"
        assert judge(rules, "CREATE", copy, None) == Verdict(True, ()), label
        changed = {**copy, "data": {**copy["data"], "MORE": "eA=="}}
        assert judge(rules, "UPDATE", changed, copy) == Verdict(True, ()), label
        assert judge(rules, "DELETE", None, copy) == Verdict(True, ()), label


def _plain(kind: str, namespace: str = "shop", **extra: Any) -> Json:
    return {
        "apiVersion": "v1",
        "kind": kind,
        "metadata": {"name": "team-db", "namespace": namespace},
        **extra,
    }


REFUSED_BECAUSE = {
    "protected": "protected namespace",
    "not-ours": "changes or deletes only the copies it made",
    "not-a-copy": "writes only copies labelled canary.dev/rollout and owned by a Rollout",
    "token": "no service-account-token Secret",
}


def _refusals() -> list[Any]:
    copy_secret = the_controllers_copies()[1]
    unlabelled = _plain("Secret", type="Opaque", data={"password": "aHVudGVyMg=="})
    labelled_only = _plain("ConfigMap")
    labelled_only["metadata"]["labels"] = {"canary.dev/rollout": "web"}
    foreign_owner = _plain("ConfigMap")
    foreign_owner["metadata"]["labels"] = {"canary.dev/rollout": "web"}
    foreign_owner["metadata"]["ownerReferences"] = [
        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "1"}
    ]
    token = {**copy_secret, "type": "kubernetes.io/service-account-token"}
    in_kube_system = {**copy_secret, "metadata": {**copy_secret["metadata"]}}
    in_kube_system["metadata"]["namespace"] = "kube-system"
    claimed = {**unlabelled, "metadata": {**unlabelled["metadata"], **copy_secret["metadata"]}}
    claimed["metadata"]["name"] = "team-db"
    return [
        pytest.param("CREATE", unlabelled, None, ["not-a-copy"], id="create-a-secret"),
        pytest.param("CREATE", labelled_only, None, ["not-a-copy"], id="label-without-owner"),
        pytest.param("CREATE", foreign_owner, None, ["not-a-copy"], id="owned-by-another-kind"),
        pytest.param("UPDATE", claimed, unlabelled, ["not-ours"], id="take-over-by-labelling"),
        pytest.param("DELETE", None, unlabelled, ["not-ours"], id="delete-a-secret"),
        pytest.param("CREATE", token, None, ["token"], id="service-account-token"),
        pytest.param("UPDATE", token, copy_secret, ["token"], id="copy-turned-token"),
        pytest.param("CREATE", in_kube_system, None, ["protected"], id="kube-system"),
        pytest.param("DELETE", None, in_kube_system, ["protected"], id="kube-system-delete"),
    ]


@pytest.mark.parametrize(("operation", "obj", "old", "reasons"), _refusals())
def test_writes_beyond_the_copies_are_refused(
    operation: str, obj: Json | None, old: Json | None, reasons: list[str]
) -> None:
    verdict = judge(policy(), operation, obj, old)
    assert verdict.applies
    assert len(verdict.refusals) == len(reasons), verdict.refusals
    for refusal, reason in zip(verdict.refusals, reasons, strict=True):
        assert REFUSED_BECAUSE[reason] in refusal


def test_other_users_are_not_its_business() -> None:
    unlabelled = _plain("Secret", "kube-system", type="Opaque")
    verdict = judge(policy(), "CREATE", unlabelled, None, user="kubernetes-admin")
    assert verdict == Verdict(False, ())
    other_sa = f"system:serviceaccount:{NAMESPACE}:someone-else"
    assert not judge(policy(), "CREATE", unlabelled, None, user=other_sa).applies


def test_the_protected_namespaces_follow_the_values() -> None:
    copy = the_controllers_copies()[0]
    mine = {**copy, "metadata": {**copy["metadata"], "namespace": NAMESPACE}}
    assert judge(policy(), "CREATE", mine, None).admitted  # the defaults leave it writable
    refused = judge(policy("monitoring"), "CREATE", mine, None)
    assert [r for r in refused.refusals if "protected namespace" in r]


def test_the_guard_follows_the_service_account_and_rbac() -> None:
    deployer = render({"serviceAccount": {"name": "deployer"}})
    named = deployer.one("ValidatingAdmissionPolicy", GUARD)
    copy = the_controllers_copies()[0]
    assert judge(named, "CREATE", copy, None, f"system:serviceaccount:{NAMESPACE}:deployer").applies
    assert not judge(named, "CREATE", copy, None).applies
    assert _named(rendered("minimal"), "cd-config-copies") == []  # rbac.create off
    off = render({"rbac": {"copyGuard": {"enabled": False}}})
    assert _named(off, GUARD) == []
    assert _named(render(), GUARD) != []


def test_a_cluster_without_admission_policies_is_told_what_to_choose() -> None:
    no_command_policy = {"commands": {"admissionPolicy": {"enabled": False}}}
    with pytest.raises(HelmError, match="needs ValidatingAdmissionPolicy") as refused:
        render(no_command_policy, "canary", "--kube-version=1.29.0")
    assert "watchNamespaces" in str(refused.value)
    assert "rbac.copyGuard.enabled=false" in str(refused.value)
    assert render(None, "canary", "--kube-version=1.30.0").find("ValidatingAdmissionPolicy")
    older = render(
        {**no_command_policy, "rbac": {"copyGuard": {"enabled": False}}},
        "canary",
        "--kube-version=1.29.0",
    )
    assert older.find("Deployment")
