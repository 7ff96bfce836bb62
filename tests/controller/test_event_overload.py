"""Every step's Step Event is recorded exactly once, whatever the Event sender goes through.

Real reconcilers (`canary.controller.reconcile`) with real Event senders tick many Rollouts
through their steps on the test API server, over HTTP, on a clock the test moves. Two or three
"replicas" share the Rollouts; a seeded schedule makes, round after round, what the sharded
benchmark's overload made: a sender's queue of two Events (every step then finds it full), a
sender that stalls (a thread starved of CPU: `settle` cannot wait for it), Event posts failing
with 503 for longer than the sender's tries, 429s, posts answered after the sender's timeout
(read timeouts: urllib3's own exceptions), Rollouts moved to another replica while their Events
are queued or in flight, and one replica killed with its queue full. `OutboxAudit` reads every
stored status: each Step Event an outbox called for must end up recorded, once, and no other.

The second test is the sharded benchmark's count (docs/benchmarks.md, "Sharded controller"):
counted once the replicas had stopped with Events still queued, the Step Events fall short of
the steps by exactly the Events still in the Rollouts' outboxes, which the next holder records.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from controller_support import Cluster, deployment, rollout, wait_for, wait_rollouts_ready
from tick_support import Judged

from canary.controller import event_sender
from canary.controller.event_sender import EventCounters, EventSender
from canary.controller.kube import Kube, NotLeaderError
from canary.controller.metrics import ControllerMetrics
from canary.controller.reconcile import Reconciler
from canary.gates.webhooks import WebhookCaller
from canary.testing import Fault
from canary.testing.event_audit import OutboxAudit

ROLLOUTS = 8
WEIGHTS = [10, 20, 30, 40, 50]
"""Five Step Events a revision: the first step (10%), then one a passing look."""
INTERVAL = timedelta(minutes=1)
SENDER_TIMEOUT = 1.0
"""The senders' request timeout: a post answered later is a read timeout."""
EVENTS = r"/events$"
OLD, NEW = "podinfo:6.7.0", "podinfo:6.7.1"


@dataclass
class Tallies:
    queue_full: int = 0
    failures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def counters(self) -> EventCounters:
        def full() -> None:
            with self.lock:
                self.queue_full += 1

        def failed() -> None:
            with self.lock:
                self.failures += 1

        return EventCounters(queue_full=full, failures=failed)


@dataclass
class Replica:
    """A controller replica's reconciler and Event sender; it acts for the Rollouts ``owner``
    gives it. ``stalled``: its sender waits before each post, as a thread starved of CPU."""

    name: str
    cluster: Cluster
    owner: dict[str, Replica]
    clock: list[datetime]
    webhooks: WebhookCaller
    tallies: Tallies
    capacity: int = 2
    alive: bool = True
    may_post: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.may_post.set()
        impatient = Kube(self.cluster.api_client(), timeout=SENDER_TIMEOUT)
        self.sender = EventSender(
            impatient,
            acting=self.acting,
            capacity=self.capacity,
            attempts=2,
            first_backoff=0.01,
            counters=self.tallies.counters(),
        ).start()
        self.reconciler = Reconciler(
            Kube(self.cluster.api_client()),
            Judged(0),
            self.webhooks,
            ControllerMetrics(),
            identity=self.name,
            clock=lambda: self.clock[0],
            events=self.sender,
        )

    @contextmanager
    def acting(self, key: str) -> Iterator[None]:
        self.may_post.wait(30)
        if not self.alive or self.owner.get(key) is not self:
            raise NotLeaderError(f"{self.name} does not hold {key}'s shard")
        yield

    def stall(self) -> None:
        self.may_post.clear()

    def resume(self) -> None:
        self.may_post.set()

    def kill(self) -> None:
        """Like SIGKILL: nothing more is posted, what was queued is gone (it is in the
        statuses' outboxes)."""
        self.alive = False
        self.resume()
        self.sender.stop()


