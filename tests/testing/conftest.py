"""Fixtures for the test API server's own tests: a server per test, clients on it."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from canary.testing import ApiServer

ROOT = Path(__file__).resolve().parents[2]
CANARY_CRDS = ROOT / "charts" / "canary" / "crds"
MESH_CRDS = ROOT.parent / "shared" / "crds"


@pytest.fixture
def api() -> Iterator[ApiServer]:
    with ApiServer(bookmark_interval=0.2) as server:
        server.create_namespace("test")
        yield server


@pytest.fixture
def kubeconfig(api: ApiServer, tmp_path: Path) -> Path:
    return api.kubeconfig(tmp_path / "kubeconfig", namespace="test")


@pytest.fixture
def k8s(kubeconfig: Path) -> Iterator[client.ApiClient]:
    api_client = config.new_client_from_config(config_file=str(kubeconfig))
    yield api_client
    api_client.close()


class Kubectl:
    """`kubectl` against the test server, with a discovery cache of the test's own."""

    def __init__(self, kubeconfig: Path, cache: Path) -> None:
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
        self.cache = cache

    def run(self, *args: str, check: bool = True, timeout: float = 20, **kw: Any) -> Any:
        result = subprocess.run(
            ["kubectl", "--cache-dir", str(self.cache), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **kw,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            ["kubectl", "--cache-dir", str(self.cache), *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


@pytest.fixture
def kubectl(kubeconfig: Path, tmp_path: Path) -> Kubectl:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    return Kubectl(kubeconfig, tmp_path / "kube-cache")
