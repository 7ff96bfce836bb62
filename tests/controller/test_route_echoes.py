"""Telling the echoes of canary's own writes of route objects from someone else's changes
(`canary.controller.route_watch`), without a server: the guarantee (a change by someone else
is never taken for an echo) over many seeded interleavings of writes, answers and watch
events, and who is woken (only a replica that acts for the Rollout; not by a first list)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import pytest
from kubernetes import client

from canary.controller.kube import Kube
from canary.controller.route_watch import RECENT_ANSWERS, Echoes, RouteWatch, Verdicts, essentials
from canary.controller.watches import Reflector

Json = dict[str, Any]
KEY = ("VirtualService.networking.istio.io", "shop", "web")


@dataclass
class Told:
    """What the echo book decided of each event, by who really made it."""

    echo: list[str] = field(default_factory=list)
    change: list[str] = field(default_factory=list)

    def verdicts(self, origin: str) -> Verdicts:
        return Verdicts(
            echo=lambda: self.echo.append(origin), change=lambda: self.change.append(origin)
        )


def test_an_event_during_canarys_write_waits_for_its_answer() -> None:
    echoes, told = Echoes(), Told()
    with echoes.writing(KEY) as answer:
        assert echoes.seen(KEY, "7", told.verdicts("canary")) == "waiting"
        assert echoes.seen(KEY, "8", told.verdicts("others")) == "waiting"
        assert told == Told(), "nothing decided before the answer"
        answer("7")
    assert told == Told(echo=["canary"], change=["others"])
    assert echoes.seen(KEY, "7", told.verdicts("canary")) == "echo", "a late echo"

    def failed_write() -> None:
        with echoes.writing(KEY):
            echoes.seen(KEY, "9", told.verdicts("others"))
            raise RuntimeError("the write failed")

    with pytest.raises(RuntimeError):
        failed_write()
    assert told.change == ["others", "others"], "unknown after a failed write: a change"


def test_deletions_are_told_apart_by_their_versions() -> None:
    echoes, told = Echoes(), Told()
    with echoes.writing(KEY) as answer:
        answer("11")  # canary's deletion, answered with the deletion's version
    assert echoes.seen(KEY, "11", told.verdicts("canary"), gone=True) == "echo"
    with echoes.writing(KEY) as answer:
        answer("12")  # made again
    assert echoes.seen(KEY, "12", told.verdicts("canary")) == "echo"
    assert echoes.seen(KEY, "13", told.verdicts("others"), gone=True) == "change"
    assert echoes.seen(KEY, "", told.verdicts("others"), gone=True) == "change", "by a relist"
    assert told == Told(echo=["canary", "canary"], change=["others", "others"])


@pytest.mark.parametrize("seed", range(400))
def test_no_change_by_someone_else_is_ever_taken_for_an_echo(seed: int) -> None:
    """A random history of one object: canary's writes (one at a time, as one Rollout's ticks
    are; applies and deletions), answered at a random later moment; others' edits and
    deletions; watch events delivered in commit order with a random lag. Every event of
    someone else's is a change; without deletions and with fewer than ``RECENT_ANSWERS``
    events in flight, every echo of canary's is one."""
    rng = random.Random(seed)
    deletions = seed % 2 == 0
    echoes, told = Echoes(), Told()
    version = 100
    events: list[tuple[str, str, bool]] = []  # (version, who, gone): committed, not delivered
    in_flight: tuple[Any, Any, str] | None = None  # (context, answer, version to answer)
    exists = True
    for _ in range(60):
        choices = ["others", "deliver", "canary" if in_flight is None else "answer"]
        if len(events) >= RECENT_ANSWERS - 1:
            choices = ["deliver"]
        step = rng.choice(choices)
        if step in ("canary", "others"):
            delete = deletions and exists and rng.random() < 0.2
            version += 1
            exists = not delete
            if step == "canary":
                context = echoes.writing(KEY)
                in_flight = (context, context.__enter__(), str(version))
            events.append((str(version), step, delete))
        elif step == "answer" and in_flight is not None:
            context, answer, answered = in_flight
            answer(answered)
            context.__exit__(None, None, None)
            in_flight = None
        elif events:
            committed, who, gone = events.pop(0)
            echoes.seen(KEY, committed, told.verdicts(who), gone=gone)
    if in_flight is not None:
        context, answer, answered = in_flight
        answer(answered)
        context.__exit__(None, None, None)
    for committed, who, gone in events:
        echoes.seen(KEY, committed, told.verdicts(who), gone=gone)
    assert "others" not in told.echo, "someone else's change taken for an echo"
    if not deletions:
        assert "canary" not in told.change, "an echo of canary's write taken for a change"


class Woken:
    def __init__(self) -> None:
        self.keys: list[str] = []


def route(version: str, rollout: str | None = "web") -> Json:
    labels = {"canary.dev/rollout": rollout} if rollout else {}
    meta = {"name": "web", "namespace": "shop", "resourceVersion": version, "labels": labels}
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": meta}


def watch_for(acts: bool) -> tuple[RouteWatch, Reflector, list[str]]:
    woken: list[str] = []
    watch = RouteWatch(
        Kube(client.ApiClient()),
        ["shop"],
        ("istio",),
        acts_for=lambda key: acts,
        wake=woken.append,
    )
    reflector = next(r for r in watch.reflectors if r.kind.kind == "VirtualService")
    return watch, reflector, woken


def test_only_a_replica_acting_for_the_rollout_marks_and_wakes_it() -> None:
    watch, reflector, woken = watch_for(acts=False)  # another shard's Rollout
    reflector.synced.set()
    watch.changed(reflector, "MODIFIED", route("1"), route("2"))
    assert woken == []
    assert not watch.drift.take("shop/web")
    watch, reflector, woken = watch_for(acts=True)
    reflector.synced.set()
    watch.changed(reflector, "MODIFIED", route("1"), route("2"))
    assert woken == ["shop/web"]
    assert watch.drift.take("shop/web")
    assert not watch.drift.take("shop/web"), "the mark is taken once"


def test_a_first_list_wakes_nobody_and_a_label_removed_by_hand_does() -> None:
    watch, reflector, woken = watch_for(acts=True)
    watch.changed(reflector, "ADDED", None, route("1"))  # the first list (not synced yet)
    assert woken == []
    reflector.synced.set()
    # the label canary selects on removed: the watch says DELETED, the cache had it labelled
    watch.changed(reflector, "DELETED", route("1"), None)
    assert woken == ["shop/web"]
    watch.changed(reflector, "MODIFIED", route("2", rollout=None), route("3", rollout=None))
    assert woken == ["shop/web"], "an object of no Rollout"


def test_the_watch_keeps_only_names_versions_and_the_rollout() -> None:
    full = route("7")
    full["metadata"]["labels"]["team"] = "payments"
    full["metadata"]["managedFields"] = [{"manager": "canary", "fieldsV1": {"f:spec": {}}}]
    full["metadata"]["annotations"] = {"note": "x" * 1000}
    full["spec"] = {"http": [{"route": [{"weight": 100}]}]}
    assert essentials(full) == {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "resourceVersion": "7",
            "labels": {"canary.dev/rollout": "web"},
        },
    }
