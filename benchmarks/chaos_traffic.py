"""The chaos benchmark's running audit of traffic sent to a canary that has no ready pods.

It follows the API server stand-in's committed changes, in order, as they happen: each
Rollout's VirtualService (does it send the canary live or mirrored traffic?) and its canary
Deployment (does it have ready pods?). Every interval during which both hold is recorded with
its length. A rollback writes the route before it scales the canary down, and a canary takes
traffic only once it is ready, so a correct controller leaves no such interval longer than one
tick, whatever moment it is killed at (issue #14: the rollback whose status write was lost put
the step's weight back on a canary without pods until ``inconclusiveDeadline``).

Pods of a Deployment: none once ``spec.replicas`` is 0; otherwise ``status.readyReplicas`` as
soon as the status describes the current spec (``observedGeneration == generation``); until
then, what it had (a canary scaled up from zero has none until its pods are marked ready, a
running one keeps its pods while its template changes, as a rolling update does).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Json = dict[str, Any]
CANARY_SUFFIX = "-canary"


def canary_weight(route: Json) -> int:
    """The largest weight a VirtualService's http routes give the canary's host."""
    weight = 0
    for http in (route.get("spec") or {}).get("http") or []:
        for destination in http.get("route") or []:
            host = str((destination.get("destination") or {}).get("host", ""))
            if host.endswith(CANARY_SUFFIX):
                weight = max(weight, int(destination.get("weight") or 0))
    return weight


def mirrors_to_canary(route: Json) -> bool:
    """Whether a VirtualService copies requests to the canary's host."""
    for http in (route.get("spec") or {}).get("http") or []:
        mirror = http.get("mirror") or {}
        share = (http.get("mirrorPercentage") or {}).get("value", 100.0)
        if str(mirror.get("host", "")).endswith(CANARY_SUFFIX) and float(share) > 0:
            return True
    return False


def has_ready_pods(deployment: Json, had: bool) -> bool:
    """Whether ``deployment`` has ready pods now, given whether it had them before."""
    meta = deployment.get("metadata") or {}
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    if not spec.get("replicas", 1):
        return False
    if status.get("observedGeneration") == meta.get("generation"):
        return bool(status.get("readyReplicas"))
    return had


@dataclass(frozen=True)
class Exposure:
    """An interval during which a Rollout's route sent traffic to a canary without pods."""

    rollout: str
    started: float
    seconds: float
    ongoing: bool = False


class UnservedTraffic:
    """Per Rollout: is traffic going to its canary, has the canary pods, and since when both."""

    def __init__(self, names: list[str], clock: Callable[[], float] = time.monotonic) -> None:
        self.names = set(names)
        self.clock = clock
        self.lock = threading.Lock()
        self.traffic = dict.fromkeys(names, False)
        self.ready = dict.fromkeys(names, False)
        self.since: dict[str, float] = {}
        self.closed: list[Exposure] = []
        self.routed = 0
        """Times a route started sending a canary traffic (the audit saw something to check)."""
        self.emptied = 0
        """Times a canary lost its pods."""

    def seen_route(self, name: str, route: Json | None) -> None:
        """A VirtualService named ``name`` changed (None: deleted)."""
        if name in self.names:
            sends = route is not None and (canary_weight(route) > 0 or mirrors_to_canary(route))
            with self.lock:
                self.routed += sends and not self.traffic[name]
                self.traffic[name] = sends
                self._update(name)

    def seen_deployment(self, name: str, deployment: Json | None) -> None:
        """The canary Deployment ``name`` changed (None: deleted)."""
        if name in self.names:
            with self.lock:
                had = self.ready[name]
                self.ready[name] = deployment is not None and has_ready_pods(deployment, had)
                self.emptied += had and not self.ready[name]
                self._update(name)

    def exposures(self) -> list[Exposure]:
        """Every interval so far, the open ones measured up to now."""
        now = self.clock()
        with self.lock:
            ongoing = [Exposure(n, t, now - t, ongoing=True) for n, t in self.since.items()]
            return [*self.closed, *ongoing]

    def beyond(self, seconds: float) -> list[Exposure]:
        return [e for e in self.exposures() if e.seconds > seconds]

    def _update(self, name: str) -> None:
        exposed = self.traffic[name] and not self.ready[name]
        started = self.since.get(name)
        if exposed and started is None:
            self.since[name] = self.clock()
        elif not exposed and started is not None:
            del self.since[name]
            self.closed.append(Exposure(name, started, self.clock() - started))
