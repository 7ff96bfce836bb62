"""The event sender (canary.controller.event_sender) against the test API server over HTTP:
Events queued by a tick are recorded once, in order, by the sender's thread; a 5xx is retried
with backoff; a 4xx, a lost shard or retries run out are counted and reported by `settle`
(the tick then delivers the outbox again); a full queue is refused (the tick posts itself);
`settle` posts what is still queued in the caller's thread."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kubernetes import config

from canary.controller.event_sender import EventCounters, EventSender
from canary.controller.kube import Json, Kube, NotLeaderError
from canary.engine import Event
from canary.model.meta import ObjectMeta
from canary.model.rollout import Rollout
from canary.notify import kube_event
from canary.testing import ApiServer

NS = "events"
EVENTS_PATH = rf"/api/v1/namespaces/{NS}/events"


class Counts:
    def __init__(self) -> None:
        self.full = 0
        self.failed = 0

    def counters(self) -> EventCounters:
        def full() -> None:
            self.full += 1

        def failed() -> None:
            self.failed += 1

        return EventCounters(queue_full=full, failures=failed)


@pytest.fixture
def api() -> Iterator[ApiServer]:
    with ApiServer() as server:
        server.create_namespace(NS)
        yield server


@pytest.fixture
def kube(api: ApiServer, tmp_path: Path) -> Kube:
    path = api.kubeconfig(tmp_path / "kubeconfig", namespace=NS)
    return Kube(config.new_client_from_config(config_file=str(path)))


def bodies(name: str, count: int, start: datetime | None = None) -> list[Json]:
    rollout = Rollout.model_construct(
        metadata=ObjectMeta.model_construct(name=name, namespace=NS, uid="u-1")
    )
    at = start or datetime(2026, 12, 6, 3, 0, tzinfo=UTC)
    return [
        kube_event(
            rollout, Event(reason=f"Step{n}", message=f"step {n}"), at + timedelta(seconds=n)
        )
        for n in range(count)
    ]


def recorded(api: ApiServer) -> list[str]:
    events = api.list("v1", "Event", NS)
    return [e["reason"] for e in sorted(events, key=lambda e: e["metadata"]["name"])]


def posts(api: ApiServer) -> list[int]:
    return [code for method, path, code in api.requests if method == "POST" and "/events" in path]


def test_queued_events_are_recorded_once_in_order_by_the_sender(api: ApiServer, kube: Kube) -> None:
    counts = Counts()
    sender = EventSender(kube, counters=counts.counters()).start()
    try:
        assert sender.send(f"{NS}/web", bodies("web", 3))
        assert sender.send(f"{NS}/api", bodies("api", 2))
        assert sender.wait_idle(10)
        assert sender.settle(f"{NS}/web")
        assert sender.settle(f"{NS}/api")
    finally:
        sender.stop()
    assert sorted(recorded(api)) == ["Step0", "Step0", "Step1", "Step1", "Step2"]
    assert posts(api) == [201] * 5, "each Event posted once"
    assert (counts.full, counts.failed, sender.queued) == (0, 0, 0)


def test_a_failed_post_is_retried_with_backoff(api: ApiServer, kube: Kube) -> None:
    api.faults.fail(EVENTS_PATH, code=503, times=2, method="POST")
    api.faults.fail(EVENTS_PATH, code=429, times=1, method="POST")
    counts = Counts()
    sender = EventSender(kube, first_backoff=0.01, counters=counts.counters()).start()
    try:
        assert sender.send(f"{NS}/web", bodies("web", 2))
        assert sender.wait_idle(10)
        assert sender.settle(f"{NS}/web"), "recorded after the retries"
    finally:
        sender.stop()
    assert recorded(api) == ["Step0", "Step1"]
    assert posts(api) == [503, 503, 429, 201, 201]
    assert counts.failed == 0


def test_an_event_given_up_is_counted_and_settle_says_so(api: ApiServer, kube: Kube) -> None:
    api.faults.fail(EVENTS_PATH, code=500, times=3, method="POST")
    counts = Counts()
    sender = EventSender(kube, attempts=3, first_backoff=0.01, counters=counts.counters()).start()
    try:
        assert sender.send(f"{NS}/web", bodies("web", 2))
        assert sender.wait_idle(10)
        assert not sender.settle(f"{NS}/web"), "the tick must deliver the outbox again"
        assert sender.settle(f"{NS}/web"), "reported once"
    finally:
        sender.stop()
    assert counts.failed == 1
    assert posts(api) == [500, 500, 500], "the batch stops at the Event given up"
    assert recorded(api) == []


def test_a_refused_event_is_not_retried(api: ApiServer, kube: Kube) -> None:
    api.faults.fail(EVENTS_PATH, code=403, times=1, method="POST")
    counts = Counts()
    sender = EventSender(kube, first_backoff=0.01, counters=counts.counters()).start()
    try:
        assert sender.send(f"{NS}/web", bodies("web", 1))
        assert sender.wait_idle(10)
        assert not sender.settle(f"{NS}/web")
    finally:
        sender.stop()
    assert posts(api) == [403]
    assert counts.failed == 1


def test_an_event_already_recorded_counts_as_recorded(api: ApiServer, kube: Kube) -> None:
    again = bodies("web", 2)
    kube.post_event(again[0])  # an earlier delivery of the same outbox
    sender = EventSender(kube).start()
    try:
        assert sender.send(f"{NS}/web", again)
        assert sender.wait_idle(10)
        assert sender.settle(f"{NS}/web")
    finally:
        sender.stop()
    assert posts(api) == [201, 409, 201]
    assert recorded(api) == ["Step0", "Step1"]


def test_a_full_queue_refuses_and_counts(api: ApiServer, kube: Kube) -> None:
    counts = Counts()
    sender = EventSender(kube, capacity=3, counters=counts.counters())  # not started
    assert sender.send(f"{NS}/web", bodies("web", 2))
    assert not sender.send(f"{NS}/api", bodies("api", 2)), "4 > 3"
    assert sender.send(f"{NS}/api", bodies("api", 1))
    assert (counts.full, sender.queued) == (1, 3)
    assert posts(api) == [], "nothing is posted by a refused send"


def test_settle_posts_what_is_still_queued_in_the_callers_thread(
    api: ApiServer, kube: Kube
) -> None:
    sender = EventSender(kube)  # not started: a sender that fell behind
    assert sender.send(f"{NS}/web", bodies("web", 2))
    assert sender.send(f"{NS}/api", bodies("api", 1))
    assert sender.settle(f"{NS}/web")
    assert recorded(api) == ["Step0", "Step1"], "only web's; api's stay queued"
    assert sender.queued == 1


def test_a_replica_that_lost_the_shard_posts_nothing(api: ApiServer, kube: Kube) -> None:
    @contextmanager
    def not_ours(key: str) -> Iterator[None]:
        raise NotLeaderError(f"{key}: not this replica's shard")
        yield

    def acting(key: str) -> AbstractContextManager[None]:
        return not_ours(key) if key.endswith("/web") else nullcontext()

    counts = Counts()
    sender = EventSender(kube, acting=acting, counters=counts.counters()).start()
    try:
        assert sender.send(f"{NS}/web", bodies("web", 2))
        assert sender.send(f"{NS}/api", bodies("api", 1))
        assert sender.wait_idle(10)
        assert not sender.settle(f"{NS}/web"), "its outbox stays for the shard's holder"
        assert sender.settle(f"{NS}/api")
    finally:
        sender.stop()
    assert counts.failed == 1
    assert recorded(api) == ["Step0"]
