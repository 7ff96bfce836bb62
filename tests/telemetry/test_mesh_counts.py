"""`canary backtest` on realistic Istio, Linkerd and Envoy Gateway telemetry in a real
Prometheus (tests/telemetry/mesh_support.py) counts what the proxies served.

The truth is the history's own: what each side's counters gained between the scrapes that
bracket a look's boundaries (what Prometheus can know), and what each side served in a period.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mesh_support import (
    ANALYSIS_START,
    SECONDS,
    MeshPrometheus,
    backtest,
    holders,
    start_mesh_prometheus,
    workloads,
)
from prometheus_backfill import history_start, start_backfilled_prometheus

from canary.testing.telemetry_backfill import mesh_targets, openmetrics
from canary.testing.telemetry_history import KINDS, History, Kind, Totals


def served_kind(history: History, side: str, start: int, end: int, kind: Kind) -> int:
    """How many answers of ``kind`` ``side`` gave in (start, end]."""
    k = KINDS.index(kind)
    return sum(
        int(history.served[pod.name][start + 1 : end + 1, :, k].sum())
        for pod in history.side(side).pods
    )


POLICIES = ("istio", "istio-ambient", "linkerd", "gateway-api-envoy")


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeshPrometheus]:
    running = start_mesh_prometheus(tmp_path_factory.mktemp("mesh"))
    try:
        yield running
    finally:
        running.process.stop()


def _counts(look: dict[str, Any], check: str, side: str) -> dict[str, int]:
    found = next(c for c in look["checks"] if c["name"] == check)
    counts: dict[str, int] = found[side]
    return counts


def _close(got: int, want: int, tolerance: float) -> bool:
    return abs(got - want) <= tolerance * max(want, 1)


def _failures(policy: str, truth: Totals) -> int:
    """What a policy counts as failures: every policy sees a gRPC call's status here (Envoy
    through its gRPC statistics, the gRPC calls going through a GRPCRoute)."""
    return truth.failures


@pytest.mark.parametrize("policy", POLICIES)
def test_each_60s_look_counts_what_each_side_served(mesh: MeshPrometheus, policy: str) -> None:
    data = backtest(mesh, policy, ANALYSIS_START, SECONDS, 60)
    assert len(data["looks"]) == 4
    for index, look in enumerate(data["looks"]):
        start = ANALYSIS_START + 60 * index
        for side in ("canary", "primary"):
            truth = mesh.history.known_in(holders(mesh, policy, side), start, start + 60)
            errors = _counts(look, "error-rate", side)
            latency = _counts(look, "latency", side)
            where = f"{policy} look {index} {side}: {errors} {latency} vs {truth}"
            assert truth.requests > 500, where
            assert _close(errors["requests"], truth.requests, 0.02), where
            assert _close(latency["requests"], truth.requests, 0.02), where
            assert _close(errors["failures"], _failures(policy, truth), 0.05), where
            assert _close(latency["failures"], truth.slow, 0.05), where


@pytest.mark.parametrize("policy", POLICIES)
def test_eight_20s_looks_add_up_through_restarts_and_pod_churn(
    mesh: MeshPrometheus, policy: str
) -> None:
    end = ANALYSIS_START + 8 * 20  # the canary pod replaced at 200-205 s, a restart at 170 s
    short = backtest(mesh, policy, ANALYSIS_START, end, 20)
    long = backtest(mesh, policy, ANALYSIS_START, end, 160)
    assert len(short["looks"]) == 8
    for side in ("canary", "primary"):
        summed = sum(_counts(look, "error-rate", side)["failures"] for look in short["looks"])
        requests = sum(_counts(look, "error-rate", side)["requests"] for look in short["looks"])
        whole = _counts(long["looks"][0], "error-rate", side)
        assert (summed, requests) == (whole["failures"], whole["requests"]), side
        served = mesh.history.served_in(side, ANALYSIS_START, end)
        assert _close(summed, _failures(policy, served), 0.05), (policy, side, summed, served)


@pytest.mark.parametrize("policy", POLICIES)
def test_a_fresh_canarys_first_20s_look_sees_most_of_its_failures(
    mesh: MeshPrometheus, policy: str
) -> None:
    data = backtest(mesh, policy, ANALYSIS_START, ANALYSIS_START + 20, 20)
    seen = _counts(data["looks"][0], "error-rate", "canary")["failures"]
    served = _failures(
        policy, mesh.history.served_in("canary", ANALYSIS_START, ANALYSIS_START + 20)
    )
    assert served >= 5
    assert seen >= 0.8 * served, (policy, seen, served)


def test_istio_and_linkerd_agree_on_the_canarys_failure_rate(mesh: MeshPrometheus) -> None:
    rates = {}
    for policy in ("istio", "linkerd"):
        look = backtest(mesh, policy, ANALYSIS_START, SECONDS, SECONDS - ANALYSIS_START)
        counts = _counts(look["looks"][0], "error-rate", "canary")
        rates[policy] = counts["failures"] / counts["requests"]
    assert rates["istio"] == pytest.approx(rates["linkerd"], rel=0.05), rates
    served = mesh.history.served_in("canary", ANALYSIS_START, SECONDS)
    assert rates["linkerd"] == pytest.approx(served.failures / served.requests, rel=0.05)


def test_envoy_counts_each_failed_grpc_call_once(mesh: MeshPrometheus) -> None:
    """A gRPC call that failed with a 503 and UNAVAILABLE (Envoy's own answer when the pod's
    connection fails) is in both Envoy's HTTP status counters and its gRPC failure counter:
    the policy reads the gRPC one alone for a GRPCRoute's clusters, so its failures match what
    the sidecar meshes count, not that plus the 503s."""
    end = SECONDS - ANALYSIS_START
    envoy = backtest(mesh, "gateway-api-envoy", ANALYSIS_START, SECONDS, end)
    seen = _counts(envoy["looks"][0], "error-rate", "canary")
    truth = mesh.history.known_in(
        holders(mesh, "gateway-api-envoy", "canary"), ANALYSIS_START, SECONDS
    )
    both = served_kind(mesh.history, "canary", ANALYSIS_START, SECONDS, Kind(503, 14))
    assert both > 0.05 * truth.failures  # the overlap is there to be counted twice
    assert _close(seen["failures"], truth.failures, 0.02), (seen, truth, both)
    assert seen["failures"] < truth.failures + both / 2  # not counted twice
    assert _close(seen["requests"], truth.requests, 0.02), (seen, truth)
    istio = backtest(mesh, "istio", ANALYSIS_START, SECONDS, end)
    rate = seen["failures"] / seen["requests"]
    counts = _counts(istio["looks"][0], "error-rate", "canary")
    assert rate == pytest.approx(counts["failures"] / counts["requests"], rel=0.05)


def test_without_grpc_stats_envoy_counts_the_http_status_alone(tmp_path: Path) -> None:
    """gRPC calls through an HTTPRoute, on a listener without Envoy's gRPC statistics: the
    policy counts what it can see, the HTTP status (docs/policies.md): a gRPC error on HTTP
    200 is not a failure there, the 503s are, and nothing is counted twice."""
    history = History(history_start(), 120, workloads()[:2], seed=7)
    source = tmp_path / "no-grpc-stats.om"
    with source.open("w") as out:
        out.writelines(openmetrics(history, mesh_targets(history, grpc_route=False)))
    assert "envoy_cluster_grpc_" not in source.read_text()
    url, process = start_backfilled_prometheus(tmp_path, source)
    try:
        mesh = MeshPrometheus(history, url, process, tmp_path)
        data = backtest(mesh, "gateway-api-envoy", ANALYSIS_START, 120, 60)
        seen = _counts(data["looks"][0], "error-rate", "canary")
        truth = history.known_in(holders(mesh, "gateway-api-envoy", "canary"), ANALYSIS_START, 120)
        assert seen == {"requests": truth.requests, "failures": truth.failures_for_envoy}
        assert truth.failures_for_envoy < 0.5 * truth.failures
    finally:
        process.stop()


@pytest.mark.parametrize("policy", POLICIES)
def test_the_bad_canary_fails(mesh: MeshPrometheus, policy: str) -> None:
    data = backtest(mesh, policy, ANALYSIS_START, SECONDS, 20)
    assert data["decision"]["verdict"] == "fail", data["decision"]


@pytest.mark.parametrize("policy", POLICIES)
def test_a_canary_without_user_traffic_never_passes(mesh: MeshPrometheus, policy: str) -> None:
    """The idle canary's pods get only probes and Prometheus' scrapes (counted by Linkerd's
    proxies, left out by the policy); its primary is busy."""
    data = backtest(mesh, policy, ANALYSIS_START, SECONDS, 20, target="idle")
    assert data["decision"]["verdict"] != "pass", data["decision"]
    for look in data["looks"]:
        for check in look["checks"]:
            assert check["verdict"] != "pass", check
            assert not (check["canary"] or {}).get("requests"), check
            assert (check["primary"] or {}).get("requests"), check


def test_the_json_has_the_documented_shape(mesh: MeshPrometheus) -> None:
    data = backtest(mesh, "linkerd", ANALYSIS_START, ANALYSIS_START + 40, 20)
    assert set(data) >= {"looks", "decision"}
    look = data["looks"][0]
    assert set(look) >= {"start", "end", "checks"}
    check = look["checks"][0]
    assert set(check) >= {"name", "kind", "canary", "primary", "verdict"}
    assert set(check["canary"]) == {"requests", "failures"}
    latency = next(c for c in look["checks"] if c["name"] == "latency")
    low, high = latency["buckets"]["canary"]
    assert low < latency["values"]["canary"] <= high


def test_prometheus_3s_float_bucket_boundaries_count_the_same(tmp_path: Path) -> None:
    """Prometheus 3 stores a classic histogram's le="500" as le="500.0": the shipped policies
    match both (docs/policies.md)."""
    history = History(history_start(), 120, workloads()[:2], seed=5)
    source = tmp_path / "float-le.om"
    with source.open("w") as out:
        out.writelines(openmetrics(history, mesh_targets(history), float_le=True))
    assert 'le="500.0"' in source.read_text()
    url, process = start_backfilled_prometheus(tmp_path, source)
    try:
        mesh = MeshPrometheus(history, url, process, tmp_path)
        for policy in ("istio", "linkerd", "gateway-api-envoy"):
            data = backtest(mesh, policy, ANALYSIS_START, 120, 60)
            latency = _counts(data["looks"][0], "latency", "canary")
            truth = history.known_in(holders(mesh, policy, "canary"), ANALYSIS_START, 120)
            assert latency == {"requests": truth.requests, "failures": truth.slow}, policy
            check = next(c for c in data["looks"][0]["checks"] if c["name"] == "latency")
            assert "canary" in check["buckets"], policy
    finally:
        process.stop()
