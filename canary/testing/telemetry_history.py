"""A past of realistic mesh telemetry, written for promtool to backfill, with its exact truth.

Every second of the history, each pod serves user requests drawn from a seeded model (HTTP
and gRPC, 4xx, 429, 5xx, gRPC errors on HTTP 200, log-normal latency), and the meshes' proxies
count them as they do: lazily created series per (pod x caller x code), reset when a proxy
restarts, gone when a pod is replaced. Linkerd's proxies also count their own traffic (kubelet
probes, the admin port's /live, /ready and Prometheus' /metrics). Every target is scraped
every 5 s at its own phase, and the exposition at each scrape is written as OpenMetrics with
its timestamp (canary.testing.telemetry_exporters gives the series their real shapes). The
truth is kept two ways: what each side served in any period, and what its counters showed at
the last scrape before a time (what Prometheus can know).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from canary.testing.telemetry_series import EDGES, _bucket_model

SCRAPE_SECONDS = 5
SLOW_MS = 500.0
SLOW_FROM = EDGES.index(SLOW_MS) + 1
"""Index of the first latency bucket above 500 ms (buckets: (0, e0], (e0, e1], ...)."""


@dataclass(frozen=True)
class Kind:
    """One kind of answer: its HTTP status and, for a gRPC call, its grpc-status."""

    code: int
    grpc: int | None = None

    @property
    def failed(self) -> bool:
        """A 5xx, or a gRPC status other than OK (Linkerd's classification)."""
        return self.code >= 500 or (self.grpc is not None and self.grpc != 0)

    @property
    def failed_for_envoy(self) -> bool:
        """What Envoy's cluster statistics see without its gRPC statistics: the HTTP status."""
        return self.code >= 500

    @property
    def is_grpc(self) -> bool:
        return self.grpc is not None


KINDS = (
    Kind(200),
    Kind(404),
    Kind(429),
    Kind(500),
    Kind(503),
    Kind(200, 0),
    Kind(200, 5),  # NOT_FOUND
    Kind(200, 14),  # UNAVAILABLE
    Kind(503, 14),  # UNAVAILABLE with a 503: the gRPC call's connection to the pod failed
)
"""The last kind is a gRPC call that failed with HTTP 503 and grpc-status 14: what a server's
proxy answers when its connection to the application fails, and what Envoy's router charges to
its cluster when it answers a gRPC call itself (``upstream_rq_503``, while its gRPC statistics
count the same call as UNAVAILABLE): counted once by every policy."""


@dataclass(frozen=True)
class Behaviour:
    """How a version answers: shares of each kind (KINDS' order), log-normal latency."""

    shares: tuple[float, ...]
    latency_median_ms: float
    latency_sigma: float

    def failure_share(self) -> float:
        return sum(s for s, k in zip(self.shares, KINDS, strict=True) if k.failed)


HEALTHY = Behaviour((0.70, 0.03, 0.01, 0.002, 0.002, 0.23, 0.005, 0.001, 0.0), 80.0, 0.8)
BAD = Behaviour((0.66, 0.03, 0.01, 0.01, 0.01, 0.22, 0.005, 0.045, 0.01), 120.0, 1.0)


@dataclass(frozen=True)
class Pod:
    """A pod of a workload: alive over [born, died), its proxy restarted at ``restarts``."""

    name: str
    workload: str
    namespace: str
    born: int
    died: int | None = None
    restarts: tuple[int, ...] = ()
    ip: str = "10.0.0.1"

    def alive(self, t: int) -> bool:
        return self.born <= t and (self.died is None or t < self.died)

    def counting_since(self, t: int) -> int:
        """When the proxy's counters at ``t`` started: its birth or its last restart."""
        return max([self.born, *(r for r in self.restarts if r <= t)])


@dataclass(frozen=True)
class Workload:
    namespace: str
    name: str
    rate: float
    behaviour: Behaviour
    pods: tuple[Pod, ...]
    side: str | None = None
    """"canary" or "primary" for the rollout's two; None for lookalikes."""


CALLERS = (("frontend", 0.7), ("loadgen", 0.3))


@dataclass
class History:
    """Served requests by second, pod, caller, kind and latency bucket, for every workload."""

    start: int
    seconds: int
    workloads: tuple[Workload, ...]
    seed: int = 1
    served: dict[str, np.ndarray] = field(default_factory=dict)
    """pod name -> counts[second, caller, kind, bucket] (second t: events in (t-1, t])."""

    def __post_init__(self) -> None:
        names = [p.name for w in self.workloads for p in w.pods]
        if len(set(names)) != len(names):
            raise ValueError("pod names must be unique (their counts are kept by name)")
        rng = np.random.default_rng(self.seed)
        buckets = len(EDGES) + 1
        for workload in self.workloads:
            probs, _ = _bucket_model(
                workload.behaviour.latency_median_ms, workload.behaviour.latency_sigma
            )
            shares = np.array(workload.behaviour.shares) / sum(workload.behaviour.shares)
            for pod in workload.pods:
                counts = np.zeros((self.seconds + 1, len(CALLERS), len(KINDS), buckets), np.int64)
                for t in range(1, self.seconds + 1):
                    alive = [p for p in workload.pods if p.alive(t)]
                    if pod not in alive:
                        continue
                    for c, (_, share) in enumerate(CALLERS):
                        n = rng.poisson(workload.rate * share / len(alive))
                        for k, m in enumerate(rng.multinomial(n, shares)):
                            if m:
                                counts[t, c, k] = rng.multinomial(m, probs)
                self.served[pod.name] = counts

    @cached_property
    def running(self) -> dict[str, np.ndarray]:
        """pod name -> the running sum of ``served`` over seconds."""
        return {name: np.cumsum(counts, axis=0) for name, counts in self.served.items()}

    @cached_property
    def pods(self) -> dict[str, tuple[Workload, Pod]]:
        return {p.name: (w, p) for w in self.workloads for p in w.pods}

    def side(self, side: str) -> Workload:
        return next(w for w in self.workloads if w.side == side)

    def phase(self, target: str) -> int:
        """The second within each 5 s at which ``target`` is scraped (Prometheus spreads its
        targets' scrapes by a hash of the target)."""
        return sum(target.encode()) % SCRAPE_SECONDS

    def scrapes(self, target: str, pod: Pod | None = None) -> Iterator[int]:
        for t in range(self.phase(target), self.seconds + 1, SCRAPE_SECONDS):
            if pod is None or pod.alive(t):
                yield t

    def last_scrape(self, target: str, pod: Pod, t: int) -> int | None:
        """The last scrape of ``target`` at or before ``t`` while ``pod`` was alive."""
        last = None
        for s in self.scrapes(target, pod):
            if s > t:
                break
            last = s
        return last

    # The truth

    def served_in(self, side: str, start: int, end: int) -> Totals:
        """What ``side`` served in (start, end] (history seconds)."""
        total = Totals()
        for pod in self.side(side).pods:
            total = total + Totals.of(self.served[pod.name][start + 1 : end + 1])
        return total

    def known_in(self, holders: list[Holder], start: int, end: int) -> Totals:
        """What the counters of ``holders`` gained from their last scrape at or before
        ``start`` to their last at or before ``end`` (what Prometheus can know of the period).
        What a holder counted between its last scrape and a restart is lost, as it is to
        Prometheus; a holder born inside the period counted from zero."""
        total = Totals()
        for holder in holders:
            pod = holder.pod
            low = self.last_scrape(holder.target, pod, start)
            previous = pod.born - 1 if low is None else low
            for scrape in (s for s in self.scrapes(holder.target, pod) if start < s <= end):
                restarts = [r for r in pod.restarts if previous < r <= scrape]
                since = max(restarts) if restarts else previous + 1
                total = total + holder.served(since, scrape)
                previous = scrape
        return total

    def pod_holders(self, side: str, mesh: str) -> list[Holder]:
        """The side's pods as the counters of a sidecar mesh ("istio", "linkerd")."""
        return [
            Holder(pod, f"{mesh}/{pod.name}", self._pod_served(pod.name))
            for pod in self.side(side).pods
        ]

    def _pod_served(self, name: str) -> Callable[[int, int], Totals]:
        return lambda a, b: Totals.of(self.served[name][a : b + 1])


@dataclass(frozen=True)
class Holder:
    """Counters in one scraped process: its pod (birth, restarts), its target, and what it
    counted in seconds [a, b]."""

    pod: Pod
    target: str
    served: Callable[[int, int], Totals]


@dataclass(frozen=True)
class Totals:
    requests: int = 0
    failures: int = 0
    failures_for_envoy: int = 0
    slow: int = 0

    @classmethod
    def of(cls, counts: np.ndarray) -> Totals:
        by_kind = counts.sum(axis=(0, 1, 3)) if counts.size else np.zeros(len(KINDS))
        return cls(
            requests=int(by_kind.sum()),
            failures=int(sum(by_kind[i] for i, k in enumerate(KINDS) if k.failed)),
            failures_for_envoy=int(
                sum(by_kind[i] for i, k in enumerate(KINDS) if k.failed_for_envoy)
            ),
            slow=int(counts[..., SLOW_FROM:].sum()) if counts.size else 0,
        )

    def __add__(self, other: Totals) -> Totals:
        return Totals(
            self.requests + other.requests,
            self.failures + other.failures,
            self.failures_for_envoy + other.failures_for_envoy,
            self.slow + other.slow,
        )


def cumulative(history: History, pod: Pod, t: int) -> np.ndarray:
    """The pod's proxy counters at ``t``: counts[caller, kind, bucket] since its last start."""
    running = history.running[pod.name]
    since = pod.counting_since(t)
    return np.asarray(running[t] - running[since - 1] if since > 0 else running[t])


def le_text(bound: float) -> str:
    """A bucket boundary as proxies write it: 500, 0.5, +Inf."""
    if math.isinf(bound):
        return "+Inf"
    return str(int(bound)) if float(bound).is_integer() else repr(float(bound))
