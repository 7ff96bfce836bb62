"""What the reconciler remembers of each Rollout's route objects between its ticks.

By Rollout: the last resourceVersion of each route object (to tell a repair from a no-op), each
object as last applied and as the API server answered (`canary.controller.routing.MeshRouter`),
and when every one of them is applied again (a `ServiceSync`: when the spec's routing changed,
after a failed tick, after this replica (again) leads, and every resync besides). Between,
only the objects whose content changed are sent.
"""

from __future__ import annotations

import threading

from canary.controller.kube import Json, Kube
from canary.controller.routing import MeshRouter, route_signature
from canary.controller.workloads import ServiceSync
from canary.model.rollout import Rollout

ObjectKey = tuple[str, str, str, str]


class RouteMemory:
    """The route objects each Rollout's ticks applied; thread-safe (ticks of different
    Rollouts run at once)."""

    def __init__(self, resyncs: ServiceSync) -> None:
        self.resyncs = resyncs
        self._lock = threading.Lock()
        self._versions: dict[str, dict[ObjectKey, str]] = {}
        self._held: dict[str, dict[ObjectKey, tuple[Json, Json]]] = {}

    @property
    def resync(self) -> float:
        """Seconds between applies of a Rollout's every route object."""
        return self.resyncs.resync

    def due(self, rollout: Rollout) -> bool:
        """Every route object of ``rollout`` is to be applied at this tick."""
        return self.resyncs.due(rollout.key, route_signature(rollout))

    def router(self, kube: Kube, rollout: Rollout, trust: bool) -> MeshRouter:
        """The Rollout's route objects for this tick, with what earlier ticks applied."""
        with self._lock:
            versions = self._versions.setdefault(rollout.key, {})
            held = self._held.setdefault(rollout.key, {})
        return MeshRouter(kube, rollout, versions, held, trust=trust)

    def applied_all(self, rollout: Rollout) -> None:
        """Every route object of ``rollout`` was applied: trusted until the next resync."""
        self.resyncs.done(rollout.key, route_signature(rollout))

    def distrust(self, key: str | None = None) -> None:
        """The next tick of ``key`` (of every Rollout when None) applies every route object."""
        self.resyncs.forget(key)

    def forget(self, key: str) -> None:
        """The Rollout ``key`` is gone, or another replica acted for it."""
        with self._lock:
            self._versions.pop(key, None)
            self._held.pop(key, None)
        self.resyncs.forget(key)
