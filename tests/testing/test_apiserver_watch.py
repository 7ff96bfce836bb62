"""Watches through the official client: order, resume, 410 Gone and relist, bookmarks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from apiserver_support import CANARY_CRDS
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from canary.testing import ApiServer

Event = tuple[str, str]


@pytest.fixture
def core(k8s: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(k8s)


def cm(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels}, "data": {}}


def collect(stream: Any, until: Callable[[list[Event]], bool] = lambda _: False) -> list[Event]:
    seen: list[Event] = []
    for event in stream:
        name = event["raw_object"]["metadata"].get(
            "name", event["raw_object"]["metadata"]["resourceVersion"]
        )
        seen.append((event["type"], name))
        if until(seen):
            break
    return seen


class Background:
    """A watch read in a thread, so the test can write while it runs."""

    def __init__(self, stream: Any) -> None:
        self.events: list[dict[str, Any]] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(stream,), daemon=True)
        self.thread.start()

    def _run(self, stream: Any) -> None:
        try:
            for event in stream:
                self.events.append(event)
        except BaseException as exc:
            self.error = exc

    def seen(self) -> list[Event]:
        return [(e["type"], e["raw_object"]["metadata"].get("name", "")) for e in self.events]

    def wait_for(self, count: int, timeout: float = 5) -> list[Event]:
        deadline = time.monotonic() + timeout
        while len(self.events) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.seen()


def test_watch_without_version_lists_then_follows(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("test", cm("a"))
    w = watch.Watch()
    bg = Background(w.stream(core.list_namespaced_config_map, "test", timeout_seconds=3))
    assert bg.wait_for(1) == [("ADDED", "a")]
    core.patch_namespaced_config_map("a", "test", {"data": {"k": "v"}})
    core.create_namespaced_config_map("test", cm("b"))
    core.delete_namespaced_config_map("a", "test")
    assert bg.wait_for(4) == [("ADDED", "a"), ("MODIFIED", "a"), ("ADDED", "b"), ("DELETED", "a")]
    w.stop()


def test_watch_resumes_from_a_resource_version(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("test", cm("a"))
    listed = core.list_namespaced_config_map("test")
    core.create_namespaced_config_map("test", cm("b"))
    core.delete_namespaced_config_map("a", "test")
    stream = watch.Watch().stream(
        core.list_namespaced_config_map,
        "test",
        resource_version=listed.metadata.resource_version,
        timeout_seconds=5,
    )
    assert collect(stream, until=lambda seen: len(seen) == 2) == [("ADDED", "b"), ("DELETED", "a")]


def test_too_old_resource_version_is_410_gone_then_relist(
    api: ApiServer, core: client.CoreV1Api
) -> None:
    api.history_size = 2
    core.create_namespaced_config_map("test", cm("a"))
    old = core.list_namespaced_config_map("test").metadata.resource_version
    for name in "bcd":
        core.create_namespaced_config_map("test", cm(name))
    with pytest.raises(ApiException) as expired:
        collect(
            watch.Watch().stream(
                core.list_namespaced_config_map, "test", resource_version=old, timeout_seconds=1
            )
        )
    assert expired.value.status == 410
    # what a reflector does: relist, then watch from the list's version
    relisted = core.list_namespaced_config_map("test")
    assert [c.metadata.name for c in relisted.items] == ["a", "b", "c", "d"]
    w = watch.Watch()
    bg = Background(
        w.stream(
            core.list_namespaced_config_map,
            "test",
            resource_version=relisted.metadata.resource_version,
            timeout_seconds=3,
        )
    )
    core.create_namespaced_config_map("test", cm("e"))
    assert bg.wait_for(1) == [("ADDED", "e")]
    w.stop()


def test_410_as_a_raw_error_event(api: ApiServer, core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("test", cm("a"))
    api.compact()
    response = core.list_namespaced_config_map(
        "test", watch=True, resource_version="1", _preload_content=False
    )
    event = response.read().decode().strip()
    assert '"type":"ERROR"' in event
    assert '"code":410' in event
    assert '"reason":"Expired"' in event


def test_bookmarks_carry_the_current_version(api: ApiServer, core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("test", cm("a"))
    api.create(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "test"}}
    )
    stream = watch.Watch().stream(
        core.list_namespaced_config_map, "test", allow_watch_bookmarks=True, timeout_seconds=2
    )
    seen = []
    for event in stream:
        seen.append(event)
        if event["type"] == "BOOKMARK":
            break
    assert [e["type"] for e in seen] == ["ADDED", "BOOKMARK"]
    bookmark = seen[-1]["raw_object"]
    assert bookmark["kind"] == "ConfigMap"
    assert int(bookmark["metadata"]["resourceVersion"]) == api.resource_version


def test_no_bookmarks_unless_asked_and_timeout_ends_the_stream(core: client.CoreV1Api) -> None:
    started = time.monotonic()
    events = collect(
        watch.Watch().stream(core.list_namespaced_config_map, "test", timeout_seconds=1)
    )
    assert events == []
    assert 0.9 < time.monotonic() - started < 3


def test_relabelled_objects_enter_and_leave_a_selective_watch(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("test", cm("a", tier="web"))
    w = watch.Watch()
    bg = Background(
        w.stream(
            core.list_namespaced_config_map, "test", label_selector="tier=web", timeout_seconds=3
        )
    )
    bg.wait_for(1)
    core.patch_namespaced_config_map("a", "test", {"metadata": {"labels": {"tier": "db"}}})
    core.create_namespaced_config_map("test", cm("b", tier="db"))
    core.patch_namespaced_config_map("b", "test", {"metadata": {"labels": {"tier": "web"}}})
    assert bg.wait_for(3) == [("ADDED", "a"), ("DELETED", "a"), ("ADDED", "b")]
    w.stop()


def test_many_concurrent_watches_see_the_same_events(core: client.CoreV1Api) -> None:
    watchers = [watch.Watch() for _ in range(20)]
    bgs = [
        Background(w.stream(core.list_namespaced_config_map, "test", timeout_seconds=5))
        for w in watchers
    ]
    time.sleep(0.2)
    for n in range(10):
        core.create_namespaced_config_map("test", cm(f"c{n}"))
    expected = [("ADDED", f"c{n}") for n in range(10)]
    for bg in bgs:
        assert bg.wait_for(10) == expected
    for w in watchers:
        w.stop()


def test_stop_watches_ends_open_streams(api: ApiServer, core: client.CoreV1Api) -> None:
    bg = Background(
        watch.Watch().stream(core.list_namespaced_config_map, "test", timeout_seconds=30)
    )
    deadline = time.monotonic() + 5
    while api.stop_watches() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    bg.thread.join(5)
    assert not bg.thread.is_alive()


def test_watch_custom_objects_across_namespaces(api: ApiServer, k8s: client.ApiClient) -> None:
    api.apply_file(*sorted(CANARY_CRDS.glob("*.yaml")))
    api.create_namespace("other")
    custom = client.CustomObjectsApi(k8s)
    w = watch.Watch()
    bg = Background(
        w.stream(
            custom.list_cluster_custom_object,
            "canary.dev",
            "v1alpha1",
            "rollouts",
            timeout_seconds=3,
        )
    )
    time.sleep(0.2)
    for ns in ("test", "other"):
        api.create(
            {
                "apiVersion": "canary.dev/v1alpha1",
                "kind": "Rollout",
                "metadata": {"name": "web", "namespace": ns},
                "spec": {
                    "targetRef": {"name": "web"},
                    "service": {"port": 80},
                    "provider": {"name": "istio"},
                },
            }
        )
    api.update_status("canary.dev/v1alpha1", "Rollout", "web", {"phase": "Progressing"}, "other")
    seen = bg.wait_for(3)
    assert [t for t, _ in seen] == ["ADDED", "ADDED", "MODIFIED"]
    assert [e["raw_object"]["metadata"]["namespace"] for e in bg.events] == [
        "test",
        "other",
        "other",
    ]
    w.stop()


def test_watch_list_ends_its_initial_events_with_a_bookmark(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("test", cm("a"))
    stream = watch.Watch().stream(
        core.list_namespaced_config_map,
        "test",
        allow_watch_bookmarks=True,
        send_initial_events=True,
        resource_version_match="NotOlderThan",
        timeout_seconds=5,
    )
    events = []
    for event in stream:
        events.append(event)
        if event["type"] == "BOOKMARK":
            break
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK"]
    annotations = events[1]["raw_object"]["metadata"]["annotations"]
    assert annotations == {"k8s.io/initial-events-end": "true"}


def test_concurrent_writers_and_watchers_agree_on_order(
    api: ApiServer, k8s: client.ApiClient
) -> None:
    core = client.CoreV1Api(k8s)
    core.create_namespaced_config_map("test", cm("counter"))
    start = core.read_namespaced_config_map("counter", "test").metadata.resource_version
    watchers = [watch.Watch() for _ in range(30)]
    bgs = [
        Background(
            w.stream(
                core.list_namespaced_config_map, "test", resource_version=start, timeout_seconds=10
            )
        )
        for w in watchers
    ]

    def write(worker: int) -> None:
        for n in range(20):
            core.patch_namespaced_config_map("counter", "test", {"data": {str(worker): str(n)}})

    writers = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    expected = 80
    for bg in bgs:
        bg.wait_for(expected)
        versions = [int(e["raw_object"]["metadata"]["resourceVersion"]) for e in bg.events]
        assert len(versions) == expected
        assert versions == sorted(set(versions))
    final = bgs[0].events[-1]["raw_object"]["data"]
    assert final == {str(w): "19" for w in range(4)}
    for w in watchers:
        w.stop()
