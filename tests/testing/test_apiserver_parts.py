"""The test API server's parts on their own: patches, selectors, faults, direct helpers."""

from __future__ import annotations

import time
from typing import Any

import pytest
from apiserver_support import deployment
from kubernetes import client
from kubernetes.client.rest import ApiException

from canary.testing import ApiError, ApiServer
from canary.testing.patch import (
    APPLY,
    MERGE,
    STRATEGIC,
    apply_patch,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)
from canary.testing.selectors import selector

POD: dict[str, Any] = {
    "containers": [
        {"name": "app", "image": "a:1", "env": [{"name": "A", "value": "1"}]},
        {"name": "sidecar", "image": "s:1"},
    ],
    "tolerations": [{"key": "x"}],
}


def test_merge_patch_is_rfc_7386() -> None:
    target = {"a": {"b": 1, "c": 2}, "l": [1, 2], "gone": 1}
    assert merge_patch(target, {"a": {"b": 9}, "l": [3], "gone": None}) == {
        "a": {"b": 9, "c": 2},
        "l": [3],
    }
    assert target["a"] == {"b": 1, "c": 2}  # not changed in place


def test_json_patch_and_its_failures() -> None:
    assert json_patch({"a": [1, 2]}, [{"op": "add", "path": "/a/-", "value": 3}]) == {
        "a": [1, 2, 3]
    }
    with pytest.raises(ApiError) as failed:
        json_patch({"a": 1}, [{"op": "test", "path": "/a", "value": 2}])
    assert failed.value.code == 422
    with pytest.raises(ApiError):
        json_patch({"a": 1}, [{"op": "remove", "path": "/missing"}])


def test_strategic_merge_merges_named_lists_and_replaces_others() -> None:
    patched = strategic_merge_patch(
        POD,
        {
            "containers": [{"name": "app", "image": "a:2", "env": [{"name": "B", "value": "2"}]}],
            "tolerations": [{"key": "y"}],
        },
    )
    assert [c["image"] for c in patched["containers"]] == ["a:2", "s:1"]
    assert patched["containers"][0]["env"] == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "2"},
    ]
    assert patched["tolerations"] == [{"key": "y"}]


def test_strategic_merge_directives() -> None:
    deleted = strategic_merge_patch(POD, {"containers": [{"name": "sidecar", "$patch": "delete"}]})
    assert [c["name"] for c in deleted["containers"]] == ["app"]
    ordered = strategic_merge_patch(
        POD,
        {
            "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}],
            "containers": [{"name": "app", "image": "a:3"}],
        },
    )
    assert [c["name"] for c in ordered["containers"]] == ["sidecar", "app"]
    replaced = strategic_merge_patch(
        {"spec": {"a": 1, "b": 2}}, {"spec": {"$patch": "replace", "c": 3}}
    )
    assert replaced == {"spec": {"c": 3}}
    meta = strategic_merge_patch(
        {"finalizers": ["a", "b"]}, {"$deleteFromPrimitiveList/finalizers": ["a"]}
    )
    assert meta == {"finalizers": ["b"]}
    assert strategic_merge_patch({"finalizers": ["a"]}, {"finalizers": ["b"]}) == {
        "finalizers": ["a", "b"]
    }


def test_patch_formats_by_content_type() -> None:
    assert apply_patch(MERGE, {"a": 1}, {"b": 2}, custom=True) == {"a": 1, "b": 2}
    assert apply_patch(APPLY, {"a": 1}, {"b": 2}, custom=True) == {"a": 1, "b": 2}
    with pytest.raises(ApiError) as refused:
        apply_patch(STRATEGIC, {}, {}, custom=True)
    assert refused.value.code == 415


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ["a", "b", "c"]),
        ("env=prod", ["a"]),
        ("env==prod", ["a"]),
        ("env!=prod", ["b", "c"]),
        ("env in (prod,dev), tier", ["a", "b"]),
        ("env notin (prod)", ["b", "c"]),
        ("!env", ["c"]),
    ],
)
def test_label_selectors(text: str, expected: list[str]) -> None:
    objs = [
        {"metadata": {"name": "a", "labels": {"env": "prod", "tier": "web"}}},
        {"metadata": {"name": "b", "labels": {"env": "dev", "tier": "web"}}},
        {"metadata": {"name": "c", "labels": {}}},
    ]
    match = selector(text, None)
    assert [o["metadata"]["name"] for o in objs if match(o)] == expected


def test_a_selector_that_does_not_parse_is_400() -> None:
    with pytest.raises(ApiError) as bad:
        selector("env in prod)", None)
    assert bad.value.code == 400


def test_injected_failures_then_recovery(api: ApiServer, k8s: client.ApiClient) -> None:
    core = client.CoreV1Api(k8s)
    fault = api.fail(r"/configmaps", code=503, times=2, method="GET")
    for _ in range(2):
        with pytest.raises(ApiException) as failed:
            core.list_namespaced_config_map("test")
        assert failed.value.status == 503
    assert core.list_namespaced_config_map("test").items == []
    assert fault.hits == 2
    core.create_namespaced_config_map("test", {"metadata": {"name": "a"}})  # POST: not matched


def test_injected_latency(api: ApiServer, k8s: client.ApiClient) -> None:
    core = client.CoreV1Api(k8s)
    api.delay(0.3, path="/namespaces/test/configmaps", times=1)
    started = time.monotonic()
    core.list_namespaced_config_map("test")
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    core.list_namespaced_config_map("test")
    assert time.monotonic() - started < 0.3


def test_requests_are_recorded(api: ApiServer, k8s: client.ApiClient) -> None:
    client.CoreV1Api(k8s).list_namespaced_config_map("test", label_selector="a=b")
    method, path, status = api.requests[-1]
    assert (method, status) == ("GET", 200)
    assert path.startswith("/api/v1/namespaces/test/configmaps?labelSelector=a")


def test_direct_apply_creates_then_replaces_keeping_status(api: ApiServer) -> None:
    api.apply(deployment())
    api.set_deployment_ready("test", "web")
    again = api.apply(deployment(image="app:2"))
    assert again["metadata"]["generation"] == 2
    assert again["status"]["readyReplicas"] == 2  # kept; observedGeneration now lags
    assert again["status"]["observedGeneration"] == 1
