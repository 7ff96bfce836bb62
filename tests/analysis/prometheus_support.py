"""A real Prometheus (Debian package `prometheus`) loaded with known series, and a fake one.

The known series are written as OpenMetrics with fixed timestamps a few hours in the past and
backfilled with `promtool tsdb create-blocks-from openmetrics` into the data directory before
Prometheus starts, so nothing is scraped and nothing waits for time to pass. Every series is a
counter that grows by a fixed amount every 10 s; at `LoadedPrometheus.at`, which falls 5 s
after a sample, `increase(x[1m])` sees six samples 50 s apart and extrapolates them to exactly
six steps: the expected counts per minute are 6 x the increments below.

Each exporter's series are shaped like the real ones (names, labels, buckets, the noise a
query must leave out: the other reporter, outbound traffic, other workloads). `FakePrometheus`
is a local HTTP server that answers the query API as told and records what it was sent.
"""

from __future__ import annotations

import json
import math
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from prometheus_backfill import history_start, start_backfilled_prometheus

from canary.analysis.provider import Targets
from canary.local.processes import ManagedProcess, free_port
from canary.local.service import LATENCY_BUCKETS

STEP = 10
"""Seconds between two samples of a series."""
SPAN = 25 * 60
"""Seconds of data."""
AT_OFFSET = 20 * 60 + 5
"""The query time, after the first sample: 5 s after a sample, with 20 minutes of data before."""


ISTIO_BUCKETS = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)
LINKERD_BUCKETS = (1, 2, 3, 4, 5, 10, 20, 30, 40, 50, 100, 200, 300, 400, 500, 1000, 2000, 5000)
ENVOY_BUCKETS = ISTIO_BUCKETS  # Envoy's default histogram buckets (ms)


@dataclass(frozen=True)
class Traffic:
    """What one version serves every 10 s: answers by status code, and by latency (ms)."""

    codes: dict[int, int]
    latency: dict[float, int]

    def __post_init__(self) -> None:
        assert sum(self.codes.values()) == sum(self.latency.values())

    @property
    def requests(self) -> int:
        """Requests per minute."""
        return 6 * sum(self.codes.values())

    @property
    def errors(self) -> int:
        return 6 * sum(n for code, n in self.codes.items() if code >= 500)

    def slow(self, objective_ms: float) -> int:
        return 6 * sum(n for upper, n in self.latency.items() if upper > objective_ms)

    def histograms(self) -> dict[int, dict[float, int]]:
        """Latency by status code: errors answer fast (in the first bucket), the rest as set."""
        first = min(self.latency)
        by_code: dict[int, dict[float, int]] = {}
        for code, n in self.codes.items():
            if code >= 500:
                by_code[code] = {first: n}
        ok = dict(self.latency)
        ok[first] -= sum(n for code, n in self.codes.items() if code >= 500)
        for code in self.codes:
            if code < 500:
                by_code[code] = ok
                ok = dict.fromkeys(ok, 0)  # one code carries them all
        return by_code


BAD_CANARY = Traffic(
    codes={200: 98, 500: 1, 503: 1},
    latency={10: 20, 50: 55, 100: 15, 500: 6, 1000: 3, 5000: 1},
)
"""600 requests a minute, 12 errors (2%), 24 slower than 500 ms; p99 exactly 1000 ms."""
PRIMARY = Traffic(
    codes={200: 498, 500: 2},
    latency={10: 150, 50: 250, 100: 80, 500: 19, 1000: 1},
)
"""3,000 requests a minute, 12 errors (0.4%), 6 slower than 500 ms; p99 between 100 and 500."""
HEALTHY_CANARY = Traffic(codes={200: 100}, latency={10: 30, 50: 55, 100: 14, 500: 1})
"""600 requests a minute, no 5xx at all (no 5xx series either), none slow; p99 exactly 100."""


@dataclass(frozen=True)
class Scenario:
    """A rollout's names under one policy, and what its two sides served."""

    targets: Targets
    canary: Traffic
    primary: Traffic


