"""A real Prometheus scrapes the simulated mesh; the shipped istio and linkerd policies, run by
the Prometheus provider, see the split, the errors and the slow requests that were set.

Prometheus 2 hands new targets to its scrapers at most every 5 s, so this takes 5 s before the
first scrape, then the 2 s window.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest

from canary.analysis.analyse import query_variables
from canary.analysis.policies import builtin_policy, expand
from canary.analysis.prometheus import PrometheusProvider, PrometheusSettings
from canary.analysis.provider import Targets
from canary.analysis.samples import SideSample, WindowSample
from canary.local.processes import free_port
from canary.local.prometheus import ScrapeTarget, render_config, start_prometheus
from canary.testing.telemetry import Behaviour, MeshTelemetry, Split, Workloads

WINDOW = 2.0
SCRAPE = 0.2
WEIGHT = 25
RATE = 2000.0
CANARY = Behaviour(error_rate=0.1, latency_median_ms=300.0, latency_sigma=0.5)
CANARY_SLOW = 0.1537  # P(latency > 500 ms) = 1 - Phi(ln(500/300) / 0.5)
TARGETS = Targets(namespace="test", target="podinfo", canary="podinfo", primary="podinfo-primary")


def scraped(listen: str) -> float:
    """Scrapes of the simulator within the last window and two seconds before it (the
    provider reads whole seconds)."""
    promql = f'count_over_time(up{{job="mesh"}}[{WINDOW + 2:g}s])'
    url = f"http://{listen}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as response:
        result = json.load(response)["data"]["result"]
    return float(result[0]["value"][1]) if result else 0.0


def windows(provider: PrometheusProvider, policy: str, at: datetime) -> dict[str, WindowSample]:
    checks = expand(builtin_policy(policy))
    return {c.name: provider.window(c, query_variables(TARGETS, WINDOW, c), at) for c in checks}


def sides(window: WindowSample) -> tuple[SideSample, SideSample]:
    assert window.canary is not None, "no canary data"
    assert window.primary is not None, "no primary data"
    return window.canary, window.primary


def test_the_shipped_policies_read_the_split_from_a_real_prometheus(tmp_path: Path) -> None:
    split = Split(canary_weight=WEIGHT)
    mesh = MeshTelemetry(
        lambda: split, workloads=Workloads(namespace="test"), rate=RATE, canary=CANARY, seed=11
    )
    listen = f"127.0.0.1:{free_port()}"
    with mesh:
        config = render_config([ScrapeTarget("mesh", mesh.address, {})], scrape_interval=SCRAPE)
        prometheus = start_prometheus(config, listen, tmp_path / "prom")
        try:
            deadline = time.monotonic() + 30
            # Prometheus knew the simulator before the window began: the provider counts a
            # series it first sees inside a look from zero (a new pod, a first 503).
            while scraped(listen) < (WINDOW + 2) / SCRAPE - 2:
                assert time.monotonic() < deadline, "Prometheus did not scrape the simulator"
                time.sleep(SCRAPE)
            at = datetime.now(UTC)
            provider = PrometheusProvider(PrometheusSettings(url=f"http://{listen}"))
            for policy in ("istio", "linkerd"):
                got = windows(provider, policy, at)
                canary, primary = sides(got["error-rate"])
                both = canary.requests + primary.requests
                assert 0.6 * RATE * WINDOW < both < 1.4 * RATE * WINDOW, policy
                assert canary.requests / both == pytest.approx(WEIGHT / 100, abs=0.04), policy
                assert canary.failures / canary.requests == pytest.approx(0.1, abs=0.04), policy
                assert primary.failures == 0, policy
                canary, primary = sides(got["latency"])
                slow = canary.failures / canary.requests
                assert slow == pytest.approx(CANARY_SLOW, abs=0.05), policy
                assert primary.failures == 0, policy
                assert canary.value is not None, policy
                assert canary.value > 500, policy
        finally:
            prometheus.stop()
