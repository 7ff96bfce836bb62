"""A hand edit of a route object is put back by the next early tick, not at the route resync.

The controller runs its real watches against the test API server; its scheduler is a
stand-in that records which Rollouts were woken, and the test runs the ticks it asks for on a
clock it moves by a second a tick (the analysis interval is 10 minutes, the resync 5): a
VirtualService's weight and an HTTPRoute's backendRefs edited mid-rollout, and a route object
deleted, are put back by the one early tick they wake; canary's own writes wake nobody (their
echoes are counted); a route kind whose CRD is not installed, or that may not be listed, breaks
nothing and is watched once it is there."""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from controller_support import (
    CANARY_CRDS,
    MESH_CRDS,
    Cluster,
    FakeKubelet,
    deployment,
    rollout,
    wait_for,
)
from tick_support import GATEWAY, HTTPROUTE, VS, Clock, Judged

from canary.controller import Controller, ControllerSettings
from canary.controller.route_watch import RouteWatch
from canary.controller.shards import shard_of
from canary.gates.webhooks import WebhookCaller
from canary.testing import ApiServer

Json = dict[str, Any]
SMI = ("split.smi-spec.io/v1alpha2", "TrafficSplit")


class Recorder:
    """The controller's scheduler, standing in: records the Rollouts it is asked to tick early;
    the test runs those ticks itself."""

    running = True
    busy = 0

    def __init__(self) -> None:
        self.woken: list[str] = []

    def start(self) -> None:
        pass

    def shutdown(self, wait: bool = True) -> None:
        pass

    def ensure(self, key: str, delay: float = 0.0) -> None:
        pass

    def trigger(self, key: str, reason: str = "change", echo: object = None) -> None:
        self.woken.append(key)

    def remove(self, key: str) -> None:
        pass

    def remove_all(self) -> None:
        pass

    def take(self) -> list[str]:
        taken, self.woken = self.woken, []
        return taken


class Driven:
    """A controller whose ticks the test runs, on its clock."""

    def __init__(self, cluster: Cluster, webhooks: WebhookCaller, **settings: Any) -> None:
        self.cluster = cluster
        self.clock = Clock()
        options: Json = {
            "namespaces": (cluster.namespace,),
            "lease": None,
            "metrics_address": None,
            "watch_timeout": 30,
            "notify": None,
            "route_resync": 300.0,
        }
        options.update(settings)
        self.controller = Controller(
            cluster.api_client(),
            ControllerSettings(**options),
            provider=Judged(0),
            webhooks=webhooks,
            clock=self.clock.now,
        )
        self.recorder = Recorder()
        self.controller.scheduler = self.recorder  # type: ignore[assignment]
        cluster.controllers.append(self.controller)
        self.key = f"{cluster.namespace}/web"

    def start(self) -> Driven:
        self.controller.start()
        assert self.controller.wait_synced(30)
        return self

    @property
    def routes(self) -> RouteWatch:
        return self.controller.route_watch

    def tick(self, early: bool = False, seconds: float = 1.0) -> Json:
        self.clock.at += timedelta(seconds=seconds)
        self.controller._tick(self.key, early)
        return self.cluster.status("web")

    def until(self, what: str, done: Any, early: bool = False) -> Json:
        def ticked() -> Json | None:
            status = self.tick(early)
            return status if done(status) else None

        return wait_for(what, ticked, every=0.05)

    def changes(self, by: str) -> float:
        return changes_of(self.controller, by)

    def echoed(self, kind: tuple[str, str], name: str = "web") -> None:
        """Wait until the route watch shows the object as the API server holds it now."""
        live = self.cluster.get(*kind, name)
        assert live is not None
        version = live["metadata"]["resourceVersion"]

        def shown() -> bool:
            for reflector in self.routes.reflectors:
                if reflector.kind.kind == kind[1]:
                    cached = reflector.cache.get(self.cluster.namespace, name)
                    if cached is not None and cached["metadata"]["resourceVersion"] == version:
                        return True
            return False

        wait_for(f"the watch to show {kind[1]} {name} at {version}", shown)


def changes_of(controller: Controller, by: str) -> float:
    """`canary_route_object_changes_total{by=...}` of ``controller``, all kinds."""
    total = 0.0
    for metric in controller.metrics.route_changes.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels["by"] == by:
                total += sample.value
    return total


@pytest.fixture
def webhooks() -> Iterator[WebhookCaller]:
    with WebhookCaller.create() as caller:
        yield caller


def start_rollout(cluster: Cluster, provider: Json) -> None:
    cluster.api.apply(deployment("web", cluster.namespace))
    body = rollout("web", cluster.namespace)
    body["spec"]["provider"] = copy.deepcopy(provider)
    body["spec"]["analysis"] = {"interval": "10m", "judge": "threshold", "failureLimit": 1}
    cluster.api.apply(body)


