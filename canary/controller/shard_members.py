"""The other members of a sharded group, as one replica sees them (`canary.controller.shards`).

Each replica holds a *member* Lease (`canary.controller.shard_math.member_lease_name`); the
live members are those whose member Lease has been renewed within its duration, timed on this
replica's clock like any Lease it might take (`canary.controller.leader.LeaseHolder`). A member
Lease not renewed for ``FORGET_MEMBER_AFTER`` lease durations is deleted: the Pods of a
Deployment get new names at every restart, and their member Leases would pile up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from canary.controller.kinds import LEASE
from canary.controller.kube import Json, Kube, KubeError, NotFoundError
from canary.controller.leader import LeaseHolder, LeaseSettings
from canary.controller.lease_watch import LeaseSightings
from canary.controller.shard_math import role_of

log = logging.getLogger("canary.controller.shards")

FORGET_MEMBER_AFTER = 40
"""Lease durations after which a dead member's Lease is deleted (Pods of a Deployment get new
names at every restart: their member Leases would pile up)."""


class Members:
    """An observer per other member's Lease: times its expiry, never takes it."""

    def __init__(
        self,
        kube: Kube,
        settings: LeaseSettings,
        own: str,
        sightings: LeaseSightings,
        *,
        monotonic: Callable[[], float],
        now: Callable[[], datetime],
    ) -> None:
        """``own``: the name of this replica's member Lease."""
        self.kube = kube
        self.settings = settings
        self.own = own
        self.sightings = sightings
        self._monotonic = monotonic
        self._now = now
        self._observers: dict[str, LeaseHolder] = {}

    def live(self, leases: dict[str, Json], read_at: float) -> int:
        """How many other members renewed their Lease within its duration; a member Lease not
        renewed for long is deleted."""
        live = 0
        seen: set[str] = set()
        for name, lease in leases.items():
            if role_of(lease) != "member" or name == self.own:
                continue
            seen.add(name)
            observer = self._observer(name)
            seen_at = self.sightings.seen_at(lease)
            if not observer.available(lease, read_at, seen_at):
                live += 1
            elif (
                observer.unheld_for(lease, read_at, seen_at)
                > FORGET_MEMBER_AFTER * self.settings.lease_duration
            ):
                self._forget(name)
        for gone in set(self._observers) - seen:
            del self._observers[gone]
        return live

    def observed(self) -> list[LeaseHolder]:
        """The observers of the other members' Leases (their expiries raise the fair share)."""
        return list(self._observers.values())

    def _observer(self, name: str) -> LeaseHolder:
        observer = self._observers.get(name)
        if observer is None:
            observer = LeaseHolder(
                self.kube,
                replace(self.settings, name=name, identity=f"{self.settings.identity} (observing)"),
                monotonic=self._monotonic,
                now=self._now,
            )
            self._observers[name] = observer
        return observer

    def _forget(self, name: str) -> None:
        try:
            self.kube.delete(LEASE, self.settings.namespace, name)
            log.info("deleted the member Lease %s (not renewed for long)", name)
        except NotFoundError:
            pass
        except (KubeError, OSError) as exc:
            log.warning("could not delete the member Lease %s: %s", name, exc)
