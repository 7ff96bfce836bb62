"""CRDs applied to the test server become served resources, checked against their schemas."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest
from apiserver_support import CANARY_CRDS, MESH_CRDS, rollout
from kubernetes import client
from kubernetes.client.rest import ApiException

from canary.testing import ApiError, ApiServer


@pytest.fixture
def custom(api: ApiServer, k8s: client.ApiClient) -> client.CustomObjectsApi:
    api.apply_file(*sorted(CANARY_CRDS.glob("*.yaml")))
    return client.CustomObjectsApi(k8s)


@pytest.fixture
def mesh(api: ApiServer) -> ApiServer:
    files = [
        MESH_CRDS / n
        for n in ("istio-networking.yaml", "gateway-api-httproutes.yaml", "smi-trafficsplit.yaml")
    ]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        pytest.fail(f"the mesh CRDs are absent: {', '.join(missing)}")
    api.apply_file(*files)
    return api


def causes(exc: ApiException) -> dict[str, str]:
    return {c["field"]: c["message"] for c in json.loads(exc.body)["details"]["causes"]}


def test_crd_becomes_discoverable_with_its_names(api: ApiServer, k8s: client.ApiClient) -> None:
    api.apply_file(CANARY_CRDS / "rollouts.canary.dev.yaml")
    resources = client.ApisApi(k8s).get_api_versions()
    assert "canary.dev" in [g.name for g in resources.groups]
    with urllib.request.urlopen(f"{api.url}/apis/canary.dev/v1alpha1") as response:
        listed = json.load(response)
    main, status = listed["resources"]
    assert (main["name"], main["kind"], main["namespaced"]) == ("rollouts", "Rollout", True)
    assert (main["shortNames"], main["singularName"]) == (["cro"], "rollout")
    assert status["name"] == "rollouts/status"
    crd = client.ApiextensionsV1Api(k8s).read_custom_resource_definition("rollouts.canary.dev")
    assert {c.type: c.status for c in crd.status.conditions}["Established"] == "True"


def test_deleting_a_crd_withdraws_the_resource_and_its_objects(
    custom: client.CustomObjectsApi, api: ApiServer
) -> None:
    custom.create_namespaced_custom_object("canary.dev", "v1alpha1", "test", "rollouts", rollout())
    api.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition", "rollouts.canary.dev")
    with pytest.raises(ApiException) as gone:
        custom.list_namespaced_custom_object("canary.dev", "v1alpha1", "test", "rollouts")
    assert gone.value.status == 404
    api.apply_file(CANARY_CRDS / "rollouts.canary.dev.yaml")
    listed = custom.list_namespaced_custom_object("canary.dev", "v1alpha1", "test", "rollouts")
    assert listed["items"] == []


def test_cel_rules_of_the_schema_are_enforced(custom: client.CustomObjectsApi) -> None:
    wrong = rollout()
    wrong["spec"]["provider"] = {"name": "linkerd", "istio": {}}
    with pytest.raises(ApiException) as rejected:
        custom.create_namespaced_custom_object("canary.dev", "v1alpha1", "test", "rollouts", wrong)
    assert "settings 'istio' belong to provider 'istio'" in causes(rejected.value)["spec.provider"]
    unsorted = rollout(strategy={"canary": {"weights": [20, 10]}})
    with pytest.raises(ApiException) as falling:
        custom.create_namespaced_custom_object(
            "canary.dev", "v1alpha1", "test", "rollouts", unsorted
        )
    assert "weights must rise" in causes(falling.value)["spec.strategy.canary.weights"]
    fine = rollout(strategy={"canary": {"weights": [10, 20]}})
    custom.create_namespaced_custom_object("canary.dev", "v1alpha1", "test", "rollouts", fine)


def test_cluster_scoped_custom_resources(api: ApiServer, custom: client.CustomObjectsApi) -> None:
    policies = custom.list_cluster_custom_object(
        "canary.dev", "v1alpha1", "clusteranalysispolicies"
    )
    assert policies["items"] == []
    rt = api.registry.lookup("canary.dev", "v1alpha1", "clusteranalysispolicies")
    assert not rt.namespaced


def test_virtual_service_and_destination_rule(mesh: ApiServer, k8s: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(k8s)
    vs: dict[str, Any] = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "web"},
        "spec": {
            "hosts": ["web"],
            "http": [
                {
                    "route": [
                        {"destination": {"host": "web-primary"}, "weight": 80},
                        {"destination": {"host": "web-canary"}, "weight": 20},
                    ],
                    "timeout": "10s",
                }
            ],
        },
    }
    made = custom.create_namespaced_custom_object(
        "networking.istio.io", "v1", "test", "virtualservices", vs
    )
    assert made["spec"]["http"][0]["route"][1]["weight"] == 20
    # every served version reads the same object
    old = custom.get_namespaced_custom_object(
        "networking.istio.io", "v1beta1", "test", "virtualservices", "web"
    )
    assert old["apiVersion"] == "networking.istio.io/v1beta1"
    assert old["spec"] == made["spec"]
    vs["metadata"]["name"] = "bad"
    vs["spec"]["http"][0]["route"][0]["weight"] = "eighty"
    with pytest.raises(ApiException) as rejected:
        custom.create_namespaced_custom_object(
            "networking.istio.io", "v1", "test", "virtualservices", vs
        )
    assert "must be of type integer" in causes(rejected.value)["spec.http[0].route[0].weight"]
    dr = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": "web"},
        "spec": {"host": "web", "trafficPolicy": {"outlierDetection": {"consecutive5xxErrors": 5}}},
    }
    custom.create_namespaced_custom_object(
        "networking.istio.io", "v1", "test", "destinationrules", dr
    )


def test_httproute_and_trafficsplit(mesh: ApiServer, k8s: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(k8s)
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "web"},
        "spec": {
            "parentRefs": [{"name": "web", "kind": "Service", "group": "core", "port": 8080}],
            "rules": [
                {
                    "backendRefs": [
                        {"name": "web-primary", "port": 8080, "weight": 90},
                        {"name": "web-canary", "port": 8080, "weight": 10},
                    ]
                }
            ],
        },
    }
    made = custom.create_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", "test", "httproutes", route
    )
    assert made["spec"]["rules"][0]["backendRefs"][1]["weight"] == 10
    assert made["spec"]["rules"][0]["matches"][0]["path"] == {"type": "PathPrefix", "value": "/"}
    route["metadata"]["name"] = "bad"
    route["spec"]["rules"][0]["backendRefs"][0]["weight"] = -1
    with pytest.raises(ApiException) as rejected:
        custom.create_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", "test", "httproutes", route
        )
    assert (
        "greater than or equal to 0"
        in causes(rejected.value)["spec.rules[0].backendRefs[0].weight"]
    )
    split = {
        "apiVersion": "split.smi-spec.io/v1alpha2",
        "kind": "TrafficSplit",
        "metadata": {"name": "web"},
        "spec": {
            "service": "web",
            "backends": [
                {"service": "web-primary", "weight": 90},
                {"service": "web-canary", "weight": 10},
            ],
        },
    }
    custom.create_namespaced_custom_object(
        "split.smi-spec.io", "v1alpha2", "test", "trafficsplits", split
    )


def test_direct_helpers_raise_api_errors(api: ApiServer) -> None:
    with pytest.raises(ApiError) as missing:
        api.get("v1", "ConfigMap", "nothing", "test")
    assert missing.value.code == 404


def widget_crd_with(schema: dict[str, Any], subresources: dict[str, Any]) -> dict[str, Any]:
    """The Widget CRD (example.com/v1) with this schema and these subresources."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    "subresources": subresources,
                }
            ],
        },
    }


