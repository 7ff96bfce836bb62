"""Local mode's Prometheus (Debian package `prometheus`) scraping a real demo service."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from canary.local.processes import ProcessError, free_port
from canary.local.prometheus import ScrapeTarget, render_config, start_prometheus
from canary.local.service import Behaviour, DemoService


def query(listen: str, promql: str) -> list[dict[str, object]]:
    url = f"http://{listen}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as response:
        result: list[dict[str, object]] = json.load(response)["data"]["result"]
        return result


def test_prometheus_scrapes_the_service_with_its_side_label(tmp_path: Path) -> None:
    service = DemoService(Behaviour(version="v1", latency_ms=1)).start()
    listen = f"127.0.0.1:{free_port()}"
    config = render_config(
        [ScrapeTarget("services", service.address, {"server": "primary"})], scrape_interval=0.2
    )
    prometheus = start_prometheus(config, listen, tmp_path / "prom")
    try:
        deadline = time.monotonic() + 20
        result: list[dict[str, object]] = []
        while not result and time.monotonic() < deadline:
            result = query(listen, 'up{job="services", server="primary"}')
            time.sleep(0.2)
        assert result, "Prometheus never scraped the service"
        assert result[0]["value"][1] == "1"  # type: ignore[index]
    finally:
        prometheus.stop()
        service.stop()
    assert not prometheus.running


def test_a_config_prometheus_rejects_fails_with_its_log(tmp_path: Path) -> None:
    with pytest.raises(ProcessError, match="prometheus exited"):
        start_prometheus("scrape_configs: [{bad: 1}]\n", f"127.0.0.1:{free_port()}", tmp_path, 10)
