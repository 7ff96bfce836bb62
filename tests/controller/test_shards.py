"""Shards: assignment, balancing and takeover of the shard Leases, with time passed in, against
the test API server (the Leases are real objects, written with resourceVersions)."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
from collections import Counter

import pytest
from controller_support import Cluster, wait_for
from lease_support import Clock, advance, assert_taken_in_time

from canary.controller import Kube, LeaderElector, LeaseSettings
from canary.controller.kinds import LEASE
from canary.controller.leader import EXPIRY_MARGIN, next_round_in
from canary.controller.shards import (
    GROUP_LABEL,
    ShardSet,
    fair_share,
    group_identity,
    member_lease_name,
    preference,
    shard_of,
    shard_of_key,
    validate_shards,
)

DURATION, DEADLINE, RETRY = 10.0, 6.0, 1.0


def shard_set(
    cluster: Cluster, identity: str, clock: Clock, shards: int = 6, name: str = "canary"
) -> ShardSet:
    settings = LeaseSettings(
        namespace=cluster.namespace,
        name=name,
        identity=identity,
        lease_duration=DURATION,
        renew_deadline=DEADLINE,
        retry_period=RETRY,
    )
    return ShardSet(Kube(cluster.api_client()), settings, shards, monotonic=clock)


def holders(cluster: Cluster, shards: int = 6) -> list[str]:
    found = []
    for i in range(shards):
        lease = cluster.get("coordination.k8s.io/v1", "Lease", f"canary-shard-{i}")
        found.append(str(((lease or {}).get("spec") or {}).get("holderIdentity") or ""))
    return found


def assert_never_two(replicas: list[ShardSet]) -> None:
    """No shard is held by two replicas at once (each by its own clock)."""
    owners = Counter(i for r in replicas for i in r.owned())
    assert all(count == 1 for count in owners.values()), owners


def test_the_shard_of_a_rollout_is_stable_and_balanced() -> None:
    # SHA-256 of namespace/name: the same in every process and release, whatever
    # PYTHONHASHSEED (these values were computed once; a change would move every Rollout)
    assert [shard_of("shop", f"app-{i}", 3) for i in range(8)] == [0, 1, 1, 1, 0, 1, 0, 1]
    assert [shard_of_key(f"shop/app-{i}", 3) for i in range(8)] == [0, 1, 1, 1, 0, 1, 0, 1]
    assert shard_of("default", "podinfo", 7) == 2
    counts = Counter(shard_of("bench", f"app-{i:05d}", 3) for i in range(3000))
    assert sorted(counts) == [0, 1, 2]
    assert all(900 <= c <= 1100 for c in counts.values()), counts


def test_fair_share_and_bad_counts() -> None:
    assert [fair_share(6, n) for n in (1, 2, 3, 4, 6, 7)] == [6, 3, 2, 2, 1, 1]
    assert validate_shards(1) == 1
    with pytest.raises(ValueError, match="--shards must be between 1 and 256"):
        validate_shards(0)
    assert member_lease_name("canary", "host_with_underscore").startswith("canary-member-")
    assert "_" not in member_lease_name("canary", "host_with_underscore")


def test_replicas_share_the_shards_fairly_as_they_join(cluster: Cluster) -> None:
    clocks = [Clock(), Clock(), Clock()]
    a, b, c = (shard_set(cluster, n, k) for n, k in zip("abc", clocks, strict=True))
    assert a.round() == set(range(6)), "alone, a takes every shard"
    assert b.round() == set(), "b joins: every shard is held"
    assert_never_two([a, b])
    advance(clocks, RETRY)
    assert len(a.round()) == 3, "a sees two members and sheds down to its share"
    assert holders(cluster).count("") == 3, "what it shed it released"
    assert_never_two([a, b])
    assert len(b.round()) == 3, "b takes the released shards at once"
    assert a.owned() | b.owned() == set(range(6))
    assert_never_two([a, b])

    c.round()
    advance(clocks, RETRY)
    for replica in (a, b, c, a, b, c):
        replica.round()
        assert_never_two([a, b, c])
    assert [len(r.owned()) for r in (a, b, c)] == [2, 2, 2]
    assert a.owned() | b.owned() | c.owned() == set(range(6))
    assert sorted(holders(cluster)) == ["a", "a", "b", "b", "c", "c"]


def test_a_dead_replicas_shards_are_taken_after_the_lease_duration(cluster: Cluster) -> None:
    clocks = [Clock(), Clock(), Clock()]
    a, b, c = (shard_set(cluster, n, k) for n, k in zip("abc", clocks, strict=True))
    for _ in range(3):
        for replica in (a, b, c):
            replica.round()
        advance(clocks, RETRY)
    dead = c.owned()
    assert len(dead) == 2
    # c stops renewing (a crash); a and b go on
    waited = 0.0
    while waited < DURATION - RETRY:
        advance(clocks, RETRY)
        waited += RETRY
        a.round()
        b.round()
        assert not (a.owned() | b.owned()) & dead, f"taken after {waited}s, before it ran out"
        since_renewal = waited + RETRY
        assert c.owned() == (dead if since_renewal < DEADLINE else set()), "c stops at its deadline"
        assert_never_two([a, b, c])
    for _ in range(2):  # the lease duration (and a retry) after the last renewal a and b saw
        advance(clocks, RETRY)
        a.round()
        b.round()
        assert_never_two([a, b, c])
    assert a.owned() | b.owned() == set(range(6))
    assert [len(a.owned()), len(b.owned())] == [3, 3]


def test_a_shard_left_free_is_taken_beyond_the_fair_share(cluster: Cluster) -> None:
    """The members' views disagree (a member counted live holds nothing): the free shard is
    taken after one more lease duration rather than left orphaned."""
    clocks = [Clock(), Clock()]
    a, b = (shard_set(cluster, n, k, shards=3) for n, k in zip("ab", clocks, strict=True))
    ghost = shard_set(cluster, "ghost", Clock(), shards=3)
    ghost.member.round(None, 0.0)  # a member Lease, renewed below, that never takes a shard
    for _ in range(3):
        ghost.member.try_acquire_or_renew()
        a.round()
        b.round()
        advance(clocks, RETRY)
    assert [len(a.owned()), len(b.owned())] == [1, 1], "a share of one each (three members)"
    orphan = ({0, 1, 2} - a.owned() - b.owned()).pop()
    for _ in range(int(DURATION / RETRY) + 2):
        ghost.member.try_acquire_or_renew()
        a.round()
        b.round()
        advance(clocks, RETRY)
        assert_never_two([a, b])
    assert orphan in a.owned() | b.owned()


def test_writes_only_in_the_tick_of_an_owned_rollout(cluster: Cluster) -> None:
    a = shard_set(cluster, "a", Clock(), shards=2)
    a.round()
    key = "shop/checkout"
    assert a.owns_key(key)
    assert not a.may_write(), "outside a tick: no write"
    with a.acting(key):
        assert a.may_write()
    a.holders[shard_of_key(key, 2)].drop()
    with a.acting(key):
        assert not a.may_write(), "the shard is not held: refused"


def test_a_shed_shard_is_released_only_after_its_ticks_under_way(cluster: Cluster) -> None:
    clocks = [Clock(), Clock()]
    a, b = (shard_set(cluster, n, k, shards=2) for n, k in zip("ab", clocks, strict=True))
    a.round()
    b.round()
    advance(clocks, RETRY)
    shard = max((0, 1), key=lambda i: preference("a", i))  # the one a sheds: it prefers less
    key = next(f"ns/r{i}" for i in range(50) if shard_of_key(f"ns/r{i}", 2) == shard)
    ticking, release = threading.Event(), threading.Event()
    seen: list[str] = []

    def tick() -> None:
        with a.acting(key):
            ticking.set()
            release.wait(10)
            seen.append(holders(cluster, 2)[shard])
            seen.append("writes allowed" if a.may_write() else "writes refused")

    worker = threading.Thread(target=tick)
    worker.start()
    ticking.wait(10)
    rounds = threading.Thread(target=a.round)
    rounds.start()  # a sees b and sheds one shard: waits for the tick
    wait_for("a to stop acting on the shard", lambda: shard not in a.owned())
    release.set()
    worker.join()
    rounds.join()
    assert seen == ["a", "writes refused"], "still a's Lease while the tick ran; writes refused"
    assert holders(cluster, 2)[shard] == "", "released after the tick"
    assert a.owned() == {1 - shard}


def test_the_leases_are_listed_by_their_group_label(cluster: Cluster) -> None:
    a = shard_set(cluster, "a", Clock(), shards=2)
    a.round()
    kube = Kube(cluster.api_client())
    listed = kube.list(LEASE, cluster.namespace, label_selector=f"{GROUP_LABEL}=canary")
    names = sorted(str(obj["metadata"]["name"]) for obj in listed.items)
    assert names == sorted(["canary-shard-0", "canary-shard-1", member_lease_name("canary", "a")])


def test_the_controller_command_refuses_bad_shards() -> None:
    for flags, message in (
        (["--shards", "0"], "--shards must be between 1 and 256 (got 0)"),
        (["--shards", "3", "--no-leader-elect"], "--shards above 1 needs --leader-elect"),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "canary.cli.main", "controller", *flags],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 1, result.stderr
        assert message in result.stderr


def test_no_shard_while_a_leader_or_another_shard_count_holds_the_lease(cluster: Cluster) -> None:
    """The plain Lease is the group's: a --shards 1 leader (of any release) holding it keeps
    the sharded replicas off every shard until it is given up or runs out, and replicas of
    another shard count wait for the group holding it to stop renewing: two schemes never act
    at once during a rolling update."""
    leader_clock, clocks = Clock(), [Clock(), Clock()]
    leader = LeaderElector(
        Kube(cluster.api_client()),
        LeaseSettings(
            namespace=cluster.namespace,
            name="canary",
            identity="old-leader",
            lease_duration=DURATION,
            renew_deadline=DEADLINE,
            retry_period=RETRY,
        ),
        monotonic=leader_clock,
    )
    assert leader.try_acquire_or_renew()
    a = shard_set(cluster, "a", clocks[0], shards=3)
    assert a.round() == set(), "the leader holds the Lease: no shard"
    assert holders(cluster, 3) == ["", "", ""], "none taken, none created"
    for _ in range(int(DURATION / RETRY) - 1):  # the leader renews: a keeps waiting
        advance([leader_clock, *clocks], RETRY)
        assert leader.try_acquire_or_renew()
        assert a.round() == set()
    leader.lease.release()  # SIGTERM: given up
    assert a.round() == {0, 1, 2}, "the group takes the Lease, and a the shards"
    assert group_holder(cluster) == group_identity(3)
    assert not leader.try_acquire_or_renew(), "the old leader cannot come back while a renews"

    b = shard_set(cluster, "b", clocks[1], shards=4)  # a rolling update to 4 shards
    for _ in range(int(DURATION / RETRY) + 2):
        advance(clocks, RETRY)
        assert b.round() == set(), "4 shards wait while the 3-shard group renews"
        a.round()
    # the old replica stops renewing (gone): after the lease duration the new group takes it
    waited = 0.0
    while not b.owned():
        advance(clocks, RETRY)
        waited += RETRY
        b.round()
        assert not (a.owned() and b.owned()), "never both schemes at once"
    assert waited >= DURATION
    assert group_holder(cluster) == group_identity(4)
    assert a.owned() == set()


def group_holder(cluster: Cluster) -> str:
    lease = cluster.get("coordination.k8s.io/v1", "Lease", "canary")
    return str(((lease or {}).get("spec") or {}).get("holderIdentity") or "")


def test_a_lapsed_hold_is_not_a_lost_shard_until_a_round_says_so(cluster: Cluster) -> None:
    """A round that comes late (a busy node) lets the hold lapse: writes stop at once, but
    the shard is still reported held, so the controller keeps its Rollouts' jobs for the next
    round to renew it (no later report would add them back)."""
    clock = Clock()
    changes: list[tuple[set[int], set[int]]] = []
    settings = LeaseSettings(
        namespace=cluster.namespace,
        name="canary",
        identity="a",
        lease_duration=DURATION,
        renew_deadline=DEADLINE,
        retry_period=RETRY,
    )
    a = ShardSet(
        Kube(cluster.api_client()),
        settings,
        2,
        on_change=lambda gained, lost: changes.append((gained, lost)),
        monotonic=clock,
    )
    a.round()
    assert changes == [({0, 1}, set())]
    key = "shop/checkout"
    clock.now += DEADLINE + 1  # no round for longer than the renew deadline
    assert not a.owns_key(key)
    with a.acting(key):
        assert not a.may_write(), "writes stop at once"
    assert a.reported_key(key), "still reported held: the jobs stay"
    a.round()  # the late round renews every Lease, still naming a
    assert a.owns_key(key)
    assert changes == [({0, 1}, set())], "no loss and no gain was reported"


def test_the_next_round_comes_when_an_observed_lease_runs_out() -> None:
    assert next_round_in(2.0, [], 100.0) == 2.0, "nothing observed: the retry period"
    assert next_round_in(2.0, [None, 130.0], 100.0) == 2.0, "nothing runs out sooner"
    assert next_round_in(2.0, [100.5, 101.5], 100.0) == pytest.approx(0.5 + EXPIRY_MARGIN)
    assert next_round_in(2.0, [99.0], 100.0) == 2.0, "one run out already: no busy loop"


def test_a_watched_renewal_times_the_lease_from_when_the_watch_saw_it(cluster: Cluster) -> None:
    """A contender whose rounds read the Leases once a retry period sees a renewal up to a
    retry period late; the watch's sighting times the Lease from the renewal itself, so a dead
    replica's shards go a lease duration after its last renewal, not later, and never sooner."""
    clocks = [Clock(), Clock()]
    a, c = (shard_set(cluster, n, k, shards=2) for n, k in zip("ac", clocks, strict=True))
    a.sightings.start()
    try:
        for _ in range(2):
            a.round()
            c.round()
            advance(clocks, RETRY)
        assert len(a.owned()) == len(c.owned()) == 1
        dead = c.owned()
        c.round()  # c's last renewal, at c's clock; a's clock shows the same moment
        renewed_at = clocks[0].now
        name = f"canary-shard-{dead.pop()}"
        lease = cluster.get("coordination.k8s.io/v1", "Lease", name)
        wait_for("a's watch to see it", lambda: a.sightings.seen_at(lease) is not None)
        assert a.sightings.seen_at(lease) == renewed_at, "seen at once (time stands still)"
        advance(clocks, RETRY * 0.9)  # a's next round reads the renewal 0.9 s after it
        a.round()
        while clocks[0].now + a._next_round_in() < renewed_at + DURATION:
            wait = a._next_round_in()
            assert wait <= RETRY
            advance(clocks, wait)
            a.round()
            assert len(a.owned()) == 1, f"taken {clocks[0].now - renewed_at:.2f}s after it"
        advance(clocks, a._next_round_in())
        assert clocks[0].now - renewed_at == pytest.approx(DURATION + EXPIRY_MARGIN), (
            "the round comes just after the lease runs out, not at the next retry"
        )
        assert a.round() == {0, 1}, "taken a lease duration after c's last renewal"
    finally:
        a.sightings.stop()