@dataclass
class Fleet:
    cluster: Cluster
    webhooks: WebhookCaller
    rng: random.Random
    tallies: Tallies = field(default_factory=Tallies)
    owner: dict[str, Replica] = field(default_factory=dict)
    replicas: list[Replica] = field(default_factory=list)
    clock: list[datetime] = field(default_factory=lambda: [datetime(2026, 1, 1, tzinfo=UTC)])

    @property
    def names(self) -> list[str]:
        return [f"r{i}" for i in range(ROLLOUTS)]

    @property
    def keys(self) -> list[str]:
        return [f"{self.cluster.namespace}/{name}" for name in self.names]

    def replica(self, name: str, capacity: int = 2) -> Replica:
        made = Replica(
            name, self.cluster, self.owner, self.clock, self.webhooks, self.tallies, capacity
        )
        self.replicas.append(made)
        return made

    @property
    def live(self) -> list[Replica]:
        return [r for r in self.replicas if r.alive]

    def create(self) -> None:
        ns = self.cluster.namespace
        for name in self.names:
            self.cluster.api.apply(deployment(name, ns, image=OLD))
            body = rollout(name, ns, strategy={"canary": {"weights": WEIGHTS}})
            body["spec"]["analysis"] = {"interval": "1m", "judge": "threshold", "failureLimit": 1}
            body["spec"]["progressDeadlineSeconds"] = 86400
            self.cluster.api.apply(body)

    def round(self) -> None:
        """Every Rollout ticked once by its holder, in a seeded order, an interval on."""
        self.clock[0] += INTERVAL
        keys = list(self.keys)
        self.rng.shuffle(keys)
        for key in keys:
            self.owner[key].reconciler.tick(key)
        self.pods_ready()

    def pods_ready(self) -> None:
        wait_rollouts_ready(self.cluster, self.names)

    def phases(self) -> set[str]:
        return {str(self.cluster.phase(name)) for name in self.names}

    def hand_over(self, keys: list[str], to: Replica) -> None:
        for key in keys:
            self.owner[key] = to

    def drain(self) -> list[str]:
        """Let every sender post what it holds; the replicas whose sender never went idle."""
        for replica in self.live:
            replica.resume()
        return [r.name for r in self.live if not r.sender.wait_idle(30)]


