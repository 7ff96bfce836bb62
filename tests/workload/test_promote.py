"""Promotion copies the canary into the primary; a failed one is restored from the primary."""

from __future__ import annotations

import copy

import pytest
from workload_support import Json, configmap

from canary.workload import (
    Owner,
    WorkloadError,
    primary_configs,
    primary_deployment,
    primary_ready,
    promote,
    restore,
    revision_of,
    revision_on,
    stable_of,
    stale_configs,
)


@pytest.fixture
def primary(target: Json, owner: Owner) -> Json:
    """The primary as read back from the cluster, running revision r1."""
    primary = primary_deployment(target, owner=owner, revision="r1")
    primary["metadata"].update(resourceVersion="20", uid="primary-uid", generation=1)
    primary["status"] = {
        "observedGeneration": 1,
        "replicas": 3,
        "updatedReplicas": 3,
        "availableReplicas": 3,
    }
    return primary


def new_version(target: Json) -> Json:
    canary = copy.deepcopy(target)
    pod = canary["spec"]["template"]
    pod["spec"]["containers"][0]["image"] = "ghcr.io/stefanprodan/podinfo:6.8.0"
    pod["metadata"]["labels"]["version"] = "v2"
    canary["spec"]["minReadySeconds"] = 10
    canary["spec"]["replicas"] = 1  # scaled by canary, not copied
    return canary


def test_promotion_copies_the_canarys_pod_spec_and_keeps_the_stable_one(
    target: Json, primary: Json
) -> None:
    canary = new_version(target)
    promoted = promote(primary, canary, "r2")
    assert revision_on(promoted) == "r2"
    pod = promoted["spec"]["template"]
    assert pod["spec"]["containers"][0]["image"] == "ghcr.io/stefanprodan/podinfo:6.8.0"
    labels = {"app": "podinfo-primary", "tier": "web-primary", "version": "v2"}
    assert pod["metadata"]["labels"] == labels
    assert pod["metadata"]["annotations"]["canary.dev/revision"] == "r2"
    assert pod["spec"]["volumes"][0]["configMap"]["name"] == "podinfo-files-primary-r2"
    assert promoted["spec"]["replicas"] == 3
    assert promoted["spec"]["minReadySeconds"] == 10
    assert promoted["spec"]["selector"] == primary["spec"]["selector"]
    assert promoted["metadata"]["resourceVersion"] == "20"  # an update that fails on conflict
    assert "status" not in promoted
    stable = stable_of(promoted)
    assert stable is not None
    assert stable.revision == "r1"
    assert stable.template == primary["spec"]["template"]
    assert stable_of(primary) is None
    assert revision_on(primary) == "r1"  # the argument is not changed


def test_promoting_twice_is_promoting_once(target: Json, primary: Json) -> None:
    canary = new_version(target)
    once = promote(primary, canary, "r2")
    assert promote(once, canary, "r2") == once


def test_the_primary_is_not_ready_until_it_runs_the_new_revision(
    target: Json, primary: Json
) -> None:
    assert primary_ready(primary, "r1")
    promoted = promote(primary, new_version(target), "r2")
    promoted["status"] = primary["status"]
    promoted["metadata"]["generation"] = 2
    assert not primary_ready(promoted, "r2")  # the new generation is not observed yet
    promoted["status"] = {**primary["status"], "observedGeneration": 2}
    assert primary_ready(promoted, "r2")
    assert not primary_ready(promoted, "r1")


def test_restore_puts_the_stable_template_back(target: Json, primary: Json) -> None:
    promoted = promote(primary, new_version(target), "r2")
    stable = stable_of(promoted)
    assert stable is not None
    restored = restore(promoted, stable.template, stable.revision)
    assert restored["spec"]["template"] == primary["spec"]["template"]
    assert revision_on(restored) == "r1"
    # Restoring again changes nothing, and the record of the stable revision stays.
    again = stable_of(restored)
    assert again is not None
    assert restore(restored, again.template, again.revision) == restored
    without_status = {k: v for k, v in primary.items() if k != "status"}
    # Deployment settings (how a rollout of the primary proceeds) stay as promoted.
    assert restored["spec"].pop("minReadySeconds") == 10
    without_status["spec"].pop("minReadySeconds")
    del restored["metadata"]["annotations"]["canary.dev/stable-revision"]
    del restored["metadata"]["annotations"]["canary.dev/stable-template"]
    assert restored == without_status


def test_a_round_trip_through_promotions_and_restores(
    target: Json, owner: Owner, configmaps: list[Json], secrets: list[Json]
) -> None:
    """r1 -> promote r2 -> promote r3 fails -> restore r2: the copies of r2 are still there."""
    r1 = revision_of(target, configmaps, secrets)
    primary = primary_deployment(target, owner=owner, revision=r1)
    copies = primary_configs(target, configmaps, secrets, owner=owner, revision=r1).configmaps
    second = new_version(target)
    settings = [c for c in configmaps if c["metadata"]["name"] != "log-settings"]
    settings.append(configmap("log-settings", {"level": "debug"}))
    r2 = revision_of(second, settings, secrets)
    copies += primary_configs(second, settings, secrets, owner=owner, revision=r2).configmaps
    primary = promote(primary, second, r2)
    assert stale_configs(primary, copies) == []  # r1 is the stable revision now
    third = copy.deepcopy(second)
    third["spec"]["template"]["spec"]["containers"][0]["image"] = "podinfo:broken"
    r3 = revision_of(third, settings, secrets)
    copies += primary_configs(third, settings, secrets, owner=owner, revision=r3).configmaps
    primary = promote(primary, third, r3)
    copied = ["ca-bundle", "log-settings", "podinfo-env", "podinfo-files"]
    assert {ref.name for ref in stale_configs(primary, copies)} == {
        f"{name}-primary-{r1}" for name in copied
    }
    stable = stable_of(primary)
    assert stable is not None
    assert stable.revision == r2
    restored = restore(primary, stable.template, stable.revision)
    promoted_once = promote(primary_deployment(target, owner=owner, revision=r1), second, r2)
    assert restored["spec"]["template"] == promoted_once["spec"]["template"]
    names = {c["metadata"]["name"] for c in copies}
    volume = restored["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"]
    assert volume == f"podinfo-files-primary-{r2}"
    assert volume in names


def test_stale_configs_ignores_objects_that_are_not_copies(primary: Json) -> None:
    plain = configmap("podinfo-env")
    labelled = configmap("x-primary-r0")
    labelled["metadata"]["labels"] = {"canary.dev/rollout": "podinfo", "canary.dev/revision": "r0"}
    refs = stale_configs(primary, [plain, labelled])
    assert [(r.kind, r.name, r.namespace) for r in refs] == [("ConfigMap", "x-primary-r0", "test")]


def test_a_stable_template_that_is_not_json_is_reported(primary: Json) -> None:
    primary["metadata"]["annotations"].update(
        {"canary.dev/stable-revision": "r0", "canary.dev/stable-template": "{not json"}
    )
    with pytest.raises(WorkloadError, match="not JSON"):
        stable_of(primary)


def test_a_template_too_large_to_keep_is_refused(target: Json, primary: Json) -> None:
    primary["spec"]["template"]["metadata"]["annotations"]["big"] = "x" * 300_000
    with pytest.raises(WorkloadError, match="too large"):
        promote(primary, new_version(target), "r2")
