"""Sharding: N active replicas, each acting on the Rollouts of the shards whose Leases it holds.

A Rollout belongs to shard ``shard_of(namespace, name, shards)``: SHA-256 of
``namespace/name`` modulo the number of shards, the same on every replica and in every run
(Python's ``hash`` is salted per process). Each shard ``i`` is guarded by its own Lease
``<lease-name>-shard-<i>``, held by the rules of `canary.controller.leader` (`LeaseHolder`):
a holder that has not renewed for ``renew_deadline`` stops acting at once, a taker waits the
holder's lease duration from when it last saw the record change, every write carries the
Lease's resourceVersion. Each replica also holds a *member* Lease,
``<lease-name>-member-<digest of its identity>``: the live members are those whose member
Lease has been renewed within its duration, and a replica takes at most its fair share,
``ceil(shards / live members)``, shedding the shards above it (they are released, for a
replica below its share to take) when others join. A shard free for longer than one more lease
duration is taken whatever the share, so none is left orphaned while the members' views of who
is alive disagree.

**The group Lease.** The sharded replicas also hold the plain Lease ``<lease-name>`` together,
under the identity ``shards:<N>``: each renews it every round and acts on no shard unless its
own last renewal of it is younger than ``renew_deadline``. A leader of ``--shards 1`` (this
release or an earlier one) holds the same Lease under its own name, and replicas of another
shard count under ``shards:<M>``; whichever holds it, the others wait until it runs out. So a
rolling update that changes the mode or the number of shards never has two schemes acting at
once: the new replicas start acting a lease duration after the last old one stopped renewing
(the group Lease is never given up early; a leader's is, on SIGTERM, as before).

One thread (`ShardSet`) lists the group's Leases (label ``canary.dev/lease-group``) once per
``retry_period`` and renews, takes and sheds; sooner when a Lease it may take runs out (a
dead replica's shards are taken then, not at the next retry) or is released. A watch on the
Leases' namespace (`canary.controller.lease_watch`) tells when each renewal was first seen, so
a dead replica's shards go a lease duration after its last renewal: within the lease duration
of its death. ``owns`` is computed from each Lease's last
successful renewal, like `LeaderElector.is_leader`, so a replica cut off from the API server
stops acting on its shards before any other replica may take them. A shard being shed stops
being owned first; its ticks under way are waited for (their writes are refused already) before
its Lease is given up.

The controller's writes go through `may_write`: allowed only inside `acting(key)` (the tick of
that Rollout) while the Rollout's shard is held.

The arithmetic and the Leases' names are `canary.controller.shard_math`, the other members as
this replica sees them `canary.controller.shard_members`, and a sharded replica's scheduler
`canary.controller.sharded_ticks`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime

from canary.controller.kinds import LEASE
from canary.controller.kube import Json, Kube, KubeError
from canary.controller.leader import LeaseHolder, LeaseSettings, next_round_in
from canary.controller.lease_watch import LeaseSightings
from canary.controller.shard_math import (
    GROUP_LABEL,
    ROLE_LABEL,
    fair_share,
    group_identity,
    holder_of,
    member_lease_name,
    preference,
    shard_of,
    shard_of_key,
    validate_shards,
)
from canary.controller.shard_members import Members

__all__ = [  # (with the names of shard_math that callers import from here)
    "GROUP_LABEL",
    "ShardSet",
    "ShardsChanged",
    "fair_share",
    "group_identity",
    "member_lease_name",
    "preference",
    "shard_of",
    "shard_of_key",
    "validate_shards",
]

log = logging.getLogger("canary.controller.shards")

ShardsChanged = Callable[[set[int], set[int]], None]
"""(shards gained, shards lost) since the last call."""


class ShardSet:
    """The shards this replica holds; acquires, renews, balances and sheds them on a thread."""

    def __init__(
        self,
        kube: Kube,
        settings: LeaseSettings,
        shards: int,
        *,
        on_change: ShardsChanged = lambda gained, lost: None,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.shards = validate_shards(shards)
        self.identity = settings.identity
        self.on_change = on_change
        self._monotonic = monotonic
        self._now = now
        group = {GROUP_LABEL: settings.name}
        self.holders = [
            LeaseHolder(
                kube,
                replace(settings, name=f"{settings.name}-shard-{i}"),
                labels={**group, ROLE_LABEL: "shard"},
                monotonic=monotonic,
                now=now,
            )
            for i in range(shards)
        ]
        self.member = LeaseHolder(
            kube,
            replace(settings, name=member_lease_name(settings.name, settings.identity)),
            labels={**group, ROLE_LABEL: "member"},
            monotonic=monotonic,
            now=now,
        )
        self.group = LeaseHolder(
            kube,
            replace(settings, identity=group_identity(shards)),
            shared=True,
            monotonic=monotonic,
            now=now,
        )
        self._blocked_by = ""
        self.members = 1
        self._reported: set[int] = set()
        self._acting = threading.Condition()
        self._in_flight: dict[int, int] = {}
        self._local = threading.local()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self.sightings = LeaseSightings(
            kube, settings.namespace, on_free=self._wake.set, monotonic=monotonic
        )
        self._others = Members(
            kube,
            settings,
            self.member.settings.name,
            self.sightings,
            monotonic=monotonic,
            now=now,
        )
        self._thread = threading.Thread(target=self._run, name="shards", daemon=True)

    # --- what the controller asks --------------------------------------------------------------

    def owns(self, namespace: str, name: str) -> bool:
        return self._holds(shard_of(namespace, name, self.shards))

    def owns_key(self, key: str) -> bool:
        return self._holds(shard_of_key(key, self.shards))

    def owned(self) -> set[int]:
        return {i for i in range(self.shards) if self._holds(i)}

    def reported_key(self, key: str) -> bool:
        """The last `on_change` counted ``key``'s shard among those held (its jobs are kept
        through a lapse of the hold between two rounds: no later report would add them back)."""
        return shard_of_key(key, self.shards) in self._reported

    def active(self) -> bool:
        return bool(self.owned())

    def _holds(self, shard: int) -> bool:
        return self.holders[shard].holding() and self.group.holding()

    @contextmanager
    def acting(self, key: str) -> Iterator[None]:
        """The tick of Rollout ``key`` runs in here: its writes are allowed while its shard is
        held, and a shard being shed waits for it."""
        shard = shard_of_key(key, self.shards)
        with self._acting:
            self._in_flight[shard] = self._in_flight.get(shard, 0) + 1
        previous = getattr(self._local, "key", None)
        self._local.key = key
        try:
            yield
        finally:
            self._local.key = previous
            with self._acting:
                self._in_flight[shard] -= 1
                self._acting.notify_all()

    def may_write(self) -> bool:
        """The write guard: this thread runs the tick of a Rollout whose shard is held."""
        key = getattr(self._local, "key", None)
        return key is not None and self.owns_key(key)

    # --- life cycle ----------------------------------------------------------------------------

    def start(self) -> ShardSet:
        self.sightings.start()
        self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, release: bool = True, timeout: float = 5.0) -> None:
        """Stop acting on every shard; with ``release`` give their Leases and the member Lease
        up so that the others take the shards at their next round."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        self.sightings.reflector.signal_stop()
        held = {i for i, holder in enumerate(self.holders) if holder.holding()}
        for holder in self.holders:
            holder.drop()
        self._report()
        if not release:
            return
        for i in sorted(held):
            self._give_up(self.holders[i])
        self._give_up(self.member)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.round()
            except (KubeError, OSError) as exc:
                log.warning("shards: %s", exc)
                self._report()  # shards whose renewals ran out are no longer owned
            except Exception:
                log.exception("shards failed")
                self._report()
            self._wake.wait(self._next_round_in())
            self._wake.clear()

    def _next_round_in(self) -> float:
        """The retry period, or less: just after the first Lease this replica may take (a
        shard's, or another member's, whose expiry raises the fair share) runs out."""
        observed = [*self.holders, *self._others.observed(), self.group]
        expiries = [holder.expires_at() for holder in observed]
        return next_round_in(self.settings.retry_period, expiries, self._monotonic())

    # --- one round -----------------------------------------------------------------------------

    def round(self) -> set[int]:
        """List the group's Leases; renew the member Lease and the shards held; shed above the
        fair share or take up to it. Returns the shards held afterwards."""
        started = self._monotonic()
        if not self._join_group(started):
            return set()
        listed = self.kube.list(
            LEASE, self.settings.namespace, label_selector=f"{GROUP_LABEL}={self.settings.name}"
        )
        read = self._monotonic()  # others' Leases are timed from here (`LeaseHolder.available`)
        leases = {str(obj["metadata"]["name"]): obj for obj in listed.items}
        self.member.round(leases.get(self.member.settings.name), started)
        self.members = 1 + self._others.live(leases, read)
        fair = fair_share(self.shards, self.members)
        for holder in self.holders:
            lease = leases.get(holder.settings.name)
            if lease is not None and holder_of(lease) == self.identity:
                holder.round(lease, started, take=False)  # renewed (a lapsed hold resumes)
            else:
                holder.drop()  # someone else's, released or deleted: not ours
        held = sorted(self.owned(), key=lambda i: preference(self.identity, i))
        for shard in held[fair:]:
            self._shed(shard)
        self._take(leases, read, fair - min(len(held), fair))
        self._report()
        return self.owned()

    def _join_group(self, started: float) -> bool:
        """Renew (or take) the group Lease; False, holding nothing, while a leader or replicas
        of another shard count hold it."""
        lease = self.kube.get(LEASE, self.settings.namespace, self.settings.name)
        seen_at = self.sightings.seen_at(lease)
        read_at = self._monotonic()
        if (
            self.group.round(lease, started, seen_at=seen_at, read_at=read_at)
            or self.group.holding()
        ):
            self._blocked_by = ""
            return True
        holder = holder_of(lease) if lease is not None else ""
        if holder not in (self._blocked_by, self.group.settings.identity):
            log.warning(
                "%s waits: Lease %s is held by %s (a leader, or replicas of another shard "
                "count); the shards are taken once it runs out",
                self.identity,
                self.settings.name,
                holder,
            )
            self._blocked_by = holder
        for shard_holder in self.holders:
            shard_holder.drop()
        self._report()
        return False

    def _take(self, leases: dict[str, Json], read_at: float, wanted: int) -> None:
        """Take up to ``wanted`` free shards (most preferred first), and any shard left free
        for longer than a lease duration whatever the share."""
        free = [
            i
            for i, holder in enumerate(self.holders)
            if not holder.holding()
            and (
                (lease := leases.get(holder.settings.name)) is None
                or holder.available(lease, read_at, self.sightings.seen_at(lease))
            )
        ]
        free.sort(key=lambda i: preference(self.identity, i))
        for shard in free:
            holder = self.holders[shard]
            lease = leases.get(holder.settings.name)
            seen_at = self.sightings.seen_at(lease)
            orphaned = (
                lease is not None and holder.unheld_for(lease, read_at, seen_at) > self._duration()
            )
            if wanted <= 0 and not orphaned:
                continue
            if holder.round(lease, read_at, seen_at=seen_at):
                wanted -= 1
                log.info("%s took shard %d", self.identity, shard)

    def _shed(self, shard: int) -> None:
        """Give shard ``shard`` up for a replica below its share: stop acting on it, wait for
        its ticks under way (their writes are refused already), then release its Lease."""
        holder = self.holders[shard]
        holder.drop()
        self._report()
        with self._acting:
            # (at most half the renew deadline: the other shards, renewed at the start of this
            # round, must not run out meanwhile)
            self._acting.wait_for(
                lambda: self._in_flight.get(shard, 0) == 0, self.settings.renew_deadline / 2
            )
        log.info("%s sheds shard %d (%d members)", self.identity, shard, self.members)
        self._give_up(holder)

    def _give_up(self, holder: LeaseHolder) -> None:
        try:
            holder.release()
        except (KubeError, OSError) as exc:
            log.warning("could not release %s: %s", holder.settings.name, exc)

    def _report(self) -> None:
        """Tell the controller which shards it gained and lost since the last report."""
        owned = self.owned() if not self._stop.is_set() else set()
        gained, lost = owned - self._reported, self._reported - owned
        if not gained and not lost:
            return
        self._reported = owned
        if gained:
            log.info("%s now owns shards %s", self.identity, sorted(owned))
        if lost:
            log.warning("%s no longer owns shards %s", self.identity, sorted(lost))
        try:
            self.on_change(gained, lost)
        except Exception:
            log.exception("the shards' listener failed")

    def _duration(self) -> float:
        return self.settings.lease_duration
