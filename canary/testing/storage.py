"""The objects, the global resourceVersion, the bounded event history and the watchers.

One lock guards everything, so a write, its history entry and its delivery to watchers happen
in one step in resourceVersion order, whichever thread writes (the server's or a test's).
Objects are stored per group and plural; reading at another version of a CRD only changes the
`apiVersion` (no conversion, like a CRD with the `None` strategy).
"""

from __future__ import annotations

import contextvars
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from canary.testing import kinds, managed
from canary.testing.errors import ApiError, already_exists, conflict, gone, not_found
from canary.testing.jsontree import clone
from canary.testing.resources import NAMESPACE_KEY, Registry, ResourceType

Json = dict[str, Any]
Key = tuple[str, str]  # (group, plural)
Name = tuple[str, str]  # (namespace or "", name)
Matcher = Callable[[Json], bool]

FIELD_MANAGER: contextvars.ContextVar[str] = contextvars.ContextVar("field_manager", default="test")
"""Who is writing (the request's ``fieldManager``, else its User-Agent's product; writes made
straight to the store by a test are the manager ``test``): recorded in managedFields."""


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Event:
    type: str  # ADDED, MODIFIED, DELETED
    key: Key
    obj: Json
    old: Json | None
    rv: int


class Subscriber(Protocol):
    key: Key

    def push(self, event: Event) -> None: ...

    def progress(self, rv: int) -> None: ...


def as_version(obj: Json, rt: ResourceType) -> Json:
    out = clone(obj)
    out["apiVersion"], out["kind"] = rt.api_version, rt.kind
    return out


