"""The demo service over real HTTP, and the load generator against it."""

from __future__ import annotations

import http.client
import time

from prometheus_client.parser import text_string_to_metric_families

from canary.local.load import LoadGenerator, LoadSpec
from canary.local.service import Behaviour, DemoService


def get(address: str, path: str = "/") -> tuple[int, str, dict[str, str]]:
    host, _, port = address.rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read().decode()
    headers = dict(response.getheaders())
    conn.close()
    return response.status, body, headers


def metrics(address: str) -> dict[str, float]:
    _, text, _ = get(address, "/metrics")
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            values[f"{sample.name}{{{labels}}}"] = sample.value
    return values


def test_service_answers_with_its_version_and_counts_requests() -> None:
    service = DemoService(Behaviour(version="v1", latency_ms=1)).start()
    try:
        for _ in range(5):
            code, body, headers = get(service.address)
            assert code == 200
            assert body == "v1 ok\n"
            assert headers["X-Version"] == "v1"
        seen = metrics(service.address)
        assert seen["http_requests_total{code=200}"] == 5
        assert seen["http_request_duration_seconds_count{}"] == 5
        assert "http_request_duration_seconds_bucket{le=0.5}" in seen
    finally:
        service.stop()


def test_error_rate_is_what_was_asked_for_a_fixed_seed() -> None:
    service = DemoService(Behaviour(version="v2", error_rate=0.3, latency_ms=1, seed=4)).start()
    try:
        codes = [get(service.address)[0] for _ in range(200)]
        errors = codes.count(500)
        assert 40 <= errors <= 80, errors  # 30% of 200, seeded
        assert metrics(service.address)["http_requests_total{code=500}"] == errors
    finally:
        service.stop()


def test_latency_is_drawn_around_the_median() -> None:
    service = DemoService(Behaviour(version="v2", latency_ms=200, latency_sigma=0.1, seed=1))
    draws = sorted(service.draw()[1] for _ in range(101))
    service.server.server_close()
    assert 0.15 < draws[50] < 0.25


def test_load_generator_sends_at_its_rate_and_tags_a_share() -> None:
    service = DemoService(Behaviour(version="v1", latency_ms=1)).start()
    load = LoadGenerator(LoadSpec(target=service.address, rate=50, tagged_share=0.25)).start()
    try:
        deadline = time.monotonic() + 10
        while sum(load.codes.values()) < 40 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        load.stop()
        service.stop()
    completed = sum(load.codes.values())
    assert load.codes["200"] >= 40
    assert abs(sum(load.tagged.values()) - completed * 0.25) <= 2
