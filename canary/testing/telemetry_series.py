"""The simulated mesh's series: responses counted by status code and latency bucket, and
their exposition as Istio's and Linkerd's proxies and Envoy Gateway's Envoy write them (names,
labels, bucket bounds)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cache
from itertools import pairwise
from statistics import NormalDist

import numpy as np
from prometheus_client.metrics_core import Metric
from pydantic import BaseModel, ConfigDict, Field


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(word) for word in text.split())


ISTIO_BUCKETS_MS = _floats(
    "0.5 1 5 10 25 50 100 250 500 1000 2500 5000 10000 30000 60000 300000 600000 1800000 3600000"
)
"""Istio's default boundaries for istio_request_duration_milliseconds."""
LINKERD_BUCKETS_MS = _floats(
    "1 2 3 4 5 10 20 30 40 50 100 200 300 400 500 1000 2000 3000 4000 5000 "
    "10000 20000 30000 40000 50000"
)
"""The Linkerd proxy's boundaries for response_latency_ms."""
ENVOY_BUCKETS_MS = ISTIO_BUCKETS_MS
"""Envoy's default histogram boundaries (Istio's sidecars are Envoys), for
envoy_cluster_upstream_rq_time."""
EDGES = tuple(sorted({*ISTIO_BUCKETS_MS, *LINKERD_BUCKETS_MS}))
_NORMAL = NormalDist()
OK_CODE = 200


class Behaviour(BaseModel):
    """How one version answers: a share of errors, log-normal latency."""

    model_config = ConfigDict(frozen=True)

    error_rate: float = Field(default=0.0, ge=0, le=1, description="Share of error answers.")
    error_code: int = Field(default=503, ge=500, le=599)
    latency_median_ms: float = Field(default=20.0, gt=0)
    latency_sigma: float = Field(default=0.5, ge=0, description="Spread of log(latency).")


@dataclass(frozen=True)
class Workloads:
    """The names the series carry: the two Deployments, their Service, the caller."""

    namespace: str = "default"
    canary: str = "podinfo"
    primary: str = "podinfo-primary"
    service: str = "podinfo"
    caller: str = "loadgen"
    route: str | None = None
    """The name of the route Envoy Gateway's clusters are named after (None: the service's)."""


