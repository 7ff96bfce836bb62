"""Keeping a local copy of a kind's objects: list, then watch from the list's resourceVersion.

A `Reflector` runs on a thread of its own. It lists the objects (the `Cache` is replaced
with them, so deletions missed while away are noticed), then watches from the list's
resourceVersion with bookmarks (which move the resourceVersion on without an object). A watch
that ends (the server's timeout) is started again from the last version seen; 410 Gone (the
version is too old) means list again; any other error waits with exponential backoff (and
jitter) before trying again. Listeners of the `Cache` hear (type, old, new) for every change.

A reflector of an *optional* kind (``unserved_retry``: the mesh's route objects, whose CRDs
a cluster may not have) takes a 404 from its list as "not installed" and a 403 as "not
allowed": it says so once (a 403 with the RBAC fix), is not synced, and looks again every
``unserved_retry`` seconds.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass

from canary.controller.kinds import Kind
from canary.controller.kube import GoneError, Json, Kube, KubeError

log = logging.getLogger("canary.controller.watches")

Key = tuple[str, str]
"""(namespace, name); namespace is "" for cluster-scoped objects."""
Listener = Callable[[str, Json | None, Json | None], None]
"""(event type, the object before, the object after): ADDED has no before, DELETED no after."""


def key_of(obj: Json) -> Key:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def metadata_only(obj: Json) -> Json:
    """The object without its contents (a ConfigMap's or a Secret's data are never kept), nor
    its managedFields."""
    kept = {k: v for k, v in obj.items() if k in ("apiVersion", "kind", "metadata")}
    return without_managed_fields(kept)


def without_managed_fields(obj: Json) -> Json:
    """The object without ``metadata.managedFields`` (who set which field: server-side apply's
    bookkeeping, often a third of an object, which the controller never reads; an update that
    leaves it out keeps the server's, as the API's conventions say)."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or "managedFields" not in meta:
        return obj
    kept = dict(obj)
    kept["metadata"] = {k: v for k, v in meta.items() if k != "managedFields"}
    return kept


def version_of(obj: Json) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


class Cache:
    """The objects of one kind as last seen, fed by reflectors; thread-safe."""

    def __init__(self, kind: Kind, keep: Callable[[Json], Json] | None = None) -> None:
        """``keep``: what of each object is kept (e.g. only the metadata of Secrets); never
        its managedFields."""
        self.kind = kind
        self._keep = keep or without_managed_fields
        self._lock = threading.Lock()
        self._objects: dict[Key, Json] = {}
        self._listeners: list[Listener] = []

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def get(self, namespace: str, name: str) -> Json | None:
        with self._lock:
            return self._objects.get((namespace, name))

    def items(self, namespace: str | None = None) -> list[Json]:
        with self._lock:
            return [o for (ns, _), o in self._objects.items() if namespace in (None, ns)]

    def keys(self) -> list[Key]:
        with self._lock:
            return list(self._objects)

    def replace(self, objects: list[Json], namespace: str | None) -> None:
        """A fresh list of ``namespace`` (all when None): what vanished is DELETED."""
        fresh = {key_of(o): self._keep(o) for o in objects}
        changes: list[tuple[str, Json | None, Json | None]] = []
        with self._lock:
            for key, old in list(self._objects.items()):
                if namespace in (None, key[0]) and key not in fresh:
                    del self._objects[key]
                    changes.append(("DELETED", old, None))
            for key, obj in fresh.items():
                before = self._objects.get(key)
                self._objects[key] = obj
                if before is None:
                    changes.append(("ADDED", None, obj))
                elif version_of(before) != version_of(obj):
                    changes.append(("MODIFIED", before, obj))
        for change in changes:
            self._tell(*change)

    def apply(self, event_type: str, obj: Json) -> None:
        obj = self._keep(obj)
        key = key_of(obj)
        with self._lock:
            old = self._objects.get(key)
            if event_type == "DELETED":
                self._objects.pop(key, None)
            else:
                self._objects[key] = obj
        if event_type == "DELETED":
            self._tell("DELETED", old, None)
        else:
            self._tell("ADDED" if old is None else "MODIFIED", old, obj)

    def _tell(self, event_type: str, old: Json | None, new: Json | None) -> None:
        for listener in self._listeners:
            try:
                listener(event_type, old, new)
            except Exception:
                log.exception("a listener of %s failed", self.kind)


