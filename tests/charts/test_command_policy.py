"""The chart's part of the authentic command path (docs/security.md, "Commands"): the
RolloutCommand admission policy (templates/command-policy.yaml) equals what
canary.model.command.admission_policy generates for the rendered ServiceAccount, and the test
API server, with the rendered policy installed, refuses a command in someone else's name; the
approver ClusterRole and the controller's rules for commands are the documented ones; the
controller's --webhook-allow and --forbid-inline-queries follow the values; NOTES say how to
approve."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_controller import controller_from_chart
from chart_kinds import stand_in_crds
from chart_rbac import Request, documented_rbac, rbac_allows
from chart_support import (
    CRDS,
    DOCS,
    NAMESPACE,
    VARIANTS,
    HelmError,
    Kubectl,
    Rendered,
    container,
    kubectl_path,
    render,
    rendered,
    schema_errors,
    values_of,
)

from canary.model.command import admission_policy, new_command
from canary.testing import ApiServer

Json = dict[str, Any]
POLICY_KINDS = ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")


def command_policy(result: Rendered) -> list[Json]:
    """The rendered policy and binding of the command path (by their name's suffix)."""
    return [
        o
        for o in result.objects()
        if o["kind"] in POLICY_KINDS and o["metadata"]["name"].endswith("-rollout-commands")
    ]


def service_account_user(result: Rendered) -> str:
    """The user name Kubernetes gives the ServiceAccount the rendered Deployment runs as."""
    deployment = result.one("Deployment")
    name = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    for account in result.find("ServiceAccount"):
        assert account["metadata"]["name"] == name
    return f"system:serviceaccount:{deployment['metadata']['namespace']}:{name}"


def without_labels(objects: list[Json]) -> list[Json]:
    bare = copy.deepcopy(objects)
    for obj in bare:
        obj["metadata"].pop("labels", None)
    return bare


# --- the policy is the model's -----------------------------------------------------------------


SETS = {
    **{name: VARIANTS[name] for name in ("defaults", "monitored-with-api", "namespaced")},
    "own-service-account": {"serviceAccount": {"name": "deployer"}},
    "existing-service-account": {
        "serviceAccount": {"create": False, "name": "platform-bot"},
        "fullnameOverride": "delivery",
    },
}


@pytest.mark.parametrize("variant", sorted(SETS))
def test_the_rendered_policy_is_the_one_the_model_generates(variant: str) -> None:
    result = render(SETS[variant])
    objects = command_policy(result)
    assert [o["kind"] for o in objects] == list(POLICY_KINDS)
    name = objects[0]["metadata"]["name"]
    assert name == f"{result.one('Deployment')['metadata']['name']}-rollout-commands"
    user = service_account_user(result)
    assert without_labels(objects) == admission_policy(user, name=name)
    assert all(o["metadata"]["labels"]["app.kubernetes.io/part-of"] == "canary" for o in objects)


def test_the_comparison_has_teeth() -> None:
    """Another ServiceAccount's policy differs from the rendered one: the test above compares
    the user the policy trusts, not only the shape."""
    result = rendered()
    name = "canary-rollout-commands"
    other = admission_policy(f"system:serviceaccount:{NAMESPACE}:someone-else", name=name)
    assert without_labels(command_policy(result)) != other


def test_the_policy_is_on_by_default_and_can_be_turned_off() -> None:
    assert values_of("defaults")["commands"]["admissionPolicy"]["enabled"] is True
    off = render({"commands": {"admissionPolicy": {"enabled": False}}})
    assert command_policy(off) == []
    assert off.one("ValidatingAdmissionPolicy")["metadata"]["name"] == "canary-config-copies"
    assert command_policy(rendered("minimal")) == []


def test_a_cluster_without_admission_policies_is_told_how_to_go_on() -> None:
    no_guard = {"rbac": {"copyGuard": {"enabled": False}}}
    with pytest.raises(HelmError, match="needs ValidatingAdmissionPolicy") as refused:
        render(no_guard, "canary", "--kube-version=1.29.0")
    assert "commands.admissionPolicy.enabled=false" in str(refused.value)
    assert command_policy(render(no_guard, "canary", "--kube-version=1.30.0"))


# --- the test API server enforces the rendered policy ------------------------------------------


@pytest.fixture
def api() -> Iterator[ApiServer]:
    with ApiServer() as server:
        for namespace in (NAMESPACE, "shop"):
            server.create_namespace(namespace)
        yield server


@pytest.fixture
def kubectl(api: ApiServer, tmp_path: Path) -> Kubectl:
    kubectl_path()  # fails, saying how to install it, when kubectl is missing
    return Kubectl(api.kubeconfig(tmp_path / "kubeconfig", namespace="shop"), tmp_path / "c")


def _create_as(kubectl: Kubectl, tmp_path: Path, user: str, command: Json) -> Any:
    path = tmp_path / "command.json"
    path.write_text(json.dumps(command), encoding="utf-8")
    return kubectl.run("--as", user, "create", "-f", str(path), "-o", "json", check=False)


def test_the_test_api_server_applies_the_rendered_policy(
    api: ApiServer, kubectl: Kubectl, tmp_path: Path
) -> None:
    """The rendered policy and binding are applied with kubectl (as helm would create them),
    then evaluated by the test API server (canary/testing/admission.py) on commands created
    with kubectl as different users: a requester's own command is accepted, one in another's
    name, an onBehalfOf set by anyone but the controller's ServiceAccount and a label naming
    another Rollout are refused."""
    result = rendered()
    objects = command_policy(result)
    kubectl.run("apply", "-f", str(CRDS / "rolloutcommands.canary.dev.yaml"))
    stand_ins = tmp_path / "stand-in-crds.yaml"  # the test server serves no admission kinds
    stand_ins.write_text(yaml.safe_dump_all(stand_in_crds()), encoding="utf-8")
    kubectl.run("apply", "-f", str(stand_ins))
    manifest = tmp_path / "policy.yaml"
    manifest.write_text(yaml.safe_dump_all(objects), encoding="utf-8")
    applied = kubectl.run("apply", "-f", str(manifest)).stdout
    assert "validatingadmissionpolicy.admissionregistration.k8s.io/canary-rollout-commands" in (
        applied
    )
    api.install_admission_policies(objects)
    controller = service_account_user(result)

    own = _create_as(
        kubectl, tmp_path, "alice@corp", new_command("shop", "web", "approve", "alice@corp")
    )
    assert own.returncode == 0, own.stderr
    assert json.loads(own.stdout)["spec"]["user"] == "alice@corp"

    forged = _create_as(
        kubectl, tmp_path, "alice@corp", new_command("shop", "web", "abort", "bob@corp")
    )
    assert forged.returncode != 0
    assert "spec.user must be the user who creates the command, alice@corp" in forged.stderr
    assert "canary-rollout-commands" in forged.stderr

    as_api = new_command("shop", "web", "promote", "alice@corp", on_behalf_of="ci")
    posing = _create_as(kubectl, tmp_path, "alice@corp", as_api)
    assert posing.returncode != 0
    assert "spec.onBehalfOf is set by the canary API only" in posing.stderr

    by_api = new_command("shop", "web", "promote", controller, on_behalf_of="ci")
    api_made = _create_as(kubectl, tmp_path, controller, by_api)
    assert api_made.returncode == 0, api_made.stderr

    elsewhere = new_command("shop", "web", "abort", "alice@corp")
    elsewhere["metadata"]["labels"]["canary.dev/rollout"] = "payments"
    mislabelled = _create_as(kubectl, tmp_path, "alice@corp", elsewhere)
    assert mislabelled.returncode != 0
    assert "label canary.dev/rollout must name spec.rollout" in mislabelled.stderr

    stored = api.list("canary.dev/v1alpha1", "RolloutCommand", "shop")
    assert sorted((c["spec"]["action"], c["spec"]["user"]) for c in stored) == [
        ("approve", "alice@corp"),
        ("promote", controller),
    ]


# --- RBAC for commands ------------------------------------------------------------------------


def _security_block() -> tuple[Json, list[Json]]:
    """docs/security.md's chart block: (the approver ClusterRole, the controller's rules)."""
    text = (DOCS / "security.md").read_text(encoding="utf-8")
    block = text.split("**Grant approving without granting edits.**", 1)[1]
    block = block.split("```yaml", 1)[1].split("```", 1)[0]
    role, controller_rules = yaml.safe_load_all(block)
    return role, controller_rules


CONTROLLER = (NAMESPACE, "canary")


@pytest.mark.parametrize("variant", ["defaults", "namespaced"])
def test_the_controller_may_do_what_it_does_with_commands(variant: str) -> None:
    """docs/controller.md and docs/security.md list the controller's rules for commands, and
    the rendered RBAC grants them: in the watched namespaces (namespaced mode) or everywhere,
    and the cluster-scoped SelfSubjectReview in both modes."""
    cluster_rules, _ = documented_rbac()
    _, for_commands = _security_block()
    assert [r for r in for_commands if r not in cluster_rules] == []
    objects = rendered(variant).objects()
    wanted = [
        Request(verb, "canary.dev", "rolloutcommands", "shop")
        for verb in ("list", "watch", "delete", "create")
    ]
    wanted.append(Request("create", "authentication.k8s.io", "selfsubjectreviews", None))
    assert [str(r) for r in wanted if not rbac_allows(objects, CONTROLLER, r)] == []
    namespaced = variant == "namespaced"
    outside = Request("create", "canary.dev", "rolloutcommands", "default")
    assert rbac_allows(objects, CONTROLLER, outside) is not namespaced
    assert not rbac_allows(
        objects, CONTROLLER, Request("update", "canary.dev", "rolloutcommands", "shop")
    )


def _bound_to_ci(result: Rendered, role: str) -> list[Json]:
    """The rendered objects and a RoleBinding of `role` to ServiceAccount shop/ci in shop,
    as the docs tell a user to make."""
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "ci-approves", "namespace": "shop"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": "ci", "namespace": "shop"}],
    }
    return [*result.objects(), binding]


