"""The one-of-N benchmark's mirror (benchmarks/scale_mirror.py): each change of a measured
Rollout's objects is made once to each of its twins, renamed, as the same kind of write; a
Deployment's status is left to the kubelet; other Rollouts are not touched."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator

import pytest
from benchmark_support import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
from scale_cluster import deployment, rollout, start_cluster
from scale_mirror import Mirror, rollout_of

from canary.testing import ApiServer

NS = "bench"
ROLLOUTS = "canary.dev/v1alpha1"


@pytest.fixture
def api() -> Iterator[ApiServer]:
    server = start_cluster(NS)
    for name in ("app-00001", "app-00002", "app-00003", "app-00004"):
        server.create(deployment(name, NS, "podinfo:1"))
        server.create(rollout(name, NS, 10.0, [5, 50], None))
    yield server
    server.stop()


def eventually(check: Callable[[], bool], what: str) -> None:
    for _ in range(200):
        if check():
            return
        time.sleep(0.01)
    raise AssertionError(what)


def versions(api: ApiServer, kind: str, version: str, name: str) -> int:
    return int(api.get(version, kind, name, NS)["metadata"]["resourceVersion"])


def test_the_rollout_of_an_object_is_its_name_up_to_a_suffix() -> None:
    assert rollout_of("app-00001") == "app-00001"
    assert rollout_of("app-00001-canary") == "app-00001"
    assert rollout_of("app-000011") is None
    assert rollout_of("canary-controller-shard-0") is None


def test_a_status_write_reaches_each_twin_renamed_and_nothing_else(api: ApiServer) -> None:
    mirror = Mirror(api, NS, {"app-00001": ["app-00002", "app-00003"]})
    try:
        untouched = versions(api, "Rollout", ROLLOUTS, "app-00004")
        status = {"phase": "Progressing", "canaryWeight": 5, "message": "app-00001-canary at 5%"}
        api.update_status(ROLLOUTS, "Rollout", "app-00001", status, NS)
        for twin in ("app-00002", "app-00003"):
            eventually(
                lambda t=twin: (
                    (api.get(ROLLOUTS, "Rollout", t, NS).get("status") or {}).get("canaryWeight")
                    == 5
                ),
                f"{twin}'s status copied",
            )
            copied = api.get(ROLLOUTS, "Rollout", twin, NS)["status"]
            assert copied["message"] == f"{twin}-canary at 5%"
        assert versions(api, "Rollout", ROLLOUTS, "app-00004") == untouched
        assert mirror.failures == 0
    finally:
        mirror.close()


def test_a_created_canary_deployment_is_created_for_the_twin_owned_by_the_twin(
    api: ApiServer,
) -> None:
    mirror = Mirror(api, NS, {"app-00001": ["app-00002"]})
    try:
        uid = {
            n: api.get(ROLLOUTS, "Rollout", n, NS)["metadata"]["uid"]
            for n in ("app-00001", "app-00002")
        }
        canary = deployment("app-00001-canary", NS, "podinfo:2")
        canary["metadata"]["ownerReferences"] = [
            {
                "apiVersion": ROLLOUTS,
                "kind": "Rollout",
                "name": "app-00001",
                "uid": uid["app-00001"],
            }
        ]
        api.create(canary)

        def twin_exists() -> bool:
            return any(
                d["metadata"]["name"] == "app-00002-canary"
                for d in api.list("apps/v1", "Deployment", NS)
            )

        eventually(twin_exists, "the twin's canary Deployment created")
        twin = api.get("apps/v1", "Deployment", "app-00002-canary", NS)
        assert twin["metadata"]["ownerReferences"][0]["uid"] == uid["app-00002"]
        assert twin["spec"]["selector"]["matchLabels"] == {"app": "app-00002-canary"}
        assert twin["spec"]["template"]["spec"]["containers"][0]["image"] == "podinfo:2"
    finally:
        mirror.close()


def test_a_deployment_status_is_left_to_the_kubelet_and_a_spec_change_is_copied_once(
    api: ApiServer,
) -> None:
    mirror = Mirror(api, NS, {"app-00001": ["app-00002"]})
    try:
        eventually(lambda: mirror.backlog == 0, "the first copies made")
        before = api.get("apps/v1", "Deployment", "app-00002", NS)["metadata"]["generation"]
        api.set_deployment_ready(NS, "app-00001")  # a status write only
        target = api.get("apps/v1", "Deployment", "app-00001", NS)
        target["spec"]["template"]["spec"]["containers"][0]["image"] = "podinfo:3"
        api.apply(target)
        eventually(
            lambda: (
                api.get("apps/v1", "Deployment", "app-00002", NS)["spec"]["template"]["spec"][
                    "containers"
                ][0]["image"]
                == "podinfo:3"
            ),
            "the new image copied",
        )
        eventually(lambda: mirror.backlog == 0, "the queue drained")
        twin = api.get("apps/v1", "Deployment", "app-00002", NS)
        assert twin["metadata"]["generation"] == before + 1, "one spec change, copied once"
        assert "readyReplicas" not in (twin.get("status") or {}), "the status is the kubelet's"
        assert mirror.failures == 0
    finally:
        mirror.close()
