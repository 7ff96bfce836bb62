"""The watch caches keep no `metadata.managedFields` (server-side apply's bookkeeping, often a
third of an object, which the controller never reads: memory at 1,000 Rollouts), and a write of
a cached object, which then has none, leaves the server's own as they were."""

from __future__ import annotations

from controller_support import Cluster, deployment, wait_for

from canary.controller.kinds import DEPLOYMENT
from canary.controller.kube import Kube
from canary.controller.watches import Cache, Reflector


def test_cached_objects_carry_no_managed_fields_and_a_write_keeps_the_servers(
    cluster: Cluster,
) -> None:
    ns = cluster.namespace
    cluster.api.create(deployment("web", ns))
    stored = cluster.api.get("apps/v1", "Deployment", "web", ns)
    assert stored["metadata"].get("managedFields"), "the API server records who set what"

    kube = Kube(cluster.api_client())
    cache = Cache(DEPLOYMENT)
    reflector = Reflector(kube, cache, ns, timeout_seconds=30).start()
    try:
        assert reflector.synced.wait(10)
        cached = cache.get(ns, "web")
        assert cached is not None
        assert "managedFields" not in cached["metadata"]
        assert cached["spec"] == stored["spec"], "everything else is kept"

        changed = {**cached, "spec": {**cached["spec"], "replicas": 5}}
        kube.replace(changed)
        after = cluster.api.get("apps/v1", "Deployment", "web", ns)
        assert after["spec"]["replicas"] == 5
        assert after["metadata"].get("managedFields"), "an update without them keeps them"
        wait_for(
            "the change in the cache",
            lambda: (cache.get(ns, "web") or {}).get("spec", {}).get("replicas") == 5,
        )
        assert "managedFields" not in (cache.get(ns, "web") or {})["metadata"]
    finally:
        reflector.stop()
