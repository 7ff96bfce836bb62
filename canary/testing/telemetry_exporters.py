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
  (ms) by ``envoy_cluster_name``, clusters named ``<route kind>/<ns>/<route>/rule/<i>`` and,
  one per backendRef when backendRefs carry filters, ``.../rule/<i>/backend/<j>`` (Envoy
  Gateway's ``irRoutePrefix``, ``irRouteDestinationName`` and ``irDestinationSettingName``;
  the kind lower-cased: ``httproute``, ``grpcroute``). Envoy's router charges every request
  its cluster answered, and a gRPC call Envoy answers itself (upstream reset, timeout) with
  the HTTP code it stands for (``upstream_rq_503``; Envoy's docs, "gRPC Statistics": unless
  the router's ``suppress_grpc_request_failure_code_stats`` is set, which Envoy Gateway does
  not set).
- Envoy's gRPC statistics filter (envoy ``grpc_stats_filter.cc`` and ``grpc/context_impl.cc``;
  docs "gRPC Statistics"), which Envoy Gateway installs, with ``stats_for_all_methods: true``,
  on every listener that carries a GRPCRoute (envoyproxy/gateway ``internal/xds/filters/
  wellknown.go``, ``internal/xds/translator/listener.go``): for each call that ends with a
  grpc-status, ``cluster.<cluster>.grpc.<service>.<method>.{<status>,success|failure,total}``,
  plus ``request_message_count``/``response_message_count``; Envoy's own replies to gRPC
  calls carry a grpc-status and are counted. Its Prometheus names follow Envoy's tag
  extraction (``source/common/config/well_known_names.cc``: the token after ``grpc`` becomes
  ``envoy_grpc_bridge_service``, the next ``envoy_grpc_bridge_method``, the rest stays in the
  name), so a dotted service lands partly in the name: ``helloworld.Greeter/SayHello`` gives
  ``envoy_cluster_grpc_SayHello_0{envoy_grpc_bridge_service="helloworld",
  envoy_grpc_bridge_method="Greeter"}`` (envoyproxy/envoy#29735). The gRPC-Web filter before
  it counts gRPC-Web calls again under ``cluster.<cluster>.grpc-web.<service>.<method>.*``,
  which no tag matches: ``envoy_cluster_grpc_web_<service>_<method>_total``.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from canary.testing.telemetry_history import (
    CALLERS,
    KINDS,
    History,
    Kind,
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


def envoy_cluster(workload: Workload, route_kind: str = "httproute") -> str:
    """The per-backendRef cluster of the route named after the rollout's target: the primary
    (``<target>-primary``) is backendRef 0, the canary (``<target>``) 1."""
    route = workload.name.removesuffix("-primary")
    backend = 0 if workload.name.endswith("-primary") else 1
    return f"{route_kind}/{workload.namespace}/{route}/rule/0/backend/{backend}"


GRPC_METHODS = ("podinfo.Echo/Echo", "podinfo.Echo/Version")
"""The gRPC methods the history's calls go to: OK and NOT_FOUND calls to the first,
UNAVAILABLE ones to the second."""


def grpc_method(kind: Kind) -> str:
    return GRPC_METHODS[0] if kind.grpc in (0, 5) else GRPC_METHODS[1]


def envoy_samples(counts: dict[str, np.ndarray], *, grpc_web: bool = False) -> list[Sample]:
    """Counts[kind, bucket] by cluster name: the router's statistics of every cluster, and the
    gRPC statistics filter's of the gRPC calls in ``grpcroute/...`` clusters (``grpc_web``:
    this Envoy's gRPC calls to the first method came as gRPC-Web)."""
    out: list[Sample] = []
    for cluster, by_kind in counts.items():
        out += _router_samples(cluster, by_kind)
        if cluster.startswith("grpcroute/"):
            out += _grpc_stats_samples(cluster, by_kind, grpc_web=grpc_web)
    return out


def _router_samples(cluster: str, by_kind: np.ndarray) -> list[Sample]:
    name = {"envoy_cluster_name": cluster}
    classes: dict[str, float] = defaultdict(float)
    codes: dict[str, float] = defaultdict(float)
    for k, kind in enumerate(KINDS):
        classes[str(kind.code)[0]] += float(by_kind[k].sum())
        codes[str(kind.code)] += float(by_kind[k].sum())
    out: list[Sample] = []
    for klass, n in sorted(classes.items()):
        if n:
            labels = {**name, "envoy_response_code_class": klass}
            out.append(("envoy_cluster_upstream_rq_xx", labels, n))
    for code, n in sorted(codes.items()):
        if n:
            out.append(("envoy_cluster_upstream_rq", {**name, "envoy_response_code": code}, n))
    all_kinds = by_kind.sum(axis=0)
    if all_kinds.sum():
        out += _histogram("envoy_cluster_upstream_rq_time", name, all_kinds, ISTIO_BUCKETS_MS)
    return out


def _grpc_stats_samples(cluster: str, by_kind: np.ndarray, *, grpc_web: bool) -> list[Sample]:
    """What the gRPC statistics filter (all methods) shows for the gRPC calls in ``by_kind``;
    each counter is created at its first increment, as Envoy's are."""
    stats: dict[tuple[str, str], float] = defaultdict(float)
    for k, kind in enumerate(KINDS):
        calls = float(by_kind[k].sum())
        if kind.grpc is None or not calls:
            continue
        method = grpc_method(kind)
        outcome = "success" if kind.grpc == 0 else "failure"
        for stat in (str(kind.grpc), outcome, "total", "request_message_count"):
            stats[(method, stat)] += calls
        if kind.grpc == 0:
            stats[(method, "response_message_count")] += calls
        if grpc_web and method == GRPC_METHODS[0]:
            for stat in (str(kind.grpc), outcome, "total"):
                stats[(f"web:{method}", stat)] += calls
    out: list[Sample] = []
    for (method, stat), n in sorted(stats.items()):
        if method.startswith("web:"):
            out.append(_grpc_web_stat(cluster, method.removeprefix("web:"), stat, n))
        else:
            out.append(_grpc_stat(cluster, method, stat, n))
    return out


def _grpc_stat(cluster: str, method: str, stat: str, value: float) -> Sample:
    """``cluster.<cluster>.grpc.<service>.<method>.<stat>`` as Envoy's Prometheus output
    names it after tag extraction (tokens: see the module's docstring)."""
    service, rpc = method.split("/")
    tokens = [*service.split("."), rpc, stat]
    labels = {
        "envoy_cluster_name": cluster,
        "envoy_grpc_bridge_service": tokens[0],
        "envoy_grpc_bridge_method": tokens[1],
    }
    return (f"envoy_cluster_grpc_{'_'.join(tokens[2:])}", labels, value)


def _grpc_web_stat(cluster: str, method: str, stat: str, value: float) -> Sample:
    """``cluster.<cluster>.grpc-web.<service>.<method>.<stat>``: no tag but the cluster's."""
    service, rpc = method.split("/")
    name = "_".join(["envoy_cluster_grpc_web", *service.split("."), rpc, stat])
    return (name, {"envoy_cluster_name": cluster}, value)