def test_the_approver_role_approves_and_edits_nothing() -> None:
    result = render({"commands": {"approverRole": {"create": True}}})
    role = result.one("ClusterRole", "canary-approver")
    documented, _ = _security_block()
    assert role["rules"] == documented["rules"]
    assert role["metadata"]["name"] == documented["metadata"]["name"]
    assert not [k for k in role["metadata"]["labels"] if k.startswith("rbac.authorization")]
    objects = _bound_to_ci(result, "canary-approver")
    ci = ("shop", "ci")
    allowed = [
        Request("create", "canary.dev", "rolloutcommands", "shop"),
        Request("get", "canary.dev", "rollouts", "shop"),
        Request("watch", "canary.dev", "rollouts", "shop"),
        Request("get", "apps", "deployments", "shop"),
        Request("create", "", "events", "shop"),
    ]
    refused = [
        Request("patch", "canary.dev", "rollouts", "shop"),
        Request("update", "canary.dev", "rollouts", "shop"),
        Request("update", "canary.dev", "rollouts/status", "shop"),
        Request("delete", "canary.dev", "rolloutcommands", "shop"),
        Request("update", "apps", "deployments", "shop"),
        Request("create", "canary.dev", "rolloutcommands", "payments"),
    ]
    assert [str(r) for r in allowed if not rbac_allows(objects, ci, r)] == []
    assert [str(r) for r in refused if rbac_allows(objects, ci, r)] == []
    assert "canary-approver" not in [r["metadata"]["name"] for r in rendered().find("ClusterRole")]


