"""Fixtures for the CLI's direct Kubernetes mode: a test API server with canary's CRDs and the
namespace ``test``, and a kubeconfig for it whose context's namespace is ``test``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubeconfig_support import NAMESPACE, USER, crd_files

from canary.testing import ApiServer


@pytest.fixture
def cluster_api() -> Iterator[ApiServer]:
    with ApiServer(bookmark_interval=0.2) as server:
        server.apply_file(*crd_files())
        server.create_namespace(NAMESPACE)
        yield server


@pytest.fixture
def kubeconfig(cluster_api: ApiServer, tmp_path: Path) -> Path:
    token = cluster_api.add_user(USER)
    return cluster_api.kubeconfig(tmp_path / "kubeconfig", namespace=NAMESPACE, token=token)
