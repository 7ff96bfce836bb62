"""Two replicas: only the one holding the Lease acts; when it stops, the other takes over
within the lease duration."""

from __future__ import annotations

import random
from datetime import datetime

import pytest
from controller_support import Cluster, deployment, rollout, wait_for
from lease_support import Clock, advance, assert_taken_in_time

from canary.controller import Controller, Kube, LeaderElector, LeaseSettings
from canary.controller.kinds import CONFIGMAP
from canary.controller.kube import NotLeaderError


def lease(cluster: Cluster) -> dict[str, object]:
    found = cluster.get("coordination.k8s.io/v1", "Lease", "canary-controller")
    assert found is not None, "no Lease"
    return dict(found["spec"])


def parse(stamp: object) -> datetime:
    return datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))


def ticks(controller: Controller) -> float:
    """Ticks the replica ran, from its own /metrics registry."""
    total = 0.0
    for family in controller.metrics.registry.collect():
        if family.name == "canary_reconcile_duration_seconds":
            total += sum(s.value for s in family.samples if s.name.endswith("_count"))
    return total


def test_only_the_leader_acts_and_the_other_takes_over(cluster: Cluster) -> None:
    for name in ("alpha", "beta"):
        cluster.api.apply(deployment(name, cluster.namespace))
        cluster.api.apply(rollout(name, cluster.namespace, skipAnalysis=True))
    one = cluster.controller("replica-one")
    two = cluster.controller("replica-two")
    leader = wait_for("a leader", lambda: next((c for c in (one, two) if c.is_leader()), None))
    other = two if leader is one else one
    for name in ("alpha", "beta"):
        cluster.wait_phase(name, "Initialized")
    assert lease(cluster)["holderIdentity"] == leader.settings.identity
    assert not other.is_leader()
    assert ticks(other) == 0
    assert ticks(leader) > 0
    assert other.scheduler.keys() == []
    assert sorted(leader.scheduler.keys()) == [
        f"{cluster.namespace}/{n}" for n in ("alpha", "beta")
    ]
    events = wait_for("the Events", cluster.events)  # (posted just after the status write)
    instances = {e["reportingInstance"] for e in events}
    assert instances == {leader.settings.identity}
    wait_for("the standby's caches to sync", lambda: other.ready()[0])
    assert other.ready() == (True, "standby")

    held = lease(cluster)
    leader.stop(release_lease=False)  # a crash: the Lease runs out instead of being given up
    last_renewal = parse(lease(cluster)["renewTime"])
    wait_for("the other replica to lead", other.is_leader, timeout=10)
    taken = lease(cluster)
    assert taken["holderIdentity"] == other.settings.identity
    assert taken["leaseTransitions"] == int(str(held.get("leaseTransitions", 0))) + 1
    assert other.elector is not None
    last = cluster.get("coordination.k8s.io/v1", "Lease", "canary-controller")
    elector = other.elector
    # its own write's watch event may come just after its write returned
    wait_for("its watch to see the takeover", lambda: elector.sightings.seen_at(last) is not None)
    waited = (parse(taken["acquireTime"]) - last_renewal).total_seconds()
    duration = float(str(taken["leaseDurationSeconds"]))
    assert duration <= waited, "it did not take the Lease before the holder's had run out"
    assert waited <= duration + 1.5, "it took over within the lease duration (and a retry)"

    cluster.set_image("alpha", "podinfo:7.0.0")  # the new leader acts
    cluster.wait_phase("alpha", "Succeeded")
    assert cluster.image_of("alpha-primary") == "podinfo:7.0.0"
    promoted = cluster.wait_events("Succeeded")
    assert {e["reportingInstance"] for e in promoted} == {other.settings.identity}


def test_a_replica_that_stops_gives_the_lease_up(cluster: Cluster) -> None:
    first = cluster.controller("replica-one")
    wait_for("the first replica to lead", first.is_leader)
    second = cluster.controller("replica-two")
    held = lease(cluster)
    first.stop()  # released: no holder, the second need not wait for it to run out
    wait_for("the second replica to lead", second.is_leader, timeout=10)
    taken = lease(cluster)
    assert taken["holderIdentity"] == "replica-two"
    assert taken["leaseTransitions"] == 1
    waited = (parse(taken["acquireTime"]) - parse(held["renewTime"])).total_seconds()
    assert waited < float(str(held["leaseDurationSeconds"])), "it did not wait for expiry"