def test_the_approver_role_aggregates_into_the_roles_asked_for() -> None:
    role = rendered("monitoring").one("ClusterRole", "canary-approver")
    labels = role["metadata"]["labels"]
    assert labels["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert labels["rbac.authorization.k8s.io/aggregate-to-admin"] == "true"
    assert "rbac.authorization.k8s.io/aggregate-to-view" not in labels
    errors = schema_errors({"commands": {"approverRole": {"aggregateTo": ["view"]}}})
    assert errors
    assert errors[0].startswith("commands.approverRole.aggregateTo.0:"), errors


# --- the controller's flags ---------------------------------------------------------------------


def test_the_flags_follow_the_values() -> None:
    args = container(rendered("monitoring"))["args"]
    assert [a for a in args if a.startswith("--webhook-allow")] == [
        "--webhook-allow=10.20.0.0/16",
        "--webhook-allow=fd00::/8",
    ]
    assert "--forbid-inline-queries" in args
    defaults = container(rendered())["args"]
    assert not [a for a in defaults if a.startswith(("--webhook-allow", "--forbid-inline"))]


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ({"webhookAllow": ["10.0.0.1"]}, "webhookAllow.0"),
        ({"webhookAllow": "10.0.0.0/8"}, "webhookAllow"),
        ({"forbidInlineQueries": "yes"}, "forbidInlineQueries"),
    ],
)
def test_the_schema_refuses_bad_flag_values(value: Json, path: str) -> None:
    errors = schema_errors(value)
    assert [e for e in errors if e.startswith(f"{path}:")], errors
    with pytest.raises(HelmError, match=path.split(".")[0]):
        render(value)


# --- NOTES --------------------------------------------------------------------------------------


def test_notes_say_how_to_approve_and_the_rbac_it_takes() -> None:
    notes = rendered().notes
    assert "kubectl canary approve NAME -n NAMESPACE" in notes
    assert "canary approve NAME" in notes
    assert "create, get, list on rolloutcommands.canary.dev" in notes
    assert "commands.approverRole.create=true" in notes
    assert "ValidatingAdmissionPolicy canary-rollout-commands" in notes
    with_role = rendered("monitoring").notes
    assert "ClusterRole canary-approver (aggregated into edit, admin)" in with_role
    assert "--clusterrole=canary-approver" in with_role
    assert "not proven" in rendered("minimal").notes


def test_the_controller_refuses_a_bad_range_the_schema_lets_through(
    api: ApiServer, kubectl: Kubectl, tmp_path: Path
) -> None:
    """The schema checks the shape of a CIDR only; the controller, started with the chart's
    arguments, checks the range itself and names it before it does anything else."""
    assert schema_errors({"webhookAllow": ["10.0.0.1/33"]}) == []
    result = render({"webhookAllow": ["10.0.0.0/8", "10.0.0.1/33"]})
    with controller_from_chart(result, kubectl.kubeconfig, tmp_path) as running:
        code = running.process.wait(60)
    output = "".join(running.output)
    assert code != 0, output
    assert "10.0.0.1/33" in output
    assert not [target for _, target, _ in api.requests if "rollouts" in target]
