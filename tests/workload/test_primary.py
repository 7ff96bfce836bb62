"""The primary Deployment and its copies of the configuration."""

from __future__ import annotations

import copy

import pytest
from workload_support import Json

from canary.workload import (
    Owner,
    WorkloadError,
    primary_configs,
    primary_deployment,
    referenced_configs,
    revision_of,
)

OWNER_REF = {
    "apiVersion": "canary.dev/v1alpha1",
    "kind": "Rollout",
    "name": "podinfo",
    "uid": "rollout-uid",
    "controller": True,
    "blockOwnerDeletion": True,
}


def test_the_primary_is_the_target_with_its_selector_labels_suffixed(
    target: Json, owner: Owner
) -> None:
    primary = primary_deployment(target, owner=owner, revision="abc123")
    assert primary["metadata"]["name"] == "podinfo-primary"
    assert primary["metadata"]["namespace"] == "test"
    assert primary["metadata"]["ownerReferences"] == [OWNER_REF]
    assert primary["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "canary",
        "canary.dev/rollout": "podinfo",
    }
    # The target's own metadata (kubectl's, a GitOps tool's instance label) is not copied.
    assert primary["metadata"]["annotations"] == {"canary.dev/revision": "abc123"}
    spec = primary["spec"]
    assert spec["selector"] == {"matchLabels": {"app": "podinfo-primary", "tier": "web-primary"}}
    pod_meta = spec["template"]["metadata"]
    assert pod_meta["labels"] == {"app": "podinfo-primary", "tier": "web-primary", "version": "v1"}
    assert pod_meta["annotations"] == {
        "prometheus.io/scrape": "true",
        "canary.dev/revision": "abc123",
    }
    assert "creationTimestamp" not in pod_meta
    assert spec["replicas"] == 3
    assert spec["minReadySeconds"] == 5
    container = spec["template"]["spec"]["containers"][0]
    assert container["image"] == "ghcr.io/stefanprodan/podinfo:6.7.1"
    assert "status" not in primary
    # The target itself is untouched.
    assert target["spec"]["template"]["metadata"]["labels"]["app"] == "podinfo"


