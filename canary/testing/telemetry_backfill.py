"""The scrape targets of a canary.testing.telemetry_history.History (each sidecar, caller,
waypoint and gateway Envoy, with the target labels Prometheus adds) and their OpenMetrics text
with scrape timestamps, for ``promtool tsdb create-blocks-from openmetrics``. The series'
shapes, and where they come from: canary.testing.telemetry_exporters."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from canary.testing.telemetry_exporters import (
    GATEWAY_NAMESPACE,
    LINKERD_ADMIN_PORT,
    Labels,
    Sample,
    envoy_cluster,
    envoy_samples,
    istio_samples,
    linkerd_caller_samples,
    linkerd_pod_samples,
)
from canary.testing.telemetry_history import CALLERS, KINDS, History, Pod, Workload, cumulative
from canary.testing.telemetry_series import EDGES


@dataclass(frozen=True)
class Target:
    """One scrape target: its name (for the scrape phase), its pod, what it exposes."""

    name: str
    pod: Pod | None
    labels: Labels
    expose: Callable[[int], list[Sample]]


# The scrape targets


def _pod_labels(pod: Pod) -> Labels:
    return {"namespace": pod.namespace, "pod": pod.name}


def _server_targets(history: History, workload: Workload, pod: Pod) -> list[Target]:
    def istio(t: int) -> list[Sample]:
        counts = cumulative(history, pod, t)
        by = {(caller, workload): counts[c] for c, (caller, _) in enumerate(CALLERS)}
        return istio_samples("destination", by)

    def linkerd(t: int) -> list[Sample]:
        return linkerd_pod_samples(history, pod, t)

    hash_ = pod.name.rsplit("-", 2)[-2] if pod.name.count("-") >= 2 else "0"
    return [
        Target(
            f"istio/{pod.name}",
            pod,
            {"job": "kubernetes-pods", "instance": f"{pod.ip}:15020", **_pod_labels(pod)},
            istio,
        ),
        Target(
            f"linkerd/{pod.name}",
            pod,
            {
                "job": "linkerd-proxy",
                "instance": f"{pod.ip}:{LINKERD_ADMIN_PORT}",
                **_pod_labels(pod),
                "deployment": workload.name,
                "pod_template_hash": hash_,
                "control_plane_ns": "linkerd",
                "workload_ns": pod.namespace,
            },
            linkerd,
        ),
    ]


def _sent(history: History, t: int) -> dict[tuple[str, Workload], np.ndarray]:
    """Everything each caller sent each workload up to ``t``: counts[kind, bucket]."""
    out = {}
    for workload in history.workloads:
        for c, (caller, _) in enumerate(CALLERS):
            out[(caller, workload)] = sum(
                (history.running[p.name][t][c] for p in workload.pods),
                np.zeros((len(KINDS), len(EDGES) + 1), np.int64),
            )
    return out


GATEWAYS = (
    Pod(
        "envoy-shop-gateway-7f9c8d-k2x4q",
        "envoy-shop-gateway",
        GATEWAY_NAMESPACE,
        0,
        None,
        (150,),
        "10.0.9.1",
    ),
    Pod(
        "envoy-shop-gateway-7f9c8d-p8r2m",
        "envoy-shop-gateway",
        GATEWAY_NAMESPACE,
        0,
        None,
        (),
        "10.0.9.2",
    ),
)
"""Envoy Gateway's two Envoys; the first restarts at 150 s. Envoy g proxies caller g."""


def gateway_counts(
    history: History, gateway: int, since: int, t: int, *, grpc_route: bool = True
) -> dict[str, np.ndarray]:
    """What Envoy ``gateway`` counted per cluster from ``since`` to ``t``: counts[kind, bucket].
    With ``grpc_route`` the gRPC calls go through a GRPCRoute named like the HTTPRoute (its own
    clusters, ``grpcroute/...``), the rest through the HTTPRoute; without, all through the
    HTTPRoute, on a listener without the gRPC statistics filter."""
    grpc = np.array([kind.is_grpc and grpc_route for kind in KINDS])
    out: dict[str, np.ndarray] = {}
    for workload in history.workloads:
        total = np.zeros((len(KINDS), len(EDGES) + 1), np.int64)
        for p in workload.pods:
            running = history.running[p.name]
            total += running[t][gateway] - (running[since - 1][gateway] if since > 0 else 0)
        out[envoy_cluster(workload)] = np.where(grpc[:, None], 0, total)
        if grpc_route:
            out[envoy_cluster(workload, "grpcroute")] = np.where(grpc[:, None], total, 0)
    # A second rule without filters: one cluster for both backends, which must not be read.
    out["httproute/shop/podinfo/rule/1"] = out["httproute/shop/podinfo/rule/0/backend/0"] // 3
    return out


