"""Ctrl-C while `canary wait` / `canary get --watch` is inside an HTTP request ends the process
at once with exit 130. The server stands in for a canary API that does not answer (a long
poll, a stuck proxy): it accepts the request and holds it, so the SIGINT lands while the
client is in httpx's connection pool, where a KeyboardInterrupt could hang the process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class Holding(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), HoldingHandler)
        self.asked = threading.Event()
        self.release = threading.Event()


class HoldingHandler(BaseHTTPRequestHandler):
    server: Holding

    def do_GET(self) -> None:
        self.server.asked.set()
        self.server.release.wait(60)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def holding() -> Iterator[Holding]:
    server = Holding()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    "command", [["wait", "podinfo", "--timeout", "5m"], ["get", "podinfo", "--watch"]]
)
def test_ctrl_c_inside_a_request_exits_130_at_once(holding: Holding, command: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANARY_")}
    env.update(CANARY_API=f"http://127.0.0.1:{holding.server_address[1]}", CANARY_TOKEN="t" * 24)
    process = subprocess.Popen(
        [sys.executable, "-m", "canary.cli.main", *command, "-n", "test"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert holding.asked.wait(60), "the command never asked the API"
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130, output
