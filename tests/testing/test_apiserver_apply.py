"""Server-side apply against the test API server: kubectl's `apply --server-side` and the
Python client's apply patch, managedFields, removals, conflicts, other managers' fields."""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from apiserver_support import Kubectl
from kubernetes import client

from canary.testing import ApiServer

Json = dict[str, Any]


def config_map(**data: str) -> Json:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": "test", "labels": {"team": "web"}},
        "data": data,
    }


def write(tmp_path: Path, obj: Json) -> str:
    path = tmp_path / "cm.yaml"
    path.write_text(yaml.safe_dump(obj), encoding="utf-8")
    return str(path)


def managers(api: ApiServer) -> dict[str, Json]:
    stored = api.get("v1", "ConfigMap", "settings", "test")
    return {e["manager"]: e for e in stored["metadata"]["managedFields"]}


def test_kubectl_server_side_apply_owns_adds_and_removes(
    api: ApiServer, kubectl: Kubectl, tmp_path: Path
) -> None:
    out = kubectl.run("apply", "--server-side", "-f", write(tmp_path, config_map(a="1", b="2")))
    assert "configmap/settings serverside-applied" in out.stdout
    entry = managers(api)["kubectl"]
    assert entry["operation"] == "Apply"
    assert entry["fieldsV1"]["f:data"] == {"f:a": {}, "f:b": {}}
    kubectl.run("apply", "--server-side", "-f", write(tmp_path, config_map(a="1")))
    stored = api.get("v1", "ConfigMap", "settings", "test")
    assert stored["data"] == {"a": "1"}, "a field the manager stopped applying is removed"
    version = stored["metadata"]["resourceVersion"]
    kubectl.run("apply", "--server-side", "-f", write(tmp_path, config_map(a="1")))
    again = api.get("v1", "ConfigMap", "settings", "test")
    assert again["metadata"]["resourceVersion"] == version, "a no-op apply writes nothing"


def test_conflicts_name_the_other_manager_and_force_takes_the_field(
    api: ApiServer, kubectl: Kubectl, tmp_path: Path
) -> None:
    kubectl.run("apply", "--server-side", "-f", write(tmp_path, config_map(a="1")))
    kubectl.run("patch", "configmap", "settings", "--type", "merge", "-p", '{"data":{"a":"9"}}')
    owners = managers(api)
    assert owners["kubectl-patch"]["fieldsV1"] == {"f:data": {"f:a": {}}}
    assert "f:data" not in owners["kubectl"]["fieldsV1"], "an update takes the field it changed"
    refused = kubectl.run(
        "apply", "--server-side", "-f", write(tmp_path, config_map(a="1")), check=False
    )
    assert refused.returncode != 0
    assert 'conflict with "kubectl-patch"' in refused.stderr
    assert ".data.a" in refused.stderr
    kubectl.run(
        "apply", "--server-side", "--force-conflicts", "-f", write(tmp_path, config_map(a="1"))
    )
    assert api.get("v1", "ConfigMap", "settings", "test")["data"] == {"a": "1"}
    owners = managers(api)
    assert "kubectl-patch" not in owners, "forcing took the only field it had"
    assert owners["kubectl"]["fieldsV1"]["f:data"] == {"f:a": {}}


def test_another_managers_fields_survive_an_apply(api: ApiServer, k8s: client.ApiClient) -> None:
    core = client.CoreV1Api(k8s)

    def apply(body: Json) -> Json:
        answer = core.patch_namespaced_config_map(
            "settings",
            "test",
            body,
            field_manager="canary",
            force=True,
            _content_type="application/apply-patch+yaml",
        )
        return client.ApiClient().sanitize_for_serialization(answer)  # type: ignore[no-any-return]

    apply(config_map(a="1", b="2"))
    core.patch_namespaced_config_map(
        "settings", "test", {"data": {"theirs": "x"}, "metadata": {"labels": {"x": "y"}}}
    )
    applied = apply(config_map(a="1"))
    assert applied["data"] == {"a": "1", "theirs": "x"}
    assert applied["metadata"]["labels"] == {"team": "web", "x": "y"}
    owners = managers(api)
    assert owners["OpenAPI-Generator"]["operation"] == "Update"
    assert owners["canary"]["fieldsV1"]["f:data"] == {"f:a": {}}
    # a field both set to the same value is shared: dropping it from one apply keeps it
    core.patch_namespaced_config_map("settings", "test", {"data": {"a": "1", "c": "3"}})
    apply(config_map(a="1", c="3"))
    apply(config_map())
    assert api.get("v1", "ConfigMap", "settings", "test")["data"] == {"theirs": "x", "c": "3"}


def test_apply_needs_a_field_manager(api: ApiServer, k8s: client.ApiClient) -> None:
    core = client.CoreV1Api(k8s)
    with pytest.raises(client.ApiException) as refused:
        core.patch_namespaced_config_map(
            "settings", "test", config_map(a="1"), _content_type="application/apply-patch+yaml"
        )
    assert refused.value.status == 422
    assert "fieldManager: Required value" in str(refused.value.body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"settings",'
        b'"namespace":"test"},"data":{"a":"1"}}',
        b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: test}\n"
        b"data:\n  a: '1'\n",
        b"{apiVersion: v1, kind: ConfigMap, metadata: {name: settings, namespace: test}, "
        b"data: {a: '1'}}",
    ],
    ids=["json", "yaml", "yaml-flow-mapping"],
)
def test_an_apply_body_may_be_json_or_any_yaml(api: ApiServer, body: bytes) -> None:
    """An apply patch is YAML; JSON is read by the JSON decoder (fast), and a body that only
    looks like JSON (a YAML flow mapping) is still read as YAML."""
    request = urllib.request.Request(
        f"{api.url}/api/v1/namespaces/test/configmaps/settings?fieldManager=me",
        data=body,
        method="PATCH",
        headers={"Content-Type": "application/apply-patch+yaml"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 201
    assert api.get("v1", "ConfigMap", "settings", "test")["data"] == {"a": "1"}
