"""The copies a promotion may find stale (ConfigMaps and Secrets labelled with the Rollout) are
listed from the metadata-only watch caches: the same objects the API server lists, without
their data and without a request; from the API server while a cache is not synced or the tick
reads fresh."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from controller_support import Cluster, wait_for

from canary.controller.cached import CachedKube
from canary.controller.kinds import CONFIGMAP, SECRET
from canary.controller.kube import Json, Kube
from canary.controller.watches import Cache, Reflector, metadata_only
from canary.workload.names import ROLLOUT_LABEL

LABELS = {ROLLOUT_LABEL: "web"}


def config(kind: str, namespace: str, name: str, labels: dict[str, str]) -> Json:
    return {
        "apiVersion": "v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "data": {"key": "dmFsdWU="},
    }


@pytest.fixture
def caches(cluster: Cluster) -> Iterator[dict[str, Cache]]:
    ns = cluster.namespace
    for kind in ("ConfigMap", "Secret"):
        cluster.api.apply(config(kind, ns, f"web-{kind.lower()}-1", {**LABELS, "x": "1"}))
        cluster.api.apply(config(kind, ns, f"web-{kind.lower()}-2", dict(LABELS)))
        cluster.api.apply(config(kind, ns, f"shop-{kind.lower()}", {ROLLOUT_LABEL: "shop"}))
        cluster.api.apply(config(kind, ns, f"plain-{kind.lower()}", {}))
    kube = Kube(cluster.api_client())
    made = {kind.kind: Cache(kind, metadata_only) for kind in (CONFIGMAP, SECRET)}
    reflectors = [Reflector(kube, cache, ns, timeout_seconds=30).start() for cache in made.values()]
    assert all(r.synced.wait(10) for r in reflectors)
    yield made
    for reflector in reflectors:
        reflector.stop()


def names(objects: object) -> list[str]:
    assert isinstance(objects, list | tuple)
    return sorted(str(o["metadata"]["name"]) for o in objects)


def lists(cluster: Cluster, since: int) -> int:
    return sum(
        1
        for method, path, _ in cluster.api.requests[since:]
        if method == "GET"
        and "watch=" not in path
        and path.split("?")[0].endswith(("/configmaps", "/secrets"))
    )


def test_labelled_copies_come_from_the_caches_as_the_api_server_lists_them(
    cluster: Cluster, caches: dict[str, Cache]
) -> None:
    kube = Kube(cluster.api_client())
    reads = CachedKube(kube, {}, lambda kind, namespace: True, labelled=caches)
    ns = cluster.namespace
    for kind in (CONFIGMAP, SECRET):
        want = kube.list_labelled(kind, ns, LABELS)
        before = len(cluster.api.requests)
        got = reads.list_labelled(kind, ns, LABELS)
        assert lists(cluster, before) == 0
        assert names(got) == names(want) == [f"web-{kind.kind.lower()}-{n}" for n in (1, 2)]
        assert all("data" not in obj for obj in got)
        assert [
            o["metadata"]["labels"] for o in sorted(got, key=lambda o: o["metadata"]["name"])
        ] == [o["metadata"]["labels"] for o in sorted(want, key=lambda o: o["metadata"]["name"])]
        assert names(reads.list_labelled(kind, ns, {**LABELS, "x": "1"})) == names(
            kube.list_labelled(kind, ns, {**LABELS, "x": "1"})
        )


def test_a_copy_deleted_or_made_shows_in_the_next_list_once_the_watch_delivers_it(
    cluster: Cluster, caches: dict[str, Cache]
) -> None:
    kube = Kube(cluster.api_client())
    reads = CachedKube(kube, {}, lambda kind, namespace: True, labelled=caches)
    ns = cluster.namespace
    kube.delete(CONFIGMAP, ns, "web-configmap-1")
    kube.create(config("ConfigMap", ns, "web-configmap-3", dict(LABELS)))
    want = ["web-configmap-2", "web-configmap-3"]
    wait_for(
        "the cache to show the change",
        lambda: names(reads.list_labelled(CONFIGMAP, ns, LABELS)) == want,
    )
    assert names(kube.list_labelled(CONFIGMAP, ns, LABELS)) == want


def test_an_unsynced_cache_or_a_fresh_tick_lists_from_the_api_server(
    cluster: Cluster, caches: dict[str, Cache]
) -> None:
    kube = Kube(cluster.api_client())
    ns = cluster.namespace
    unsynced = CachedKube(kube, {}, lambda kind, namespace: False, labelled=caches)
    before = len(cluster.api.requests)
    assert names(unsynced.list_labelled(SECRET, ns, LABELS)) == ["web-secret-1", "web-secret-2"]
    assert lists(cluster, before) == 1
    synced = CachedKube(kube, {}, lambda kind, namespace: True, labelled=caches)
    before = len(cluster.api.requests)
    with synced.fresh_reads():
        synced.list_labelled(SECRET, ns, LABELS)
    assert lists(cluster, before) == 1
    uncached = CachedKube(kube, {}, lambda kind, namespace: True)
    before = len(cluster.api.requests)
    uncached.list_labelled(CONFIGMAP, ns, LABELS)
    assert lists(cluster, before) == 1