def elector(cluster: Cluster, identity: str, clock: Clock, name: str = "election") -> LeaderElector:
    settings = LeaseSettings(
        namespace=cluster.namespace,
        name=name,
        identity=identity,
        lease_duration=10.0,
        renew_deadline=6.0,
        retry_period=1.0,
    )
    return LeaderElector(Kube(cluster.api_client()), settings, monotonic=clock)


def test_the_lease_changes_hands_only_after_it_ran_out(cluster: Cluster) -> None:
    a_clock, b_clock = Clock(), Clock()
    a, b = elector(cluster, "a", a_clock), elector(cluster, "b", b_clock)
    assert a.try_acquire_or_renew()
    assert a.is_leader()
    assert not b.try_acquire_or_renew()
    b_clock.now += 9
    a_clock.now += 5
    assert a.try_acquire_or_renew(), "renewed"
    assert not b.try_acquire_or_renew(), "b saw the renewal: the lease starts again for it"
    b_clock.now += 9
    assert not b.try_acquire_or_renew()
    a_clock.now += 6.5  # no renewal for longer than the renew deadline
    assert not a.is_leader(), "a stops acting at once, before anyone may take over"
    b_clock.now += 1.5
    assert b.try_acquire_or_renew(), "10 s without a renewal: b takes it"
    spec = lease_named(cluster, "election")
    assert spec["holderIdentity"] == "b"
    assert spec["leaseTransitions"] == 1
    assert not a.try_acquire_or_renew()
    assert not a.is_leader()


def test_a_lost_race_for_the_lease_is_not_leadership(cluster: Cluster) -> None:
    clock = Clock()
    a = elector(cluster, "a", clock)
    cluster.api.fail(r"/leases$", code=409, times=1, method="POST")
    assert not a.try_acquire_or_renew(), "someone else created it first"
    assert not a.is_leader()
    assert a.try_acquire_or_renew()
    cluster.api.fail(r"/leases/election$", code=409, times=1, method="PUT")
    assert not a.try_acquire_or_renew(), "a renewal over a stale resourceVersion"
    assert not a.is_leader()


def test_writes_are_refused_without_the_lease(cluster: Cluster) -> None:
    leading = False
    kube = Kube(cluster.api_client()).guarded(lambda: leading)
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "x", "namespace": cluster.namespace},
    }
    with pytest.raises(NotLeaderError):
        kube.create(body)
    assert kube.get(CONFIGMAP, cluster.namespace, "x") is None, "reads are allowed"
    leading = True
    kube.create(body)


def lease_named(cluster: Cluster, name: str) -> dict[str, object]:
    found = cluster.get("coordination.k8s.io/v1", "Lease", name)
    assert found is not None
    return dict(found["spec"])


def test_without_leader_election_the_one_replica_acts(cluster: Cluster) -> None:
    cluster.api.apply(deployment("web", cluster.namespace))
    cluster.api.apply(rollout("web", cluster.namespace, skipAnalysis=True))
    alone = cluster.controller(lease=None)
    cluster.wait_phase("web", "Initialized")
    assert alone.is_leader()
    assert cluster.api.list("coordination.k8s.io/v1", "Lease", cluster.namespace) == []


DURATION, RETRY = 10.0, 1.0


