"""Fixtures: one Prometheus for the whole session (scraping the running test's simulated mesh
through a relay), and per test an API server with the CRDs, a namespace, a fake kubelet."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from controller_support import CANARY_CRDS, Cluster, FakeKubelet, MetricsRelay, mesh_crds
from tick_support import Ticker, make_ticker

from canary.gates.webhooks import WebhookCaller
from canary.local.processes import ProcessError, free_port
from canary.local.prometheus import ScrapeTarget, render_config, start_prometheus
from canary.testing import ApiServer

SCRAPE_INTERVAL = 0.2


@pytest.fixture(scope="session")
def relay() -> Iterator[MetricsRelay]:
    relay = MetricsRelay().start()
    yield relay
    relay.stop()


@pytest.fixture(scope="session")
def prometheus_url(relay: MetricsRelay, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus scraping the relay every 0.2 s."""
    listen = f"127.0.0.1:{free_port()}"
    config = render_config([ScrapeTarget("mesh", relay.address, {})], SCRAPE_INTERVAL)
    try:
        process = start_prometheus(config, listen, tmp_path_factory.mktemp("prometheus"))
    except ProcessError as exc:
        pytest.fail(f"Prometheus is needed for the controller's end-to-end tests: {exc}")
    yield f"http://{listen}"
    process.stop()


@pytest.fixture
def namespace(request: pytest.FixtureRequest) -> str:
    """A namespace named after the test, so the series of different tests never mix."""
    name = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")
    return name[:50].rstrip("-")


@pytest.fixture
def api() -> Iterator[ApiServer]:
    with ApiServer(bookmark_interval=0.2) as server:
        yield server


@pytest.fixture
def cluster(api: ApiServer, namespace: str, tmp_path: Path) -> Iterator[Cluster]:
    api.create_namespace(namespace)
    api.apply_file(*sorted(CANARY_CRDS.glob("*.yaml")))
    api.apply_file(*mesh_crds())
    made = Cluster(api, namespace, api.kubeconfig(tmp_path / "kubeconfig", namespace=namespace))
    with FakeKubelet(api, namespace):
        yield made
        made.close()


@pytest.fixture
def mesh_cluster(cluster: Cluster, prometheus_url: str) -> Cluster:
    """A cluster whose controllers judge canaries with the session's Prometheus."""
    cluster.prometheus_url = prometheus_url
    return cluster


@pytest.fixture
def ticker(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[Ticker]:
    """One Rollout's ticks by hand (`tick_support`); parametrise it indirectly with how many
    of the canary's 500 requests fail."""
    with WebhookCaller.create() as webhooks:
        yield make_ticker(cluster, webhooks, getattr(request, "param", 0))
