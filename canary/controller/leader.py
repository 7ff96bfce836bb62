"""Leader election on a `coordination.k8s.io/v1` Lease, so two replicas never act at once.

Every replica runs a `LeaderElector`. Every ``retry_period`` it reads the Lease and:

- creates it, holding it, when there is none;
- renews it (``renewTime``) when it holds it;
- takes it over (``holderIdentity``, ``acquireTime``, ``leaseTransitions`` + 1) when the holder
  has not renewed it for the holder's ``leaseDurationSeconds``, measured on this replica's own
  monotonic clock from when it last saw the record change (so clocks that disagree between
  nodes do not matter), or when the holder released it (no holder).

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

log = logging.getLogger("canary.controller.leader")


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
        self._monotonic = monotonic
        self._now = now
        self._lock = threading.Lock()
        self._leading_until = 0.0  # monotonic; leader while now < this
        self._was_leader = False
        self._observed: tuple[object, ...] | None = None
        self._observed_at = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)
        self.transitions = 0

    def start(self) -> LeaderElector:
        self._thread.start()
        return self

    def is_leader(self) -> bool:
        with self._lock:
            return self._monotonic() < self._leading_until

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, release: bool = True, timeout: float = 5.0) -> None:
        """Stop electing; with ``release`` a held Lease is given up for a successor."""
        self._stop.set()
        self._thread.join(timeout)
        if release and self.is_leader():
            try:
                self._release()
            except (KubeError, OSError) as exc:
                log.warning("could not release the Lease: %s", exc)
        with self._lock:
            self._leading_until = 0.0
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
            self._stop.wait(self.settings.retry_period)

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
        """One round: True when this replica holds the Lease afterwards."""
        settings = self.settings
        started = self._monotonic()
        lease = self.kube.get(LEASE, settings.namespace, settings.name)
        if lease is None:
            return self._write(self._body(None, transitions=0), started, create=True)
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        if holder == settings.identity:
            renewed = dict(spec, renewTime=micro_time(self._now()))
            renewed["leaseDurationSeconds"] = _seconds(settings.lease_duration)
            return self._write(dict(lease, spec=renewed), started)
        record = (holder, spec.get("renewTime"), spec.get("leaseTransitions"), _version(lease))
        if record != self._observed:
            self._observed, self._observed_at = record, started
        duration = float(spec.get("leaseDurationSeconds") or settings.lease_duration)
        if holder and started < self._observed_at + duration:
            self._lose()
            return False
        transitions = int(spec.get("leaseTransitions") or 0) + 1
        taken = dict(lease, spec=self._body(spec, transitions=transitions)["spec"])
        return self._write(taken, started)

    def _body(self, spec: Json | None, transitions: int) -> Json:
        stamp = micro_time(self._now())
        return {
            "apiVersion": LEASE.api_version,
            "kind": LEASE.kind,
            "metadata": {"name": self.settings.name, "namespace": self.settings.namespace},
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
            self._lose()  # someone else wrote it first; read again next round
            return False
        with self._lock:
            self._leading_until = started + self.settings.renew_deadline
        return True

    def _lose(self) -> None:
        with self._lock:
            self._leading_until = 0.0

    def _release(self) -> None:
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
        log.info("%s released the Lease", self.settings.identity)


def _seconds(value: float) -> int:
    return max(1, round(value))


def _version(obj: Json) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")
