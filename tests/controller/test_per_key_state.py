"""A long-running controller's per-Rollout state goes with its Rollout.

Rollouts are created under names never used before, run (initialised, then a new image
promoted), and deleted with what they owned (as the cluster's garbage collector would): after
a second round of twice as many, nothing the controller holds (every dict, set, list and deque
reachable from it: `state_sizes`) is longer than after the first round. A map keyed by
Rollouts, objects or resourceVersions that kept its entries would grow with the names a
tenant used, without bound, over a controller's life.

A tick that is running when its Rollout's deletion arrives is the other way in: what it records
as it ends (after the deletion's watch event forgot the Rollout) stays. The first test deletes
Rollouts while no tick runs; the second holds a tick across the deletion."""

from __future__ import annotations

import threading
from contextlib import suppress
from typing import Any

from controller_support import ROLLOUTS, Cluster, deployment, rollout, wait_for
from state_sizes import grown, state_sizes

from canary.controller import Controller
from canary.controller.kinds import ROLLOUT
from canary.testing import ApiError

ROUTE_OBJECTS = (
    ("networking.istio.io/v1", "VirtualService"),
    ("networking.istio.io/v1", "DestinationRule"),
)
RECENT_DELETIONS = "reads._deleted"
"""The uids of the last deletions (`canary.controller.cached.RECENTLY_DELETED` at most: its
bound is tested in test_cached_fences)."""
TIMER_HEAP = "scheduler._timers"
"""The scheduler's timer heap keeps a removed key's entry until it comes due (at most the idle
wait, 5 minutes): bounded by time, not by names; measured apart below."""


def bounded_series(controller: Controller) -> list[str]:
    """The label sets of the metrics with no Rollout among their labels (``canary_ticks`` by
    reason and effect, ...): they grow with the combinations seen, which are bounded."""
    return [
        f"metrics.{attribute}._metrics"
        for attribute, metric in vars(controller.metrics).items()
        if "name" not in getattr(metric, "_labelnames", ("name",))
    ]


def idle(controller: Controller, keys: list[str]) -> bool:
    """No tick of these Rollouts runs or is due within 5 s."""
    due = [controller.scheduler.due_in(key) for key in keys]
    return all(d is not None and d > 5 for d in due)


def delete_owned(cluster: Cluster, names: list[str]) -> None:
    """What the garbage collector would delete with the Rollouts ``names``."""
    ns = cluster.namespace
    for name in names:
        for owned in (name, f"{name}-primary"):
            with suppress(ApiError):
                cluster.api.delete("apps/v1", "Deployment", owned, ns)
        for service in (name, f"{name}-primary", f"{name}-canary"):
            with suppress(ApiError):
                cluster.api.delete("v1", "Service", service, ns)
        for api_version, kind in ROUTE_OBJECTS:
            for obj in cluster.api.list(api_version, kind, ns):
                with suppress(ApiError):
                    cluster.api.delete(api_version, kind, obj["metadata"]["name"], ns)


def run_and_delete(cluster: Cluster, controller: Controller, names: list[str]) -> None:
    ns = cluster.namespace
    for name in names:
        cluster.api.apply(deployment(name, ns))
        cluster.api.apply(rollout(name, ns, skipAnalysis=True))
    for name in names:
        cluster.wait_phase(name, "Initialized")
        cluster.set_image(name, "podinfo:6.8.0")
    for name in names:
        cluster.wait_phase(name, "Succeeded")
    keys = [f"{ns}/{name}" for name in names]
    wait_for("every Rollout waiting for its next tick", lambda: idle(controller, keys))
    assert [controller.reads.holds(ROLLOUT, ns, name) for name in names] == [True] * len(names)
    controller.scheduler.shutdown(wait=True)  # no tick runs across the deletions (the second
    for name in names:  # test's case), however the kubelet's last changes woke them
        cluster.api.delete(ROLLOUTS, "Rollout", name, ns)
    wait_for(
        "the controller to drop the deleted Rollouts",
        lambda: not controller.scheduler.keys() and not controller.caches["Rollout"].keys(),
    )
    assert [controller.reads.holds(ROLLOUT, ns, name) for name in names] == [False] * len(names)
    controller.scheduler.start()
    delete_owned(cluster, names)
    wait_for(
        "its caches to see the owned objects gone",
        lambda: all(not controller.caches[kind].keys() for kind in ("Deployment",)),
    )


def test_per_rollout_state_goes_with_the_rollout(cluster: Cluster) -> None:
    controller = cluster.controller()
    assert controller.wait_synced(30)
    run_and_delete(cluster, controller, [f"first-{i}" for i in range(3)])
    before = state_sizes(controller)

    run_and_delete(cluster, controller, [f"second-{i}" for i in range(6)])
    after = state_sizes(controller)

    ignored = {TIMER_HEAP, RECENT_DELETIONS, *bounded_series(controller)}
    leaks = grown(
        {k: v for k, v in before.items() if k not in ignored},
        {k: v for k, v in after.items() if k not in ignored},
        by=1,
    )
    assert not leaks, f"grew with Rollouts that are gone (before, after): {leaks}"
    assert len(before) > 50, "the walk found the controller's state"  # (a walk that saw nothing)
    assert controller.reads.fenced() == 0
    exposition = controller.metrics.exposition().decode()
    assert not [line for line in exposition.splitlines() if "first-" in line or "second-" in line]


def test_a_tick_that_outlives_its_rollouts_deletion_leaves_nothing(cluster: Cluster) -> None:
    controller = cluster.controller()
    assert controller.wait_synced(30)
    ns = cluster.namespace
    run_and_delete(cluster, controller, ["warm"])
    before = state_sizes(controller)
    cluster.api.apply(deployment("late", ns))
    cluster.api.apply(rollout("late", ns, skipAnalysis=True))
    cluster.wait_phase("late", "Initialized")
    wait_for("its tick to be idle", lambda: idle(controller, [f"{ns}/late"]))

    reconciler = controller.reconciler
    ticked, deleted = threading.Event(), threading.Event()
    real_tick = reconciler._tick

    def held(namespace: str, name: str, early: bool, cached: bool) -> Any:
        outcome = real_tick(namespace, name, early, cached)
        ticked.set()
        assert deleted.wait(30)
        return outcome

    reconciler._tick = held  # type: ignore[method-assign]
    controller.scheduler.trigger(f"{ns}/late", "test")
    assert ticked.wait(30)
    cluster.api.delete(ROLLOUTS, "Rollout", "late", ns)
    wait_for("the deletion seen", lambda: not controller.caches["Rollout"].keys())
    deleted.set()
    wait_for("the tick to end", lambda: controller.scheduler.busy == 0)
    reconciler._tick = real_tick  # type: ignore[method-assign]
    delete_owned(cluster, ["late"])
    wait_for("the owned objects gone", lambda: not controller.caches["Deployment"].keys())

    ignored = {TIMER_HEAP, RECENT_DELETIONS, *bounded_series(controller)}
    after = state_sizes(controller)
    leaks = {k: v for k, v in grown(before, after, by=1).items() if k not in ignored}
    assert not leaks, f"left by the tick that outlived the deletion: {leaks}"
    assert 'name="late"' not in controller.metrics.exposition().decode()
