"""The series Istio's proxies, linkerd2-proxy and Envoy Gateway's Envoy expose, as they name
and label them, for a canary.testing.telemetry_history.History (the scrape targets and the
OpenMetrics text: canary.testing.telemetry_backfill).

Where the shapes come from:

- Istio: the standard metrics (istio.io, "Istio Standard Metrics"):
  ``istio_requests_total`` and ``istio_request_duration_milliseconds`` with ``reporter``
  (``destination`` on the server's sidecar, ``source`` on the caller's, ``waypoint`` on an
  ambient-mode waypoint), the ``source_*``/``destination_*`` workload labels,
  ``request_protocol``, ``response_code``, ``grpc_response_status``, ``response_flags``,
  ``connection_security_policy``; default buckets 0.5 ... 3600000 ms. kubelet probes are
  answered by the sidecar's agent and are not in these series.
- linkerd2-proxy (linkerd.io, "Proxy Metrics"; the proxy's ``classify`` module: a grpc-status
  other than 0 is a failure, else a 5xx is): ``request_total``, ``response_total`` (with
  ``status_code``, ``classification``, ``grpc_status``) and ``response_latency_ms`` with
  ``direction``, ``authority``, ``target_addr``/``target_ip``/``target_port``, ``tls``,
  ``client_id``, the policy labels ``srv_*`` and ``route_*`` (kubelet probes on the
  ``probe`` route), and the pod labels linkerd-viz's Prometheus adds (``namespace``,
  ``pod``, ``deployment``, ``pod_template_hash``, ``control_plane_ns``). The proxy's admin
  port 4191 serves ``/live``, ``/ready`` and ``/metrics`` through the inbound stack too.
- Envoy Gateway (gateway.envoyproxy.io, "Gateway Observability"; Envoy's cluster statistics):
  ``envoy_cluster_upstream_rq_xx`` by ``envoy_response_code_class``,
  ``envoy_cluster_upstream_rq`` by ``envoy_response_code``, ``envoy_cluster_upstream_rq_time``
  (ms) by ``envoy_cluster_name``, clusters named ``httproute/<ns>/<route>/rule/<i>`` and, one
  per backendRef when backendRefs carry filters, ``.../rule/<i>/backend/<j>``.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from canary.testing.telemetry_history import (
    CALLERS,
    KINDS,
    History,
    Pod,
    Workload,
    cumulative,
    le_text,
)
from canary.testing.telemetry_series import EDGES, ISTIO_BUCKETS_MS, LINKERD_BUCKETS_MS

Labels = dict[str, str]
Sample = tuple[str, Labels, float]

LINKERD_ADMIN_PORT = "4191"
APP_PORT = "9898"
GATEWAY_NAMESPACE = "envoy-gateway-system"


def _buckets(counts: np.ndarray, boundaries: tuple[float, ...]) -> list[tuple[str, float]]:
    """Cumulative counts at each boundary, from counts in the union's buckets (EDGES)."""
    running = np.cumsum(counts)
    out = [(le_text(b), float(running[EDGES.index(b)])) for b in boundaries]
    return [*out, ("+Inf", float(running[-1]))]


def _histogram(
    name: str, labels: Labels, counts: np.ndarray, boundaries: tuple[float, ...]
) -> list[Sample]:
    out: list[Sample] = [
        (f"{name}_bucket", {**labels, "le": le}, value)
        for le, value in _buckets(counts, boundaries)
    ]
    mids = np.array([*EDGES, EDGES[-1]]) * 0.7
    out.append((f"{name}_count", labels, float(counts.sum())))
    out.append((f"{name}_sum", labels, float(counts @ mids)))
    return out


# Istio


