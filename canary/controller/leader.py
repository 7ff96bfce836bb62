"""Leader election on a `coordination.k8s.io/v1` Lease, so two replicas never act at once.

Every replica runs a `LeaderElector`. Every ``retry_period`` (and just after the Lease it
observed held by another runs out, when that comes sooner: `next_round_in`; at once when the
Lease is given up or deleted) it reads the Lease and:

- creates it, holding it, when there is none;
- renews it (``renewTime``) when it holds it;
- takes it over (``holderIdentity``, ``acquireTime``, ``leaseTransitions`` + 1) when the holder
  has not renewed it for the holder's ``leaseDurationSeconds``, measured on this replica's own
  monotonic clock from when it first saw the holder's last renewal (so clocks that disagree
  between nodes do not matter), or when the holder released it (no holder). A watch on the
  Leases (`canary.controller.lease_watch.LeaseSightings`, as the shards use) sees each renewal
  within milliseconds, so a standby takes over a lease duration after the dead leader's last
  renewal, not up to a retry period later; without the watch (no RBAC ``watch`` on leases)
  the rounds' own reads time the Lease, up to a retry period late.

Every write is a PUT with the Lease's resourceVersion: two replicas racing for it cannot both
win (the loser gets 409 and reads again). A leader that has not renewed successfully for
``renew_deadline`` (shorter than the lease duration) stops leading at once: `is_leader()` is
computed from the time of its last successful renewal, not from a flag another thread updates,
so a replica cut off from the API server stops acting before anyone else may start.
``stop(release=True)`` gives the Lease up (no holder) so a successor need not wait.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from canary.controller.kinds import LEASE
from canary.controller.kube import ConflictError, Json, Kube, KubeError
from canary.controller.lease_watch import LeaseSightings, lease_record

log = logging.getLogger("canary.controller.leader")


EXPIRY_MARGIN = 0.01
"""Seconds after an observed Lease runs out that the contender's round runs (its own clock
reads past the expiry then, whatever the timer's rounding)."""


