"""The event sender (canary.controller.event_sender) against the test API server over HTTP:
Events queued by a tick are recorded once, in order, by the sender's thread; a 5xx is retried
with backoff; a 4xx, a lost shard or retries run out are counted and reported by `settle`
(the tick then delivers the outbox again); a full queue is refused (the tick posts itself);
`settle` posts what is still queued in the caller's thread, and says when it could not wait for
a batch being posted; no answer at all (a read timeout, a reset) is a failed try, never the end
of the sender's thread."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from controller_support import wait_for
from kubernetes import client, config

from canary.controller import event_sender
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


# --- no answer: a read timeout, a reset connection (urllib3's exceptions, not OSErrors) -------


def test_a_post_answered_after_the_timeout_is_retried_and_the_sender_lives_on(
    api: ApiServer, tmp_path: Path
) -> None:
    path = api.kubeconfig(tmp_path / "kubeconfig", namespace=NS)
    impatient = Kube(config.new_client_from_config(config_file=str(path)), timeout=0.5)
    late = api.faults.delay(1.5, path=EVENTS_PATH, method="POST", times=1)
    counts = Counts()
    sender = EventSender(impatient, first_backoff=0.01, counters=counts.counters()).start()
    try:
        assert sender.send(f"{NS}/web", bodies("web", 1))
        assert sender.wait_idle(10), "the read timeout ended the sender's thread"
        assert sender.send(f"{NS}/api", bodies("api", 1))
        assert sender.wait_idle(10), "the sender posts what is queued after a timeout"
        assert sender.settle(f"{NS}/web")
        assert sender.settle(f"{NS}/api")
    finally:
        sender.stop()
    assert late.hits == 1
    assert recorded(api) == ["Step0", "Step0"], "each once: the timed-out post was tried again"
    assert counts.failed == 0


@contextmanager
def resetting_listener() -> Iterator[str]:
    """A TCP listener on 127.0.0.1 that answers every request with a reset (RST)."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.05)
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conn.settimeout(5)
            with suppress(OSError):
                conn.recv(65536)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        done.set()
        thread.join(5)
        server.close()


def test_a_reset_connection_is_a_failed_try_not_the_end_of_the_sender() -> None:
    counts = Counts()
    with resetting_listener() as url:
        configuration = client.Configuration()
        configuration.host = url
        kube = Kube(client.ApiClient(configuration), timeout=5)
        sender = EventSender(
            kube, attempts=2, first_backoff=0.01, counters=counts.counters()
        ).start()
        try:
            assert sender.send(f"{NS}/web", bodies("web", 1))
            assert sender.wait_idle(10), "the reset ended the sender's thread"
            assert sender.send(f"{NS}/api", bodies("api", 1))
            assert sender.wait_idle(10), "a second batch is tried after a reset"
            assert not sender.settle(f"{NS}/web"), "not recorded: the tick delivers it again"
            assert not sender.settle(f"{NS}/api")
        finally:
            sender.stop()
    assert counts.failed == 2, "each batch given up after its tries, and counted"


def test_settle_that_cannot_wait_for_the_batch_being_posted_says_so(
    api: ApiServer, kube: Kube, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch in the sender's hands outlasts the wait: `settle` must not call it recorded
    (the status write after it would drop the outbox with the Event unrecorded)."""
    monkeypatch.setattr(event_sender, "SETTLE_TIMEOUT", 0.2)
    slow = api.faults.delay(2.0, path=EVENTS_PATH, method="POST", times=1)
    sender = EventSender(kube).start()
    try:
        assert sender.send(f"{NS}/web", bodies("web", 1))
        wait_for("the sender's post to reach the server", lambda: slow.hits == 1)
        assert not sender.settle(f"{NS}/web"), "still being posted: not known to be recorded"
        assert sender.wait_idle(10)
    finally:
        sender.stop()
    assert recorded(api) == ["Step0"]


def test_a_stopped_sender_refuses_events(api: ApiServer, kube: Kube) -> None:
    sender = EventSender(kube).start()
    sender.stop()
    assert not sender.send(f"{NS}/web", bodies("web", 1)), "nobody would post them"
    assert sender.queued == 0