def _scenarios() -> dict[str, dict[str, Scenario]]:
    def k8s(namespace: str, canary: Traffic) -> Scenario:
        names = Targets(
            namespace=namespace, target="podinfo", canary="podinfo", primary="podinfo-primary"
        )
        return Scenario(names, canary, PRIMARY)

    def servers(target: str, canary: str, primary: str, traffic: Traffic) -> Scenario:
        names = Targets(namespace="default", target=target, canary=canary, primary=primary)
        return Scenario(names, traffic, PRIMARY)

    local = {
        "bad": servers("podinfo", "canary", "primary", BAD_CANARY),
        "healthy": servers("shop", "green", "blue", HEALTHY_CANARY),
    }
    mesh = {"bad": k8s("test", BAD_CANARY), "healthy": k8s("healthy", HEALTHY_CANARY)}
    return {"istio": mesh, "linkerd": mesh, "gateway-api-envoy": mesh, "haproxy": local}


SCENARIOS = _scenarios()
"""policy -> scenario name ('bad', 'healthy') -> Scenario."""

NAN_RATIO = "canary_test_ratio"
"""A gauge per deployment in namespace "test": NaN for the canary, 0.25 for the primary; +Inf
for the canary in namespace "healthy"."""


@dataclass
class _Families:
    """OpenMetrics families being written: name -> series (labels, increment per step)."""

    counters: dict[str, list[tuple[dict[str, str], float]]] = field(default_factory=dict)
    gauges: dict[str, list[tuple[dict[str, str], float]]] = field(default_factory=dict)

    def counter(self, name: str, labels: dict[str, str], per_step: float) -> None:
        self.counters.setdefault(name, []).append((labels, per_step))

    def histogram(
        self,
        name: str,
        labels: dict[str, str],
        per_step: dict[float, int],
        buckets: tuple[float, ...],
        scale: float = 1.0,
    ) -> None:
        """``per_step``: observations by upper bound (ms); ``buckets`` in the exporter's unit,
        ``scale`` the exporter's unit in ms."""
        for bound in (*buckets, math.inf):
            below = sum(n for upper, n in per_step.items() if upper <= bound * scale * 1.000001)
            self.counter(f"{name}_bucket", {**labels, "le": _le(bound)}, below)
        self.counter(f"{name}_count", labels, sum(per_step.values()))
        observed = sum(upper * n for upper, n in per_step.items()) / scale
        self.counter(f"{name}_sum", labels, observed)

    def text(self, start: int) -> str:
        lines: list[str] = []
        for name, series in self.counters.items():
            lines.append(f"# TYPE {name} unknown")
            for step in range(SPAN // STEP + 1):
                for labels, per_step in series:
                    value = 1000 * per_step + step * per_step  # never near zero
                    lines.append(f"{name}{_labels(labels)} {value:.15g} {start + step * STEP}")
        for name, series in self.gauges.items():
            lines.append(f"# TYPE {name} unknown")
            for step in range(SPAN // STEP + 1):
                for labels, value in series:
                    shown = "NaN" if math.isnan(value) else f"{value:g}".replace("inf", "+Inf")
                    lines.append(f"{name}{_labels(labels)} {shown} {start + step * STEP}")
        lines.append("# EOF")
        return "\n".join(lines) + "\n"


def _le(bound: float) -> str:
    if math.isinf(bound):
        return "+Inf"
    return repr(float(bound)) if isinstance(bound, float) else str(bound)


def _labels(labels: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def _istio(out: _Families, namespace: str, workload: str, traffic: Traffic) -> None:
    for reporter in ("destination", "source"):  # the source's copy must not be counted twice
        for code, n in traffic.codes.items():
            labels = {
                "reporter": reporter,
                "source_workload": "loadgen",
                "source_workload_namespace": namespace,
                "destination_workload": workload,
                "destination_workload_namespace": namespace,
                "destination_service": f"podinfo.{namespace}.svc.cluster.local",
                "request_protocol": "http",
                "response_code": str(code),
                "response_flags": "-",
                "connection_security_policy": "mutual_tls",
            }
            out.counter("istio_requests_total", labels, n)
            out.histogram(
                "istio_request_duration_milliseconds",
                labels,
                traffic.histograms()[code],
                ISTIO_BUCKETS,
            )


def _linkerd(out: _Families, namespace: str, workload: str, traffic: Traffic) -> None:
    for direction in ("inbound", "outbound"):  # outbound: the calls it makes, not its answers
        for code, n in traffic.codes.items():
            labels = {
                "direction": direction,
                "namespace": namespace,
                "deployment": workload,
                "pod": f"{workload}-6d4cf56db6-x7x2q",
                "authority": f"podinfo.{namespace}.svc.cluster.local:9898",
                "status_code": str(code),
                "tls": "true",
            }
            kind = "failure" if code >= 500 else "success"
            out.counter("response_total", {**labels, "classification": kind}, n)
            out.histogram(
                "response_latency_ms", labels, traffic.histograms()[code], LINKERD_BUCKETS
            )


def _envoy(out: _Families, namespace: str, index: int, traffic: Traffic, route: str) -> None:
    cluster = {"envoy_cluster_name": f"httproute/{namespace}/{route}/rule/0/backend/{index}"}
    classes: dict[str, int] = {}
    for code, n in traffic.codes.items():
        out.counter("envoy_cluster_upstream_rq", {**cluster, "envoy_response_code": str(code)}, n)
        classes[str(code // 100)] = classes.get(str(code // 100), 0) + n
    for klass, n in classes.items():  # Envoy creates a class's counter on its first response
        out.counter(
            "envoy_cluster_upstream_rq_xx", {**cluster, "envoy_response_code_class": klass}, n
        )
    out.counter("envoy_cluster_upstream_rq_total", cluster, sum(traffic.codes.values()))
    out.histogram("envoy_cluster_upstream_rq_time", cluster, traffic.latency, ENVOY_BUCKETS)


def _haproxy(
    out: _Families, backend: str, server: str, traffic: Traffic, port: int, ab: bool = False
) -> None:
    """``ab``: half of the answers go through the A/B twin backend ``<backend>_canary``."""
    for klass in ("1xx", "2xx", "3xx", "4xx", "5xx", "other"):  # always all, zeros included
        n = sum(c for code, c in traffic.codes.items() if f"{code // 100}xx" == klass)
        shares = {backend: n - n // 2, f"{backend}_canary": n // 2} if ab else {backend: n}
        for proxy, share in shares.items():
            labels = {"proxy": proxy, "server": server, "code": klass}
            out.counter("haproxy_server_http_responses_total", labels, share)
    # The service behind the server, scraped by local mode with the server's name as a label.
    scrape = {"job": "services", "instance": f"127.0.0.1:{port}", "server": server}
    for code, n in traffic.codes.items():
        out.counter("http_requests_total", {**scrape, "code": str(code)}, n)
    out.histogram(
        "http_request_duration_seconds", scrape, traffic.latency, LATENCY_BUCKETS, scale=1000
    )


def openmetrics(start: int) -> str:
    """Every scenario's series (and some noise), from ``start`` for SPAN seconds."""
    out = _Families()
    for name, scenario in SCENARIOS["istio"].items():
        t = scenario.targets
        for workload, traffic in ((t.canary, scenario.canary), (t.primary, scenario.primary)):
            _istio(out, t.namespace, workload, traffic)
            _linkerd(out, t.namespace, workload, traffic)
        _envoy(out, t.namespace, 0, scenario.primary, "podinfo")
        _envoy(out, t.namespace, 1, scenario.canary, "podinfo")
        if name == "bad":  # another workload and route in the namespace, failing a lot
            noise = Traffic(codes={200: 10, 500: 10}, latency={5000: 20})
            _istio(out, t.namespace, "frontend", noise)
            _linkerd(out, t.namespace, "frontend", noise)
            _envoy(out, t.namespace, 1, noise, "frontend")
    for port, scenario in enumerate(SCENARIOS["haproxy"].values(), start=8001):
        t = scenario.targets
        _haproxy(out, t.target, t.primary, scenario.primary, port)
        _haproxy(out, t.target, t.canary, scenario.canary, port + 10, ab=t.target == "podinfo")
    # Another backend with servers of the same names: only its HAProxy counts are told apart.
    noise = {"proxy": "other", "server": "canary", "code": "5xx"}
    out.counter("haproxy_server_http_responses_total", noise, 50)
    out.gauges[NAN_RATIO] = [
        ({"namespace": "test", "deployment": "podinfo"}, math.nan),
        ({"namespace": "test", "deployment": "podinfo-primary"}, 0.25),
        ({"namespace": "healthy", "deployment": "podinfo"}, math.inf),
        ({"namespace": "healthy", "deployment": "podinfo-primary"}, 0.5),
    ]
    return out.text(start)


@dataclass
class LoadedPrometheus:
    """A running Prometheus holding the known series; query it at ``at``."""

    url: str
    at: datetime
    process: ManagedProcess


def start_loaded_prometheus(workdir: Path, now: float | None = None) -> LoadedPrometheus:
    """Backfill the known series and start Prometheus on a free port; fails with the reason."""
    start = history_start(now)
    source = workdir / "series.om"
    source.write_text(openmetrics(start))
    url, process = start_backfilled_prometheus(workdir, source)
    return LoadedPrometheus(url, datetime.fromtimestamp(start + AT_OFFSET, UTC), process)


def closed_port() -> int:
    """A port nothing listens on (it was free a moment ago)."""
    return free_port()


@dataclass(frozen=True)
class Certificate:
    """A self-signed certificate for 127.0.0.1 (its own CA) and its key, as PEM files."""

    cert: Path
    key: Path

    def server_context(self, client_ca: Path | None = None) -> ssl.SSLContext:
        """A server's TLS context; with ``client_ca`` it asks for a client certificate."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        if client_ca is not None:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(client_ca)
        return context


def self_signed(directory: Path, name: str) -> Certificate:
    """A certificate made by the openssl command (valid for a day, for IP 127.0.0.1)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("the TLS tests need the openssl command (apt-get install openssl)")
    cert, key = directory / f"{name}.pem", directory / f"{name}-key.pem"
    request = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    files = ["-keyout", str(key), "-out", str(cert)]
    names = ["-subj", f"/CN={name}", "-addext", "subjectAltName=IP:127.0.0.1"]
    subprocess.run(
        [openssl, *request, *files, *names],
        check=True,
        capture_output=True,
    )
    return Certificate(cert, key)


@dataclass
class Recorded:
    """One request the fake Prometheus received."""

    path: str
    params: dict[str, str]
    headers: dict[str, str]
    method: str = "GET"


Answer = tuple[int, Any, float]
"""HTTP status, JSON body, and seconds to wait before answering."""


class FakePrometheus:
    """A local server answering Prometheus's query API as ``answer`` says; records requests."""

    def __init__(
        self, answer: Callable[[Recorded], Answer], tls: ssl.SSLContext | None = None
    ) -> None:
        self.answer = answer
        self.received: list[Recorded] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.do_GET(self.rfile.read(length).decode())

            def do_GET(self, form: str = "") -> None:
                url = urlparse(self.path)
                params = {k: v[0] for k, v in parse_qs(url.query).items()}
                params.update({k: v[0] for k, v in parse_qs(form).items()})
                recorded = Recorded(url.path, params, dict(self.headers.items()), self.command)
                fake.received.append(recorded)
                status, body, delay = fake.answer(recorded)
                time.sleep(delay)
                payload = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    if status in (301, 302, 303, 307, 308):
                        self.send_header("Location", str(body))
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up waiting

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.scheme = "http"
        if tls is not None:  # a failed handshake drops that connection; the server goes on
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{self.scheme}://{host!s}:{port}"

    def __enter__(self) -> FakePrometheus:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def vector(*series: tuple[dict[str, str], str]) -> dict[str, Any]:
    """A successful instant-query answer holding ``series`` (labels, value as Prometheus writes
    it)."""
    result = [{"metric": labels, "value": [1.0, value]} for labels, value in series]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def error(kind: str, message: str) -> dict[str, Any]:
    return {"status": "error", "errorType": kind, "error": message}


@dataclass
class Sleeps:
    """An injected sleep that records what it was asked to wait, and does not wait."""

    delays: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