def _caller_targets(history: History, caller: str) -> list[Target]:
    """The caller's own sidecar (Istio, reporter="source") and proxy (Linkerd, outbound)."""
    pod = Pod(f"{caller}-6b7d9c-0", caller, "web", 0, ip="10.0.8.1")
    labels = {"instance": f"{pod.ip}:15020", **_pod_labels(pod)}

    def sent(t: int) -> dict[tuple[str, Workload], np.ndarray]:
        return {k: v for k, v in _sent(history, t).items() if k[0] == caller}

    def istio(t: int) -> list[Sample]:
        return istio_samples("source", sent(t))

    def linkerd(t: int) -> list[Sample]:
        return linkerd_caller_samples(sent(t))

    return [
        Target(f"istio/{pod.name}", pod, {"job": "kubernetes-pods", **labels}, istio),
        Target(
            f"linkerd/{pod.name}",
            pod,
            {"job": "linkerd-proxy", **labels, "deployment": caller},
            linkerd,
        ),
    ]


def mesh_targets(history: History, *, grpc_route: bool = True) -> list[Target]:
    """Every target of the three meshes for ``history`` (``grpc_route``: gateway_counts)."""
    targets: list[Target] = []
    for workload in history.workloads:
        for pod in workload.pods:
            targets += _server_targets(history, workload, pod)
    for caller, _ in CALLERS:
        targets += _caller_targets(history, caller)
    for namespace in sorted({w.namespace for w in history.workloads}):
        pod = Pod(f"waypoint-5d4f8b-{namespace}", "waypoint", namespace, 0, ip="10.0.7.1")

        def waypoint(t: int, namespace: str = namespace) -> list[Sample]:
            sent = _sent(history, t)
            return istio_samples(
                "waypoint", {k: v for k, v in sent.items() if k[1].namespace == namespace}
            )

        targets.append(
            Target(
                f"waypoint/{namespace}",
                pod,
                {"job": "waypoint", "instance": f"{pod.ip}:15020", **_pod_labels(pod)},
                waypoint,
            )
        )
    for g, pod in enumerate(GATEWAYS):

        def envoy(t: int, g: int = g, pod: Pod = pod) -> list[Sample]:
            since = pod.counting_since(t)
            counts = gateway_counts(history, g, since, t, grpc_route=grpc_route)
            return envoy_samples(counts, grpc_web=g == 1)

        targets.append(
            Target(
                f"envoy/{pod.name}",
                pod,
                {"job": "envoy-gateway", "instance": f"{pod.ip}:19001", **_pod_labels(pod)},
                envoy,
            )
        )
    return targets


# OpenMetrics


def openmetrics(
    history: History, targets: list[Target], *, float_le: bool = False
) -> Iterator[str]:
    """The text promtool backfills: every target's samples at each of its scrapes.
    ``float_le`` writes bucket boundaries as Prometheus 3 stores classic histograms' (``500.0``
    for ``500``)."""
    families: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for target in targets:
        for t in history.scrapes(target.name, target.pod):
            stamp = history.start + t
            for name, labels, value in target.expose(t):
                if float_le and "le" in labels and labels["le"] != "+Inf":
                    labels = {**labels, "le": repr(float(labels["le"]))}
                text = _labels({**labels, **target.labels})
                families[name].append((stamp, f"{name}{text} {value:.17g} {stamp}\n"))
    for name, lines in families.items():
        yield f"# TYPE {name} unknown\n"
        lines.sort(key=lambda pair: pair[0])
        yield from (line for _, line in lines)
    yield "# EOF\n"


def _labels(labels: Labels) -> str:
    pairs = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items() if v != "")
    return "{" + pairs + "}"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
