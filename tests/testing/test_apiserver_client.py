"""The test API server through the official kubernetes client: CRUD, conflicts, subresources."""

from __future__ import annotations

import json
from typing import Any

import pytest
from apiserver_support import CANARY_CRDS, deployment, rollout
from kubernetes import client
from kubernetes.client.rest import ApiException

from canary.testing import ApiServer

GROUP, VERSION = "canary.dev", "v1alpha1"


def status_of(exc: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.body)
    return body


@pytest.fixture
def core(k8s: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(k8s)


@pytest.fixture
def apps(k8s: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(k8s)


@pytest.fixture
def custom(api: ApiServer, k8s: client.ApiClient) -> client.CustomObjectsApi:
    api.apply_file(*sorted(CANARY_CRDS.glob("*.yaml")))
    return client.CustomObjectsApi(k8s)


def test_create_read_replace_delete_with_server_set_metadata(core: client.CoreV1Api) -> None:
    made = core.create_namespaced_config_map(
        "test", {"metadata": {"name": "a"}, "data": {"k": "1"}}
    )
    assert made.metadata.uid
    assert made.metadata.creation_timestamp
    assert made.metadata.namespace == "test"
    made.data["k"] = "2"
    replaced = core.replace_namespaced_config_map("a", "test", made)
    assert int(replaced.metadata.resource_version) > int(made.metadata.resource_version)
    assert core.read_namespaced_config_map("a", "test").data == {"k": "2"}
    core.delete_namespaced_config_map("a", "test")
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("a", "test")
    assert missing.value.status == 404
    assert status_of(missing.value)["reason"] == "NotFound"
    assert status_of(missing.value)["message"] == 'configmaps "a" not found'


def test_stale_resource_version_is_a_conflict(core: client.CoreV1Api) -> None:
    first = core.create_namespaced_config_map("test", {"metadata": {"name": "a"}, "data": {}})
    core.patch_namespaced_config_map("a", "test", {"data": {"by": "someone else"}})
    first.data = {"by": "me"}
    with pytest.raises(ApiException) as stale:
        core.replace_namespaced_config_map("a", "test", first)
    assert stale.value.status == 409
    assert status_of(stale.value)["reason"] == "Conflict"
    assert "the object has been modified" in status_of(stale.value)["message"]
    assert core.read_namespaced_config_map("a", "test").data == {"by": "someone else"}


def test_already_exists_and_generate_name(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("test", {"metadata": {"name": "a"}})
    with pytest.raises(ApiException) as twice:
        core.create_namespaced_config_map("test", {"metadata": {"name": "a"}})
    assert (twice.value.status, status_of(twice.value)["reason"]) == (409, "AlreadyExists")
    named = core.create_namespaced_config_map("test", {"metadata": {"generateName": "job-"}})
    assert named.metadata.name.startswith("job-")
    assert len(named.metadata.name) == 9


def test_namespaces_must_exist_and_names_must_be_valid(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as nowhere:
        core.create_namespaced_config_map("nowhere", {"metadata": {"name": "a"}})
    assert nowhere.value.status == 404
    with pytest.raises(ApiException) as bad:
        core.create_namespaced_config_map("test", {"metadata": {"name": "Not_Valid"}})
    assert bad.value.status == 422
    assert status_of(bad.value)["details"]["causes"][0]["field"] == "metadata.name"


def test_deleting_a_namespace_deletes_what_is_in_it(core: client.CoreV1Api) -> None:
    core.create_namespace({"metadata": {"name": "gone"}})
    core.create_namespaced_config_map("gone", {"metadata": {"name": "a"}})
    core.delete_namespace("gone")
    assert (
        core.list_config_map_for_all_namespaces(field_selector="metadata.namespace=gone").items
        == []
    )


def test_generation_moves_with_the_spec_not_the_status(
    api: ApiServer, apps: client.AppsV1Api
) -> None:
    made = apps.create_namespaced_deployment("test", deployment())
    assert made.metadata.generation == 1
    assert made.status is None or made.status.ready_replicas is None
    patched = apps.patch_namespaced_deployment(
        "web",
        "test",
        {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:2"}]}}}},
    )
    assert patched.metadata.generation == 2
    # strategic merge: the container is merged by name, its ports kept
    assert patched.spec.template.spec.containers[0].ports[0].container_port == 8080
    api.set_deployment_ready("test", "web")
    ready = apps.read_namespaced_deployment_status("web", "test")
    assert ready.metadata.generation == 2
    assert ready.status.observed_generation == 2
    assert ready.status.ready_replicas == ready.status.updated_replicas == 2
    assert {c.type: c.status for c in ready.status.conditions} == {
        "Available": "True",
        "Progressing": "True",
    }


def test_partial_readiness_and_omitted_zero_counts(api: ApiServer, apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment("test", deployment(replicas=3))
    api.set_deployment_ready("test", "web", ready=0)
    status = apps.read_namespaced_deployment("web", "test").status
    assert (status.replicas, status.ready_replicas) == (3, None)
    assert status.unavailable_replicas == 3


def test_deployment_selector_must_match_template_and_is_immutable(apps: client.AppsV1Api) -> None:
    wrong = deployment()
    wrong["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    with pytest.raises(ApiException) as mismatch:
        apps.create_namespaced_deployment("test", wrong)
    assert mismatch.value.status == 422
    apps.create_namespaced_deployment("test", deployment())
    with pytest.raises(ApiException) as immutable:
        apps.patch_namespaced_deployment(
            "web", "test", {"spec": {"selector": {"matchLabels": {"x": "y"}}}}
        )
    assert immutable.value.status == 422
    assert "field is immutable" in status_of(immutable.value)["message"]


def test_a_put_ignores_the_status_and_the_status_subresource_ignores_the_rest(
    apps: client.AppsV1Api,
) -> None:
    apps.create_namespaced_deployment("test", deployment())
    current = apps.read_namespaced_deployment("web", "test").to_dict()
    body = client.ApiClient().sanitize_for_serialization(
        apps.read_namespaced_deployment("web", "test")
    )
    body["status"] = {"readyReplicas": 9}
    put = apps.replace_namespaced_deployment("web", "test", body)
    assert put.status is None or put.status.ready_replicas is None
    body = client.ApiClient().sanitize_for_serialization(put)
    body["spec"]["replicas"] = 7
    body["status"] = {"readyReplicas": 1, "observedGeneration": 1}
    via_status = apps.replace_namespaced_deployment_status("web", "test", body)
    assert via_status.spec.replicas == current["spec"]["replicas"] == 2
    assert via_status.status.ready_replicas == 1
    assert via_status.metadata.generation == 1


def test_scale_subresource(apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment("test", deployment())
    scale = apps.read_namespaced_deployment_scale("web", "test")
    assert (scale.spec.replicas, scale.status.selector) == (2, "app=web")
    apps.patch_namespaced_deployment_scale("web", "test", {"spec": {"replicas": 0}})
    after = apps.read_namespaced_deployment("web", "test")
    assert (after.spec.replicas, after.metadata.generation) == (0, 2)


def test_label_and_field_selectors(core: client.CoreV1Api) -> None:
    for name, labels in [("a", {"tier": "web", "env": "prod"}), ("b", {"tier": "db"}), ("c", {})]:
        core.create_namespaced_config_map("test", {"metadata": {"name": name, "labels": labels}})

    def names(**kw: Any) -> list[str]:
        return [c.metadata.name for c in core.list_namespaced_config_map("test", **kw).items]

    assert names(label_selector="tier=web") == ["a"]
    assert names(label_selector="tier!=web") == ["b", "c"]
    assert names(label_selector="tier in (web, db)") == ["a", "b"]
    assert names(label_selector="tier notin (web)") == ["b", "c"]
    assert names(label_selector="env") == ["a"]
    assert names(label_selector="!env,tier") == ["b"]
    assert names(field_selector="metadata.name=b") == ["b"]
    assert names(field_selector="metadata.name!=b", label_selector="tier") == ["a"]
    listed = core.list_namespaced_config_map("test")
    assert int(listed.metadata.resource_version) >= 3


def test_dry_run_validates_without_storing(core: client.CoreV1Api) -> None:
    made = core.create_namespaced_config_map("test", {"metadata": {"name": "a"}}, dry_run="All")
    assert made.metadata.name == "a"
    assert core.list_namespaced_config_map("test").items == []
    with pytest.raises(ApiException) as bad:
        core.create_namespaced_config_map("test", {"metadata": {"name": "A"}}, dry_run="All")
    assert bad.value.status == 422


def test_custom_resources_with_status_subresource(custom: client.CustomObjectsApi) -> None:
    made = custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        "test",
        "rollouts",
        {
            **rollout(),
            "status": {"phase": "Succeeded"},
        },
    )
    assert "status" not in made  # dropped on create: the status subresource owns it
    assert made["metadata"]["generation"] == 1
    with_status = custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, "test", "rollouts", "web", {"status": {"phase": "Progressing"}}
    )
    assert with_status["status"]["phase"] == "Progressing"
    assert with_status["metadata"]["generation"] == 1
    body = custom.get_namespaced_custom_object(GROUP, VERSION, "test", "rollouts", "web")
    body["spec"]["service"]["port"] = 9090
    body["status"] = {"phase": "Failed"}
    put = custom.replace_namespaced_custom_object(GROUP, VERSION, "test", "rollouts", "web", body)
    assert put["status"] == {"phase": "Progressing"}
    assert put["metadata"]["generation"] == 2
    listed = custom.list_namespaced_custom_object(GROUP, VERSION, "test", "rollouts")
    assert [r["metadata"]["name"] for r in listed["items"]] == ["web"]


def test_a_write_that_changes_nothing_is_no_write(custom: client.CustomObjectsApi) -> None:
    made = custom.create_namespaced_custom_object(GROUP, VERSION, "test", "rollouts", rollout())
    again = custom.patch_namespaced_custom_object(
        GROUP, VERSION, "test", "rollouts", "web", {"spec": {"service": {"port": 8080}}}
    )
    assert again["metadata"]["resourceVersion"] == made["metadata"]["resourceVersion"]


def test_crd_schema_rejects_a_bad_field_naming_it(custom: client.CustomObjectsApi) -> None:
    bad = rollout()
    bad["spec"]["service"]["port"] = "eighty"
    del bad["spec"]["provider"]
    with pytest.raises(ApiException) as rejected:
        custom.create_namespaced_custom_object(GROUP, VERSION, "test", "rollouts", bad)
    status = status_of(rejected.value)
    assert (rejected.value.status, status["reason"]) == (422, "Invalid")
    assert status["message"].startswith('Rollout.canary.dev "web" is invalid: ')
    fields = {c["field"]: c["message"] for c in status["details"]["causes"]}
    assert fields["spec.provider"] == "Required value"
    assert "must be of type integer" in fields["spec.service.port"]


def test_crd_schema_prunes_unknown_fields_and_strict_rejects_them(
    api: ApiServer, custom: client.CustomObjectsApi
) -> None:
    extra = rollout()
    extra["spec"]["surprise"] = True
    made = custom.create_namespaced_custom_object(GROUP, VERSION, "test", "rollouts", extra)
    assert "surprise" not in made["spec"]
    extra["metadata"]["name"] = "strict"
    with pytest.raises(ApiException) as strict:
        custom.create_namespaced_custom_object(
            GROUP, VERSION, "test", "rollouts", extra, field_validation="Strict"
        )
    assert strict.value.status == 400
    assert 'unknown field "spec.surprise"' in status_of(strict.value)["message"]


def test_finalizers_hold_a_deletion_and_owners_take_their_dependents(
    core: client.CoreV1Api, custom: client.CustomObjectsApi
) -> None:
    owner = custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        "test",
        "rollouts",
        {
            **rollout(),
            "metadata": {"name": "web", "namespace": "test", "finalizers": ["canary.dev/cleanup"]},
        },
    )
    ref = {
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "Rollout",
        "name": "web",
        "uid": owner["metadata"]["uid"],
        "controller": True,
    }
    core.create_namespaced_service(
        "test",
        {
            "metadata": {"name": "web-canary", "ownerReferences": [ref]},
            "spec": {"ports": [{"port": 80}], "selector": {"app": "web"}},
        },
    )
    custom.delete_namespaced_custom_object(GROUP, VERSION, "test", "rollouts", "web")
    held = custom.get_namespaced_custom_object(GROUP, VERSION, "test", "rollouts", "web")
    assert held["metadata"]["deletionTimestamp"]
    assert core.read_namespaced_service("web-canary", "test").spec.cluster_ip
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, "test", "rollouts", "web", {"metadata": {"finalizers": None}}
    )
    with pytest.raises(ApiException) as gone:
        custom.get_namespaced_custom_object(GROUP, VERSION, "test", "rollouts", "web")
    assert gone.value.status == 404
    assert core.list_namespaced_service("test").items == []


def test_leases_for_leader_election(k8s: client.ApiClient) -> None:
    leases = client.CoordinationV1Api(k8s)
    lease = leases.create_namespaced_lease(
        "test",
        {
            "metadata": {"name": "canary-leader"},
            "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15},
        },
    )
    lease.spec.holder_identity = "b"
    leases.replace_namespaced_lease("canary-leader", "test", lease)
    lease.spec.holder_identity = "c"
    with pytest.raises(ApiException) as lost:
        leases.replace_namespaced_lease("canary-leader", "test", lease)
    assert lost.value.status == 409
    assert leases.read_namespaced_lease("canary-leader", "test").spec.holder_identity == "b"


def test_events_in_both_groups(k8s: client.ApiClient) -> None:
    core, events = client.CoreV1Api(k8s), client.EventsV1Api(k8s)
    core.create_namespaced_event(
        "test",
        {
            "metadata": {"generateName": "web."},
            "reason": "Promoted",
            "message": "ok",
            "involvedObject": {"kind": "Rollout", "name": "web", "namespace": "test"},
        },
    )
    events.create_namespaced_event(
        "test",
        {
            "metadata": {"generateName": "web."},
            "reason": "Promoted",
            "action": "Promote",
            "eventTime": "2025-01-01T00:00:00.000000Z",
            "reportingController": "canary",
            "reportingInstance": "canary-0",
        },
    )
    found = core.list_namespaced_event("test", field_selector="involvedObject.name=web").items
    assert [e.reason for e in found] == ["Promoted"]
    assert len(events.list_namespaced_event("test").items) == 1


def test_direct_helpers_share_the_store_with_http(api: ApiServer, core: client.CoreV1Api) -> None:
    api.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": "test"},
            "data": {"k": "v"},
        }
    )
    assert core.read_namespaced_config_map("a", "test").data == {"k": "v"}
    core.patch_namespaced_config_map("a", "test", {"data": {"k": "w"}})
    assert api.get("v1", "ConfigMap", "a", "test")["data"] == {"k": "w"}
    assert [m["metadata"]["name"] for m in api.list("v1", "ConfigMap", "test")] == ["a"]
