"""Serving the API with uvicorn: in the foreground (`canary api`) or in a background thread
(tests, or a shell that embeds the API beside its loop)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import uvicorn
from fastapi import FastAPI

from canary.gates.api.address import parse_listen
from canary.gates.api.app import ApiSettings, create_app
from canary.gates.api.audit import AuditSink, JsonlAuditLog
from canary.gates.api.auth import TokenSet
from canary.gates.api.filestore import FileStore

AUDIT_FILE = "audit.jsonl"


def local_app(
    state_dir: Path,
    tokens: Path,
    *,
    audit_log: Path | None = None,
    poll_interval: float = 1.0,
) -> FastAPI:
    """The API over the local runner's state files in ``state_dir``; writes are audited to
    ``audit_log`` (default ``STATE_DIR/audit.jsonl``). Raises TokenError for bad tokens."""
    token_set = TokenSet.from_path(tokens)
    sinks: list[AuditSink] = [JsonlAuditLog(audit_log or state_dir / AUDIT_FILE)]
    settings = ApiSettings(poll_interval=poll_interval, audit_sinks=sinks)
    return create_app(FileStore(state_dir), token_set, settings)


@dataclass(frozen=True)
class Tls:
    """A certificate chain and its key (PEM files): the API then speaks HTTPS only."""

    cert: Path
    key: Path

    def check(self) -> None:
        for what, path in (("--tls-cert", self.cert), ("--tls-key", self.key)):
            if not path.is_file():
                raise ValueError(f"{what} {path}: no such file")


def _config(app: FastAPI, host: str, port: int, level: str, tls: Tls | None) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=level,
        lifespan="off",
        ssl_certfile=str(tls.cert) if tls else None,
        ssl_keyfile=str(tls.key) if tls else None,
    )


def serve(app: FastAPI, listen: str, tls: Tls | None = None) -> None:
    """Serve in the foreground until interrupted (HTTPS when ``tls`` is given)."""
    host, port = parse_listen(listen)
    uvicorn.Server(_config(app, host, port, "info", tls)).run()


class ApiServer:
    """uvicorn in a daemon thread; port 0 picks a free port (see `url` once started)."""

    def __init__(
        self, app: FastAPI, host: str = "127.0.0.1", port: int = 0, tls: Tls | None = None
    ) -> None:
        self.server = uvicorn.Server(_config(app, host, port, "warning", tls))
        self.thread = threading.Thread(target=self.server.run, name="canary-api", daemon=True)
        self.host = host
        self.scheme = "https" if tls else "http"

    def start(self, timeout: float = 10.0) -> ApiServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the API server did not start")
            time.sleep(0.01)
        return self

    @property
    def port(self) -> int:
        sockets = self.server.servers[0].sockets
        return int(sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