def micro_time(moment: datetime) -> str:
    """Kubernetes' MicroTime: RFC 3339 with microseconds, in UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class LeaseSettings:
    namespace: str = "default"
    name: str = "canary-controller"
    identity: str = "canary"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError(
                "leader election needs retry period < renew deadline < lease duration "
                f"(got {self.retry_period}s, {self.renew_deadline}s, {self.lease_duration}s)"
            )


class LeaseHolder:
    """One replica's hold on one Lease, without a thread: `round` is one look at it (acquire,
    renew or keep off), `holding` says whether this replica may act on what the Lease guards.

    The rules of the module's docstring; `LeaderElector` runs one on a thread, and a
    `canary.controller.shards.ShardSet` runs one per shard from a single thread, reading all its
    Leases with one list (hence `round` takes the Lease already read)."""

    def __init__(
        self,
        kube: Kube,
        settings: LeaseSettings,
        *,
        labels: dict[str, str] | None = None,
        shared: bool = False,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``shared``: several replicas hold the Lease under one identity and renew it in
        turn; a renewal that lost the race to another's (409) keeps the hold this replica's
        own last renewal gave (it still ends ``renew_deadline`` after it)."""
        self.kube = kube
        self.settings = settings
        self.labels = dict(labels or {})
        self.shared = shared
        self._monotonic = monotonic
        self._now = now
        self._lock = threading.Lock()
        self._holding_until = 0.0  # monotonic; holding while now < this
        self._observed: tuple[object, ...] | None = None
        self._observed_at = 0.0
        self._expires_at: float | None = None

    def holding(self) -> bool:
        with self._lock:
            return self._monotonic() < self._holding_until

    def try_acquire_or_renew(self) -> bool:
        """Read the Lease, then `round`: True when this replica holds it afterwards."""
        started = self._monotonic()
        lease = self.kube.get(LEASE, self.settings.namespace, self.settings.name)
        return self.round(lease, started, read_at=self._monotonic())

    def round(
        self,
        lease: Json | None,
        started: float,
        *,
        take: bool = True,
        seen_at: float | None = None,
        read_at: float | None = None,
    ) -> bool:
        """One look at ``lease`` (as read from ``started``, monotonic, to ``read_at``, when the
        read returned): create it when there is none, renew it when held, take it over when its
        holder let it run out or gave it up. With ``take`` False a Lease this replica does not
        hold is only observed (its expiry timed), never taken or created. ``seen_at``: when a
        watch delivered this very record (`available`)."""
        settings = self.settings
        if lease is None:
            if not take:
                self.drop()
                return False
            return self._write(self._body(None, transitions=0), started, create=True)
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        if holder == settings.identity:
            renewed = dict(spec, renewTime=micro_time(self._now()))
            renewed["leaseDurationSeconds"] = _seconds(settings.lease_duration)
            return self._write(dict(lease, spec=renewed), started)
        self.drop()
        if not self.available(lease, started if read_at is None else read_at, seen_at) or not take:
            return False
        transitions = int(spec.get("leaseTransitions") or 0) + 1
        taken = dict(lease, spec=self._body(spec, transitions=transitions)["spec"])
        taken["metadata"] = _with_labels(lease.get("metadata") or {}, self.labels)
        return self._write(taken, started)

    def available(self, lease: Json, read_at: float, seen_at: float | None = None) -> bool:
        """``lease`` (held by another) may be taken: no holder, or its holder has not renewed
        it for its ``leaseDurationSeconds``, timed on this replica's clock from when this
        replica first saw the record: ``read_at`` (the read that returned it had returned by
        then), or ``seen_at`` when a watch delivered the same record (resourceVersion) earlier.
        Either moment is after the write that made the record, so the lease is never cut short.
        (Not when the read began: a read that began before the holder's renewal may return it,
        and the lease would be timed from before it was renewed.)"""
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        record = lease_record(lease)
        if record != self._observed:
            first = read_at if seen_at is None else min(read_at, seen_at)
            self._observed, self._observed_at = record, first
        duration = float(spec.get("leaseDurationSeconds") or self.settings.lease_duration)
        self._expires_at = self._observed_at + duration if holder else self._observed_at
        return not holder or read_at >= self._expires_at

    def expires_at(self) -> float | None:
        """When (monotonic) the Lease last observed held by another runs out (None: it is held
        by this replica, or nothing was observed): a contender tries then, not at its next
        retry."""
        if self.holding():
            return None
        return self._expires_at

    def unheld_for(self, lease: Json, read_at: float, seen_at: float | None = None) -> float:
        """Seconds ``lease`` has been available (see `available`), 0 while it is not."""
        if not self.available(lease, read_at, seen_at):
            return 0.0
        spec = lease.get("spec") or {}
        if not spec.get("holderIdentity"):
            return read_at - self._observed_at
        duration = float(spec.get("leaseDurationSeconds") or self.settings.lease_duration)
        return read_at - (self._observed_at + duration)

    def drop(self) -> None:
        """Stop holding at once (a lost race, a Lease given up or someone else's)."""
        with self._lock:
            self._holding_until = 0.0

    def release(self) -> None:
        """Give the Lease up (no holder) so that another replica need not wait for it to run
        out; stops holding first."""
        self.drop()
        lease = self.kube.get(LEASE, self.settings.namespace, self.settings.name)
        if lease is None:
            return
        spec = dict(lease.get("spec") or {})
        if spec.get("holderIdentity") != self.settings.identity:
            return
        spec.pop("holderIdentity", None)
        spec["leaseDurationSeconds"] = 1
        spec["renewTime"] = micro_time(self._now())
        self.kube.replace(dict(lease, spec=spec))
        log.info("%s released the Lease %s", self.settings.identity, self.settings.name)

    def _body(self, spec: Json | None, transitions: int) -> Json:
        stamp = micro_time(self._now())
        metadata: Json = {"name": self.settings.name, "namespace": self.settings.namespace}
        if self.labels:
            metadata["labels"] = dict(self.labels)
        return {
            "apiVersion": LEASE.api_version,
            "kind": LEASE.kind,
            "metadata": metadata,
            "spec": {
                **(spec or {}),
                "holderIdentity": self.settings.identity,
                "leaseDurationSeconds": _seconds(self.settings.lease_duration),
                "acquireTime": stamp,
                "renewTime": stamp,
                "leaseTransitions": transitions,
            },
        }

    def _write(self, lease: Json, started: float, create: bool = False) -> bool:
        try:
            if create:
                self.kube.create(lease)
            else:
                self.kube.replace(lease)
        except ConflictError:
            if not self.shared:
                self.drop()  # someone else wrote it first; read again next round
            return False
        with self._lock:
            self._holding_until = started + self.settings.renew_deadline
        return True