WIDGETS = widget_crd_with(
    {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "size": {"type": "integer", "default": 1},
                    "port": {"x-kubernetes-int-or-string": True},
                    "note": {"type": "string", "nullable": True},
                    "free": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    },
                },
            },
            "status": {
                "type": "object",
                "properties": {"size": {"type": "integer"}},
            },
        },
    },
    {
        "status": {},
        "scale": {"specReplicasPath": ".spec.size", "statusReplicasPath": ".status.size"},
    },
)


def test_defaults_extensions_warnings_and_scale_of_a_custom_resource(api: ApiServer) -> None:
    api.apply(WIDGETS)
    body = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": {"port": "http", "note": None, "free": {"any": {"thing": 1}}, "extra": 1},
    }
    request = urllib.request.Request(
        f"{api.url}/apis/example.com/v1/namespaces/test/widgets",
        method="POST",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        made = json.load(response)
        assert response.headers["Warning"] == '299 - "unknown field \\"spec.extra\\""'
    assert made["spec"] == {"size": 1, "port": "http", "note": None, "free": {"any": {"thing": 1}}}
    with urllib.request.urlopen(
        f"{api.url}/apis/example.com/v1/namespaces/test/widgets/w/scale"
    ) as r:
        scale = json.load(r)
    assert (scale["kind"], scale["spec"]["replicas"]) == ("Scale", 1)
    patch = urllib.request.Request(
        f"{api.url}/apis/example.com/v1/namespaces/test/widgets/w/scale",
        method="PATCH",
        data=b'{"spec":{"replicas":3}}',
        headers={"Content-Type": "application/merge-patch+json"},
    )
    urllib.request.urlopen(patch).close()
    assert api.get("example.com/v1", "Widget", "w", "test")["spec"]["size"] == 3


def test_old_watch_paths_and_delete_collection(api: ApiServer) -> None:
    for name, tier in (("a", "web"), ("b", "db")):
        api.create(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": "test", "labels": {"tier": tier}},
            }
        )
    gone = urllib.request.Request(
        f"{api.url}/api/v1/namespaces/test/configmaps?labelSelector=tier%3Dweb", method="DELETE"
    )
    urllib.request.urlopen(gone).close()
    assert [c["metadata"]["name"] for c in api.list("v1", "ConfigMap", "test")] == ["b"]
    with urllib.request.urlopen(
        f"{api.url}/api/v1/watch/namespaces/test/configmaps?timeoutSeconds=1"
    ) as r:
        first = json.loads(r.readline())
    assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "b")


