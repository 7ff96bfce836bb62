"""The controller's own metrics (prometheus-client) and its small HTTP server:
``/metrics``, ``/healthz`` (the controller's threads are alive) and ``/readyz`` (its caches
are synced). docs/controller.md lists the series."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics import Counter, Gauge, Histogram
from prometheus_client.registry import Collector

from canary.model.status import CheckResult, Phase

log = logging.getLogger("canary.controller.metrics")

DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
LATENESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class _RolloutCollector(Collector):
    """Rollouts by phase and each rollout's canary weight, from the last tick of each."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rollouts: dict[tuple[str, str], tuple[Phase, int]] = {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self.lock:
            known = dict(self.rollouts)
        phases = GaugeMetricFamily(
            "canary_rollouts", "Rollouts by phase (as of their last tick).", labels=["phase"]
        )
        for phase in Phase:
            phases.add_metric([phase.value], sum(1 for p, _ in known.values() if p is phase))
        yield phases
        weight = GaugeMetricFamily(
            "canary_rollout_canary_weight",
            "The canary's share of traffic in percent.",
            labels=["namespace", "name"],
        )
        info = GaugeMetricFamily(
            "canary_rollout_phase",
            "1 for the phase each rollout is in.",
            labels=["namespace", "name", "phase"],
        )
        for (namespace, name), (phase, value) in sorted(known.items()):
            weight.add_metric([namespace, name], value)
            info.add_metric([namespace, name, phase.value], 1)
        yield weight
        yield info


class ControllerMetrics:
    """The series; each controller has a registry of its own (two can share a process)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self._rollouts = _RolloutCollector()
        self.registry.register(self._rollouts)
        self.checks = Counter(
            "canary_check_results",
            "Check verdicts, by rollout, check and verdict.",
            ["namespace", "name", "check", "verdict"],
            registry=self.registry,
        )
        self.reconcile_duration = Histogram(
            "canary_reconcile_duration_seconds",
            "Time a tick took, by outcome (ok, skipped, invalid, error).",
            ["outcome"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.reconcile_errors = Counter(
            "canary_reconcile_errors",
            "Ticks that failed, by rollout and reason.",
            ["namespace", "name", "reason"],
            registry=self.registry,
        )
        self.status_conflicts = Counter(
            "canary_status_conflicts",
            "Status writes answered 409 (re-read and retried).",
            registry=self.registry,
        )
        self.watch_relists = Counter(
            "canary_watch_relists",
            "Lists after the first, by resource (410 Gone, or a watch that failed).",
            ["resource"],
            registry=self.registry,
        )
        self.route_changes = Counter(
            "canary_route_object_changes",
            "Changes of route objects seen by their watch, by kind and by whom: canary (the "
            "echo of its own write) or others (a hand edit: its Rollout ticks at once).",
            ["kind", "by"],
            registry=self.registry,
        )
        self.leader = Gauge(
            "canary_leader", "1 while this replica holds the leader Lease.", registry=self.registry
        )
        self.shards_held = Gauge(
            "canary_shards_held",
            "Shards of the Rollouts this replica holds (--shards above 1).",
            registry=self.registry,
        )
        self.tick_lateness = Histogram(
            "canary_tick_lateness_seconds",
            "How long after it was due a tick started, by kind (scheduled: at its requeue time; "
            "early: woken by a change).",
            ["kind"],
            buckets=LATENESS_BUCKETS,
            registry=self.registry,
        )
        self.wakes = Counter(
            "canary_wakes",
            "Early wakes of Rollouts, by reason (deployment, rollout, command, config, route) "
            "and fate (ticks: it moved a tick to now; coalesced: a tick already asked for takes "
            "it).",
            ["reason", "fate"],
            registry=self.registry,
        )
        self.ticks = Counter(
            "canary_ticks",
            "Ticks by why they ran (scheduled, or the reasons of the wakes that made them early, "
            "joined by +) and effect (changed: the engine's state or something written; idle: "
            "nothing; skipped: an early tick during analysis; invalid, gone, error).",
            ["reason", "effect"],
            registry=self.registry,
        )
        self.event_queue_full = Counter(
            "canary_event_queue_full",
            "Steps whose Events the tick posted itself: the event sender's queue was full.",
            registry=self.registry,
        )
        self.event_post_failures = Counter(
            "canary_event_post_failures",
            "Events the event sender gave up on: after its retries (delivered again from the "
            "Rollout's status outbox), or refused for good by a 4xx (logged and dropped).",
            registry=self.registry,
        )
        self.event_queue = Gauge(
            "canary_event_queue_length",
            "Events waiting for the event sender.",
            registry=self.registry,
        )
        self.workers_busy = Gauge(
            "canary_workers_busy",
            "Workers running a tick now (of --workers).",
            registry=self.registry,
        )
        self._lock = threading.Lock()
        self._series: dict[tuple[str, str], set[tuple[Counter, tuple[str, ...]]]] = {}
        """Each rollout's labelled series, removed when the rollout is gone."""

    def _labelled(self, counter: Counter, *labels: str) -> Counter:
        with self._lock:
            self._series.setdefault((labels[0], labels[1]), set()).add((counter, labels))
        return counter.labels(*labels)

    def rollout(self, namespace: str, name: str, phase: Phase, weight: int) -> None:
        with self._rollouts.lock:
            self._rollouts.rollouts[(namespace, name)] = (phase, weight)

    def forget(self, namespace: str, name: str) -> None:
        """A rollout that is gone: its series go too (no series for deleted rollouts pile up)."""
        with self._rollouts.lock:
            self._rollouts.rollouts.pop((namespace, name), None)
        with self._lock:
            series = self._series.pop((namespace, name), set())
        for counter, labels in series:
            with contextlib.suppress(KeyError):
                counter.remove(*labels)

    def check_results(self, namespace: str, name: str, results: list[CheckResult]) -> None:
        for result in results:
            self._labelled(self.checks, namespace, name, result.name, result.verdict.value).inc()

    def late(self, kind: str, seconds: float) -> None:
        """A tick started ``seconds`` after it was due (kind: scheduled or early)."""
        self.tick_lateness.labels(kind).observe(seconds)

    def woken(self, reason: str, fate: str) -> None:
        """A Rollout was woken early for ``reason``; ``fate``: ticks or coalesced."""
        self.wakes.labels(reason, fate).inc()

    def reconcile_error(self, namespace: str, name: str, reason: str) -> None:
        self._labelled(self.reconcile_errors, namespace, name, reason).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


Probe = Callable[[], tuple[bool, str]]


class HealthServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` on a thread (port 0: a free port)."""

    def __init__(
        self, metrics: ControllerMetrics, healthy: Probe, ready: Probe, host: str, port: int
    ) -> None:
        self.metrics = metrics
        self.healthy = healthy
        self.ready = ready
        self._server = ThreadingHTTPServer((host, port), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="canary-metrics", daemon=True
        )

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"


def _handler(server: HealthServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path == "/metrics":
                self._send(200, server.metrics.exposition(), CONTENT_TYPE_LATEST)
            elif path in ("/healthz", "/readyz"):
                ok, why = (server.healthy if path == "/healthz" else server.ready)()
                self._send(200 if ok else 503, f"{why}\n".encode(), "text/plain")
            else:
                self._send(404, b"not found\n", "text/plain")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler
