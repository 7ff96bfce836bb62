"""A service mesh's telemetry, simulated: what Istio's and Linkerd's sidecars, or the Envoy of a
Gateway API implementation (Envoy Gateway), would export.

End-to-end tests have no mesh: nothing carries requests between the two versions and nothing
counts them. `MeshTelemetry` stands in for the sidecars. It serves ``/metrics`` on
127.0.0.1 for a real Prometheus to scrape, with the series the shipped ``istio`` and
``linkerd`` policies query:

- Istio: ``istio_requests_total`` and ``istio_request_duration_milliseconds`` (histogram) with
  ``reporter``, ``destination_workload``, ``destination_workload_namespace``,
  ``response_code`` and the other standard labels, from both reporters (``destination``, the
  served workload's sidecar, and ``source``, the caller's);
- Linkerd: ``response_total`` (with ``classification``) and ``response_latency_ms``
  (histogram) with ``direction``, ``deployment``, ``namespace``, ``status_code``, inbound on
  the served workloads and outbound on the caller;
- Envoy Gateway (``envoy``, for the shipped ``gateway-api-envoy`` policy): the gateway's
  upstream statistics per Envoy cluster, one cluster per backendRef of the HTTPRoute named
  after the service (``httproute/<namespace>/<service>/rule/<rule>/backend/<backend>``, the
  primary backend 0, the canary backend 1): ``envoy_cluster_upstream_rq_xx``,
  ``envoy_cluster_upstream_rq`` and the ``envoy_cluster_upstream_rq_time`` histogram.
  Requests matching A/B rules are counted on rule 0 and the others on the weighted rule (1
  with A/B rules, else 0); mirrored copies are not (Envoy counts them on a mirror cluster of
  its own, which the policy does not read). ``envoy-grpc``: the same calls as gRPC through a
  GRPCRoute named after the service (``grpcroute/...`` clusters): the router's statistics
  with every call an HTTP 200, and the gRPC statistics filter's calls and failures.

A steady stream of requests arrives at ``rate`` per second of the injected ``clock``
(``time.monotonic``, or a test's virtual clock). At every scrape the requests since the last
one are served under the split the ``split`` function returns *then* (a test reads it from
the route objects the controller wrote, as the data plane reads them:
`canary.testing.telemetry_routes.split_of_objects`): the canary's share is drawn binomially,
errors binomially at each side's error rate, latencies from each side's log-normal
distribution into the union of the meshes' bucket boundaries (500 ms is one). Only counts
are drawn, never single requests, so a jump of hours of virtual time costs the same as a
second, and the same seed and clock readings give the same series.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric

from canary.engine.actions import Route
from canary.testing.telemetry_series import (
    ENVOY_BUCKETS_MS,
    ISTIO_BUCKETS_MS,
    LINKERD_BUCKETS_MS,
    Behaviour,
    Tally,
    Workloads,
    envoy_cluster_name,
    envoy_exposition,
    envoy_grpc_exposition,
    istio_series,
    linkerd_series,
)

__all__ = [
    "ENVOY_BUCKETS_MS",
    "ISTIO_BUCKETS_MS",
    "LINKERD_BUCKETS_MS",
    "MESHES",
    "Behaviour",
    "MeshTelemetry",
    "Split",
    "Totals",
    "Workloads",
    "envoy_cluster_name",
]


MESHES = ("istio", "linkerd", "envoy")
ENVOY_GRPC = "envoy-grpc"
"""Envoy Gateway with gRPC calls routed by a GRPCRoute: not among the default `MESHES` (its
clusters would count the same calls as ``envoy``'s a second time)."""


@dataclass(frozen=True)
class Split:
    """How requests are routed now. A/B (``matched_share`` set): that share of requests matches
    the rules and goes to the canary, the rest follow the weights; ``mirror_percent`` of the
    primary's requests are copied to the canary (served there, answers dropped)."""

    canary_weight: float = 0.0
    matched_share: float | None = None
    mirror_percent: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.canary_weight <= 100 or not 0 <= self.mirror_percent <= 100:
            raise ValueError(f"weights are percentages: {self}")
        if self.matched_share is not None and not 0 <= self.matched_share <= 1:
            raise ValueError(f"matched_share is a share in [0, 1]: {self}")

    @classmethod
    def of_route(cls, route: Route, matched_share: float = 0.1) -> Split:
        """The split a router holding ``route`` makes, ``matched_share`` of requests matching
        its A/B rules when it has any."""
        return cls(
            canary_weight=route.canary_weight,
            matched_share=matched_share if route.match else None,
            mirror_percent=route.mirror_percentage or 0.0,
        )

    @property
    def canary_share(self) -> float:
        matched = self.matched_share or 0.0
        return matched + (1.0 - matched) * self.canary_weight / 100.0


@dataclass(frozen=True)
class Totals:
    """What one workload has served so far (its own sidecar's count, mirrored copies in)."""

    requests: int
    errors: int


class MeshTelemetry:
    """The simulated sidecars' /metrics; a context manager that serves it on a thread."""

    def __init__(
        self,
        split: Callable[[], Split],
        *,
        workloads: Workloads | None = None,
        rate: float = 50.0,
        canary: Behaviour | None = None,
        primary: Behaviour | None = None,
        seed: int = 0,
        clock: Callable[[], float] = time.monotonic,
        meshes: Collection[str] = MESHES,
    ) -> None:
        known = (*MESHES, ENVOY_GRPC)
        unknown = set(meshes) - set(known)
        if unknown:
            raise ValueError(f"unknown meshes {sorted(unknown)}; known: {', '.join(known)}")
        if rate < 0:
            raise ValueError(f"rate must be >= 0, not {rate}")
        self.split = split
        self.workloads = workloads or Workloads()
        self.rate = rate
        self.canary = canary or Behaviour()
        self.primary = primary or Behaviour()
        self.meshes = tuple(meshes)
        self._clock = clock
        self._rng = np.random.Generator(np.random.PCG64(seed))
        self._lock = threading.Lock()
        self._last = clock()
        self._carry = 0.0
        self._live = {"canary": Tally(), "primary": Tally()}
        self._mirrored = Tally()
        self._clusters: dict[tuple[int, int], Tally] = {}
        """By (HTTPRoute rule, backendRef): what Envoy Gateway's clusters served."""
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def advance(self) -> None:
        """Serve the requests that arrived since the last call under the current split."""
        with self._lock:
            self._advance()

    def _advance(self) -> None:
        split = self.split()  # first: if it fails, the requests wait for the next scrape
        now = self._clock()
        self._carry += max(0.0, now - self._last) * self.rate
        self._last = now
        n = int(self._carry)
        self._carry -= n
        if n == 0:
            return
        matched = int(self._rng.binomial(n, split.matched_share)) if split.matched_share else 0
        weighted = n - matched
        to_canary = int(self._rng.binomial(weighted, split.canary_weight / 100.0))
        rule = 0 if split.matched_share is None else 1  # the weighted rule follows the A/B one
        self._serve("canary", matched, self.canary, (0, 1))
        self._serve("canary", to_canary, self.canary, (rule, 1))
        self._serve("primary", weighted - to_canary, self.primary, (rule, 0))
        if split.mirror_percent > 0:
            mirrored = int(self._rng.binomial(n - to_canary - matched, split.mirror_percent / 100))
            self._mirrored.serve(mirrored, self._rng, self.canary)

    def _serve(self, side: str, n: int, behaviour: Behaviour, cluster: tuple[int, int]) -> None:
        """``n`` live requests served by ``side``, through Envoy cluster ``cluster``."""
        if n <= 0:
            return
        served = Tally()
        served.serve(n, self._rng, behaviour)
        self._live[side] = self._live[side].merged(served)
        self._clusters[cluster] = self._clusters.get(cluster, Tally()).merged(served)

    def totals(self) -> dict[str, Totals]:
        """Requests and errors served so far by side ("canary", "primary"), without advancing."""
        with self._lock:
            served = self._served()
        return {
            side: Totals(
                requests=sum(tally.counts.values()),
                errors=sum(n for code, n in tally.counts.items() if code >= 500),
            )
            for side, tally in served.items()
        }

    def _served(self) -> dict[str, Tally]:
        return {
            "canary": self._live["canary"].merged(self._mirrored),
            "primary": self._live["primary"].merged(Tally()),
        }

    def exposition(self) -> bytes:
        """Advance, then the series in Prometheus's text format."""
        with self._lock:
            self._advance()
            served = self._served()
            live = {side: tally.merged(Tally()) for side, tally in self._live.items()}
            clusters = {key: tally.merged(Tally()) for key, tally in self._clusters.items()}
        families: list[Metric] = []
        if "istio" in self.meshes:
            families += istio_series(self.workloads, served, live)
        if "linkerd" in self.meshes:
            families += linkerd_series(self.workloads, served, live)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Snapshot(families))
        text = generate_latest(registry)
        if "envoy" in self.meshes:  # written as Envoy does: counters without _total
            text += envoy_exposition(self.workloads, clusters).encode()
        if ENVOY_GRPC in self.meshes:
            text += envoy_grpc_exposition(self.workloads, clusters).encode()
        return text

    def start(self) -> MeshTelemetry:
        """Serve /metrics on 127.0.0.1 at a free port, on a thread."""
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def address(self) -> str:
        """host:port, for a scrape target."""
        if self._server is None:
            raise RuntimeError("the telemetry server is not running")
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}/metrics"

    def __enter__(self) -> MeshTelemetry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Snapshot:
    """A collector yielding families already built (under the simulator's lock)."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def _handler(telemetry: MeshTelemetry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/metrics":
                self._send(404, b"not found\n", "text/plain")
                return
            try:
                body = telemetry.exposition()
            except Exception as exc:  # the split function failed: a failed scrape, said why
                self._send(500, f"split: {exc!r}\n".encode(), "text/plain")
                return
            self._send(200, body, CONTENT_TYPE_LATEST)

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler
