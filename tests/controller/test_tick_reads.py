"""What a tick reads: the Rollout and its Deployments from the watch caches, never older than
the controller's own writes (fences); a route object applied when its content changed, and each
one every resync period (server-side apply: a no-op writes nothing), verified against the
answers; the Services only when the spec or the primary changed; the status only when it
changed (or the canary is judged).

The tick is driven by hand; the caches are fed by reflectors, or by hand where a test needs a
cache that lags."""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from controller_support import Cluster, deployment, rollout, wait_for

from canary.analysis.samples import SideSample, WindowSample
from canary.controller.cached import CachedKube
from canary.controller.event_sender import EventSender
from canary.controller.kinds import DEPLOYMENT, ROLLOUT
from canary.controller.kube import Kube
from canary.controller.metrics import ControllerMetrics
from canary.controller.reconcile import Reconciler
from canary.controller.routing import ROUTE_RESYNC_SECONDS
from canary.controller.status import HEARTBEAT_SECONDS, needs_write
from canary.controller.watches import Cache, Reflector
from canary.controller.workloads import ServiceSync
from canary.gates.webhooks import WebhookCaller
from canary.model.analysis import CheckSpec
from canary.model.status import Phase, RolloutStatus

Json = dict[str, object]


class Healthy:
    def window(self, check: CheckSpec, variables: Mapping[str, str], at: datetime) -> WindowSample:
        return WindowSample(
            canary=SideSample(requests=500, failures=0, value=20.0),
            primary=SideSample(requests=2000, failures=0, value=20.0),
        )


def calls(cluster: Cluster, since: int) -> Counter[str]:
    """The requests about the test's namespace after the first ``since``: ``GET services``,
    ``PUT virtualservices``, ``PUT rollouts/status`` (watches and lists left out)."""
    found: Counter[str] = Counter()
    marker = f"/namespaces/{cluster.namespace}/"
    for method, path, _ in cluster.api.requests[since:]:
        where, _, query = path.partition("?")
        if marker not in where or "watch=" in query:
            continue
        rest = where.split(marker, 1)[1].split("/")
        if len(rest) < 2 and method == "GET":
            continue  # a list
        sub = f"/{rest[2]}" if len(rest) > 2 else ""
        found[f"{method} {rest[0]}{sub}"] += 1
    return found


@dataclass
class Rig:
    cluster: Cluster
    reads: CachedKube
    reconciler: Reconciler
    services: ServiceSync
    routes: ServiceSync
    key: str

    def tick(self, early: bool = False) -> Counter[str]:
        """One tick; the requests it made."""
        before = len(self.cluster.api.requests)
        self.reconciler.tick(self.key, early)
        return calls(self.cluster, before)

    def settle(self) -> None:
        """Wait until the caches show every write of the controller (no fences left)."""
        wait_for("the caches to catch up", lambda: self.reads.fenced() == 0)


