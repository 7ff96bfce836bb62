"""The mesh telemetry simulator: counts split by the route, errors and latency as configured,
an exposition Prometheus reads, and the shipped policies working against it unchanged."""

from __future__ import annotations

import math
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from canary.engine.actions import Route
from canary.model.strategy import MatchRule
from canary.testing.telemetry import (
    ISTIO_BUCKETS_MS,
    LINKERD_BUCKETS_MS,
    Behaviour,
    MeshTelemetry,
    Split,
    Workloads,
)


class Clock:
    """Virtual time: moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def simulator(split: Split, clock: Clock, **kwargs: object) -> MeshTelemetry:
    return MeshTelemetry(lambda: split, clock=clock, **kwargs)  # type: ignore[arg-type]


def samples(text: str) -> list[Sample]:
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def total(text: str, name: str, **labels: str) -> float:
    return sum(
        s.value
        for s in samples(text)
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_requests_arrive_at_the_rate_and_split_by_the_weight() -> None:
    clock = Clock()
    mesh = simulator(Split(canary_weight=20), clock, rate=1000.0)
    clock.now += 100
    mesh.advance()
    totals = mesh.totals()
    assert totals["canary"].requests + totals["primary"].requests == 100_000
    sd = math.sqrt(100_000 * 0.2 * 0.8)
    assert abs(totals["canary"].requests - 20_000) < 4 * sd
    # Nothing more without time passing; fractions of a request carry over.
    mesh.advance()
    assert mesh.totals() == totals
    clock.now += 0.0004
    mesh.advance()
    clock.now += 0.0007
    mesh.advance()
    assert sum(t.requests for t in mesh.totals().values()) == 100_001


@pytest.mark.parametrize(
    ("split", "share"),
    [
        (Split(canary_weight=0), 0.0),
        (Split(canary_weight=100), 1.0),
        (Split(canary_weight=0, matched_share=0.1), 0.1),
        (Split(canary_weight=50, matched_share=0.2), 0.6),
    ],
)
def test_the_canarys_share_follows_weights_and_ab_matches(split: Split, share: float) -> None:
    clock = Clock()
    mesh = simulator(split, clock, rate=500.0)
    clock.now += 100
    mesh.advance()
    canary = mesh.totals()["canary"].requests
    assert abs(canary / 50_000 - share) < 0.01


def test_a_route_becomes_a_split() -> None:
    rule = MatchRule.model_validate({"headers": {"x-canary": {"exact": "yes"}}})
    assert Split.of_route(Route(canary_weight=30)) == Split(canary_weight=30)
    ab = Split.of_route(Route(match=(rule,)), matched_share=0.25)
    assert ab.canary_share == 0.25
    mirror = Split.of_route(Route(mirror_percentage=50.0))
    assert (mirror.canary_share, mirror.mirror_percent) == (0.0, 50.0)
    with pytest.raises(ValueError, match="percentages"):
        Split(canary_weight=101)


def test_mirrored_copies_are_served_by_the_canary_but_not_seen_by_the_caller() -> None:
    clock = Clock()
    mesh = simulator(Split(mirror_percent=50.0), clock, rate=100.0)
    clock.now += 100
    text = mesh.exposition().decode()
    canary = mesh.totals()["canary"].requests
    assert abs(canary - 5000) < 300
    assert (
        total(text, "istio_requests_total", reporter="destination", destination_workload="podinfo")
        == canary
    )
    assert (
        total(text, "istio_requests_total", reporter="source", destination_workload="podinfo") == 0
    )
    assert total(text, "response_total", direction="inbound", deployment="podinfo") == canary


def test_errors_come_at_each_sides_rate() -> None:
    clock = Clock()
    mesh = simulator(
        Split(canary_weight=50),
        clock,
        rate=1000.0,
        canary=Behaviour(error_rate=0.05, error_code=500),
        primary=Behaviour(error_rate=0.0),
        seed=3,
    )
    clock.now += 100
    text = mesh.exposition().decode()
    totals = mesh.totals()
    assert totals["primary"].errors == 0
    rate = totals["canary"].errors / totals["canary"].requests
    assert abs(rate - 0.05) < 0.005
    istio_5xx = total(
        text,
        "istio_requests_total",
        reporter="destination",
        destination_workload="podinfo",
        response_code="500",
    )
    failures = total(
        text, "response_total", direction="inbound", deployment="podinfo", classification="failure"
    )
    assert istio_5xx == failures == totals["canary"].errors


def test_the_same_seed_and_clock_give_the_same_series_another_seed_others() -> None:
    def run(seed: int) -> bytes:
        clock = Clock()
        mesh = simulator(
            Split(canary_weight=10), clock, seed=seed, canary=Behaviour(error_rate=0.1)
        )
        out = b""
        for _ in range(5):
            clock.now += 7.3
            out += mesh.exposition()
        return out

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_latency_buckets_follow_the_distribution_with_500_ms_a_boundary() -> None:
    clock = Clock()
    slow = Behaviour(latency_median_ms=500.0, latency_sigma=0.3)
    mesh = simulator(Split(canary_weight=50), clock, rate=1000.0, canary=slow)
    clock.now += 100
    text = mesh.exposition().decode()
    istio = ("istio_request_duration_milliseconds", "destination_workload")
    linkerd = ("response_latency_ms", "deployment")
    for name, label in (istio, linkerd):
        canary = {label: "podinfo"}
        primary = {label: "podinfo-primary"}
        count = total(text, f"{name}_count", **canary)
        within = total(text, f"{name}_bucket", le="500", **canary)
        assert abs(within / count - 0.5) < 0.02  # half are faster than the median
        mean = total(text, f"{name}_sum", **canary) / count
        assert mean == pytest.approx(500.0 * math.exp(0.3**2 / 2), rel=0.05)
        # The primary (median 20 ms) is all within 500 ms.
        fast = total(text, f"{name}_bucket", le="500", **primary)
        assert fast == total(text, f"{name}_count", **primary) > 0


def test_the_exposition_is_shaped_like_the_proxies() -> None:
    clock = Clock()
    names = Workloads(namespace="shop", canary="cart", primary="cart-primary", service="cart")
    mesh = simulator(
        Split(canary_weight=10), clock, workloads=names, canary=Behaviour(error_rate=0.2)
    )
    clock.now += 60
    text = mesh.exposition().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["istio_requests"].type == "counter"
    assert families["istio_request_duration_milliseconds"].type == "histogram"
    assert families["response"].type == "counter"
    assert families["response_latency_ms"].type == "histogram"
    istio = [s for s in families["istio_requests"].samples if s.labels["reporter"] == "destination"]
    assert {s.labels["destination_workload"] for s in istio} == {"cart", "cart-primary"}
    assert {s.labels["destination_workload_namespace"] for s in istio} == {"shop"}
    assert {s.labels["response_code"] for s in istio} == {"200", "503"}
    buckets = [
        s
        for s in families["istio_request_duration_milliseconds"].samples
        if s.name.endswith("_bucket")
    ]
    assert {s.labels["le"] for s in buckets} == {
        *(f"{b:g}" for b in ISTIO_BUCKETS_MS if b < 1e6),
        "1800000",
        "3600000",
        "+Inf",
    }
    linkerd = [s for s in families["response_latency_ms"].samples if s.name.endswith("_bucket")]
    assert {s.labels["le"] for s in linkerd} == {*(f"{b:g}" for b in LINKERD_BUCKETS_MS), "+Inf"}
    inbound = [s for s in families["response"].samples if s.labels["direction"] == "inbound"]
    assert {s.labels["deployment"] for s in inbound} == {"cart", "cart-primary"}
    assert {(s.labels["status_code"], s.labels["classification"]) for s in inbound} == {
        ("200", "success"),
        ("503", "failure"),
    }
    outbound = [s for s in families["response"].samples if s.labels["direction"] == "outbound"]
    assert {s.labels["deployment"] for s in outbound} == {"loadgen"}
    assert {s.labels["dst_deployment"] for s in outbound} == {"cart", "cart-primary"}
    # Cumulative buckets end at the count; counters and histograms agree.
    for family in ("istio_request_duration_milliseconds", "response_latency_ms"):
        counts = [s for s in families[family].samples if s.name.endswith("_count")]
        for count in counts:
            series = [
                s
                for s in families[family].samples
                if s.name.endswith("_bucket")
                and {k: v for k, v in s.labels.items() if k != "le"} == count.labels
            ]
            values = [s.value for s in series]
            assert values == sorted(values)
            assert values[-1] == count.value
    assert total(text, "istio_requests_total") == total(
        text, "istio_request_duration_milliseconds_count"
    )


def test_only_the_meshes_asked_for_are_exported() -> None:
    clock = Clock()
    mesh = simulator(Split(), clock, meshes=("linkerd",))
    clock.now += 1
    names = {f.name for f in text_string_to_metric_families(mesh.exposition().decode())}
    assert names == {"response", "response_latency_ms"}
    with pytest.raises(ValueError, match="unknown meshes"):
        simulator(Split(), clock, meshes=("consul",))


def test_hours_of_virtual_time_cost_no_more_than_a_second() -> None:
    clock = Clock()
    mesh = simulator(Split(canary_weight=5), clock, rate=10_000.0)
    started = time.perf_counter()
    for _ in range(24):
        clock.now += 3600
        mesh.exposition()
    assert time.perf_counter() - started < 2.0
    assert sum(t.requests for t in mesh.totals().values()) == 864_000_000


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def test_served_over_http_and_a_failing_split_fails_the_scrape_only() -> None:
    clock = Clock()
    route: list[Split | None] = [None]

    def split() -> Split:
        if route[0] is None:
            raise LookupError("no route written yet")
        return route[0]

    with MeshTelemetry(split, clock=clock, rate=10.0) as mesh:
        clock.now += 10
        status, _, body = get(mesh.url)
        assert status == 500
        assert "no route written yet" in body
        route[0] = Split(canary_weight=0)
        status, content_type, body = get(mesh.url)
        assert status == 200
        assert content_type.startswith("text/plain")
        assert total(body, "istio_requests_total", reporter="destination") == 100
        assert get(mesh.url.replace("/metrics", "/other"))[0] == 404
    with pytest.raises(RuntimeError, match="not running"):
        _ = mesh.address