def widget_crd(maximum: int) -> dict[str, Any]:
    size = {"type": "integer", "maximum": maximum}
    schema = {
        "type": "object",
        "properties": {
            "spec": {"type": "object", "properties": {"size": size}},
            "status": {"type": "object", "properties": {"count": {"type": "integer"}}},
        },
    }
    return widget_crd_with(schema, {"status": {}})


def test_an_unchanged_field_is_not_checked_again(api: ApiServer, k8s: client.ApiClient) -> None:
    """Validation ratcheting at the top level: a write that leaves ``spec`` as stored is not
    refused for it (the schema tightened since); what it changes is checked."""
    custom = client.CustomObjectsApi(k8s)
    api.apply(widget_crd(maximum=5))
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    custom.create_namespaced_custom_object(
        "example.com", "v1", "test", "widgets", {**widget, "spec": {"size": 3}}
    )
    api.apply(widget_crd(maximum=2))  # the stored spec.size is now out of bounds
    stored = custom.get_namespaced_custom_object("example.com", "v1", "test", "widgets", "w")
    stored["status"] = {"count": 1}
    written = custom.replace_namespaced_custom_object_status(
        "example.com", "v1", "test", "widgets", "w", stored
    )
    assert written["status"] == {"count": 1}, "a status write: the spec is not checked again"
    written["status"] = {"count": "many"}
    with pytest.raises(ApiException) as bad_status:
        custom.replace_namespaced_custom_object_status(
            "example.com", "v1", "test", "widgets", "w", written
        )
    assert bad_status.value.status == 422
    assert "status.count" in causes(bad_status.value)
    with pytest.raises(ApiException) as bad_spec:
        custom.patch_namespaced_custom_object(
            "example.com", "v1", "test", "widgets", "w", {"spec": {"size": 4}}
        )
    assert bad_spec.value.status == 422
    assert "spec.size" in causes(bad_spec.value)