class Seconds:
    """A monotonic clock for ServiceSync that the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def rig(cluster: Cluster) -> Iterator[Rig]:
    kube = Kube(cluster.api_client())
    caches = {kind.kind: Cache(kind) for kind in (ROLLOUT, DEPLOYMENT)}
    reflectors = [
        Reflector(kube, cache, cluster.namespace, timeout_seconds=30).start()
        for cache in caches.values()
    ]
    assert all(r.synced.wait(10) for r in reflectors)
    reads = CachedKube(kube, caches, lambda kind, namespace: True)
    services = ServiceSync(resync=300.0, clock=Seconds())
    routes = ServiceSync(resync=ROUTE_RESYNC_SECONDS, clock=Seconds())
    with WebhookCaller.create() as webhooks:
        reconciler = Reconciler(
            reads, Healthy(), webhooks, ControllerMetrics(), services=services, routes=routes
        )
        yield Rig(cluster, reads, reconciler, services, routes, f"{cluster.namespace}/web")
    for reflector in reflectors:
        reflector.stop()


def initialized(rig: Rig, **spec: object) -> None:
    cluster = rig.cluster
    cluster.api.apply(deployment("web", cluster.namespace))
    cluster.api.apply(rollout("web", cluster.namespace, **spec))

    def reached() -> bool:
        rig.tick()
        return cluster.phase("web") == "Initialized"

    wait_for("Initialized", reached, every=0.1)
    rig.settle()
    assert rig.tick()["GET services"] == 3, "the Services in line with the spec, once"
    rig.settle()


def test_a_steady_tick_reads_the_caches_and_verifies_the_routes_every_resync(rig: Rig) -> None:
    initialized(rig, analysis={"interval": "5m", "judge": "threshold"})
    assert rig.tick() == Counter(), (
        "the Rollout and the Deployments from the caches, the Services and the routes applied "
        "already and unchanged, the status unchanged but for its lastTickAt: no request at all"
    )
    clock = rig.routes.clock
    assert isinstance(clock, Seconds)
    clock.now += ROUTE_RESYNC_SECONDS
    assert rig.tick() == Counter({"PATCH virtualservices": 1, "PATCH destinationrules": 2}), (
        "each route object applied once a resync period (an apply that changes nothing writes "
        "nothing)"
    )
    assert rig.tick() == Counter()


def test_an_unchanged_status_is_written_outside_the_judged_phases_only_as_a_heartbeat() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    stored = RolloutStatus(phase=Phase.SUCCEEDED, message="done", last_tick_at=now)
    later = stored.model_copy(update={"last_tick_at": now + timedelta(seconds=10)})
    assert not needs_write(stored.to_wire(), later, now + timedelta(seconds=10))
    assert needs_write(stored.to_wire(), later.model_copy(update={"message": "other"}), now)
    heartbeat = now + timedelta(seconds=HEARTBEAT_SECONDS)
    assert needs_write(stored.to_wire(), later, heartbeat), "lastTickAt says it is alive"
    judged = stored.model_copy(update={"phase": Phase.PROGRESSING})
    assert needs_write(judged.to_wire(), judged, now), "a look is always recorded"
    assert needs_write(None, later, now)


def test_a_tick_that_moves_traffic_verifies_the_routes_without_reading_them_back(
    rig: Rig,
) -> None:
    initialized(rig, analysis={"interval": "5m", "judge": "threshold"})
    rig.cluster.set_image("web", "podinfo:7.0.0")
    moved: list[Counter[str]] = []
    weight = [rig.cluster.status("web").get("canaryWeight")]

    def stepped() -> bool:
        rig.settle()
        made = rig.tick()
        if rig.cluster.status("web").get("canaryWeight") != weight[-1]:
            moved.append(made)
            weight.append(rig.cluster.status("web").get("canaryWeight"))
        return rig.cluster.status("web").get("canaryWeight") == 50

    wait_for("the canary at 50%", stepped, every=0.1)
    assert moved, "the route moved"
    rig.settle()
    rig.reconciler.forget(rig.key)  # as another replica: the outbox left is delivered again
    outbox = rig.cluster.status("web").get("outbox")
    assert outbox, "the last step's outbox, delivered, stays until the next status write"
    assert outbox["events"]
    replayed = rig.tick()
    assert replayed["POST events"] >= len(outbox["events"]), "delivered again"
    for event in outbox["events"]:
        same = [e for e in rig.cluster.events(event["reason"]) if e["message"] == event["message"]]
        assert len(same) == 1, "recorded once (the second create answered 409)"
    for made in moved:
        assert made["PATCH virtualservices"] == 1, made
        assert made["PATCH destinationrules"] == 0, "unchanged since the last apply: not sent"
        assert made["POST events"] >= 1, made
        assert made["PUT rollouts/status"] == 1, (
            "an outbox of Events only is not cleared by a write of its own: the next status "
            "write drops it"
        )
        assert not made["GET virtualservices"], "verified against the apply's answers"
    assert not rig.cluster.events("ReconcileError")


def test_the_services_are_synced_when_the_spec_changes_and_every_resync(rig: Rig) -> None:
    initialized(rig, analysis={"interval": "5m", "judge": "threshold"})
    rig.services.forget()  # as after a restart: once
    assert rig.tick()["GET services"] == 3
    assert rig.tick()["GET services"] == 0
    body = copy.deepcopy(rig.cluster.rollout("web"))
    body["spec"]["service"]["port"] = 8080
    body["metadata"].pop("resourceVersion")
    body.pop("status", None)
    rig.cluster.api.apply(body)
    wait_for("the new spec in the cache", lambda: port_in_cache(rig) == 8080)
    made = rig.tick()
    assert made["GET services"] == 3
    assert made["PUT services"] == 3, "the new port on the three Services"
    rig.settle()
    assert rig.tick()["GET services"] == 0
    clock = rig.services.clock
    assert isinstance(clock, Seconds)
    clock.now += 300.0
    assert rig.tick()["GET services"] == 3, "and every resync period besides"


def port_in_cache(rig: Rig) -> int | None:
    found = rig.reads.caches[ROLLOUT.kind].get(rig.cluster.namespace, "web")
    return None if found is None else int(found["spec"]["service"]["port"])


# --- fences: a cache that lags never hides the controller's own writes ------------------------


@pytest.fixture
def frozen(cluster: Cluster) -> tuple[Kube, Cache, CachedKube]:
    """A Rollout, and a cache of Rollouts fed by hand (it lags until the test feeds it)."""
    kube = Kube(cluster.api_client())
    cluster.api.apply(rollout("web", cluster.namespace))
    cache = Cache(ROLLOUT)
    cache.replace(kube.list(ROLLOUT, cluster.namespace).items, cluster.namespace)
    return kube, cache, CachedKube(kube, {ROLLOUT.kind: cache}, lambda kind, namespace: True)


def test_an_object_the_controller_wrote_is_read_from_the_api_until_the_cache_shows_it(
    cluster: Cluster, frozen: tuple[Kube, Cache, CachedKube]
) -> None:
    kube, cache, reads = frozen
    before = reads.get(ROLLOUT, cluster.namespace, "web")
    assert before is not None
    stored = reads.replace_status(dict(before, status={"phase": "Progressing"}))
    assert reads.fenced() == 1
    seen = reads.get(ROLLOUT, cluster.namespace, "web")
    assert seen is not None
    assert seen["status"] == {"phase": "Progressing"}, "not the cache's stale copy"
    cache.apply("MODIFIED", stored)  # the watch delivers the write
    assert reads.fenced() == 0
    # from now on the cache answers: a change it has not seen yet is not read
    kube.patch(ROLLOUT, cluster.namespace, "web", {"metadata": {"labels": {"team": "a"}}})
    cached = reads.get(ROLLOUT, cluster.namespace, "web")
    assert cached is not None
    assert "labels" not in cached["metadata"]
    assert cached["metadata"]["resourceVersion"] == stored["metadata"]["resourceVersion"]
    with reads.fresh_reads():
        fresh = reads.get(ROLLOUT, cluster.namespace, "web")
    assert fresh is not None
    assert fresh["metadata"]["labels"] == {"team": "a"}
    cached["metadata"]["name"] = "changed by the tick"
    again = reads.get(ROLLOUT, cluster.namespace, "web")
    assert again is not None
    assert again["metadata"]["name"] == "web", "a tick gets a copy, never the cache's object"


def test_a_fence_is_lifted_when_a_relist_skipped_the_written_version(
    cluster: Cluster, frozen: tuple[Kube, Cache, CachedKube]
) -> None:
    kube, cache, reads = frozen
    before = reads.get(ROLLOUT, cluster.namespace, "web")
    assert before is not None
    reads.replace_status(dict(before, status={"phase": "Progressing"}))
    kube.patch(ROLLOUT, cluster.namespace, "web", {"metadata": {"labels": {"team": "a"}}})
    # a relist shows the object after someone else's later change, never the version written
    cache.replace(kube.list(ROLLOUT, cluster.namespace).items, cluster.namespace)
    assert reads.fenced() == 1
    seen = reads.get(ROLLOUT, cluster.namespace, "web")  # the API server, once more
    assert seen is not None
    assert seen["status"] == {"phase": "Progressing"}
    assert reads.fenced() == 0, "the cache shows what the API server shows: caught up"


def with_sender(rig: Rig, sender: EventSender) -> None:
    """The rig's reconciler replaced by one (nothing in memory) that hands Events to
    ``sender``."""
    was = rig.reconciler
    rig.reconciler = Reconciler(
        rig.reads,
        was.provider,
        was.webhooks,
        was.metrics,
        services=rig.services,
        routes=rig.routes,
        events=sender,
    )


def test_a_steps_events_go_to_the_sender_and_are_never_lost(rig: Rig) -> None:
    """A step hands its Events to the event sender (no POST in the tick); the Rollout's next
    status write first records what the sender has not (here: a sender that never runs, as one
    that fell behind); a replica that died with Events still queued leaves the outbox in the
    status, and the next one records them, each once."""
    initialized(rig, analysis={"interval": "5m", "judge": "threshold"})
    with_sender(rig, EventSender(rig.reads))  # never started
    rig.cluster.set_image("web", "podinfo:7.0.0")
    handed: list[Json] = []

    def a_step_told() -> bool:
        rig.settle()
        before = (rig.cluster.status("web").get("outbox") or {}).get("decidedAt")
        made = rig.tick()
        outbox = rig.cluster.status("web").get("outbox") or {}
        if outbox.get("decidedAt") in (None, before) or not outbox.get("events"):
            return False
        assert made["POST events"] == 0, "not posted by the tick"
        handed.append(outbox)
        return True

    wait_for("a step that told Events", a_step_told, every=0.1)
    sender = rig.reconciler.events
    assert sender is not None
    queued = sender.queued
    assert queued == len(handed[0]["events"]), "queued, the outbox left in the status"
    rig.settle()
    made = rig.tick()
    assert made["POST events"] == queued, "recorded before the status write that drops the outbox"
    for event in handed[0]["events"]:
        assert rig.cluster.events(event["reason"]), f"{event['reason']} recorded"

    def another_step_told() -> bool:
        rig.settle()
        before = (rig.cluster.status("web").get("outbox") or {}).get("decidedAt")
        rig.tick()
        outbox = rig.cluster.status("web").get("outbox") or {}
        return outbox.get("decidedAt") not in (None, before) and bool(outbox.get("events"))

    wait_for("another step that told Events", another_step_told, every=0.1)
    left = rig.cluster.status("web")["outbox"]
    # the replica dies with them queued: another one (nothing in memory) ticks
    with_sender(rig, EventSender(rig.reads))
    rig.settle()
    assert rig.tick()["POST events"] >= len(left["events"]), "delivered from the status"
    for outbox in (handed[0], left):
        for event in outbox["events"]:
            same = [
                e for e in rig.cluster.events(event["reason"]) if e["message"] == event["message"]
            ]
            assert len(same) == 1, f"{event['reason']} recorded once"
