"""Reads from the watch caches, never older than the controller's own writes.

A tick reads its Rollout and the two Deployments (target and primary) at every tick; the
controller watches all three kinds anyway, so `CachedKube.get` answers those reads from the
caches instead of the API server. The copies of ConfigMaps and Secrets a promotion may find
stale (`list_labelled`: by the ``canary.dev/rollout`` label, metadata only) come from the
metadata-only caches of those kinds. Everything else (the ConfigMaps and Secrets themselves,
Services, the route objects) is read from the API server as before.

A cache lags the API server by the watch's latency. Lagging behind *others'* changes is
harmless: the tick acts as if it had run a moment earlier, and each such change wakes the
Rollout again when the watch delivers it (docs/controller.md, "Early ticks"). Lagging behind
the controller's *own* writes is not: a tick that read the status before the previous tick's
status write would judge that step again, put the previous route back, or promote twice. So
every write of a cached kind leaves a *fence*, the resourceVersion the API server answered
with, and an object with a fence is read from the API server until the cache shows that
version (or, after a relist skipped it, shows what the API server shows). Writes are
conditional on the resourceVersion they read (the status write, the commands patch, every
replace), so a stale copy that got through anyway costs a 409 and the usual re-read; a tick
that failed reads everything from the API server the next time (`Kube.fresh_reads`), and so
does the first tick of each Rollout after the controller starts or gains the Lease.

Its writes of route objects (apply, delete) are told to the route watch's `Echoes`, so that
their echoes in that watch wake nobody (`canary.controller.route_watch`).
"""

from __future__ import annotations

import copy
import functools
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext

import orjson

from canary.controller.kinds import Kind, kind_of
from canary.controller.kube import Json, Kube
from canary.controller.route_watch import Echoes
from canary.controller.watches import Cache, version_of

log = logging.getLogger("canary.controller.cached")

ObjectKey = tuple[str, str, str]
"""(kind, namespace, name)."""
DELETED = "<deleted>"
"""The fence of an object the controller deleted: read it from the API server until the
cache has dropped it too."""
RECENTLY_DELETED = 4096
"""The uids of the last deletions the caches showed, remembered so that a write's answer
recorded after its object's deletion was seen leaves no fence (`CachedKube._record`)."""