@dataclass
class Backoff:
    """Exponential backoff with full jitter: base * 2^n, at most ``cap`` seconds."""

    base: float = 0.5
    cap: float = 30.0
    failures: int = 0

    def next(self) -> float:
        delay = min(self.cap, self.base * 2**self.failures)
        self.failures += 1
        return random.uniform(delay / 2, delay)

    def reset(self) -> None:
        self.failures = 0


class Reflector:
    """List then watch one kind in one namespace (all when None) into a Cache, on a thread."""

    def __init__(
        self,
        kube: Kube,
        cache: Cache,
        namespace: str | None,
        *,
        timeout_seconds: int = 300,
        backoff: Backoff | None = None,
        on_relist: Callable[[], None] | None = None,
        label_selector: str | None = None,
        unserved_retry: float | None = None,
    ) -> None:
        """``label_selector``: only the objects it selects; ``unserved_retry``: an optional
        kind (see the module)."""
        self.kube = kube
        self.cache = cache
        self.kind = cache.kind
        self.namespace = namespace
        self.timeout_seconds = timeout_seconds
        self.backoff = backoff or Backoff()
        self.on_relist = on_relist
        self.label_selector = label_selector
        self.unserved_retry = unserved_retry
        self.unserved: int | None = None
        """The status (404, 403) the last list of an optional kind was refused with."""
        self.synced = threading.Event()
        self.lists = 0
        self.errors = 0
        self.resource_version = ""
        self._stop = threading.Event()
        where = namespace or "all namespaces"
        self._thread = threading.Thread(
            target=self._run, name=f"watch {self.kind.plural} in {where}", daemon=True
        )

    def start(self) -> Reflector:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self.signal_stop()
        self._thread.join(timeout)

    def signal_stop(self) -> None:
        """Ask the thread to end (at the watch's next event or bookmark) without waiting."""
        self._stop.set()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if not self.resource_version:
                    self._list()
                self._watch()
                self.backoff.reset()
            except GoneError:
                log.info(
                    "watch of %s: resourceVersion %s is gone; listing again",
                    self.kind,
                    self.resource_version,
                )
                self.resource_version = ""
            except KubeError as exc:
                if not self._unserved(exc):
                    self._failed(exc)
                else:
                    self.resource_version = ""  # list again when it is served or allowed
            except Exception as exc:
                self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        self.errors += 1
        delay = self.backoff.next()
        log.warning("watch of %s failed (%s); again in %.1fs", self.kind, exc, delay)
        self._stop.wait(delay)

    def _unserved(self, exc: KubeError) -> bool:
        """A list of an optional kind refused as not served (404) or not allowed (403): said
        once, looked at again every ``unserved_retry`` seconds."""
        if self.unserved_retry is None or exc.status not in (403, 404):
            return False
        if self.unserved != exc.status:
            where = self.namespace or "all namespaces"
            if exc.status == 404:
                log.info(
                    "%s is not served (its CRD is not installed): not watched; looking again "
                    "every %.0fs",
                    self.kind,
                    self.unserved_retry,
                )
            else:
                log.warning(
                    "may not list and watch %s in %s (%s): a hand edit of one is put back only "
                    "at the route resync; grant 'list' and 'watch' on %s (docs/controller.md, "
                    "RBAC)",
                    self.kind,
                    where,
                    exc.message,
                    self.kind.plural,
                )
        self.unserved = exc.status
        self._stop.wait(self.unserved_retry)
        return True

    def _list(self) -> None:
        listed = self.kube.list(self.kind, self.namespace, label_selector=self.label_selector)
        self.unserved = None
        self.lists += 1
        if self.lists > 1 and self.on_relist is not None:
            self.on_relist()
        self.cache.replace(listed.items, self.namespace)
        self.resource_version = listed.resource_version
        self.synced.set()

    def _watch(self) -> None:
        events = self.kube.watch(
            self.kind,
            self.namespace,
            self.resource_version,
            self.timeout_seconds,
            stop=self._stop.is_set,
            label_selector=self.label_selector,
        )
        for event in events:
            version = version_of(event.object)
            if event.type != "BOOKMARK":
                self.cache.apply(event.type, event.object)
            if version:
                self.resource_version = version
