"""What a failed tick reports, and when its Rollout is tried again; what an invalid Rollout is
told.

An invalid Rollout gets ``Valid: False`` naming the field and the problem, and one Warning
Event, once per distinct problem (`TickFailures.invalid`).

A failed tick counts in ``canary_reconcile_errors_total`` (by reason), is logged (a warning for
the API server or the network, with a traceback for anything else) and is recorded as one
Warning Event per distinct problem (not one per retry); the next try comes after an exponential
backoff (0.5 s doubling, at most 30 s). A status write that lost to another writer is retried at
once (it re-reads first).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from datetime import datetime

from canary.controller.events import addressee, post_events
from canary.controller.kinds import ROLLOUT
from canary.controller.kube import Json, Kube, KubeError, NotLeaderError
from canary.controller.metrics import ControllerMetrics
from canary.controller.status import StatusConflictError, invalid_status, write_status
from canary.engine import Event

log = logging.getLogger("canary.controller.reconcile")

RETRY_AT_ONCE = 0.05
MAX_BACKOFF = 30.0


class TickFailures:
    """The failures of each Rollout's ticks since its last good one; thread-safe."""

    def __init__(
        self,
        kube: Kube,
        metrics: ControllerMetrics,
        identity: str,
        clock: Callable[[], datetime],
    ) -> None:
        self.kube = kube
        self.metrics = metrics
        self.identity = identity
        self.clock = clock
        self._lock = threading.Lock()
        self._errors: dict[str, tuple[str, int]] = {}
        """By Rollout key: the last problem and how many ticks in a row failed."""

    def failed(self, namespace: str, name: str, exc: Exception) -> tuple[float, str]:
        """Report the failure; returns (seconds until the next try, the problem)."""
        key = f"{namespace}/{name}"
        reason = "Conflict" if isinstance(exc, StatusConflictError) else type(exc).__name__
        message = str(exc) or reason
        self.metrics.reconcile_error(namespace, name, reason)
        with self._lock:
            last, failures = self._errors.get(key, ("", 0))
            self._errors[key] = (message, failures + 1)
        delay = min(MAX_BACKOFF, 0.5 * 2**failures)
        if isinstance(exc, StatusConflictError):
            log.info("%s: %s; ticking again", key, message)
            return RETRY_AT_ONCE, message
        if isinstance(exc, KubeError | OSError):
            log.warning("%s: tick failed: %s (again in %.1fs)", key, message, delay)
        else:
            log.exception("%s: tick failed (again in %.1fs)", key, delay)
        obj = self._rollout(namespace, name)
        if obj is None:  # deleted as it ticked (see `forget`)
            self.forget(namespace, name)
        elif message != last:  # one Event per distinct problem, not one per retry
            self._record(obj, message)
        return delay, message

    def invalid(self, obj: Json, problems: list[str], now: datetime) -> str:
        """Tell the Rollout ``obj`` (read by the tick) that its spec cannot be run, unless its
        status says so already; returns the problem."""
        message = "; ".join(problems)
        status = invalid_status(obj.get("status"), message, now)
        if status is not None:
            write_status(self.kube, obj, status, on_conflict=self.metrics.status_conflicts.inc)
            event = Event(reason="InvalidSpec", message=f"invalid Rollout: {message}", warning=True)
            post_events(self.kube, addressee(obj), [event], now, self.identity)
            meta = obj.get("metadata") or {}
            log.warning("%s/%s is invalid: %s", meta.get("namespace"), meta.get("name"), message)
        return message

    def clear(self, key: str) -> None:
        """A good tick (or the Rollout is gone)."""
        with self._lock:
            self._errors.pop(key, None)

    def forget(self, namespace: str, name: str) -> None:
        """The Rollout is gone: its failures and its labelled series go too. A tick that
        failed because its Rollout was deleted while it ran (its status write answered 404)
        ends after the deletion's watch event has forgotten the Rollout; what it recorded
        would otherwise stay for the life of the process, one entry per deleted name."""
        self.clear(f"{namespace}/{name}")
        self.metrics.forget(namespace, name)

    def _rollout(self, namespace: str, name: str) -> Json | None:
        """The Rollout as the caches (or the API server) have it now; on a read that fails,
        an empty object (it is not known to be gone)."""
        try:
            return self.kube.get(ROLLOUT, namespace, name)
        except (KubeError, NotLeaderError, OSError):
            return {}

    def _record(self, obj: Json, message: str) -> None:
        if not obj:
            return
        event = Event(reason="ReconcileError", message=message, warning=True)
        with contextlib.suppress(KubeError, NotLeaderError, OSError):
            post_events(self.kube, addressee(obj), [event], self.clock(), self.identity)