def test_the_standby_takes_over_within_the_lease_duration_of_the_death_over_many_runs(
    cluster: Cluster,
) -> None:
    """Seeded, --shards 1: whatever the phase of the standby's reads against the leader's
    renewals and however long after its last renewal the leader dies, the standby takes the
    Lease no sooner than the lease duration after that renewal (never while the leader may
    act) and no later than the lease duration after the death: its watch times the Lease from
    the renewal itself, as the shards' does (canary.controller.lease_watch)."""
    rng = random.Random(16)
    for run in range(10):
        clocks = [Clock(), Clock()]
        standby = elector(cluster, "standby", clocks[0], name=f"single{run}")
        leader = elector(cluster, "leader", clocks[1], name=f"single{run}")
        standby.sightings.start()
        try:
            phase, dies_after = rng.uniform(0.05, RETRY), rng.uniform(0.0, RETRY)
            for _ in range(rng.randint(1, 3)):
                assert leader.try_acquire_or_renew()  # a renewal (the first one takes it)
                lease = cluster.get("coordination.k8s.io/v1", "Lease", f"single{run}")
                seen = standby.sightings.seen_at
                wait_for("the sighting", lambda lease=lease, seen=seen: seen(lease))
                last_renewal = clocks[0].now
                advance(clocks, phase)
                assert not standby.try_acquire_or_renew()  # its read, `phase` later
                advance(clocks, RETRY - phase)
            died = last_renewal + dies_after  # the leader renews no more: it died by then
            while not standby.try_acquire_or_renew():
                assert standby.next_round_in() <= RETRY
                advance(clocks, standby.next_round_in())
                assert clocks[0].now < died + DURATION + 1, "not taken in time"
            assert_taken_in_time(run, clocks[0].now, last_renewal, died, DURATION)
            assert not leader.is_leader(), "the leader stopped acting before"
        finally:
            standby.sightings.stop()


def test_without_the_watch_the_takeover_is_up_to_a_retry_late(cluster: Cluster) -> None:
    """What the watch buys: read only by the rounds, a renewal seen ``phase`` late makes the
    takeover ``phase`` late."""
    clocks = [Clock(), Clock()]
    standby, leader = elector(cluster, "standby", clocks[0]), elector(cluster, "leader", clocks[1])
    assert leader.try_acquire_or_renew()
    advance(clocks, 0.9)
    assert not standby.try_acquire_or_renew()  # no watch: the renewal is timed from this read
    advance(clocks, DURATION - 0.9)
    assert not standby.try_acquire_or_renew(), "a duration after the renewal: still waiting"
    advance(clocks, 0.9)
    assert standby.try_acquire_or_renew()


def test_a_lease_given_up_wakes_the_standby_at_once(cluster: Cluster) -> None:
    clocks = [Clock(), Clock()]
    standby, leader = elector(cluster, "standby", clocks[0]), elector(cluster, "leader", clocks[1])
    standby.sightings.start()
    try:
        assert leader.try_acquire_or_renew()
        assert not standby.try_acquire_or_renew()
        standby._wake.clear()
        leader.lease.release()
        wait_for("the standby woken", standby._wake.is_set)
        assert standby.try_acquire_or_renew(), "no holder: taken without waiting"
    finally:
        standby.sightings.stop()


def test_a_lease_read_while_it_was_renewed_is_timed_from_when_the_read_returned(
    cluster: Cluster,
) -> None:
    """b's read begins, a renews, and the read (slow: 3 s on b's clock) returns the renewed
    record. b must time it from when the read returned, not from when it began: timed from the
    start, it would take the lease 3 s before a's renewal ran out."""
    a_clock, b_clock = Clock(), Clock()
    a, b = elector(cluster, "a", a_clock), elector(cluster, "b", b_clock)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    read = b.kube.get

    def slow_read(*args: object, **kwargs: object) -> object:
        a_clock.now += 1
        assert a.try_acquire_or_renew(), "a renews while b's read is on its way"
        b_clock.now += 3
        return read(*args, **kwargs)  # type: ignore[arg-type]

    b.kube.get = slow_read  # type: ignore[method-assign]
    assert not b.try_acquire_or_renew()
    b.kube.get = read  # type: ignore[method-assign]
    b_clock.now += 9.5  # 12.5 s after the read began, 9.5 after it returned
    assert not b.try_acquire_or_renew(), "a's renewal has not run out: taken too early"
    b_clock.now += 1
    assert b.try_acquire_or_renew(), "10 s after the read returned the renewal: b takes it"