class LeaderElector:
    """Acquires and renews the Lease on a thread; tells when leadership starts and stops."""

    def __init__(
        self,
        kube: Kube,
        settings: LeaseSettings,
        *,
        on_started: Callable[[], None] = lambda: None,
        on_stopped: Callable[[], None] = lambda: None,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.on_started = on_started
        self.on_stopped = on_stopped
        self.lease = LeaseHolder(kube, settings, monotonic=monotonic, now=now)
        self._was_leader = False
        self._stop = threading.Event()
        self._wake = threading.Event()
        self.sightings = LeaseSightings(
            kube, settings.namespace, on_free=self._wake.set, monotonic=monotonic
        )
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)
        self._monotonic = monotonic
        self.transitions = 0

    def start(self) -> LeaderElector:
        self.sightings.start()
        self._thread.start()
        return self

    def is_leader(self) -> bool:
        return self.lease.holding()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, release: bool = True, timeout: float = 5.0) -> None:
        """Stop electing; with ``release`` a held Lease is given up for a successor."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        self.sightings.reflector.signal_stop()
        if release and self.is_leader():
            try:
                self.lease.release()
            except (KubeError, OSError) as exc:
                log.warning("could not release the Lease: %s", exc)
        self.lease.drop()
        self._notice()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.try_acquire_or_renew()
            except (KubeError, OSError) as exc:
                log.warning("leader election: %s", exc)
            except Exception:
                log.exception("leader election failed")
            self._notice()
            self._wake.wait(self.next_round_in())
            self._wake.clear()

    def next_round_in(self) -> float:
        """The retry period, or less: just after the Lease observed held by another runs out."""
        return next_round_in(
            self.settings.retry_period, [self.lease.expires_at()], self._monotonic()
        )

    def _notice(self) -> None:
        """Run the callbacks when leadership started or ended since the last look."""
        leading = self.is_leader() and not self._stop.is_set()
        if leading == self._was_leader:
            return
        self._was_leader = leading
        if leading:
            self.transitions += 1
            log.info("%s became the leader", self.settings.identity)
            self.on_started()
        else:
            log.warning("%s is no longer the leader", self.settings.identity)
            self.on_stopped()

    def try_acquire_or_renew(self) -> bool:
        """One round: True when this replica holds the Lease afterwards. A Lease held by
        another is timed from when the watch first saw this record, if it did."""
        started = self._monotonic()
        lease = self.kube.get(LEASE, self.settings.namespace, self.settings.name)
        return self.lease.round(
            lease, started, seen_at=self.sightings.seen_at(lease), read_at=self._monotonic()
        )


def next_round_in(retry_period: float, expiries: list[float | None], now: float) -> float:
    """Seconds until the next round: the retry period, or sooner, just after the first of the
    observed Leases runs out (a contender takes it then, within the lease duration of the
    holder's last renewal as observed, not up to a retry period later)."""
    due = [at - now + EXPIRY_MARGIN for at in expiries if at is not None and at > now]
    return max(0.0, min([retry_period, *due]))


def _seconds(value: float) -> int:
    return max(1, round(value))


def _version(obj: Json) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def _with_labels(metadata: Json, labels: dict[str, str]) -> Json:
    if not labels:
        return metadata
    return dict(metadata, labels={**(metadata.get("labels") or {}), **labels})