@cache
def _bucket_model(median: float, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """P(latency in each of the union's buckets), and the mean latency within each."""
    edges = [0.0, *EDGES, math.inf]
    mu = math.log(median)

    def below(x: float, shift: float = 0.0) -> float:
        if x <= 0:
            return 0.0
        if math.isinf(x):
            return 1.0
        if sigma == 0:
            return 1.0 if median <= x else 0.0
        return _NORMAL.cdf((math.log(x) - mu - shift) / sigma)

    probs, means = [], []
    scale = math.exp(mu + sigma * sigma / 2)
    for low, high in pairwise(edges):
        p = max(0.0, below(high) - below(low))
        partial = scale * (below(high, sigma * sigma) - below(low, sigma * sigma))
        probs.append(p)
        means.append(partial / p if p > 1e-12 else max(low, min(median, high)))
    array = np.array(probs)
    return array / array.sum(), np.array(means)


def _le(boundary: float) -> str:
    """A bucket boundary as the proxies write it: 500, 0.5."""
    return str(int(boundary)) if float(boundary).is_integer() else repr(float(boundary))


@dataclass
class Tally:
    """Responses by status code: counts, latency bucket counts (the union's), latency sums."""

    counts: dict[int, int] = field(default_factory=dict)
    buckets: dict[int, np.ndarray] = field(default_factory=dict)
    sums: dict[int, float] = field(default_factory=dict)

    def add(self, code: int, n: int, rng: np.random.Generator, behaviour: Behaviour) -> None:
        if n <= 0:
            return
        probs, means = _bucket_model(behaviour.latency_median_ms, behaviour.latency_sigma)
        drawn = rng.multinomial(n, probs)
        self.counts[code] = self.counts.get(code, 0) + n
        self.buckets[code] = self.buckets.get(code, np.zeros(len(probs), np.int64)) + drawn
        self.sums[code] = self.sums.get(code, 0.0) + float(drawn @ means)

    def serve(self, n: int, rng: np.random.Generator, behaviour: Behaviour) -> None:
        errors = int(rng.binomial(n, behaviour.error_rate)) if n else 0
        self.add(OK_CODE, n - errors, rng, behaviour)
        self.add(behaviour.error_code, errors, rng, behaviour)

    def merged(self, other: Tally) -> Tally:
        """A new tally of both (``merged(Tally())`` is a copy)."""
        out = Tally(dict(self.counts), dict(self.buckets), dict(self.sums))
        for code, n in other.counts.items():
            out.counts[code] = out.counts.get(code, 0) + n
            out.buckets[code] = out.buckets.get(code, 0) + other.buckets[code]
            out.sums[code] = out.sums.get(code, 0.0) + other.sums[code]
        return out

    def histogram(self, code: int, boundaries: tuple[float, ...]) -> list[tuple[str, float]]:
        cumulative = np.cumsum(self.buckets[code])
        out = [(_le(b), float(cumulative[EDGES.index(b)])) for b in boundaries]
        return [*out, ("+Inf", float(self.counts[code]))]

    def histogram_all(self, boundaries: tuple[float, ...]) -> list[tuple[str, float]]:
        """The cumulative buckets of all status codes together."""
        total = sum((self.buckets[code] for code in self.counts), np.zeros(len(EDGES) + 1))
        cumulative = np.cumsum(total)
        out = [(_le(b), float(cumulative[EDGES.index(b)])) for b in boundaries]
        return [*out, ("+Inf", float(sum(self.counts.values())))]


def _add(
    counter: Metric,
    histogram: Metric,
    labels: dict[str, str],
    tally: Tally,
    code: int,
    boundaries: tuple[float, ...],
    verdict: dict[str, str] | None = None,
) -> None:
    """One status code's counter sample and histogram samples."""
    counter.add_sample(f"{counter.name}_total", {**labels, **(verdict or {})}, tally.counts[code])
    for le, count in tally.histogram(code, boundaries):
        histogram.add_sample(f"{histogram.name}_bucket", {**labels, "le": le}, count)
    histogram.add_sample(f"{histogram.name}_count", labels, tally.counts[code])
    histogram.add_sample(f"{histogram.name}_sum", labels, tally.sums[code])


def istio_series(
    names: Workloads, served: dict[str, Tally], live: dict[str, Tally]
) -> list[Metric]:
    """Both reporters: the served workload's sidecar (mirrored copies in) and the caller's."""
    requests = Metric("istio_requests", "Requests, by the reporting proxy.", "counter")
    durations = Metric("istio_request_duration_milliseconds", "Request duration.", "histogram")
    for reporter, tallies in (("destination", served), ("source", live)):
        for side, tally in tallies.items():
            workload = names.canary if side == "canary" else names.primary
            labels = {
                "reporter": reporter,
                "source_workload": names.caller,
                "source_workload_namespace": names.namespace,
                "destination_workload": workload,
                "destination_workload_namespace": names.namespace,
                "destination_service": f"{workload}.{names.namespace}.svc.cluster.local",
                "destination_service_name": workload,
                "request_protocol": "http",
                "response_flags": "-",
                "connection_security_policy": (
                    "mutual_tls" if reporter == "destination" else "unknown"
                ),
            }
            for code in sorted(tally.counts):
                coded = {**labels, "response_code": str(code)}
                _add(requests, durations, coded, tally, code, ISTIO_BUCKETS_MS)
    return [requests, durations]


def linkerd_series(
    names: Workloads, served: dict[str, Tally], live: dict[str, Tally]
) -> list[Metric]:
    """Inbound on the served workloads (mirrored copies in), outbound on the caller."""
    responses = Metric("response", "Responses, classified.", "counter")
    latency = Metric("response_latency_ms", "Response latency.", "histogram")
    authority = f"{names.service}.{names.namespace}.svc.cluster.local"
    for direction, tallies in (("inbound", served), ("outbound", live)):
        for side, tally in tallies.items():
            workload = names.canary if side == "canary" else names.primary
            labels = {
                "direction": direction,
                "namespace": names.namespace,
                "tls": "true",
                "authority": authority,
            }
            if direction == "inbound":
                labels.update(deployment=workload, pod=f"{workload}-6d4cf56db6-x7k2p")
            else:
                labels.update(
                    deployment=names.caller,
                    pod=f"{names.caller}-0",
                    dst_namespace=names.namespace,
                    dst_deployment=workload,
                )
            for code in sorted(tally.counts):
                coded = {**labels, "status_code": str(code)}
                verdict = {"classification": "failure" if code >= 500 else "success"}
                _add(responses, latency, coded, tally, code, LINKERD_BUCKETS_MS, verdict)
    return [responses, latency]


def envoy_cluster_name(names: Workloads, rule: int, backend: int, kind: str = "httproute") -> str:
    """Envoy Gateway's cluster of backendRef ``backend`` of rule ``rule`` of the route (named
    ``names.route``, else after the service; one cluster per backendRef: canary's backendRefs
    carry a filter); ``kind``: the route's kind in lower case."""
    route = names.route or names.service
    return f"{kind}/{names.namespace}/{route}/rule/{rule}/backend/{backend}"


GRPC_METHOD = ("podinfo", "Echo", "Echo")
"""The simulated gRPC calls' method, ``podinfo.Echo/Echo``, as Envoy's tag extraction splits
``cluster.<c>.grpc.podinfo.Echo.Echo.<stat>``: envoy_grpc_bridge_service, _method, and the
rest of the name (docs/policies.md, `gateway-api-envoy`)."""


def envoy_grpc_exposition(names: Workloads, clusters: dict[tuple[int, int], Tally]) -> str:
    """The gateway Envoy's statistics when the calls are gRPC, routed by a GRPCRoute named after
    the service (clusters ``grpcroute/...``): the router's, where every call the pod answered
    is an HTTP 200 (its failures are a grpc-status in the trailers), and the gRPC statistics
    filter's ``envoy_cluster_grpc_Echo_total`` and ``_failure`` (a failed call: one the
    simulated side failed, whatever its ``error_code``)."""
    service, method, rest = GRPC_METHOD
    as_http: dict[tuple[int, int], Tally] = {}
    stats: dict[str, list[str]] = {
        f"envoy_cluster_grpc_{rest}_{s}": [] for s in ("total", "failure")
    }
    for (rule, backend), tally in sorted(clusters.items()):
        if not tally.counts:
            continue
        as_http[(rule, backend)] = _all_ok(tally)
        labels = {
            "envoy_cluster_name": envoy_cluster_name(names, rule, backend, "grpcroute"),
            "envoy_grpc_bridge_service": service,
            "envoy_grpc_bridge_method": method,
        }
        total, failure = stats
        stats[total].append(_line(total, labels, sum(tally.counts.values())))
        failed = sum(n for code, n in tally.counts.items() if code != OK_CODE)
        if failed:  # Envoy creates a counter at its first increment
            stats[failure].append(_line(failure, labels, failed))
    out = [envoy_exposition(names, as_http, "grpcroute")]
    for name, lines in stats.items():
        if lines:
            out += [f"# TYPE {name} counter\n", *lines]
    return "".join(out)


def _all_ok(tally: Tally) -> Tally:
    """``tally`` with every response an HTTP 200 (the latencies kept)."""
    ok = Tally()
    for code in tally.counts:
        ok = ok.merged(
            Tally(
                {OK_CODE: tally.counts[code]},
                {OK_CODE: tally.buckets[code]},
                {OK_CODE: tally.sums[code]},
            )
        )
    return ok


def envoy_exposition(
    names: Workloads, clusters: dict[tuple[int, int], Tally], kind: str = "httproute"
) -> str:
    """The gateway Envoy's upstream statistics per cluster, as Envoy's /stats/prometheus writes
    them (counters without ``_total``): ``envoy_cluster_upstream_rq_xx`` by
    ``envoy_response_code_class``, ``envoy_cluster_upstream_rq`` by ``envoy_response_code`` and
    the ``envoy_cluster_upstream_rq_time`` histogram (milliseconds, all codes together)."""
    by_class: list[str] = []
    by_code: list[str] = []
    times: list[str] = []
    for (rule, backend), tally in sorted(clusters.items()):
        if not tally.counts:
            continue
        cluster = envoy_cluster_name(names, rule, backend, kind)
        classes: dict[str, int] = {}
        for code in sorted(tally.counts):
            classes[str(code)[0]] = classes.get(str(code)[0], 0) + tally.counts[code]
            labels = {"envoy_cluster_name": cluster, "envoy_response_code": str(code)}
            by_code.append(_line("envoy_cluster_upstream_rq", labels, tally.counts[code]))
        for klass, n in sorted(classes.items()):
            labels = {"envoy_cluster_name": cluster, "envoy_response_code_class": klass}
            by_class.append(_line("envoy_cluster_upstream_rq_xx", labels, n))
        for le, count in tally.histogram_all(ENVOY_BUCKETS_MS):
            labels = {"envoy_cluster_name": cluster, "le": le}
            times.append(_line("envoy_cluster_upstream_rq_time_bucket", labels, count))
        labels = {"envoy_cluster_name": cluster}
        times.append(_line("envoy_cluster_upstream_rq_time_sum", labels, sum(tally.sums.values())))
        count = sum(tally.counts.values())
        times.append(_line("envoy_cluster_upstream_rq_time_count", labels, count))
    out: list[str] = []
    for name, kind, lines in (
        ("envoy_cluster_upstream_rq", "counter", by_code),
        ("envoy_cluster_upstream_rq_xx", "counter", by_class),
        ("envoy_cluster_upstream_rq_time", "histogram", times),
    ):
        if lines:
            out += [f"# TYPE {name} {kind}\n", *lines]
    return "".join(out)


def _line(name: str, labels: dict[str, str], value: float) -> str:
    pairs = ",".join(f'{key}="{_escape(text)}"' for key, text in labels.items())
    return f"{name}{{{pairs}}} {float(value)!r}\n"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
