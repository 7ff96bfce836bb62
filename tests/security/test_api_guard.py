"""The API's front door: a body is never read before the token is known, bodies are capped,
failed logins are logged and rate-limited, and a token limited to namespaces reaches no other.
Over a real socket (uvicorn on 127.0.0.1:0) where memory or the wire matters."""

from __future__ import annotations

import logging
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))

from api_support import OPERATE, ROLLOUT, TOKENS, Workspace, progressing

from canary.gates.api.app import ApiSettings, create_app
from canary.gates.api.auth import TokenSet
from canary.gates.api.filestore import FileStore
from canary.gates.api.guard import MAX_BODY, FailureLimiter
from canary.gates.api.serve import ApiServer, Tls
from canary.gates.api.store import RolloutNotFoundError

MIB = 1024 * 1024
SCOPED = "scoped-token-0123456789abcdef"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path / "state", tmp_path / "tokens")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def server(workspace: Workspace, clock: Clock) -> Iterator[ApiServer]:
    tokens = TokenSet.of(*TOKENS, ("team-b", "operate", SCOPED, "team-b"))
    settings = ApiSettings(limiter=FailureLimiter(max_failures=5, window=60.0, clock=clock))
    app = create_app(FileStore(workspace.state_dir), tokens, settings)
    with ApiServer(app) as running:
        yield running


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def _post_raw(port: int, headers: str, body_bytes: int, chunk: int = MIB) -> str:
    """Send a POST with ``body_bytes`` of body (as far as the server reads) and return the
    status line of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(headers.encode())
        block = b"x" * chunk
        sent = 0
        try:
            while sent < body_bytes:
                sock.sendall(block)
                sent += chunk
        except OSError:
            pass  # the server answered and closed: the rest is never read
        answer = b""
        try:
            while b"\r\n" not in answer:
                part = sock.recv(4096)
                if not part:
                    break
                answer += part
        except OSError:
            pass
    return answer.split(b"\r\n", 1)[0].decode()


def test_unauthenticated_64_mib_post_is_refused_without_reading_it(server: ApiServer) -> None:
    size = 64 * MIB
    before = _rss()
    headers = (
        f"POST {ROLLOUT}/approve HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {size}\r\n\r\n"
    )
    status = _post_raw(server.port, headers, size)
    grown = _rss() - before
    assert status.startswith("HTTP/1.1 401"), status
    assert grown < 8 * MIB, f"the process grew by {grown / MIB:.1f} MiB"


def test_declared_body_over_the_limit_is_413_even_with_a_token(server: ApiServer) -> None:
    response = httpx.post(
        f"{server.url}{ROLLOUT}/approve", headers=OPERATE, content=b"{" * (MAX_BODY + 1)
    )
    assert response.status_code == 413
    assert response.json()["reason"] == "TooLarge"


def test_chunked_body_over_the_limit_is_413(server: ApiServer) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(8):
            yield b" " * (MAX_BODY // 4)

    response = httpx.post(f"{server.url}{ROLLOUT}/approve", headers=OPERATE, content=chunks())
    assert response.status_code == 413


def test_small_bodies_still_reach_the_route(server: ApiServer, workspace: Workspace) -> None:
    progressing(workspace, gates={"approvals": ["promotion"]})
    response = httpx.post(
        f"{server.url}{ROLLOUT}/approve", headers=OPERATE, json={"point": "promotion"}
    )
    assert response.status_code == 202, response.text
    assert [c.by for c in workspace.store.take_commands("test", "podinfo")] == ["ci"]


def test_failed_logins_are_logged_then_rate_limited(
    server: ApiServer, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="canary.api.auth")
    bad = {"Authorization": "Bearer guessed-token-0000000000"}
    codes = [httpx.get(f"{server.url}/api/v1/rollouts", headers=bad).status_code for _ in range(7)]
    assert codes == [401] * 5 + [429] * 2
    failures = [r.getMessage() for r in caplog.records if "authentication failed" in r.getMessage()]
    assert len(failures) == 5
    assert all("127.0.0.1" in f and "guessed" not in f for f in failures)
    blocked = httpx.get(f"{server.url}/api/v1/rollouts", headers=OPERATE)
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) >= 1
    clock.now += 61
    assert httpx.get(f"{server.url}/api/v1/rollouts", headers=OPERATE).status_code == 200


def test_a_namespaced_token_reaches_only_its_namespaces(
    server: ApiServer, workspace: Workspace
) -> None:
    progressing(workspace)
    scoped = {"Authorization": f"Bearer {SCOPED}"}
    assert httpx.get(f"{server.url}{ROLLOUT}", headers=scoped).status_code == 403
    refused = httpx.post(f"{server.url}{ROLLOUT}/abort", headers=scoped)
    assert refused.status_code == 403
    assert "team-b" in refused.json()["message"]
    assert workspace.store.take_commands("test", "podinfo") == []
    listed = httpx.get(f"{server.url}/api/v1/rollouts", headers=scoped).json()["items"]
    assert listed == []
    everything = httpx.get(f"{server.url}/api/v1/rollouts", headers=OPERATE).json()["items"]
    assert [(i["namespace"], i["name"]) for i in everything] == [("test", "podinfo")]


def test_the_api_serves_https_with_a_certificate(tmp_path: Path, workspace: Workspace) -> None:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    progressing(workspace)
    app = create_app(FileStore(workspace.state_dir), TokenSet.of(*TOKENS))
    with ApiServer(app, tls=Tls(cert, key)) as running:
        assert running.url.startswith("https://")
        answer = httpx.get(
            f"{running.url}{ROLLOUT}",
            headers=OPERATE,
            verify=ssl.create_default_context(cafile=str(cert)),
        )
        assert answer.status_code == 200
        assert answer.json()["name"] == "podinfo"
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{running.port}{ROLLOUT}", headers=OPERATE, timeout=5)


@pytest.mark.parametrize("length", [64, 200, 250, 253])
def test_long_names_are_refused_not_a_server_error(server: ApiServer, length: int) -> None:
    path = f"{server.url}/api/v1/namespaces/test/rollouts/{'a' * length}"
    assert httpx.get(path, headers=OPERATE).status_code == 422
    assert httpx.post(f"{path}/abort", headers=OPERATE).status_code == 422


def test_the_file_store_reads_a_name_too_long_for_a_file_as_absent(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    with pytest.raises(RolloutNotFoundError):
        store.get("test", "a" * 250)
