"""Whether this replica acts, and for which Rollouts: the leader on a Lease
(`canary.controller.leader`), the holder of some shards (`--shards N`,
`canary.controller.shards`), or, without a Lease, always (run one replica only).

The controller's writes are guarded by `write_guard`: the leader's writes while it leads; a
sharded replica's only inside `acting(key)` (the tick of that Rollout) while its shard is held.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace

from canary.controller.kube import Kube
from canary.controller.leader import LeaderElector
from canary.controller.settings import ControllerSettings
from canary.controller.shards import ShardsChanged, ShardSet


class Leadership:
    """One of three modes, chosen by the settings: a Lease and ``shards`` above 1 (sharded), a
    Lease (a leader), no Lease (always leads)."""

    def __init__(
        self,
        kube: Kube,
        settings: ControllerSettings,
        *,
        on_lead: Callable[[], None],
        on_follow: Callable[[], None],
        on_reshard: ShardsChanged,
    ) -> None:
        self._on_lead = on_lead
        self._leading = threading.Event()
        self.elector: LeaderElector | None = None
        self.shards: ShardSet | None = None
        if settings.lease is not None and settings.shards > 1:
            lease = replace(settings.lease, identity=settings.identity)
            self.shards = ShardSet(kube, lease, settings.shards, on_change=on_reshard)
        elif settings.lease is not None:
            lease = replace(settings.lease, identity=settings.identity)
            self.elector = LeaderElector(kube, lease, on_started=on_lead, on_stopped=on_follow)

    def write_guard(self) -> Callable[[], bool]:
        """What allows a write at the moment it is made (`canary.controller.kube.Kube.guarded`)."""
        return self.shards.may_write if self.shards else self.is_leader

    def mark(self, leading: bool) -> None:
        """This replica leads (from the elector's callbacks, or at start without a Lease)."""
        if leading:
            self._leading.set()
        else:
            self._leading.clear()

    def is_leader(self) -> bool:
        """This replica acts: it leads, or (sharded) holds at least one shard."""
        if self.shards is not None:
            return self.shards.active()
        if self.elector is None:
            return self._leading.is_set()
        return self.elector.is_leader()

    def reported(self, key: str) -> bool:
        """Not sharded, or the shard of ``key`` was last reported held (`ShardSet.reported_key`)."""
        return self.shards is None or self.shards.reported_key(key)

    def acting(self, key: str) -> AbstractContextManager[None]:
        """The tick of Rollout ``key`` runs in here (`ShardSet.acting`)."""
        return self.shards.acting(key) if self.shards is not None else nullcontext()

    def start(self) -> None:
        if self.elector is not None:
            self.elector.start()
        elif self.shards is not None:
            self.shards.start()
        else:
            self._on_lead()

    def stop(self, release_lease: bool) -> None:
        if self.elector is not None:
            self.elector.stop(release=release_lease)
        if self.shards is not None:
            self.shards.stop(release=release_lease)

    def stopped(self) -> str:
        """Why this replica can no longer gain or keep its Leases (a thread died); "" if not."""
        if self.elector is not None and not self.elector.alive:
            return "leader election stopped"
        if self.shards is not None and not self.shards.alive:
            return "the shards' leases stopped"
        return ""
