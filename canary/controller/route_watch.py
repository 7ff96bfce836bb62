"""A hand edit of a route object put back within a tick, not at the route resync.

Between two resyncs (`--route-resync`, 5 minutes) a tick sends only the route objects whose
desired content changed (`canary.controller.routing`), so without this a weight set by hand in
a VirtualService would stand until the resync. The controller watches the kinds of route
object it writes — VirtualService and DestinationRule (Istio), HTTPRoute and GRPCRoute
(Gateway API, Linkerd), TrafficSplit (SMI) — selected on the server by the label
``canary.dev/rollout`` that canary puts on each (its value names the Rollout, in the object's
namespace), and keeps only their names, versions and that label.

A change of one (a new resourceVersion, or its deletion) that is not the *echo* of canary's
own write (`Echoes`: the resourceVersion the API server answered that write with) marks its
Rollout (`RouteDrift`) and wakes it early: that tick applies every route object of the
Rollout, whatever the resync, so the edit is undone within a tick of the watch delivering it.
canary's own writes wake nobody (an apply that changes nothing makes no event at all). An
event that arrives while canary's write of the same object is still unanswered waits for the
answer: it is an echo if it carries the answered version, a change otherwise.

A kind whose CRD is not installed (404) is not watched, and looked for again every
``UNSERVED_RETRY`` seconds; one the controller may not list (403) is said once, with the fix.
Either way the resync remains the backstop. Events of a watch's first list wake nobody unless
canary wrote the object since it started and the list shows another version (the first tick
of every Rollout after a start applies all its route objects anyway). Only a replica that acts
for the Rollout (the leader, or the holder of its shard) marks and wakes it.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from canary.controller.kinds import Kind, kind_of
from canary.controller.kube import Json, Kube
from canary.controller.watches import Cache, Reflector, version_of
from canary.traffic.httproute import API_VERSION as GATEWAY_API_VERSION
from canary.traffic.istio import API_VERSION as ISTIO_API_VERSION
from canary.traffic.linkerd import SMI_API_VERSION
from canary.traffic.objects import ROLLOUT_LABEL

log = logging.getLogger("canary.controller.route_watch")

KINDS_BY_API: dict[str, tuple[Kind, ...]] = {
    "istio": (
        kind_of(ISTIO_API_VERSION, "VirtualService"),
        kind_of(ISTIO_API_VERSION, "DestinationRule"),
    ),
    "gateway-api": (
        kind_of(GATEWAY_API_VERSION, "HTTPRoute"),
        kind_of(GATEWAY_API_VERSION, "GRPCRoute"),
    ),
    "smi": (kind_of(SMI_API_VERSION, "TrafficSplit"),),
}
"""The kinds of route object the providers write (`canary.traffic.mesh.desired_objects`), by
the API they belong to (Linkerd writes a Gateway API HTTPRoute, or with SMI a TrafficSplit):
the values of ``--route-watch``."""
ROUTE_APIS = tuple(KINDS_BY_API)
ROUTE_KINDS: tuple[Kind, ...] = tuple(kind for kinds in KINDS_BY_API.values() for kind in kinds)
ROUTE_KIND_NAMES = frozenset(str(kind) for kind in ROUTE_KINDS)
UNSERVED_RETRY = 300.0
"""Seconds between looks for a route kind the cluster does not serve (or the controller may
not list)."""
RECENT_ANSWERS = 4
"""The versions of canary's last writes of an object that are known as its echoes."""

ObjectKey = tuple[str, str, str]
"""(kind with its group, as `Kind.__str__` spells it, namespace, name)."""
Verdict = Literal["echo", "waiting", "change"]


@dataclass(frozen=True)
class Verdicts:
    """What to do with an event found to be an echo, or a change by someone else."""

    echo: Callable[[], None]
    change: Callable[[], None]


