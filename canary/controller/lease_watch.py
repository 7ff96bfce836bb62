"""When this replica first saw each Lease record: a watch on the Leases' namespace.

A contender times a Lease held by another from when it first saw the holder's last renewal
(`canary.controller.leader.LeaseHolder.available`): the shards (`canary.controller.shards`) and
the single leader of ``--shards 1`` (`canary.controller.leader.LeaderElector`) alike. A replica
that only reads the Leases once a retry period sees a renewal up to a retry period late, so
after a holder dies its Leases were taken up to ``lease duration + retry period`` after its
last renewal (docs/benchmarks.md, "scale-sharded"). A watch delivers each renewal within
milliseconds: with `LeaseSightings.seen_at` the takeover comes a lease duration after the
renewal, so within the lease duration of the holder's death; a Lease given up (no holder) or
deleted wakes the contender at once (``on_free``). The moment is when the watch event arrived,
which is after the write it reports: the lease is never cut short. A watch that is down (no
RBAC ``watch`` on leases, the API server restarting) only makes the sightings late or absent,
and the rounds' own reads time the Leases as before.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from canary.controller.kinds import LEASE
from canary.controller.kube import Json, Kube
from canary.controller.watches import Cache, Reflector, version_of

WATCH_TIMEOUT = 300


class LeaseSightings:
    """The first time (monotonic) each Lease record in ``namespace`` was seen; thread-safe.

    ``on_free`` is called when a Lease is released (no holder) or deleted, so a contender
    need not wait for its next round."""

    def __init__(
        self,
        kube: Kube,
        namespace: str,
        *,
        on_free: Callable[[], None] = lambda: None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._monotonic = monotonic
        self._on_free = on_free
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[tuple[object, ...], float]] = {}
        self.cache = Cache(LEASE)
        self.cache.listen(self._changed)
        self.reflector = Reflector(kube, self.cache, namespace, timeout_seconds=WATCH_TIMEOUT)

    def start(self) -> LeaseSightings:
        self.reflector.start()
        return self

    def stop(self) -> None:
        self.reflector.stop()

    def seen_at(self, lease: Json | None) -> float | None:
        """When this exact record of ``lease`` (same resourceVersion) was first seen."""
        if lease is None:
            return None
        name = str((lease.get("metadata") or {}).get("name") or "")
        with self._lock:
            seen = self._seen.get(name)
        if seen is None or seen[0] != lease_record(lease):
            return None
        return seen[1]

    def note(self, lease: Json) -> None:
        """``lease`` was seen now (a watch event, or a list)."""
        name = str((lease.get("metadata") or {}).get("name") or "")
        record = lease_record(lease)
        with self._lock:
            seen = self._seen.get(name)
            if seen is None or seen[0] != record:
                self._seen[name] = (record, self._monotonic())

    def _changed(self, event_type: str, old: Json | None, new: Json | None) -> None:
        if new is not None:
            self.note(new)
        if event_type == "DELETED" and old is not None:
            with self._lock:
                self._seen.pop(str((old.get("metadata") or {}).get("name") or ""), None)
        if new is None or not (new.get("spec") or {}).get("holderIdentity"):
            self._on_free()


def lease_record(lease: Json) -> tuple[object, ...]:
    """What tells one write of a Lease from another: holder, renewTime, transitions and
    resourceVersion."""
    spec = lease.get("spec") or {}
    holder = spec.get("holderIdentity") or ""
    return holder, spec.get("renewTime"), spec.get("leaseTransitions"), version_of(lease)