def test_without_a_sighting_the_lease_is_timed_from_the_read(cluster: Cluster) -> None:
    """A sighting of another record (an older renewal) does not count: the read's time does."""
    clocks = [Clock(), Clock()]
    a, c = (shard_set(cluster, n, k, shards=1) for n, k in zip("ac", clocks, strict=True))
    c.round()
    lease = cluster.get("coordination.k8s.io/v1", "Lease", "canary-shard-0")
    a.sightings.note(lease)  # seen at 1000
    advance(clocks, RETRY)
    c.round()  # renewed: a has not seen this record
    advance(clocks, RETRY)
    a.round()  # read at 1002
    advance(clocks, DURATION - 0.01)
    assert a.round() == set(), "the lease runs out a duration after the read, not the sighting"
    advance(clocks, 0.02)
    assert a.round() == {0}


def test_the_takeover_is_within_the_lease_duration_of_the_death_over_many_runs(
    cluster: Cluster,
) -> None:
    """Seeded: whatever the phase of the contender's reads against the holder's renewals and
    however long after its last renewal the holder dies, the contender takes the shard no
    sooner than the lease duration after that renewal (never while the holder may act) and no
    later than the lease duration after the death (plus the round's margin)."""
    rng = random.Random(16)
    for run in range(10):
        clocks = [Clock(), Clock()]
        a, c = (
            shard_set(cluster, n, k, shards=1, name=f"takeover{run}")
            for n, k in zip("ac", clocks, strict=True)
        )
        a.sightings.start()
        try:
            phase, dies_after = rng.uniform(0.05, RETRY), rng.uniform(0.0, RETRY)
            renewals = rng.randint(1, 3)
            for _ in range(renewals):
                c.round()  # a renewal (the first one takes the shard)
                lease = cluster.get("coordination.k8s.io/v1", "Lease", f"takeover{run}-shard-0")
                seen = a.sightings.seen_at
                wait_for("the sighting", lambda lease=lease, seen=seen: seen(lease))
                last_renewal = clocks[0].now
                advance(clocks, phase)
                a.round()  # a's read, `phase` after the renewal
                advance(clocks, RETRY - phase)
            died = last_renewal + dies_after  # c renews no more: it died by then
            while not a.owned():
                advance(clocks, a._next_round_in())
                a.round()
                assert clocks[0].now < died + DURATION + 1, "not taken in time"
            assert_taken_in_time(run, clocks[0].now, last_renewal, died, DURATION)
            assert not c.owned(), "the holder stopped acting before"
        finally:
            a.sightings.stop()