class Echoes:
    """canary's own writes of route objects: the resourceVersions the last few were answered
    with, and the writes still unanswered; thread-safe.

    A version canary was answered with is never one of someone else's writes (the API server
    gives each write, deletions included, a version of its own), so an event carrying one is
    an echo whatever the watch's lag; several are kept so that the echo of a write still
    counts as one after the next write was answered. An event whose version is not known (a
    deletion noticed by a relist) is a change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._written: dict[ObjectKey, tuple[str, ...]] = {}
        self._unanswered: dict[ObjectKey, int] = {}
        self._waiting: dict[ObjectKey, list[tuple[str, Verdicts]]] = {}
        """Events that came while a write of the object was unanswered."""

    @staticmethod
    def tracks(kind: Kind) -> bool:
        return str(kind) in ROUTE_KIND_NAMES

    @contextmanager
    def writing(self, key: ObjectKey) -> Iterator[Callable[[str], None]]:
        """Around one write of ``key``: call what it yields with the version answered. A
        write that fails records nothing, and the events that waited for it are changes."""
        with self._lock:
            self._unanswered[key] = self._unanswered.get(key, 0) + 1
        answers: list[str] = []
        try:
            yield answers.append
        finally:
            with self._lock:
                left = self._unanswered.pop(key) - 1
                if left:
                    self._unanswered[key] = left
                if answers and answers[-1]:
                    recent = (*self._written.get(key, ()), answers[-1])
                    self._written[key] = recent[-RECENT_ANSWERS:]
                waited = [] if left else self._waiting.pop(key, [])
                verdicts = [(told, self._echo(key, version)) for version, told in waited]
            for told, echo in verdicts:
                (told.echo if echo else told.change)()

    def knows(self, key: ObjectKey) -> bool:
        """canary wrote ``key`` since it started."""
        with self._lock:
            return key in self._written

    def seen(self, key: ObjectKey, version: str, told: Verdicts, gone: bool = False) -> Verdict:
        """The watch shows ``key`` at ``version`` (``gone``: deleted): the echo of canary's
        write (``told.echo`` is called), a change by someone else (``told.change``), or
        ``waiting`` for the answer of a write under way (which calls either then)."""
        with self._lock:
            if self._echo(key, version):
                verdict: Verdict = "echo"
            elif key in self._unanswered:
                self._waiting.setdefault(key, []).append((version, told))
                return "waiting"
            else:
                verdict = "change"
            if gone:
                self._written.pop(key, None)  # nothing of it to remember
        (told.echo if verdict == "echo" else told.change)()
        return verdict

    def _echo(self, key: ObjectKey, version: str) -> bool:
        return bool(version) and version in self._written.get(key, ())


class RouteCache(Cache):
    """A route kind's cache (`essentials` only) that also keeps the version a deletion came with:
    the listeners of a DELETED hear the copy held (its labels name the Rollout), and read
    `deleted_at` (the deletion's version; empty when a relist found the object gone). Only
    its reflector's thread changes it."""

    def __init__(self, kind: Kind) -> None:
        super().__init__(kind, essentials)
        self.deleted_at = ""

    def apply(self, event_type: str, obj: Json) -> None:
        self.deleted_at = version_of(obj) if event_type == "DELETED" else ""
        super().apply(event_type, obj)

    def replace(self, objects: list[Json], namespace: str | None) -> None:
        self.deleted_at = ""
        super().replace(objects, namespace)


class RouteDrift:
    """Rollouts whose route objects someone else changed since their last full apply: the
    next tick of each takes its mark (`take`) and applies every route object; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._marked: set[str] = set()

    def mark(self, key: str) -> None:
        with self._lock:
            self._marked.add(key)

    def take(self, key: str) -> bool:
        """Whether ``key`` was marked; the mark is gone after this."""
        with self._lock:
            if key in self._marked:
                self._marked.discard(key)
                return True
            return False

    def forget(self, key: str | None = None) -> None:
        with self._lock:
            if key is None:
                self._marked.clear()
            else:
                self._marked.discard(key)


class RouteWatch:
    """Watches the route kinds (see the module) and wakes the Rollout of an object changed by
    someone else, marked for a full apply."""

    def __init__(
        self,
        kube: Kube,
        namespaces: list[str | None],
        apis: tuple[str, ...] = ROUTE_APIS,
        *,
        acts_for: Callable[[str], bool],
        wake: Callable[[str], None],
        timeout_seconds: int = 300,
        unserved_retry: float = UNSERVED_RETRY,
        counted: Callable[[str, str], None] = lambda kind, by: None,
    ) -> None:
        """``namespaces``: where (None: all); ``apis``: whose kinds (`KINDS_BY_API`);
        ``acts_for(rollout key)``: this replica acts for that Rollout (leads, or holds its
        shard); ``wake(rollout key)``: tick it early; ``counted(kind, by)``: a change seen,
        ``by`` "canary" (an echo) or "others" (of a Rollout this replica acts for)."""
        self.echoes = Echoes()
        self.drift = RouteDrift()
        self._acts_for = acts_for
        self._wake = wake
        self._counted = counted
        self.reflectors: list[Reflector] = []
        for kind in (kind for api in apis for kind in KINDS_BY_API[api]):
            for namespace in namespaces:
                reflector = Reflector(
                    kube,
                    RouteCache(kind),
                    namespace,
                    timeout_seconds=timeout_seconds,
                    label_selector=ROLLOUT_LABEL,
                    unserved_retry=unserved_retry,
                )
                reflector.cache.listen(functools.partial(self.changed, reflector))
                self.reflectors.append(reflector)

    def start(self) -> RouteWatch:
        for reflector in self.reflectors:
            reflector.start()
        return self

    def signal_stop(self) -> None:
        for reflector in self.reflectors:
            reflector.signal_stop()

    def stop(self) -> None:
        for reflector in self.reflectors:
            reflector.stop()

    def changed(self, reflector: Reflector, event: str, old: Json | None, new: Json | None) -> None:
        """A route object's change as its watch (or a list) delivered it."""
        obj = new if new is not None else old
        if obj is None:
            return  # the deletion of an object never seen
        meta = obj.get("metadata") or {}
        owner = rollout_of(new) or rollout_of(old)
        if not owner:
            return
        namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        key = (str(reflector.kind), namespace, name)
        if not reflector.synced.is_set() and not self.echoes.knows(key):
            return  # a first list: the first tick after a start applies everything anyway
        gone = event == "DELETED"
        cache = reflector.cache
        version = cache.deleted_at if gone and isinstance(cache, RouteCache) else ""
        rollout = f"{namespace}/{owner}"
        told = Verdicts(
            echo=functools.partial(self._counted, reflector.kind.kind, "canary"),
            change=functools.partial(self._drifted, rollout, reflector.kind, name, event),
        )
        self.echoes.seen(key, version if gone else version_of(obj), told, gone=gone)

    def _drifted(self, rollout: str, kind: Kind, name: str, event: str) -> None:
        if not self._acts_for(rollout):
            return  # (a standby, or another shard's holder: its writes are not this one's)
        self._counted(kind.kind, "others")
        what = "deleted" if event == "DELETED" else "changed"
        log.info("%s: %s %s %s by someone else: putting it back", rollout, kind.kind, name, what)
        self.drift.mark(rollout)
        self._wake(rollout)


def essentials(obj: Json) -> Json:
    """What the route watch keeps of an object: its name, namespace, version and Rollout (not
    its spec, nor its managedFields, which are most of its metadata)."""
    meta = obj.get("metadata") or {}
    kept = {k: meta[k] for k in ("name", "namespace", "resourceVersion") if k in meta}
    owner = rollout_of(obj)
    if owner:
        kept["labels"] = {ROLLOUT_LABEL: owner}
    return {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "metadata": kept}


def rollout_of(obj: Json | None) -> str:
    """The name of the Rollout a route object belongs to (its ``canary.dev/rollout`` label)."""
    labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
    return str(labels.get(ROLLOUT_LABEL) or "")
