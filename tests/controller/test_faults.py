"""The API server misbehaving: a 409 on the status write is re-read and retried (never an
overwrite of someone else's status); a watch whose resourceVersion is gone (410) relists."""

from __future__ import annotations

import pytest
from controller_support import ROLLOUTS, Cluster, deployment, rollout, wait_for

from canary.controller.kinds import ROLLOUT
from canary.controller.kube import Kube
from canary.controller.status import StatusConflictError, write_status


def conflicts(cluster: Cluster) -> float:
    controller = cluster.controllers[0]
    value = controller.metrics.registry.get_sample_value("canary_status_conflicts_total")
    return value or 0.0


def test_a_conflict_on_the_status_write_is_read_again_and_retried(cluster: Cluster) -> None:
    cluster.api.apply(deployment("web", cluster.namespace))
    cluster.api.apply(rollout("web", cluster.namespace, skipAnalysis=True))
    fault = cluster.api.fail(r"/rollouts/web/status$", code=409, times=2, method="PUT")
    cluster.controller()
    cluster.wait_phase("web", "Initialized")
    assert fault.hits == 2
    assert conflicts(cluster) == 2
    writes = [(m, p, s) for m, p, s in cluster.api.requests if p.endswith("/rollouts/web/status")]
    assert [s for _, _, s in writes[:3]] == [409, 409, 200]
    assert not cluster.events("ReconcileError")


@pytest.fixture
def kube(cluster: Cluster) -> Kube:
    return Kube(cluster.api_client())


def test_a_status_changed_by_another_writer_is_not_overwritten(
    cluster: Cluster, kube: Kube
) -> None:
    made = cluster.api.create(rollout("web", cluster.namespace))
    theirs = {"phase": "Paused", "message": "someone else's"}
    cluster.api.update_status(ROLLOUTS, "Rollout", "web", theirs, cluster.namespace)
    with pytest.raises(StatusConflictError, match="another writer"):
        write_status(kube, made, {"phase": "Progressing"})
    assert cluster.status("web") == theirs


def test_a_status_is_written_over_a_change_of_metadata(cluster: Cluster, kube: Kube) -> None:
    made = cluster.api.create(rollout("web", cluster.namespace))
    kube.patch(ROLLOUT, cluster.namespace, "web", {"metadata": {"labels": {"team": "a"}}})
    stored = write_status(kube, made, {"phase": "Progressing"})
    assert stored["status"] == {"phase": "Progressing"}
    assert cluster.rollout("web")["metadata"]["labels"] == {"team": "a"}


def test_a_watch_that_is_too_old_lists_again(cluster: Cluster) -> None:
    cluster.api.apply(deployment("first", cluster.namespace))
    cluster.api.apply(rollout("first", cluster.namespace, skipAnalysis=True))
    controller = cluster.controller()
    assert controller.wait_synced(10)
    cluster.wait_phase("first", "Initialized")
    watcher = next(r for r in controller.reflectors if r.kind == ROLLOUT)
    listed = watcher.lists
    # the rollouts watch comes back late, after its resourceVersion left the history
    slow = cluster.api.delay(0.5, path=r"/rollouts$", method="GET")
    cluster.api.history_size = 0
    cluster.api.stop_watches()
    cluster.api.apply(deployment("second", cluster.namespace))
    cluster.api.apply(rollout("second", cluster.namespace, skipAnalysis=True))
    wait_for("a relist", lambda: watcher.lists > listed)
    cluster.api.faults.clear()
    cluster.api.history_size = 1000
    cluster.wait_phase("second", "Initialized")
    assert slow.hits >= 2
    assert watcher.errors == 0, "a relist after 410 Gone, not after a failure"
    relists = controller.metrics.registry.get_sample_value(
        "canary_watch_relists_total", {"resource": "rollouts"}
    )
    assert relists is not None
    assert relists >= 1
