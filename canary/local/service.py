"""The demo service: a real HTTP server whose error rate and latency are set on start.

Two of these play the primary (v1) and the canary (v2) in local mode. Each exports its own
request counter and latency histogram with prometheus-client on /metrics, as a real service
would, so the `haproxy` policy can judge latency from the services' own histograms.

Run one: ``python -m canary.local.service --port 8001 --version v2 --error-rate 0.05``.
"""

from __future__ import annotations

import argparse
import math
import random
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from pydantic import BaseModel, ConfigDict, Field

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
"""Seconds. 0.5 is a boundary, so a 500 ms latency objective can be counted exactly."""

REQUESTS_METRIC = "http_requests_total"
DURATION_METRIC = "http_request_duration_seconds"


class Behaviour(BaseModel):
    """How one version of the demo service behaves."""

    model_config = ConfigDict(frozen=True)

    version: str = Field(min_length=1)
    error_rate: float = Field(default=0.0, ge=0, le=1, description="Share of 500 answers.")
    latency_ms: float = Field(default=20.0, gt=0, description="Median latency.")
    latency_sigma: float = Field(default=0.4, ge=0, description="Log-normal spread.")
    seed: int = 0


class DemoService:
    """The server and its metrics; `serve_forever` in the foreground or `start` in a thread."""

    def __init__(self, behaviour: Behaviour, host: str = "127.0.0.1", port: int = 0) -> None:
        self.behaviour = behaviour
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "http_requests", "Requests served, by status code.", ["code"], registry=self.registry
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Time to answer a request.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._random = random.Random(behaviour.seed)
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer((host, port), self._handler())
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host!s}:{port}"

    def draw(self) -> tuple[bool, float]:
        """Whether the next request fails, and how long it takes (seconds)."""
        with self._lock:
            fails = self._random.random() < self.behaviour.error_rate
            spread = self._random.gauss(0.0, 1.0) * self.behaviour.latency_sigma
        return fails, self.behaviour.latency_ms / 1000.0 * math.exp(spread)

    def start(self) -> DemoService:
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                if self.path == "/metrics":
                    self._send(200, generate_latest(service.registry), CONTENT_TYPE_LATEST)
                elif self.path == "/healthz":
                    self._send(200, b"ok\n", "text/plain")
                else:
                    self._serve()

            def _serve(self) -> None:
                fails, seconds = service.draw()
                time.sleep(seconds)
                code = 500 if fails else 200
                body = f"{service.behaviour.version} {'error' if fails else 'ok'}\n".encode()
                service.requests.labels(code=str(code)).inc()
                service.duration.observe(seconds)
                self._send(code, body, "text/plain")

            def _send(self, code: int, body: bytes, content_type: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Version", service.behaviour.version)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="canary's demo service")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--error-rate", type=float, default=0.0)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--latency-sigma", type=float, default=0.4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    behaviour = Behaviour(
        version=args.version,
        error_rate=args.error_rate,
        latency_ms=args.latency_ms,
        latency_sigma=args.latency_sigma,
        seed=args.seed,
    )
    service = DemoService(behaviour, args.host, args.port)
    try:
        service.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        service.server.server_close()


if __name__ == "__main__":
    main()