class Store:
    def __init__(self, registry: Registry, history_size: int = 1000) -> None:
        self.registry = registry
        self.lock = threading.RLock()
        self._objects: dict[Key, dict[Name, Json]] = {}
        self._rv = 0
        self._history: deque[Event] = deque()
        self._history_size = history_size
        self._compacted = 0  # events up to this resourceVersion may be gone from the history
        self._subscribers: set[Subscriber] = set()
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.create(
                self.registry.lookup("", "v1", "namespaces"), "", {"metadata": {"name": ns}}
            )

    # --- history and watchers ----------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        with self.lock:
            return self._rv

    @property
    def history_size(self) -> int:
        return self._history_size

    @history_size.setter
    def history_size(self, size: int) -> None:
        with self.lock:
            self._history_size = size
            self._trim()

    def compact(self) -> None:
        """Forget the whole history: a watch from any earlier resourceVersion gets 410 Gone."""
        with self.lock:
            self._history.clear()
            self._compacted = self._rv

    def _trim(self) -> None:
        while len(self._history) > self._history_size:
            self._compacted = self._history.popleft().rv

    def subscribe(
        self, sub: Subscriber, since: int | None, match: Matcher
    ) -> tuple[list[Event], int]:
        """Register `sub` and return what it must send first, in one step under the lock.

        `since` None: synthetic ADDED events for the objects there now; else the history after
        `since`, or 410 Gone when part of it is no longer kept. Also returns the current
        resourceVersion: every later event reaches `sub.push`.
        """
        with self.lock:
            if since is None:
                objs = sorted(self._objects.get(sub.key, {}).values(), key=_rv_of)
                first = [Event("ADDED", sub.key, o, None, _rv_of(o)) for o in objs if match(o)]
            elif since < self._compacted:
                raise gone(f"too old resource version: {since} ({self._compacted})")
            else:
                first = [e for e in self._history if e.rv > since and e.key == sub.key]
            self._subscribers.add(sub)
            return first, self._rv

    def progress(self, sub: Subscriber) -> None:
        """Ask for a bookmark: `sub` gets the current resourceVersion after what it has queued."""
        with self.lock:
            sub.progress(self._rv)

    def unsubscribe(self, sub: Subscriber) -> None:
        with self.lock:
            self._subscribers.discard(sub)

    def _commit(self, event_type: str, rt: ResourceType, obj: Json, old: Json | None) -> Json:
        """Stamp a new resourceVersion on `obj`, store it (or drop it), record and deliver."""
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        bucket = self._objects.setdefault(rt.key, {})
        name = _name_of(obj)
        if event_type == "DELETED":
            bucket.pop(name, None)
        else:
            bucket[name] = obj
        event = Event(event_type, rt.key, clone(obj), old, self._rv)
        self._history.append(event)
        self._trim()
        for sub in list(self._subscribers):
            if sub.key == rt.key:
                sub.push(event)
        kinds.after_commit(self, rt, event_type, obj, old)
        return obj

    # --- reads -------------------------------------------------------------------------------

    def find(self, key: Key, namespace: str, name: str) -> Json | None:
        with self.lock:
            return self._objects.get(key, {}).get((namespace, name))

    def objects(self, key: Key) -> list[Json]:
        with self.lock:
            return list(self._objects.get(key, {}).values())

    def get(self, rt: ResourceType, namespace: str, name: str) -> Json:
        with self.lock:
            obj = self.find(rt.key, namespace if rt.namespaced else "", name)
            if obj is None:
                raise not_found(rt.plural, rt.group, name)
            return as_version(obj, rt)

    def select(
        self, rt: ResourceType, namespace: str | None, match: Matcher
    ) -> tuple[list[Json], int]:
        with self.lock:
            found = [
                as_version(o, rt)
                for (ns, _), o in sorted(self._objects.get(rt.key, {}).items())
                if (namespace is None or ns == namespace) and match(o)
            ]
            return found, self._rv

    # --- writes ------------------------------------------------------------------------------

    def create(
        self,
        rt: ResourceType,
        namespace: str,
        body: Json,
        dry_run: bool = False,
        managed_fields: list[Json] | None = None,
    ) -> tuple[Json, list[str]]:
        with self.lock:
            obj = clone(body)
            meta = obj.setdefault("metadata", {})
            if not isinstance(meta, dict):
                raise ApiError(400, "metadata must be an object")
            if meta.get("resourceVersion"):
                raise ApiError(400, "resourceVersion should not be set on objects to be created")
            if rt.namespaced:
                if meta.get("namespace", namespace) != namespace:
                    raise ApiError(
                        400,
                        "the namespace of the provided object does not match the namespace "
                        "sent on the request",
                    )
                meta["namespace"] = namespace
                ns = self.find(NAMESPACE_KEY, "", namespace)
                if ns is None or "deletionTimestamp" in ns["metadata"]:
                    raise ApiError(
                        404 if ns is None else 403,
                        f'namespaces "{namespace}" not found'
                        if ns is None
                        else f"unable to create new content in namespace {namespace} because "
                        "it is being terminated",
                        reason="NotFound" if ns is None else "Forbidden",
                    )
            else:
                meta.pop("namespace", None)
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = kinds.generate_name(meta["generateName"])
            obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
            for server_set in ("deletionTimestamp", "deletionGracePeriodSeconds", "generation"):
                meta.pop(server_set, None)
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now()
            if rt.has_generation:
                meta["generation"] = 1
            if rt.status:
                obj.pop("status", None)
            obj, warnings = kinds.admit(self, rt, obj, None)
            obj["metadata"]["managedFields"] = (
                managed_fields
                if managed_fields is not None
                else managed.record_update(
                    None, obj, FIELD_MANAGER.get(), rt.api_version, now(), rt.status
                )
            )
            if self.find(rt.key, meta.get("namespace", ""), meta["name"]) is not None:
                raise already_exists(rt.plural, rt.group, meta["name"])
            if dry_run:
                return as_version(obj, rt), warnings
            return as_version(self._commit("ADDED", rt, obj, None), rt), warnings

    def update(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        body: Json,
        subresource: str | None = None,
        dry_run: bool = False,
        managed_fields: list[Json] | None = None,
    ) -> tuple[Json, list[str]]:
        """PUT semantics: the whole object (or its status), guarded by its resourceVersion."""
        with self.lock:
            namespace = namespace if rt.namespaced else ""
            old = self.find(rt.key, namespace, name)
            if old is None:
                raise not_found(rt.plural, rt.group, name)
            meta = body.get("metadata") or {}
            if meta.get("name", name) != name:
                raise ApiError(
                    400,
                    f"the name of the object ({meta.get('name')}) does not match the name on "
                    f"the URL ({name})",
                )
            wanted = meta.get("resourceVersion")
            if wanted and wanted != old["metadata"]["resourceVersion"]:
                raise conflict(rt.plural, rt.group, name)
            if subresource == "status":
                new = clone(old)
                if "status" in body:
                    new["status"] = clone(body["status"])
                else:
                    new.pop("status", None)
            else:
                new = clone(body)
                new["metadata"] = {
                    **clone(meta),
                    **kinds.server_meta(old["metadata"]),
                    "name": name,
                }
                if rt.status:
                    if "status" in old:
                        new["status"] = clone(old["status"])
                    else:
                        new.pop("status", None)
            new["apiVersion"], new["kind"] = rt.api_version, rt.kind
            if subresource is not None:  # (a subresource's fields are not tracked here)
                managed_fields = old["metadata"].get("managedFields") or []
            return self._replace(rt, old, new, dry_run, managed_fields)

    def _replace(
        self,
        rt: ResourceType,
        old: Json,
        new: Json,
        dry_run: bool,
        managed_fields: list[Json] | None = None,
    ) -> tuple[Json, list[str]]:
        new, warnings = kinds.admit(self, rt, new, old)
        new["metadata"]["managedFields"] = (
            managed_fields
            if managed_fields is not None
            else managed.record_update(
                old, new, FIELD_MANAGER.get(), rt.api_version, now(), rt.status
            )
        )
        if rt.has_generation and kinds.spec_changed(rt, old, new):
            new["metadata"]["generation"] = old["metadata"].get("generation", 0) + 1
        if _same(old, new):
            return as_version(old, rt), warnings
        if dry_run:
            return as_version(new, rt), warnings
        meta = new["metadata"]
        if "deletionTimestamp" in meta and not meta.get("finalizers"):
            return as_version(self._commit("DELETED", rt, new, old), rt), warnings
        return as_version(self._commit("MODIFIED", rt, new, old), rt), warnings

    def replace_object(self, rt: ResourceType, old: Json, new: Json, dry_run: bool) -> Json:
        """Store `new` in place of `old` (patch and scale use this after building `new`)."""
        with self.lock:
            return self._replace(rt, old, new, dry_run)[0]

    def delete(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        options: Json | None = None,
        dry_run: bool = False,
    ) -> Json:
        with self.lock:
            obj = self.find(rt.key, namespace if rt.namespaced else "", name)
            if obj is None:
                raise not_found(rt.plural, rt.group, name)
            pre = (options or {}).get("preconditions") or {}
            if pre.get("uid") and pre["uid"] != obj["metadata"]["uid"]:
                raise conflict(rt.plural, rt.group, name)
            rv = pre.get("resourceVersion")
            if rv and rv != obj["metadata"]["resourceVersion"]:
                raise conflict(rt.plural, rt.group, name)
            if dry_run:
                return as_version(obj, rt)
            orphan = (options or {}).get("propagationPolicy") == "Orphan"
            return as_version(self.remove(rt, obj, orphan=orphan), rt)

    def remove(self, rt: ResourceType, obj: Json, orphan: bool = False) -> Json:
        """Delete now, or mark for deletion while finalizers remain."""
        meta = obj["metadata"]
        if orphan:
            kinds.orphan_dependents(self, meta["uid"])
        if meta.get("finalizers"):
            if "deletionTimestamp" in meta:
                return obj
            new = clone(obj)
            new["metadata"]["deletionTimestamp"] = now()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            return self._commit("MODIFIED", rt, new, obj)
        return self._commit("DELETED", rt, clone(obj), obj)

    def delete_many(
        self, rt: ResourceType, namespace: str | None, match: Matcher, dry_run: bool = False
    ) -> list[Json]:
        with self.lock:
            found, _ = self.select(rt, namespace, match)
            if dry_run:
                return found
            return [as_version(self.remove(rt, self._stored(rt, o)), rt) for o in found]

    def _stored(self, rt: ResourceType, obj: Json) -> Json:
        found = self.find(rt.key, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        assert found is not None
        return found

    def iter_all(self) -> Iterable[tuple[Key, Json]]:
        with self.lock:
            return [(key, o) for key, bucket in self._objects.items() for o in bucket.values()]


def _rv_of(obj: Json) -> int:
    return int(obj["metadata"]["resourceVersion"])


def _name_of(obj: Json) -> Name:
    return (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])


def _same(old: Json, new: Json) -> bool:
    """A write that changes nothing is not a write: no new resourceVersion, no event."""
    strip = {**new, "metadata": {**new["metadata"], "resourceVersion": None}}
    return strip == {**old, "metadata": {**old["metadata"], "resourceVersion": None}}
