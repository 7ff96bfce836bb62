"""The fences `CachedKube` leaves at each write, against the real API server stand-in, with the
watch's events fed to the cache by hand in the orders a busy controller can see them: every
fence is lifted once the cache is past the write, the Rollout's deletion included, so deleted
objects leave none behind (a fence nothing lifts would stay for the life of the process, one a
deleted object); a deletion of an older object of the same name lifts none."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from controller_support import CANARY_CRDS, ROLLOUTS, deployment, rollout
from kubernetes import config

from canary.controller.cached import CachedKube
from canary.controller.kinds import ROLLOUT
from canary.controller.kube import Json, Kube
from canary.controller.watches import Cache
from canary.testing import ApiServer

NS = "fences"


@pytest.fixture
def api() -> Iterator[ApiServer]:
    with ApiServer() as server:
        server.create_namespace(NS)
        server.apply_file(*sorted(CANARY_CRDS.glob("*.yaml")))
        server.apply(deployment("web", NS))
        yield server


@pytest.fixture
def kube(api: ApiServer, tmp_path: Path) -> Kube:
    path = api.kubeconfig(tmp_path / "kubeconfig", namespace=NS)
    return Kube(config.new_client_from_config(config_file=str(path)))


def cached(kube: Kube, cache: Cache) -> CachedKube:
    return CachedKube(kube, {ROLLOUT.kind: cache}, lambda kind, namespace: True)


def with_status(obj: Json, message: str) -> Json:
    return {**obj, "status": {"phase": "Initialized", "message": message}}


def test_an_answer_recorded_after_the_objects_deletion_leaves_no_fence(
    api: ApiServer, kube: Kube
) -> None:
    cache = Cache(ROLLOUT)
    reads = cached(kube, cache)
    stored = api.create(rollout("web", NS))
    cache.apply("ADDED", stored)

    written = Kube.replace_status(reads, with_status(stored, "one"))  # the API server's answer
    # before the tick's thread records it, the watch delivers the write and the deletion
    cache.apply("MODIFIED", written)
    cache.apply("DELETED", api.delete(ROLLOUTS, "Rollout", "web", NS))
    reads._fence(written, written)

    assert reads.fenced() == 0
    assert not reads.wrote(ROLLOUT.kind, NS, "web", written["metadata"]["resourceVersion"])


def test_the_deletion_of_the_written_object_lifts_its_fence(api: ApiServer, kube: Kube) -> None:
    cache = Cache(ROLLOUT)
    reads = cached(kube, cache)
    cache.apply("ADDED", api.create(rollout("web", NS)))

    reads.replace_status(with_status(api.get(ROLLOUTS, "Rollout", "web", NS), "one"))
    assert reads.fenced() == 1  # the cache has not shown the write yet
    api.delete(ROLLOUTS, "Rollout", "web", NS)
    cache.replace([], NS)  # a relist (after 410 Gone): the write's version never shown

    assert reads.fenced() == 0
    assert reads.get(ROLLOUT, NS, "web") is None


def test_an_older_objects_deletion_lifts_no_fence_of_the_new_one(
    api: ApiServer, kube: Kube
) -> None:
    cache = Cache(ROLLOUT)
    reads = cached(kube, cache)
    cache.apply("ADDED", api.create(rollout("web", NS)))
    old = api.delete(ROLLOUTS, "Rollout", "web", NS)

    created = reads.create(rollout("web", NS))  # a new object of the same name
    cache.apply("DELETED", old)  # the watch's late news of the old one

    assert reads.fenced() == 1
    found = reads.get(ROLLOUT, NS, "web")  # read from the API server: the new one
    assert found is not None
    assert found["metadata"]["uid"] == created["metadata"]["uid"] != old["metadata"]["uid"]
    cache.apply("ADDED", created)
    assert reads.fenced() == 0


def test_deleted_uids_remembered_are_bounded(api: ApiServer, kube: Kube) -> None:
    from canary.controller.cached import RECENTLY_DELETED

    cache = Cache(ROLLOUT)
    reads = cached(kube, cache)
    for i in range(RECENTLY_DELETED + 10):
        obj = {"metadata": {"name": f"r{i}", "namespace": NS, "uid": f"u{i}"}}
        cache.apply("ADDED", obj)
        cache.apply("DELETED", obj)
    assert len(reads._deleted) == RECENTLY_DELETED
