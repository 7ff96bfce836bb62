"""Three sharded replicas against the test API server: every Rollout progresses, each is
written by one replica at a time (the API server's request log, by User-Agent), and when one
replica dies its Rollouts are taken over after the lease duration with no step repeated or
skipped (every status version the API server stored, and the Rollouts' Events)."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from controller_support import Cluster, deployment, rollout, wait_for
from tick_support import Judged

from canary.controller import Controller, LeaseSettings
from canary.controller.shards import shard_of
from canary.testing import ApiServer, lease_audit
from canary.testing.lease_audit import writes_outside_leases
from canary.testing.storage import Event

Json = dict[str, Any]
SHARDS = 3
ROLLOUTS = [f"app-{i}" for i in range(9)]
DURATION, DEADLINE, RETRY = 2.0, 1.5, 0.2
AGENT = "canary-controller/"


class StatusLog:
    """Every version of each Rollout's status the store holds, in order (a store subscriber:
    nothing a poll could miss)."""

    def __init__(self, api: ApiServer, namespace: str) -> None:
        self.api = api
        self.namespace = namespace
        self.lock = threading.Lock()
        self.seen: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
        self.key = api.registry.find_kind("canary.dev/v1alpha1", "Rollout").key
        api.store.subscribe(self, None, lambda obj: True)

    def push(self, event: Event) -> None:
        meta = event.obj.get("metadata") or {}
        if event.key != self.key or meta.get("namespace") != self.namespace:
            return
        status = event.obj.get("status") or {}
        step = (
            str(status.get("phase")),
            int(status.get("canaryWeight") or 0),
            int(status.get("stepIndex") or 0),
        )
        with self.lock:
            history = self.seen[str(meta.get("name"))]
            if not history or history[-1] != step:
                history.append(step)

    def progress(self, rv: int) -> None:
        pass

    def close(self) -> None:
        self.api.store.unsubscribe(self)

    def weights(self, name: str, since_phase: str = "Progressing") -> list[int]:
        """The canary weights the status went through from the first ``since_phase``."""
        with self.lock:
            history = list(self.seen[name])
        start = next(i for i, (phase, _, _) in enumerate(history) if phase == since_phase)
        weights: list[int] = []
        for _, weight, _ in history[start:]:
            if not weights or weights[-1] != weight:
                weights.append(weight)
        return weights


def replica(cluster: Cluster, identity: str) -> Controller:
    lease = LeaseSettings(
        namespace=cluster.namespace,
        lease_duration=DURATION,
        renew_deadline=DEADLINE,
        retry_period=RETRY,
    )
    return cluster.controller(
        identity,
        provider=Judged(0),
        user_agent=f"{AGENT}{identity}",
        lease=lease,
        shards=SHARDS,
        metrics_address=None,
    )


def status_writers(api: ApiServer, namespace: str, since: int = 0) -> dict[str, list[str]]:
    """By Rollout, the replica of each successful status write, in order (from ``since``)."""
    return lease_audit.status_writers(api.requests_by_agent, namespace, since, AGENT)


def guard_of(namespace: str) -> Callable[[str, str], str | None]:
    """The shard Lease a write of a Rollout, of its Deployments or of its Services needs."""
    return lease_audit.rollout_guard(
        namespace,
        lambda name: (
            f"canary-controller-shard-{shard_of(namespace, name, SHARDS)}"
            if name in ROLLOUTS
            else None
        ),
    )


def lease_spec(cluster: Cluster, shard: int) -> Json:
    found = cluster.get("coordination.k8s.io/v1", "Lease", f"canary-controller-shard-{shard}")
    assert found is not None
    return dict(found["spec"])


def parse(stamp: object) -> datetime:
    return datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))


def test_three_replicas_share_the_rollouts_and_take_over_a_dead_ones(cluster: Cluster) -> None:
    ns = cluster.namespace
    for name in ROLLOUTS:
        cluster.api.apply(deployment(name, ns))
        cluster.api.apply(rollout(name, ns, analysis={"interval": "2s", "judge": "threshold"}))
    statuses = StatusLog(cluster.api, ns)
    replicas = {name: replica(cluster, name) for name in ("one", "two", "three")}
    wait_for(
        "one shard each",
        lambda: sorted(len(r.shards.owned()) for r in replicas.values() if r.shards) == [1, 1, 1],
    )
    for name in ROLLOUTS:
        cluster.wait_phase(name, "Initialized")
    # (from the Leases: a replica's own view may lapse for a moment on a busy machine)
    holder_of = {i: str(lease_spec(cluster, i)["holderIdentity"]) for i in range(SHARDS)}
    owner_of = {name: holder_of[shard_of(ns, name, SHARDS)] for name in ROLLOUTS}
    assert writes_outside_leases(cluster.api.requests_by_agent, guard_of(ns)) == []
    assert set(owner_of.values()) == set(replicas), "each replica runs some Rollouts"
    for made in replicas.values():
        exposition = made.metrics.exposition().decode()
        assert "canary_shards_held 1.0" in exposition
        assert "canary_leader 1.0" in exposition

    earlier = {e["metadata"]["name"] for e in cluster.events()}
    for name in ROLLOUTS:
        cluster.set_image(name, "podinfo:6.8.0")
    victim_name = owner_of[ROLLOUTS[0]]
    victims = [n for n in ROLLOUTS if owner_of[n] == victim_name]
    wait_for(
        "the victim's Rollouts under way",
        lambda: all(cluster.status(n).get("canaryWeight") == 20 for n in victims),
    )
    victim = replicas.pop(victim_name)
    assert victim.shards is not None
    (dead_shard,) = [i for i, holder in holder_of.items() if holder == victim_name]
    victim.stop(release_lease=False)  # a crash: its Leases run out rather than being given up
    killed_at = len(cluster.api.requests)  # (its writes sent before it stopped have landed)
    held = lease_spec(cluster, dead_shard)  # as last renewed

    for name in ROLLOUTS:
        cluster.wait_phase(name, "Succeeded", timeout=120)
        assert cluster.image_of(f"{name}-primary") == "podinfo:6.8.0"

    taken = lease_spec(cluster, dead_shard)
    assert taken["holderIdentity"] in replicas
    assert taken["leaseTransitions"] == int(held.get("leaseTransitions") or 0) + 1
    waited = (parse(taken["acquireTime"]) - parse(held["renewTime"])).total_seconds()
    assert waited >= DURATION, "taken before the dead replica's Lease had run out"
    assert waited <= DURATION + 4 * RETRY + 1.0, "taken within the lease duration and a retry"

    after = status_writers(cluster.api, ns, since=killed_at)
    for name in ROLLOUTS:
        expected = taken["holderIdentity"] if name in victims else owner_of[name]
        assert set(after[name]) == {expected}, f"{name}: one writer after the kill: {after[name]}"
        assert (shard_of(ns, name, SHARDS) == dead_shard) == (name in victims)

    statuses.close()
    audited = cluster.api.requests_by_agent
    assert writes_outside_leases(audited, guard_of(ns)) == [], "a write without its shard"
    assert sum(1 for r in audited if guard_of(ns)(r[1], r[2]) and r[1] != "GET") > 9 * 4
    for name in ROLLOUTS:
        assert statuses.weights(name) == [0, 20, 50, 0], f"{name}: each step once, in order"
        steps = [e["message"] for e in cluster.events("Step") if involved(e) == name]
        assert len(steps) == len(set(steps)) == 2, f"{name}: one Step Event per step: {steps}"
        instances = {
            e["reportingInstance"]
            for e in cluster.events()
            if involved(e) == name and e["metadata"]["name"] not in earlier
        }
        if name in victims:
            assert instances == {victim_name, taken["holderIdentity"]}
        else:
            assert instances == {owner_of[name]}


def involved(event: Json) -> str:
    return str((event.get("involvedObject") or {}).get("name"))


def test_replicas_joining_and_leaving_mid_rollout_hand_shards_over_cleanly(
    cluster: Cluster,
) -> None:
    """Two replicas run the Rollouts; a third joins while they progress (the others shed a
    shard each for it), then one leaves gracefully (its shards are released and taken at the
    next retry): every Rollout still goes through each step once, and no write of a Rollout's
    objects is made by a replica not holding its shard at that point of the request log."""
    ns = cluster.namespace
    for name in ROLLOUTS:
        cluster.api.apply(deployment(name, ns))
        cluster.api.apply(rollout(name, ns, analysis={"interval": "2s", "judge": "threshold"}))
    statuses = StatusLog(cluster.api, ns)
    first, second = replica(cluster, "one"), replica(cluster, "two")
    wait_for(
        "two and one shards",
        lambda: sorted(len(r.shards.owned()) for r in (first, second) if r.shards) == [1, 2],
    )
    for name in ROLLOUTS:
        cluster.wait_phase(name, "Initialized")
    for name in ROLLOUTS:
        cluster.set_image(name, "podinfo:6.8.0")
    wait_for(
        "the Rollouts under way",
        lambda: sum(cluster.status(n).get("canaryWeight") == 20 for n in ROLLOUTS) >= 3,
    )
    third = replica(cluster, "three")
    wait_for("the third replica's shard", lambda: third.shards and len(third.shards.owned()) == 1)
    assert first.shards is not None
    holder_of = {i: str(lease_spec(cluster, i)["holderIdentity"]) for i in range(SHARDS)}
    assert sorted(holder_of.values()) == ["one", "three", "two"], "one shard each"
    leaving = {i for i, holder in holder_of.items() if holder == "one"}
    first.stop()  # SIGTERM: its shard and member Lease released
    wait_for(
        "the leaver's shard taken",
        lambda: any(r.shards and leaving <= r.shards.owned() for r in (second, third)),
        timeout=2 * RETRY + 5,
    )
    for name in ROLLOUTS:
        cluster.wait_phase(name, "Succeeded", timeout=120)
    statuses.close()
    assert writes_outside_leases(cluster.api.requests_by_agent, guard_of(ns)) == []
    for name in ROLLOUTS:
        assert statuses.weights(name) == [0, 20, 50, 0], f"{name}: each step once, in order"
        steps = [e["message"] for e in cluster.events("Step") if involved(e) == name]
        assert len(steps) == len(set(steps)) == 2, f"{name}: one Step Event per step: {steps}"