def _istio_labels(reporter: str, caller: str, workload: Workload) -> Labels:
    ns = workload.namespace
    return {
        "reporter": reporter,
        "source_workload": caller,
        "source_workload_namespace": "web",
        "source_principal": f"spiffe://cluster.local/ns/web/sa/{caller}",
        "source_app": caller,
        "source_version": "unknown",
        "source_cluster": "Kubernetes",
        "destination_workload": workload.name,
        "destination_workload_namespace": ns,
        "destination_principal": f"spiffe://cluster.local/ns/{ns}/sa/{workload.name}",
        "destination_app": "podinfo",
        "destination_version": "unknown",
        "destination_service": f"podinfo.{ns}.svc.cluster.local",
        "destination_service_name": "podinfo",
        "destination_service_namespace": ns,
        "destination_cluster": "Kubernetes",
        "response_flags": "-",
        "connection_security_policy": "mutual_tls" if reporter != "source" else "unknown",
    }


def _istio_kind(labels: Labels, k: int) -> Labels:
    kind = KINDS[k]
    out = {**labels, "request_protocol": "grpc" if kind.grpc is not None else "http"}
    out["response_code"] = str(kind.code)
    if kind.grpc is not None:
        out["grpc_response_status"] = str(kind.grpc)
    return out


def istio_samples(reporter: str, counts: dict[tuple[str, Workload], np.ndarray]) -> list[Sample]:
    """Istio's series for counts[caller, kind, bucket] by (caller name, workload)."""
    out: list[Sample] = []
    for (caller, workload), by_kind in counts.items():
        base = _istio_labels(reporter, caller, workload)
        for k in range(len(KINDS)):
            n = by_kind[k].sum()
            if not n:
                continue  # created at its first request
            labels = _istio_kind(base, k)
            out.append(("istio_requests_total", labels, float(n)))
            out += _histogram(
                "istio_request_duration_milliseconds", labels, by_kind[k], ISTIO_BUCKETS_MS
            )
    return out


# Linkerd


def _linkerd_inbound(pod: Pod, client: str) -> Labels:
    return {
        "direction": "inbound",
        "authority": f"podinfo.{pod.namespace}.svc.cluster.local:{APP_PORT}",
        "target_addr": f"{pod.ip}:{APP_PORT}",
        "target_ip": pod.ip,
        "target_port": APP_PORT,
        "tls": "true",
        "client_id": f"{client}.web.serviceaccount.identity.linkerd.cluster.local",
        "srv_group": "",
        "srv_kind": "default",
        "srv_name": "all-unauthenticated",
        "route_group": "",
        "route_kind": "default",
        "route_name": "default",
    }


def _linkerd_kind(labels: Labels, k: int) -> tuple[Labels, Labels]:
    """The response labels, and the latency labels (without the classification)."""
    kind = KINDS[k]
    latency = {**labels, "status_code": str(kind.code)}
    response = {**latency, "classification": "failure" if kind.failed else "success"}
    if kind.grpc is not None:
        response["grpc_status"] = str(kind.grpc)
    return response, latency


def _linkerd_counted(labels: Labels, by_kind: np.ndarray) -> list[Sample]:
    """request_total, response_total by kind, and response_latency_ms by status code (the
    latency is taken at the response's headers, before a gRPC status arrives in trailers)."""
    out: list[Sample] = []
    total = float(by_kind.sum())
    if total:
        out.append(("request_total", labels, total))
    latency_by_code: dict[str, tuple[Labels, np.ndarray]] = {}
    for k in range(len(KINDS)):
        if not by_kind[k].sum():
            continue
        response, latency = _linkerd_kind(labels, k)
        out.append(("response_total", response, float(by_kind[k].sum())))
        code = latency["status_code"]
        before = latency_by_code.get(code, (latency, np.zeros_like(by_kind[k])))[1]
        latency_by_code[code] = (latency, before + by_kind[k])
    for latency, counts in latency_by_code.values():
        out += _histogram("response_latency_ms", latency, counts, LINKERD_BUCKETS_MS)
    return out


