"""What wakes a Rollout early, and what the scheduler reports.

A Deployment's change ticks the Rollouts that run it (their target or its primary, found by an
index, not a scan) when it changes what a tick reads: the spec's generation, the primary's
revision, the replicas' readiness; not a status heartbeat. The scheduler reports each tick's
lateness (scheduled or early) and the workers busy."""

from __future__ import annotations

import copy
import threading
from typing import Any

from controller_support import Cluster, deployment, rollout, wait_for

from canary.controller.kinds import CONFIGMAP, DEPLOYMENT, ROLLOUT
from canary.controller.scheduling import TickScheduler

Json = dict[str, Any]


class Woken:
    """Stands in for the controller's scheduler: which Rollouts were ticked early."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    def ensure(self, key: str, delay: float = 0.0) -> None:
        pass

    def trigger(self, key: str, reason: str = "change", echo: Any = None) -> None:
        self.keys.append(key)

    def remove(self, key: str) -> None:
        pass

    def remove_all(self) -> None:
        pass

    def take(self) -> list[str]:
        taken, self.keys = self.keys, []
        return taken


def ready(obj: Json, replicas: int) -> Json:
    changed = copy.deepcopy(obj)
    meta = changed["metadata"]
    meta["resourceVersion"] = str(int(meta.get("resourceVersion") or "1") + 1000)
    changed["status"] = {
        "observedGeneration": meta.get("generation", 1),
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": replicas,
        "availableReplicas": replicas,
    }
    return changed


def test_only_changes_a_tick_reads_wake_the_rollouts_of_a_deployment(cluster: Cluster) -> None:
    ns = cluster.namespace
    controller = cluster.controller(start=False, lease=None)
    woken = Woken()
    controller.scheduler = woken  # type: ignore[assignment]
    controller._lead()  # leads, without starting the watches: the caches are fed by hand
    rollouts, deployments = controller.caches[ROLLOUT.kind], controller.caches[DEPLOYMENT.kind]
    rollouts.apply("ADDED", rollout("web", ns))
    rollouts.apply("ADDED", rollout("other", ns))
    web = f"{ns}/web"

    target = cluster.api.create(deployment("web", ns))
    deployments.apply("ADDED", target)
    assert woken.take() == [web]
    deployments.apply("ADDED", cluster.api.create(deployment("unrelated", ns)))
    assert woken.take() == [], "nobody runs it"

    became_ready = ready(target, 2)
    deployments.apply("MODIFIED", became_ready)
    assert woken.take() == [web], "the replicas became ready"
    beat = copy.deepcopy(became_ready)
    beat["metadata"]["resourceVersion"] += "1"
    beat["metadata"]["annotations"] = {"deployment.kubernetes.io/revision": "2"}
    beat["status"]["conditions"] = [{"type": "Available", "lastUpdateTime": "2030-01-01T00:00:00Z"}]
    deployments.apply("MODIFIED", beat)
    assert woken.take() == [], "nothing a tick reads changed"

    # scaled by someone else (an echo of the controller's own write does not wake: below)
    echo = copy.deepcopy(beat)
    echo["metadata"].update(generation=2, resourceVersion="2000")
    echo["spec"]["replicas"] = 3
    deployments.apply("MODIFIED", echo)
    assert woken.take() == [web], "the spec changed"
    deployments.apply("MODIFIED", ready(echo, 3))
    assert woken.take() == [web], "the new replicas ready"

    primary = deployment("web-primary", ns)
    primary["metadata"].update(generation=1, resourceVersion="5")
    deployments.apply("ADDED", primary)
    assert woken.take() == [web]
    newer = copy.deepcopy(primary)
    newer["metadata"].update(generation=2, resourceVersion="6")
    deployments.apply("MODIFIED", newer)
    assert woken.take() == [web], "the primary's spec changed"

    moved = rollout("web", ns)
    moved["spec"]["targetRef"]["name"] = "unrelated"
    rollouts.apply("MODIFIED", moved)
    deployments.apply("MODIFIED", ready(echo, 1))
    assert woken.take() == [], "web runs another Deployment now"
    unrelated = cluster.deployment("unrelated")
    deployments.apply("MODIFIED", ready(unrelated, 2))
    assert woken.take() == [web]
    rollouts.apply("DELETED", moved)
    deployments.apply("MODIFIED", ready(unrelated, 1))
    assert woken.take() == [], "a deleted Rollout is not woken"


def test_the_echo_of_its_own_write_and_counting_replicas_do_not_wake_a_rollout(
    cluster: Cluster,
) -> None:
    """The tick that scaled a Deployment acted on it already: the watch's echo of that write
    (its resourceVersion is the write's answer) wakes nobody; the replicas' readiness wakes
    once, when all are ready, not at each one counted on the way there."""
    ns = cluster.namespace
    controller = cluster.controller(start=False, lease=None)
    woken = Woken()
    controller.scheduler = woken  # type: ignore[assignment]
    controller._lead()
    rollouts, deployments = controller.caches[ROLLOUT.kind], controller.caches[DEPLOYMENT.kind]
    rollouts.apply("ADDED", rollout("web", ns))
    deployments.apply("ADDED", ready(cluster.api.create(deployment("web", ns)), 2))
    woken.take()

    stored = controller.reads.scale(DEPLOYMENT, ns, "web", 3)  # as a tick scales the canary
    echo = cluster.deployment("web")
    assert echo["metadata"]["resourceVersion"] == stored["metadata"]["resourceVersion"]
    deployments.apply("MODIFIED", echo)
    assert woken.take() == [], "the echo of the controller's own write"

    counting = ready(echo, 3)
    counting["status"].update(readyReplicas=2, availableReplicas=2)
    deployments.apply("MODIFIED", counting)
    assert woken.take() == [], "not all ready: as not ready as before"
    deployments.apply("MODIFIED", ready(echo, 3))
    assert woken.take() == [f"{ns}/web"], "all ready"

    cluster.api.apply(dict(cluster.deployment("web"), spec={**echo["spec"], "replicas": 4}))
    deployments.apply("MODIFIED", cluster.deployment("web"))
    assert woken.take() == [f"{ns}/web"], "someone else's write of the spec wakes it"


def test_the_scheduler_reports_lateness_and_busy_workers() -> None:
    late: list[tuple[str, float]] = []
    busy: list[int] = []
    release = threading.Event()
    scheduler: TickScheduler

    def tick(key: str, early: bool) -> float:
        busy.append(scheduler.busy)
        release.wait(10)
        return 3600.0

    scheduler = TickScheduler(tick, workers=2, on_lateness=lambda *seen: late.append(seen))
    scheduler.start()
    try:
        scheduler.ensure("ns/a")
        wait_for("the first tick", lambda: busy)
        assert busy == [1]
        release.set()
        wait_for("the tick to end", lambda: scheduler.busy == 0)
        scheduler.trigger("ns/a")
        wait_for("the early tick", lambda: len(late) == 2)
    finally:
        scheduler.shutdown()
    assert [kind for kind, _ in late] == ["scheduled", "early"]
    assert all(seconds >= 0 for _, seconds in late)


def test_a_change_of_a_referenced_config_map_or_secret_starts_a_rollout_at_once(
    cluster: Cluster,
) -> None:
    """The interval is 10 minutes: a rollout that starts within the test's wait did not wait
    for the next regular tick. Secrets' data is never kept in the controller's caches."""
    ns = cluster.namespace
    cluster.api.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "web-env", "namespace": ns},
            "data": {"MODE": "old"},
        }
    )
    secret: Json = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": "web-key", "namespace": ns},
        "data": {"K": "b2xk"},
    }
    cluster.api.apply(secret)
    target = deployment("web", ns)
    container = target["spec"]["template"]["spec"]["containers"][0]
    container["envFrom"] = [
        {"configMapRef": {"name": "web-env"}},
        {"secretRef": {"name": "web-key"}},
    ]
    cluster.api.apply(target)
    cluster.api.apply(rollout("web", ns, analysis={"interval": "10m", "judge": "threshold"}))
    controller = cluster.controller()
    first = cluster.wait_phase("web", "Initialized")["stableRevision"]
    key = f"{ns}/web"

    def quiet() -> bool:
        due = controller.scheduler.due_in(key)
        return due is not None and due > 300

    wait_for("the next regular tick minutes away", quiet)
    cluster.api.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "web-env", "namespace": ns},
            "data": {"MODE": "new"},
        }
    )
    started = cluster.wait_phase("web", "Progressing", timeout=30)
    assert started["canaryRevision"] != first
    assert all("data" not in s for s in controller.caches["Secret"].items())
    wait_for("the next regular tick minutes away", quiet)
    secret["data"] = {"K": "bmV3"}
    cluster.api.apply(secret)
    wait_for(
        "a newer revision judged",
        lambda: (
            cluster.status("web").get("canaryRevision") not in (None, started["canaryRevision"])
        ),
        timeout=30,
    )


def test_a_config_event_wakes_exactly_the_rollouts_whose_target_references_it_now(
    cluster: Cluster,
) -> None:
    """What a target references is remembered by its resourceVersion: a new template that
    references another ConfigMap moves the wake with it (no stale answer)."""
    ns = cluster.namespace
    controller = cluster.controller(start=False, lease=None)
    woken = Woken()
    controller.scheduler = woken  # type: ignore[assignment]
    controller._lead()
    rollouts, deployments = controller.caches[ROLLOUT.kind], controller.caches[DEPLOYMENT.kind]
    configmaps = controller.caches[CONFIGMAP.kind]
    for name in ("web", "api"):
        rollouts.apply("ADDED", rollout(name, ns))
        target = deployment(name, ns)
        target["metadata"]["resourceVersion"] = "1"
        target["spec"]["template"]["spec"]["containers"][0]["envFrom"] = [
            {"configMapRef": {"name": f"{name}-env"}}
        ]
        deployments.apply("ADDED", target)
    woken.take()

    def config_map(name: str, version: str) -> Json:
        meta = {"name": name, "namespace": ns, "resourceVersion": version}
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {}}

    configmaps.apply("ADDED", config_map("web-env", "10"))
    assert woken.take() == [f"{ns}/web"]
    configmaps.apply("MODIFIED", config_map("web-env", "11"))
    assert woken.take() == [f"{ns}/web"], "asked twice: the remembered answer"
    configmaps.apply("ADDED", config_map("unrelated", "12"))
    assert woken.take() == []

    moved = copy.deepcopy(deployments.get(ns, "web"))
    assert moved is not None
    moved["metadata"]["resourceVersion"] = "2"
    moved["spec"]["template"]["spec"]["containers"][0]["envFrom"] = [
        {"configMapRef": {"name": "api-env"}}
    ]
    deployments.apply("MODIFIED", moved)
    woken.take()
    configmaps.apply("MODIFIED", config_map("web-env", "13"))
    assert woken.take() == [], "web's new template no longer references web-env"
    configmaps.apply("MODIFIED", config_map("api-env", "14"))
    assert sorted(woken.take()) == [f"{ns}/api", f"{ns}/web"]