class CachedKube(Kube):
    """A `Kube` whose `get` of the watched kinds reads the caches (see the module)."""

    def __init__(
        self,
        kube: Kube,
        caches: Mapping[str, Cache],
        synced: Callable[[Kind, str], bool],
        echoes: Echoes | None = None,
        labelled: Mapping[str, Cache] | None = None,
    ) -> None:
        """``caches``: by kind, those `get` may answer from; ``synced(kind, namespace)``: the
        cache holds a full list of that namespace (else `get` asks the API server);
        ``echoes``: told of each write of a route object; ``labelled``: by kind, the
        (metadata-only) caches `list_labelled` may answer from."""
        super().__init__(kube.api_client, timeout=kube.timeout, guard=kube.guard)
        self.caches = dict(caches)
        self.labelled = dict(labelled or {})
        self.synced = synced
        self.echoes = echoes
        self._lock = threading.Lock()
        self._fences: dict[ObjectKey, tuple[str, str]] = {}
        """The version (and uid) of the object each of this controller's writes answered
        with, until the cache shows it, or shows that object deleted."""
        self._deleted: OrderedDict[str, None] = OrderedDict()
        """The uids of the last `RECENTLY_DELETED` deletions the caches showed."""
        self._written: dict[ObjectKey, str] = {}
        """The resourceVersion of each cached object's last write by this controller."""
        self._local = threading.local()
        for kind, cache in self.caches.items():
            cache.listen(functools.partial(self._seen, kind))

    # --- reads ---------------------------------------------------------------------------------

    def get(self, kind: Kind, namespace: str, name: str) -> Json | None:
        cache = self.caches.get(kind.kind)
        if cache is None or self._fresh_here() or not self.synced(kind, namespace):
            return self.read(kind, namespace, name)
        key = (kind.kind, namespace, name)
        with self._lock:
            fenced = key in self._fences
        if fenced:
            return self.read(kind, namespace, name)
        found = cache.get(namespace, name)
        # a copy: the tick may change what it read (the cache's objects are shared)
        return _copy(found) if found is not None else None

    def holds(self, kind: Kind, namespace: str, name: str) -> bool | None:
        """Whether the (synced) cache holds the object now, without copying it; None when
        there is no cache of ``kind`` for ``namespace`` to ask. A tick that ran while its
        Rollout was deleted asks, once it has recorded what it did: False means the
        deletion's watch event has been handled (and the Rollout forgotten) meanwhile."""
        cache = self.caches.get(kind.kind)
        if cache is None or not self.synced(kind, namespace):
            return None
        return cache.get(namespace, name) is not None

    def list_labelled(
        self, kind: Kind, namespace: str, labels: Mapping[str, str]
    ) -> Sequence[Json]:
        cache = self.labelled.get(kind.kind)
        if cache is None or self._fresh_here() or not self.synced(kind, namespace):
            return super().list_labelled(kind, namespace, labels)
        return [
            _copy(obj)
            for obj in cache.items(namespace)
            if _carries((obj.get("metadata") or {}).get("labels") or {}, labels)
        ]

    def read(self, kind: Kind, namespace: str, name: str) -> Json | None:
        found = super().read(kind, namespace, name)
        cache = self.caches.get(kind.kind)
        if cache is not None:
            key = (kind.kind, namespace, name)
            cached = cache.get(namespace, name)
            with self._lock:
                # the cache shows what the API server shows now: it is past any write of ours
                if key in self._fences and _version(cached) == _version(found):
                    del self._fences[key]
        return found

    def _fresh_here(self) -> bool:
        depth: int = getattr(self._local, "fresh", 0)
        return depth > 0

    @contextmanager
    def fresh_reads(self) -> Iterator[None]:
        depth: int = getattr(self._local, "fresh", 0)
        self._local.fresh = depth + 1
        try:
            yield
        finally:
            self._local.fresh = depth

    def wrote(self, kind: str, namespace: str, name: str, version: str) -> bool:
        """``version`` of the object is the answer to this controller's last write of it:
        a watch event carrying it is the echo of that write."""
        with self._lock:
            return bool(version) and self._written.get((kind, namespace, name)) == version

    def fenced(self) -> int:
        """How many objects are read from the API server until the caches catch up."""
        with self._lock:
            return len(self._fences)

    # --- writes leave fences -------------------------------------------------------------------

    def create(self, obj: Json) -> Json:
        return self._fence(obj, super().create(obj))

    def replace(self, obj: Json) -> Json:
        return self._fence(obj, super().replace(obj))

    def replace_status(self, obj: Json) -> Json:
        return self._fence(obj, super().replace_status(obj))

    def patch(self, kind: Kind, namespace: str, name: str, body: Json) -> Json:
        stored = super().patch(kind, namespace, name, body)
        self._record(kind.kind, namespace, name, version_of(stored), _uid(stored))
        return stored

    def apply(self, obj: Json) -> Json:
        meta = obj.get("metadata") or {}
        kind = kind_of(str(obj.get("apiVersion")), str(obj.get("kind")))
        with self._echo(kind, str(meta.get("namespace") or ""), str(meta.get("name"))) as answer:
            stored = super().apply(obj)
            answer(version_of(stored))
        return self._fence(obj, stored)

    def scale(self, kind: Kind, namespace: str, name: str, replicas: int) -> Json:
        # the Scale's resourceVersion is the Deployment's
        stored = super().scale(kind, namespace, name, replicas)
        self._record(kind.kind, namespace, name, version_of(stored), _uid(stored))
        return stored

    def delete(self, kind: Kind, namespace: str, name: str) -> bool:
        with self._echo(kind, namespace, name) as answer:
            try:
                deleted = super().deleted(kind, namespace, name)
            finally:
                self._record(kind.kind, namespace, name, DELETED)
            if deleted is not None:  # (one already gone makes no event)
                answer(version_of(deleted))
            return deleted is not None

    def _echo(
        self, kind: Kind, namespace: str, name: str
    ) -> AbstractContextManager[Callable[[str], None]]:
        """Around a write: the route watch's `Echoes` learn its answer (other kinds: nothing)."""
        if self.echoes is None or not self.echoes.tracks(kind):
            return nullcontext(lambda _: None)
        return self.echoes.writing((str(kind), namespace, name))

    def _fence(self, sent: Json, stored: Json) -> Json:
        meta = sent.get("metadata") or {}
        kind = str(sent.get("kind"))
        namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        self._record(kind, namespace, name, version_of(stored), _uid(stored))
        return stored

    def _record(self, kind: str, namespace: str, name: str, version: str, uid: str = "") -> None:
        cache = self.caches.get(kind)
        if cache is None:
            return
        key = (kind, namespace, name)
        if not version:  # an answer without a version: read it until the cache agrees
            version = DELETED if cache.get(namespace, name) is None else "<unknown>"
        with self._lock:
            if version == DELETED or (uid and uid in self._deleted):
                # (the second: the object's deletion was seen before this answer was recorded:
                # the cache is past the write, and no event will show its version again)
                self._written.pop(key, None)
                version = DELETED
            else:
                self._written[key] = version
            if _version(cache.get(namespace, name)) == version:
                self._fences.pop(key, None)  # the watch was faster than the answer
            else:
                self._fences[key] = (version, uid)

    def _seen(self, kind: str, event: str, old: Json | None, new: Json | None) -> None:
        """A cache's change: the fence of an object whose version (or deletion) it now shows
        is lifted; the deletion of the object a fence was left by lifts it too (a relist may
        have skipped the version: a fence no event can lift would stay for good)."""
        meta = (new or old or {}).get("metadata") or {}
        key = (kind, str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        shown = _version(new if event != "DELETED" else None)
        uid = str(meta.get("uid") or "")
        with self._lock:
            if event == "DELETED":
                self._written.pop(key, None)
                if uid:
                    self._deleted[uid] = None
                    while len(self._deleted) > RECENTLY_DELETED:
                        self._deleted.popitem(last=False)
            fence = self._fences.get(key)
            if fence is not None and (
                fence[0] == shown or (event == "DELETED" and uid and fence[1] == uid)
            ):
                del self._fences[key]


def _carries(found: Mapping[str, str], wanted: Mapping[str, str]) -> bool:
    return all(found.get(key) == value for key, value in wanted.items())


def _copy(obj: Json) -> Json:
    """A deep copy of a JSON object: through orjson, several times faster than copy.deepcopy
    for an object as the API server sent it; kept only when it equals the original (a tuple
    would come back a list, a NaN as null), else, and for what orjson cannot encode, deepcopy."""
    try:
        copied: Json = orjson.loads(orjson.dumps(obj))
    except orjson.JSONEncodeError:
        return copy.deepcopy(obj)
    return copied if copied == obj else copy.deepcopy(obj)


def _uid(obj: Json) -> str:
    return str((obj.get("metadata") or {}).get("uid") or "")


def _version(obj: Json | None) -> str:
    return DELETED if obj is None else version_of(obj)