def at_first_step(driven: Driven, kind: tuple[str, str]) -> None:
    """Initialized, then a new image taken to the first step (20%), the watch caught up."""
    driven.until("Initialized", lambda s: s.get("phase") == "Initialized")
    driven.cluster.set_image("web", "podinfo:7.0.0")
    driven.until(
        "the first step", lambda s: s.get("phase") == "Progressing" and s.get("canaryWeight") == 20
    )
    driven.echoed(kind)
    driven.recorder.take()


def vs_weights(cluster: Cluster) -> list[int]:
    found = cluster.get(*VS, "web")
    assert found is not None
    return [r["weight"] for r in found["spec"]["http"][-1]["route"]]


def backend_weights(cluster: Cluster) -> dict[str, int]:
    found = cluster.get(*HTTPROUTE, "web")
    assert found is not None
    (rule,) = [r for r in found["spec"]["rules"] if not r.get("matches")] or found["spec"]["rules"]
    return {ref["name"]: ref.get("weight", 1) for ref in rule["backendRefs"]}


def edit(cluster: Cluster, kind: tuple[str, str], change: Any) -> None:
    live = cluster.get(*kind, "web")
    assert live is not None
    edited = copy.deepcopy(live)
    edited["metadata"].pop("resourceVersion")
    change(edited["spec"])
    cluster.api.apply(edited)


def woken_once(driven: Driven) -> None:
    wait_for("the Rollout woken by the hand edit", lambda: driven.recorder.woken)
    assert driven.recorder.take() == [driven.key]


def test_a_virtual_service_weight_set_by_hand_is_put_back_by_the_next_early_tick(
    cluster: Cluster, webhooks: WebhookCaller
) -> None:
    start_rollout(cluster, {"name": "istio"})
    driven = Driven(cluster, webhooks).start()
    at_first_step(driven, VS)
    assert vs_weights(cluster) == [80, 20]
    assert driven.changes("others") == 0, "canary's own writes are echoes"
    echoes = driven.changes("canary")
    assert echoes >= 1, "the echoes of the route's applies were seen and ignored"

    def all_to_canary(spec: Json) -> None:
        spec["http"][-1]["route"][0]["weight"] = 0
        spec["http"][-1]["route"][1]["weight"] = 100

    edit(cluster, VS, all_to_canary)
    woken_once(driven)
    status = driven.tick(early=True)  # one second later: 5 minutes before the resync
    assert vs_weights(cluster) == [80, 20], "put back by the early tick"
    assert status["canaryWeight"] == 20, "not judged: the look stands"
    assert status["phase"] == "Progressing"
    driven.echoed(VS)
    assert driven.recorder.take() == [], "the put-back's echo wakes nobody"
    assert driven.changes("others") == 1
    assert driven.changes("canary") > echoes

    cluster.api.delete(*VS, "web", cluster.namespace)  # deleted by hand
    woken_once(driven)
    driven.tick(early=True)
    assert vs_weights(cluster) == [80, 20], "made again by the early tick"
    driven.echoed(VS)
    assert driven.recorder.take() == []

    # a step of canary's own (20% -> 50%, judged on its interval) wakes nobody
    driven.tick(seconds=600)
    assert vs_weights(cluster) == [50, 50]
    driven.echoed(VS)
    assert driven.recorder.take() == [], "canary's own step: no extra tick"
    assert driven.changes("others") == 2


def test_an_http_route_backend_edited_by_hand_is_put_back_by_the_next_early_tick(
    cluster: Cluster, webhooks: WebhookCaller
) -> None:
    start_rollout(cluster, GATEWAY)
    driven = Driven(cluster, webhooks).start()
    at_first_step(driven, HTTPROUTE)
    assert backend_weights(cluster) == {"web-primary": 80, "web-canary": 20}
    assert driven.changes("others") == 0

    def primary_only(spec: Json) -> None:
        for rule in spec["rules"]:
            rule["backendRefs"] = [r for r in rule["backendRefs"] if r["name"] == "web-primary"]

    edit(cluster, HTTPROUTE, primary_only)
    assert backend_weights(cluster) == {"web-primary": 80}
    woken_once(driven)
    driven.tick(early=True)
    assert backend_weights(cluster) == {"web-primary": 80, "web-canary": 20}
    driven.echoed(HTTPROUTE)
    assert driven.recorder.take() == [], "the put-back's echo wakes nobody"
    assert driven.changes("others") == 1


