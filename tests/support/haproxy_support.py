"""Real HAProxy for tests, in front of two tiny HTTP servers that answer with their name."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from canary.local.haproxy import start_haproxy
from canary.local.processes import ManagedProcess, ProcessError, free_port
from canary.model import Rollout
from canary.traffic.haproxy import config


class _NameHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = self.server.name.encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Seen-Canary", self.headers.get("X-Added", ""))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def named_server(name: str) -> Iterator[str]:
    """An HTTP server on 127.0.0.1:0 answering every GET with ``name``; yields host:port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NameHandler)
    server.name = name  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class LocalHaproxy:
    rollout: Rollout
    listen_port: int
    map_dir: Path
    process: ManagedProcess

    def send(self, count: int, headers: dict[str, str] | None = None) -> list[str]:
        """Send ``count`` GETs through HAProxy; the names of the servers that answered."""
        answers = []
        for _ in range(count):
            conn = http.client.HTTPConnection("127.0.0.1", self.listen_port, timeout=5)
            conn.request("GET", "/", headers=headers or {})
            answers.append(conn.getresponse().read().decode())
            conn.close()
        return answers


def haproxy_rollout(primary: str, canary: str, runtime: str, **strategy: Any) -> Rollout:
    spec: dict[str, Any] = {
        "targetRef": {"name": "app"},
        "service": {"port": 8080},
        "provider": {
            "name": "haproxy",
            "haproxy": {"runtimeApi": runtime, "primaryAddress": primary, "canaryAddress": canary},
        },
    }
    if strategy:
        spec["strategy"] = strategy
    return Rollout.model_validate({"metadata": {"name": "app"}, "spec": spec})


@contextmanager
def running_haproxy(
    tmp: Path, frontend_extra: tuple[str, ...] = (), **strategy: Any
) -> Iterator[LocalHaproxy]:
    """HAProxy on the config rendered for a Rollout with ``strategy``; ``frontend_extra``
    lines are added to its frontend (what another team wrote into the same HAProxy)."""
    with named_server("primary") as primary, named_server("canary") as canary:
        running = _start_on_free_ports(tmp, primary, canary, frontend_extra, strategy)
        try:
            yield running
        finally:
            running.process.stop()


def _start_on_free_ports(
    tmp: Path, primary: str, canary: str, frontend_extra: tuple[str, ...], strategy: Any
) -> LocalHaproxy:
    """free_port's ports were free a moment ago; under xdist another test may take one before
    HAProxy binds it (HAProxy then fails to start: the config says noreuseport), so a start
    that fails is tried again on fresh ports."""
    for attempt in range(_START_ATTEMPTS):
        runtime = f"127.0.0.1:{free_port()}"
        ro = haproxy_rollout(primary, canary, runtime, **strategy)
        listen = free_port()
        layout = config.Layout(
            listen=f"127.0.0.1:{listen}",
            metrics=f"127.0.0.1:{free_port()}",
            map_dir=tmp / "maps",
        )
        cfg = config.write(ro, layout, tmp / "haproxy.cfg")
        if frontend_extra:
            bind = f"    bind {layout.listen}\n"
            extra = "".join(f"    {line}\n" for line in frontend_extra)
            cfg.write_text(cfg.read_text().replace(bind, bind + extra, 1))
        try:
            process = start_haproxy(cfg, runtime, tmp / "logs")
        except ProcessError:
            if attempt + 1 == _START_ATTEMPTS:
                raise
            continue
        return LocalHaproxy(ro, listen, layout.map_dir, process)
    raise AssertionError("unreachable")


_START_ATTEMPTS = 3