def test_the_primary_references_the_revisions_copies(target: Json, owner: Owner) -> None:
    primary = primary_deployment(target, owner=owner, revision="r1")
    assert referenced_configs(primary) == (
        [
            "ca-bundle-primary-r1",
            "extra-primary-r1",
            "log-settings-primary-r1",
            "podinfo-env-primary-r1",
            "podinfo-files-primary-r1",
        ],
        [
            "api-token-primary-r1",
            "db-credentials-primary-r1",
            "podinfo-tls-primary-r1",
            "signing-key-primary-r1",
        ],
    )
    pod = primary["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "registry"}]
    optional = pod["containers"][0]["env"][2]["valueFrom"]["secretKeyRef"]
    assert optional == {"name": "api-token-primary-r1", "key": "token", "optional": True}


def test_config_copies_carry_the_data_labels_and_owner(
    target: Json, owner: Owner, configmaps: list[Json], secrets: list[Json]
) -> None:
    revision = revision_of(target, configmaps, secrets)
    copies = primary_configs(target, configmaps, secrets, owner=owner, revision=revision)
    names = [c["metadata"]["name"] for c in copies.configmaps]
    # The optional, missing 'extra' is not copied; the unrelated one neither.
    assert names == [
        f"ca-bundle-primary-{revision}",
        f"log-settings-primary-{revision}",
        f"podinfo-env-primary-{revision}",
        f"podinfo-files-primary-{revision}",
    ]
    assert [s["metadata"]["name"] for s in copies.secrets] == [
        f"db-credentials-primary-{revision}",
        f"podinfo-tls-primary-{revision}",
        f"signing-key-primary-{revision}",
    ]
    first = copies.configmaps[0]
    assert first["data"] == {"key": "value of ca-bundle"}
    assert first["metadata"] == {
        "name": f"ca-bundle-primary-{revision}",
        "namespace": "test",
        "labels": {
            "app.kubernetes.io/managed-by": "canary",
            "canary.dev/rollout": "podinfo",
            "canary.dev/revision": revision,
        },
        "annotations": {"canary.dev/copy-of": "ca-bundle"},
        "ownerReferences": [OWNER_REF],
    }
    assert copies.secrets[0]["type"] == "Opaque"
    assert copies.secrets[0]["data"] == {"key": "c2VjcmV0"}
    # The template primary_configs gives is the primary's.
    primary = primary_deployment(target, owner=owner, revision=revision)
    assert copies.template == primary["spec"]["template"]
    every = {*referenced_configs({"spec": {"template": copies.template}})[0]}
    assert {c["metadata"]["name"] for c in copies.configmaps} <= every


def test_replicas_come_from_the_target_unless_an_hpa_or_canary_scaled_it(
    target: Json, owner: Owner
) -> None:
    existing = primary_deployment(target, owner=owner, revision="r1")
    existing["spec"]["replicas"] = 7  # the HPA scaled the primary
    target["spec"]["replicas"] = 2
    assert primary_deployment(target, existing, owner=owner, revision="r1")["spec"]["replicas"] == 2
    hpa = primary_deployment(target, existing, owner=owner, revision="r1", hpa_managed=True)
    assert hpa["spec"]["replicas"] == 7
    target["spec"]["replicas"] = 0  # canary scaled the target down between rollouts
    assert primary_deployment(target, existing, owner=owner, revision="r1")["spec"]["replicas"] == 7
    assert primary_deployment(target, owner=owner, revision="r1")["spec"]["replicas"] == 1
    del target["spec"]["replicas"]
    assert primary_deployment(target, owner=owner, revision="r1")["spec"]["replicas"] == 1


def test_refreshing_an_existing_primary_keeps_its_identity(target: Json, owner: Owner) -> None:
    existing = primary_deployment(target, owner=owner, revision="r1")
    existing["metadata"].update(resourceVersion="12", uid="primary-uid")
    existing["metadata"]["annotations"].update(
        {
            "deployment.kubernetes.io/revision": "4",
            "canary.dev/stable-revision": "r0",
            "canary.dev/stable-template": "{}",
        }
    )
    existing["status"] = {"replicas": 3}
    target["spec"]["template"]["spec"]["containers"][0]["image"] = "podinfo:2"
    refreshed = primary_deployment(target, existing, owner=owner, revision="r2")
    assert refreshed["metadata"]["resourceVersion"] == "12"
    assert refreshed["metadata"]["uid"] == "primary-uid"
    assert refreshed["metadata"]["annotations"] == {
        "deployment.kubernetes.io/revision": "4",
        "canary.dev/revision": "r2",
    }
    assert refreshed["spec"]["template"]["spec"]["containers"][0]["image"] == "podinfo:2"
    assert "status" not in refreshed
    assert existing["metadata"]["annotations"]["canary.dev/revision"] == "r1"  # not changed


def test_match_expressions_are_kept_beside_the_rewritten_labels(target: Json, owner: Owner) -> None:
    expression = {"key": "track", "operator": "NotIn", "values": ["debug"]}
    target["spec"]["selector"]["matchExpressions"] = [expression]
    selector = primary_deployment(target, owner=owner, revision="r")["spec"]["selector"]
    assert selector["matchExpressions"] == [expression]


def test_a_target_without_match_labels_is_refused(target: Json, owner: Owner) -> None:
    target["spec"]["selector"] = {
        "matchExpressions": [{"key": "app", "operator": "In", "values": ["podinfo"]}]
    }
    with pytest.raises(WorkloadError, match=r"no spec\.selector\.matchLabels"):
        primary_deployment(target, owner=owner, revision="r")


def test_a_selector_label_too_long_for_the_suffix_is_refused(target: Json, owner: Owner) -> None:
    long = "a" * 60
    target["spec"]["selector"]["matchLabels"]["app"] = long
    target["spec"]["template"]["metadata"]["labels"]["app"] = long
    with pytest.raises(WorkloadError, match="too long"):
        primary_deployment(target, owner=owner, revision="r")


def test_a_template_missing_its_selector_label_is_refused(target: Json, owner: Owner) -> None:
    del target["spec"]["template"]["metadata"]["labels"]["tier"]
    with pytest.raises(WorkloadError, match="lacks its selector label tier=web"):
        primary_deployment(target, owner=owner, revision="r")


def test_a_selector_changed_since_the_primary_was_made_is_refused(
    target: Json, owner: Owner
) -> None:
    existing = primary_deployment(target, owner=owner, revision="r1")
    changed = copy.deepcopy(target)
    changed["spec"]["selector"]["matchLabels"] = {"app": "podinfo"}
    with pytest.raises(WorkloadError, match="selectors cannot change"):
        primary_deployment(changed, existing, owner=owner, revision="r2")