@pytest.fixture
def istio_only(api: ApiServer, namespace: str, tmp_path: Path) -> Iterator[Cluster]:
    """A cluster with Istio's CRDs only: HTTPRoute, GRPCRoute and TrafficSplit are not served."""
    api.create_namespace(namespace)
    api.apply_file(*sorted(CANARY_CRDS.glob("*.yaml")))
    api.apply_file(MESH_CRDS / "istio-networking.yaml")
    made = Cluster(api, namespace, api.kubeconfig(tmp_path / "kubeconfig", namespace=namespace))
    with FakeKubelet(api, namespace):
        yield made
        made.close()


def test_a_route_kind_not_installed_or_not_allowed_breaks_nothing(
    istio_only: Cluster, webhooks: WebhookCaller, caplog: pytest.LogCaptureFixture
) -> None:
    cluster = istio_only
    forbidden = cluster.api.fail(r"/grpcroutes", code=403, times=None)
    start_rollout(cluster, {"name": "istio"})
    driven = Driven(cluster, webhooks, route_unserved_retry=0.05)
    with caplog.at_level(logging.INFO, logger="canary.controller.watches"):
        driven.start()
        by_kind = {r.kind.kind: r for r in driven.routes.reflectors}
        wait_for("the lists refused", lambda: by_kind["TrafficSplit"].unserved == 404)
        wait_for("more than one look", lambda: forbidden.hits >= 3)
        assert by_kind["HTTPRoute"].unserved == 404
        assert by_kind["GRPCRoute"].unserved == 403
        assert driven.controller.ready() == (True, "leader"), "readiness waits for no route kind"
        assert driven.controller.healthy() == (True, "ok")
        at_first_step(driven, VS)
        edit(cluster, VS, lambda spec: spec["http"][-1]["route"][0].update(weight=0))
        woken_once(driven)
        driven.tick(early=True)
        assert vs_weights(cluster) == [80, 20]

        cluster.api.apply_file(MESH_CRDS / "smi-trafficsplit.yaml")  # installed later
        wait_for("TrafficSplits watched", by_kind["TrafficSplit"].synced.is_set)
        assert by_kind["TrafficSplit"].unserved is None
    refusals = [r for r in caplog.records if "may not list and watch" in r.getMessage()]
    assert len(refusals) == 1, "a 403 is said once"
    assert "grant 'list' and 'watch' on grpcroutes" in refusals[0].getMessage()
    assert not [r for r in caplog.records if "watch of" in r.getMessage()], "no failure logged"


def sharded_replica(cluster: Cluster, identity: str) -> Controller:
    return cluster.controller(
        identity,
        provider=Judged(0),
        user_agent=f"canary-controller/{identity}",
        shards=2,
        metrics_address=None,
    )


def test_sharded_only_the_owner_of_the_rollouts_shard_puts_its_route_back(
    cluster: Cluster,
) -> None:
    """Two replicas, two shards, the 5-minute resync: both watches see the hand edit, only
    the replica holding the Rollout's shard marks it and writes the route back."""
    ns = cluster.namespace
    start_rollout(cluster, {"name": "istio"})
    replicas = {name: sharded_replica(cluster, name) for name in ("a", "b")}
    cluster.wait_phase("web", "Initialized")

    def one_shard_each() -> bool:
        return all(len(r.shards.owned()) == 1 for r in replicas.values() if r.shards)

    wait_for("a shard each", one_shard_each)

    def virtual_services_watched() -> bool:
        # an edit delivered by a watch's first list is left to the first tick (not counted)
        return all(
            reflector.synced.is_set()
            for replica in replicas.values()
            for reflector in replica.route_watch.reflectors
            if reflector.kind.kind == "VirtualService"
        )

    wait_for("the VirtualService watches synced", virtual_services_watched)
    shard = shard_of(ns, "web", 2)
    owner = next(n for n, r in replicas.items() if r.shards and shard in r.shards.owned())
    other = next(n for n in replicas if n != owner)
    before = len(cluster.api.requests_by_agent)

    def half_each(spec: Json) -> None:
        spec["http"][-1]["route"][0]["weight"] = 50
        spec["http"][-1]["route"][1]["weight"] = 50

    edit(cluster, VS, half_each)
    wait_for("the route put back", lambda: vs_weights(cluster) == [100, 0])
    writers = {
        agent.removeprefix("canary-controller/")
        for agent, method, path, _ in cluster.api.requests_by_agent[before:]
        if method == "PATCH" and "/virtualservices/web" in path
    }
    assert writers == {owner}, "only the shard's holder writes the route back"
    assert not replicas[other].route_watch.drift.take(f"{ns}/web"), "the other marks nothing"
    assert changes_of(replicas[owner], "others") >= 1
    assert changes_of(replicas[other], "others") == 0, "nor counts another's Rollout's edits"
