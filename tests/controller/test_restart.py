"""A controller stopped mid-rollout and started again (a new process) continues from the
Rollout's status and reaches the verdict an uninterrupted one would."""

from __future__ import annotations

from controller_support import (
    HEALTHY,
    NAME,
    Cluster,
    MetricsRelay,
    WeightLog,
    deployment,
    rollout,
    simulated_mesh,
    wait_for,
)


def test_a_restarted_controller_continues_from_status(
    mesh_cluster: Cluster, relay: MetricsRelay
) -> None:
    cluster = mesh_cluster
    cluster.api.apply(deployment(NAME, cluster.namespace, image="podinfo:6.7.0"))
    cluster.api.apply(
        rollout(NAME, cluster.namespace, strategy={"canary": {"weights": [20, 40, 60]}})
    )
    with simulated_mesh(cluster, relay, HEALTHY):
        first = cluster.controller("canary-first")
        cluster.wait_phase(NAME, "Initialized")
        with WeightLog(cluster) as log:
            cluster.set_image(NAME, "podinfo:6.8.0")
            second_step = "checks passed; canary weight 40%"
            wait_for(
                "the second step",
                lambda: any(e["message"] == second_step for e in cluster.events("Step")),
            )
            before = cluster.status(NAME)
            assert before["canaryWeight"] == 40
            first.stop(release_lease=False)  # as if the process died: the Lease is not given up
            second = cluster.controller("canary-second")
            status = cluster.wait_phase(NAME, "Succeeded")
    assert log.weights == [0, 20, 40, 60, 0], "no step was repeated or skipped"
    assert status["startedAt"] == before["startedAt"], "the same rollout went on"
    assert status["stableRevision"] == before["canaryRevision"]
    assert cluster.image_of(f"{NAME}-primary") == "podinfo:6.8.0"
    cluster.wait_events("Succeeded")
    started = [e for e in cluster.events("Progressing") if "starting" in e["message"]]
    assert len(started) == 1, "the canary was not started twice"
    steps = {e["message"]: e["reportingInstance"] for e in cluster.events("Step")}
    assert steps == {
        "canary ready; analysis started at weight 20%": "canary-first",
        "checks passed; canary weight 40%": "canary-first",
        "checks passed; canary weight 60%": "canary-second",
    }
    assert second.is_leader()