def chaos(fleet: Fleet, round_no: int, kill_at: int) -> list[Fault]:
    """This round's trouble, drawn from the fleet's seeded generator."""
    rng, api = fleet.rng, fleet.cluster.api
    faults: list[Fault] = []
    draw = rng.random()
    if draw < 0.3:  # down for longer than the sender tries (two)
        faults.append(api.faults.fail(EVENTS, code=503, times=3, method="POST"))
    elif draw < 0.5:
        faults.append(api.faults.fail(EVENTS, code=429, times=2, method="POST"))
    elif draw < 0.7:  # answered after the senders' timeout
        faults.append(api.faults.delay(SENDER_TIMEOUT + 0.3, EVENTS, times=2, method="POST"))
    for replica in fleet.live:
        if rng.random() < 0.4:
            replica.stall()
        elif rng.random() < 0.6:
            replica.resume()
    if round_no == kill_at:
        victim = fleet.live[0]
        taker = fleet.replica(f"taker-{round_no}")
        mine = [k for k, r in fleet.owner.items() if r is victim]
        victim.kill()
        fleet.hand_over(mine, taker)
    elif rng.random() < 0.5 and len(fleet.live) > 1:  # a shard changes hands mid-post
        giver, taker = rng.sample(fleet.live, 2)
        moved = [k for k, r in fleet.owner.items() if r is giver]
        fleet.hand_over(rng.sample(moved, len(moved) // 2), taker)
    return faults


@pytest.fixture
def fleet(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fleet]:
    # a stalled sender holds its batch longer than a tick waits for it
    monkeypatch.setattr(event_sender, "SETTLE_TIMEOUT", 0.3)
    with WebhookCaller.create() as webhooks:
        made = Fleet(cluster, webhooks, random.Random(0))
        try:
            yield made
        finally:
            for replica in made.replicas:
                replica.resume()
                replica.sender.stop()


def start_rollouts(fleet: Fleet) -> None:
    """Every Rollout Initialized on the old image, then the new one: each takes five steps."""
    fleet.create()
    first = fleet.replica("setup", capacity=100)
    fleet.hand_over(fleet.keys, first)
    wait_for("Initialized", lambda: fleet.round() or fleet.phases() == {"Initialized"})
    assert first.sender.wait_idle(30)
    first.kill()
    for name in fleet.names:
        fleet.cluster.set_image(name, NEW)
    fleet.pods_ready()


@pytest.mark.parametrize("seed", [11, 29, 47])
def test_every_step_event_is_recorded_once_through_overload_and_takeover(
    fleet: Fleet, seed: int
) -> None:
    start_rollouts(fleet)
    audit = OutboxAudit(fleet.cluster.api, fleet.cluster.namespace)
    fleet.rng.seed(seed)
    a, b = fleet.replica("a"), fleet.replica("b")
    for index, key in enumerate(fleet.keys):
        fleet.owner[key] = (a, b)[index % 2]
    kill_at, rounds = 3, 0
    late: list[Fault] = []
    while fleet.phases() != {"Succeeded"}:
        rounds += 1
        assert rounds <= 40, f"not done after 40 rounds: {fleet.phases()}"
        faults = chaos(fleet, rounds, kill_at)
        late += [f for f in faults if f.delay]
        fleet.round()
        for fault in faults:  # a round's faults end with it
            fault.times = fault.hits
    fleet.drain()
    fleet.round()  # the next tick of each: what is left in an outbox is delivered
    busy = fleet.drain()
    tally = audit.tally()
    audit.close()

    assert tally.owed == ROLLOUTS * len(WEIGHTS), "one Step Event owed a step"
    assert tally.lost == 0, f"Step Events lost: {tally.lost_names}"
    assert (tally.recorded, tally.pending) == (tally.owed, 0), tally
    assert (tally.unexpected, tally.collisions) == (0, 0), "an Event recorded twice"
    # the trouble happened (else this test proves nothing)
    assert fleet.tallies.queue_full > 0, "no step found the queue full"
    assert fleet.tallies.failures > 0, "the senders never gave an Event up"
    assert rounds > kill_at, "the kill never came"
    assert sum(f.hits for f in late) > 0, "no post was answered late"
    assert busy == [], "a sender stopped posting"


def test_a_count_after_the_replicas_stop_is_short_by_what_their_outboxes_still_hold(
    fleet: Fleet,
) -> None:
    """The sharded benchmark's shortfall: its replicas stopped with Events queued (their
    senders behind under the overload); those Events are in the statuses' outboxes, not lost."""
    start_rollouts(fleet)
    audit = OutboxAudit(fleet.cluster.api, fleet.cluster.namespace)
    behind = fleet.replica("behind", capacity=100)
    fleet.hand_over(fleet.keys, behind)
    behind.stall()  # a sender that fell behind: it posts nothing more
    while audit.owed < ROLLOUTS:  # until each Rollout took its first step
        fleet.round()
    behind.kill()  # the benchmark stops its replicas (Controller.stop drops the queue)

    counted = len(fleet.cluster.events("Step"))  # the benchmark's step_events
    stopped = audit.tally()
    assert stopped.owed == ROLLOUTS, "each Rollout stepped once"
    assert counted == stopped.recorded < stopped.owed, "short of the steps"
    assert stopped.pending == stopped.owed - counted, "the shortfall is in the outboxes"
    assert stopped.lost == 0

    fleet.hand_over(fleet.keys, fleet.replica("next"))
    fleet.round()  # the next holder's first tick of each delivers what the outbox holds
    assert fleet.drain() == []
    after = audit.tally()
    audit.close()
    assert after.recorded == after.owed, after
    assert (after.pending, after.lost, after.unexpected) == (0, 0, 0)


def test_a_tick_that_cannot_record_the_outbox_it_found_decides_nothing(fleet: Fleet) -> None:
    """The next holder finds an outbox whose Events were never posted (its sender stalled,
    then the replica died) while the API server fails every Event post: its tick must fail
    rather than write its decision over them, and record them once posts work again."""
    start_rollouts(fleet)
    audit = OutboxAudit(fleet.cluster.api, fleet.cluster.namespace)
    dying = fleet.replica("dying", capacity=100)
    fleet.hand_over(fleet.keys, dying)
    dying.stall()
    while audit.owed < ROLLOUTS:  # each Rollout's first step, its Event unposted
        fleet.round()
    dying.kill()
    found = {name: fleet.cluster.status(name) for name in fleet.names}
    assert all(status["outbox"] for status in found.values())

    fleet.hand_over(fleet.keys, fleet.replica("next"))
    down = fleet.cluster.api.faults.fail(EVENTS, code=503, times=None, method="POST")
    fleet.round()
    assert down.hits >= ROLLOUTS, "every tick tried to record what it found"
    for name, before in found.items():
        now = fleet.cluster.status(name)
        assert now["outbox"]["decidedAt"] == before["outbox"]["decidedAt"], "decided over it"
        assert now.get("canaryWeight") == before.get("canaryWeight")
    fleet.cluster.api.faults.clear()

    fleet.round()  # delivered, then the next decision
    assert fleet.drain() == []
    tally = audit.tally()
    audit.close()
    assert tally.owed > ROLLOUTS, "the Rollouts went on stepping"
    assert (tally.lost, tally.unexpected) == (0, 0), tally
    assert tally.recorded + tally.pending == tally.owed


def test_an_event_refused_for_good_is_counted_and_does_not_hold_the_rollout(
    fleet: Fleet,
) -> None:
    """A 4xx (here 403: no RBAC to create Events) cannot be cured by posting again: the tick
    that finds such an outbox logs and counts each refused Event and goes on deciding."""
    start_rollouts(fleet)
    audit = OutboxAudit(fleet.cluster.api, fleet.cluster.namespace)
    dying = fleet.replica("dying", capacity=100)
    fleet.hand_over(fleet.keys, dying)
    dying.stall()
    while audit.owed < ROLLOUTS:
        fleet.round()
    dying.kill()
    found = {name: fleet.cluster.status(name)["outbox"]["decidedAt"] for name in fleet.names}

    fleet.hand_over(fleet.keys, fleet.replica("next"))
    refused = fleet.tallies.failures
    fleet.cluster.api.faults.fail(EVENTS, code=403, times=None, method="POST")
    fleet.round()
    fleet.cluster.api.faults.clear()
    assert fleet.drain() == []
    for name, decided in found.items():
        assert fleet.cluster.status(name)["outbox"]["decidedAt"] != decided, "held back"
    assert fleet.tallies.failures - refused >= ROLLOUTS, "each refused Event counted"
    tally = audit.tally()
    audit.close()
    assert tally.lost >= ROLLOUTS, "the refused Events are dropped (said in the docs)"
    assert tally.unexpected == 0


def test_an_outbox_whose_delivery_failed_twice_on_one_replica_is_delivered_at_last(
    fleet: Fleet,
) -> None:
    """Found in the sharded benchmark at 3,000 Rollouts: a replica's sender gave a step's
    Event up (the shard was briefly not its own); its next tick, delivering the outbox again,
    failed too; the tick after that took the outbox as delivered (the sender's failure had been
    reported once) and wrote its decision over it."""
    start_rollouts(fleet)
    audit = OutboxAudit(fleet.cluster.api, fleet.cluster.namespace)
    one = fleet.replica("one", capacity=100)
    fleet.hand_over(fleet.keys, one)
    while audit.owed < ROLLOUTS:
        one.stall()
        fleet.round()
    absent = fleet.replica("absent")  # the shard is briefly not "one"'s: its posts refused
    fleet.hand_over(fleet.keys, absent)
    one.resume()
    assert one.sender.wait_idle(30)
    fleet.hand_over(fleet.keys, one)
    assert fleet.tallies.failures >= ROLLOUTS, "the sender gave each step's Event up"

    down = fleet.cluster.api.faults.fail(EVENTS, code=503, times=None, method="POST")
    fleet.round()  # delivering again fails: no decision
    assert down.hits >= ROLLOUTS
    fleet.cluster.api.faults.clear()
    fleet.round()  # this tick must deliver it before deciding
    assert fleet.drain() == []
    tally = audit.tally()
    audit.close()
    assert tally.owed > ROLLOUTS, "the Rollouts went on stepping"
    assert tally.lost == 0, f"Step Events lost: {tally.lost_names}"