def _proxy_traffic(pod: Pod, since: int, t: int) -> list[Sample]:
    """The proxy's own inbound traffic, all answered 200 in about 1 ms: kubelet's probes of
    the application (the probe route, every 10 s each for readiness and liveness), its probes
    of the proxy (/live, /ready every 10 s on 4191) and Prometheus scraping /metrics (every
    5 s on 4191)."""
    alive = t - since + 1
    probe = {
        **_linkerd_inbound(pod, "kubelet"),
        "tls": "no_identity",
        "client_id": "",
        "route_kind": "default",
        "route_name": "probe",
    }
    admin = {
        **probe,
        "authority": f"{pod.ip}:{LINKERD_ADMIN_PORT}",
        "target_addr": f"{pod.ip}:{LINKERD_ADMIN_PORT}",
        "target_port": LINKERD_ADMIN_PORT,
        "srv_name": "admin",
        "route_name": "default",
    }
    scrape = {
        **admin,
        "tls": "true",
        "client_id": "prometheus.linkerd-viz.serviceaccount.identity.linkerd.cluster.local",
    }
    out: list[Sample] = []
    for labels, every in ((probe, 5), (admin, 5), (scrape, 5)):
        counts = np.zeros((len(KINDS), len(EDGES) + 1))
        counts[0, 1] = alive // every  # HTTP 200, in the (0.5, 1] ms bucket
        out += _linkerd_counted(labels, counts)
    return out


def linkerd_pod_samples(history: History, pod: Pod, t: int) -> list[Sample]:
    by_caller = cumulative(history, pod, t)
    out: list[Sample] = []
    for c, (caller, _) in enumerate(CALLERS):
        out += _linkerd_counted(_linkerd_inbound(pod, caller), by_caller[c])
    return out + _proxy_traffic(pod, pod.counting_since(t), t)


def linkerd_caller_samples(counts: dict[tuple[str, Workload], np.ndarray]) -> list[Sample]:
    """direction="outbound" on the callers' proxies: the same requests, as sent."""
    out: list[Sample] = []
    for (_, workload), by_kind in counts.items():
        labels = {
            "direction": "outbound",
            "authority": f"podinfo.{workload.namespace}.svc.cluster.local:{APP_PORT}",
            "tls": "true",
            "dst_namespace": workload.namespace,
            "dst_deployment": workload.name,
            "dst_service": "podinfo",
        }
        out += _linkerd_counted(labels, by_kind)
    return out


# Envoy Gateway


def envoy_cluster(workload: Workload) -> str:
    """The per-backendRef cluster of the HTTPRoute named after the rollout's target: the
    primary (``<target>-primary``) is backendRef 0, the canary (``<target>``) 1."""
    route = workload.name.removesuffix("-primary")
    backend = 0 if workload.name.endswith("-primary") else 1
    return f"httproute/{workload.namespace}/{route}/rule/0/backend/{backend}"


def envoy_samples(counts: dict[str, np.ndarray]) -> list[Sample]:
    """Counts[kind, bucket] by cluster name."""
    out: list[Sample] = []
    for cluster, by_kind in counts.items():
        name = {"envoy_cluster_name": cluster}
        classes: dict[str, float] = defaultdict(float)
        codes: dict[str, float] = defaultdict(float)
        for k, kind in enumerate(KINDS):
            classes[str(kind.code)[0]] += float(by_kind[k].sum())
            codes[str(kind.code)] += float(by_kind[k].sum())
        for klass, n in sorted(classes.items()):
            if n:
                out.append(
                    (
                        "envoy_cluster_upstream_rq_xx",
                        {**name, "envoy_response_code_class": klass},
                        n,
                    )
                )
        for code, n in sorted(codes.items()):
            if n:
                out.append(("envoy_cluster_upstream_rq", {**name, "envoy_response_code": code}, n))
        all_kinds = by_kind.sum(axis=0)
        if all_kinds.sum():
            out += _histogram("envoy_cluster_upstream_rq_time", name, all_kinds, ISTIO_BUCKETS_MS)
    return out
