"""The other replicas' writes, for a benchmark that runs one replica of several: every change
of an object of a measured Rollout is made again, at once, to the objects of its *twins*
(Rollouts of the shards the measured replica does not hold).

A replica of a sharded controller watches every Rollout, Deployment, Service and route of its
namespaces and drops the events of the shards it does not hold: that fan-out is part of its
cost. On a machine too small for all the replicas (benchmarks/scale_one_of.py), the other
replicas are not run; the twins' objects change as the measured replica's own do, so the
measured replica decodes the events of three shards while it ticks one, as it would beside
two other replicas on their own cores.

A change is copied with the measured Rollout's name replaced by the twin's (in names, labels,
hosts and selectors) and its uid by the twin's (owner references), as one write of the same
kind: a status write as a status write, a spec or metadata change as a replace. A Deployment's
status is not copied (the fake kubelet marks the twin ready after its spec changes, as it does
the measured one's). The writes go to the store directly, not over HTTP: the API server's
request log keeps the measured replica's requests only.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections import deque
from typing import Any

from canary.testing import ApiError, ApiServer
from canary.testing.storage import Event

Json = dict[str, Any]

NAME = re.compile(r"^(app-\d{5})(?:-|$)")
"""A Rollout's own objects: its name, or its name and a suffix (-canary, -primary ...)."""
KINDS = (
    ("canary.dev/v1alpha1", "Rollout"),
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("networking.istio.io/v1", "VirtualService"),
    ("networking.istio.io/v1", "DestinationRule"),
)
"""What a replica watches of a Rollout's objects (the scale benchmark's mesh is Istio)."""
KEPT_METADATA = ("name", "namespace", "labels", "annotations", "ownerReferences", "finalizers")


def rollout_of(name: str) -> str | None:
    found = NAME.match(name)
    return found.group(1) if found else None


class Mirror:
    """A store subscriber copying the changes of ``twins``' keys (measured Rollout names) to
    their values (twin Rollout names), on a thread of its own in event order."""

    def __init__(self, api: ApiServer, namespace: str, twins: dict[str, list[str]]) -> None:
        self.api = api
        self.namespace = namespace
        self.twins = twins
        self.copies = 0
        self.failures = 0
        self._uids = self._rollout_uids({n for names in twins.values() for n in names} | set(twins))
        self._queue: deque[Event] = deque()
        self._wake = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="bench-mirror", daemon=True)
        self._thread.start()
        self._feeds = [_Feed(self, version, kind) for version, kind in KINDS]

    def _rollout_uids(self, names: set[str]) -> dict[str, str]:
        return {
            n: str(
                self.api.get("canary.dev/v1alpha1", "Rollout", n, self.namespace)["metadata"]["uid"]
            )
            for n in names
        }

    def seen(self, event: Event) -> None:
        """An event of a watched kind (under the store's lock: only queued here)."""
        meta = event.obj.get("metadata") or {}
        if meta.get("namespace") != self.namespace:
            return
        if rollout_of(str(meta.get("name") or "")) not in self.twins:
            return
        with self._wake:
            self._queue.append(event)
            self._wake.notify()

    # --- the copying thread --------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._stop and not self._queue:
                    self._wake.wait()
                if self._stop:
                    return
                event = self._queue.popleft()
            source = rollout_of(str(event.obj["metadata"]["name"])) or ""
            for twin in self.twins.get(source, []):
                try:
                    self._copy(event, source, twin)
                    self.copies += 1
                except (ApiError, KeyError):
                    self.failures += 1

    def _copy(self, event: Event, source: str, twin: str) -> None:
        obj = self._renamed(event.obj, source, twin)
        version, kind, name = obj["apiVersion"], obj["kind"], obj["metadata"]["name"]
        if event.type == "DELETED":
            with contextlib.suppress(ApiError, KeyError):
                self.api.delete(version, kind, name, self.namespace)
            return
        old = event.old or {}
        status_only = event.type == "MODIFIED" and _without_status(old) == _without_status(
            event.obj
        )
        if status_only:
            if kind != "Deployment":  # the fake kubelet writes the twin's
                self.api.update_status(version, kind, name, obj.get("status") or {}, self.namespace)
            return
        body = {k: v for k, v in obj.items() if k != "status"}
        body["metadata"] = {k: obj["metadata"][k] for k in KEPT_METADATA if k in obj["metadata"]}
        self.api.apply(body)
        if event.type == "ADDED" and obj.get("status") and kind != "Deployment":
            self.api.update_status(version, kind, name, obj["status"], self.namespace)

    def _renamed(self, obj: Json, source: str, twin: str) -> Json:
        text = json.dumps(obj).replace(source, twin)
        if source in self._uids and twin in self._uids:
            text = text.replace(self._uids[source], self._uids[twin])
        renamed: Json = json.loads(text)
        return renamed

    def close(self) -> None:
        for feed in self._feeds:
            self.api.store.unsubscribe(feed)
        with self._wake:
            self._stop = True
            self._wake.notify()
        self._thread.join(5)

    @property
    def backlog(self) -> int:
        with self._wake:
            return len(self._queue)


def _without_status(obj: Json) -> Json:
    meta = {
        k: v
        for k, v in (obj.get("metadata") or {}).items()
        if k not in ("resourceVersion", "managedFields", "generation")
    }
    return {**{k: v for k, v in obj.items() if k != "status"}, "metadata": meta}


class _Feed:
    """The store's subscriber for one kind (the store delivers by kind), feeding the mirror."""

    def __init__(self, mirror: Mirror, api_version: str, kind: str) -> None:
        self.mirror = mirror
        self.key = mirror.api.registry.find_kind(api_version, kind).key
        first, _ = mirror.api.store.subscribe(self, None, lambda obj: True)
        for event in first:
            self.push(event)

    def push(self, event: Event) -> None:
        self.mirror.seen(event)

    def progress(self, rv: int) -> None:
        pass
