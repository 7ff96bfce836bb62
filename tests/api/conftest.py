"""Fixtures for the API: a state folder written the way the local runner writes it, tokens,
and the API served for real (uvicorn on 127.0.0.1:0) or in process (ASGI)."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))

from api_support import OPERATE, READ, TOKENS, Served, Workspace

from canary.gates.api.app import ApiSettings, create_app
from canary.gates.api.audit import JsonlAuditLog
from canary.gates.api.auth import TokenSet
from canary.gates.api.filestore import FileStore
from canary.gates.api.serve import ApiServer

with warnings.catch_warnings():
    # starlette announces a move of its test client to another httpx; not ours to follow.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path / "state", tmp_path / "tokens")


@pytest.fixture
def app_settings(workspace: Workspace) -> ApiSettings:
    return ApiSettings(poll_interval=0.02, audit_sinks=[JsonlAuditLog(workspace.audit_path)])


@pytest.fixture
def asgi(workspace: Workspace, app_settings: ApiSettings) -> Iterator[TestClient]:
    """The app in process, unauthenticated: pass headers=OPERATE or READ."""
    app = create_app(FileStore(workspace.state_dir), TokenSet.of(*TOKENS), app_settings)
    with TestClient(app) as client:
        yield client


@pytest.fixture
def served(workspace: Workspace, app_settings: ApiSettings) -> Iterator[Served]:
    """The app over a real socket, with the tokens read from the workspace's tokens file."""
    app = create_app(
        FileStore(workspace.state_dir), TokenSet.from_path(workspace.tokens_file), app_settings
    )
    with ApiServer(app) as server:
        client = httpx.Client(base_url=server.url, headers=OPERATE, timeout=10)
        try:
            yield Served(server.url, client, workspace)
        finally:
            client.close()


__all__ = ["OPERATE", "READ"]
