"""Five minutes of realistic mesh telemetry in a real Prometheus, and `canary backtest` on it.

The history (canary.testing.telemetry_history): a primary of three pods serving 60 requests a
second since the start, one of whose proxies restarts at 170 s; a bad canary of two pods
born at 60 s when the analysis starts (20 requests a second, 8% failures, most of them gRPC
UNAVAILABLE on HTTP 200, 1% a 503 with UNAVAILABLE), one replaced at 200-205 s; two callers;
lookalikes that fail half their requests (podinfo-v2 in the same namespace, podinfo and
podinfo-primary in another); an idle canary with no user traffic beside its busy primary;
Linkerd's probes and admin traffic on every pod; Envoy Gateway's two Envoys, one restarting at
150 s, routing the gRPC calls through a GRPCRoute (its clusters with Envoy's gRPC statistics;
the second Envoy's calls to one method as gRPC-Web) and the rest through the HTTPRoute. Every
target is scraped every 5 s at its own phase; promtool backfills it all into a fresh
Prometheus.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from prometheus_backfill import history_start, start_backfilled_prometheus

from canary.cli.main import cli
from canary.local.processes import ManagedProcess
from canary.testing.telemetry_backfill import GATEWAYS, mesh_targets, openmetrics
from canary.testing.telemetry_history import (
    BAD,
    HEALTHY,
    Behaviour,
    History,
    Holder,
    Pod,
    Totals,
    Workload,
)

ANALYSIS_START = 60
SECONDS = 300
NAMESPACE = "shop"
LOOKALIKE = Behaviour((0.5, 0, 0, 0, 0.5, 0, 0, 0, 0), 40.0, 0.5)
IDLE = Behaviour(HEALTHY.shares, 50.0, 0.5)


def replica_pods(workload: str, namespace: str, count: int, born: int, subnet: int) -> list[Pod]:
    """Pods named as a ReplicaSet names them (a hash per ReplicaSet: unique here)."""
    return [
        Pod(
            f"{workload}-{subnet}f8c9d7b{subnet}-{'abcdefgh'[i]}x7k2",
            workload,
            namespace,
            born,
            ip=f"10.1.{subnet}.{i + 1}",
        )
        for i in range(count)
    ]


def replica_set(workload: str, count: int, born: int, subnet: int) -> tuple[Pod, ...]:
    """``count`` pods of ``workload`` in the rollout's namespace."""
    return tuple(replica_pods(workload, NAMESPACE, count, born, subnet))


def workloads() -> tuple[Workload, ...]:
    primary = replica_pods("podinfo-primary", NAMESPACE, 3, 0, 1)
    primary[1] = Pod(
        primary[1].name, primary[1].workload, NAMESPACE, 0, None, (170,), primary[1].ip
    )
    canary = replica_pods("podinfo", NAMESPACE, 2, ANALYSIS_START, 2)
    canary[0] = Pod(canary[0].name, "podinfo", NAMESPACE, ANALYSIS_START, 200, (), canary[0].ip)
    canary.append(Pod("podinfo-6f8c9d7b5-zq9wn", "podinfo", NAMESPACE, 205, ip="10.1.2.9"))
    return (
        Workload(NAMESPACE, "podinfo-primary", 60.0, HEALTHY, tuple(primary), "primary"),
        Workload(NAMESPACE, "podinfo", 20.0, BAD, tuple(canary), "canary"),
        Workload(
            NAMESPACE,
            "podinfo-v2",
            5.0,
            LOOKALIKE,
            tuple(replica_pods("podinfo-v2", NAMESPACE, 1, 0, 3)),
        ),
        Workload(
            "shop-staging",
            "podinfo",
            5.0,
            LOOKALIKE,
            tuple(replica_pods("podinfo", "shop-staging", 1, 0, 4)),
        ),
        Workload(
            "shop-staging",
            "podinfo-primary",
            5.0,
            LOOKALIKE,
            tuple(replica_pods("podinfo-primary", "shop-staging", 1, 0, 5)),
        ),
        Workload(NAMESPACE, "idle-primary", 10.0, IDLE, replica_set("idle-primary", 1, 0, 6)),
        Workload(NAMESPACE, "idle", 0.0, IDLE, replica_set("idle", 1, 0, 7)),
    )


@dataclass
class MeshPrometheus:
    history: History
    url: str
    process: ManagedProcess
    workdir: Path

    def at(self, second: int) -> int:
        """Unix seconds of history second ``second``."""
        return self.history.start + second


def start_mesh_prometheus(workdir: Path, seed: int = 12) -> MeshPrometheus:
    history = History(history_start(), SECONDS, workloads(), seed=seed)
    source = workdir / "mesh.om"
    with source.open("w") as out:
        out.writelines(openmetrics(history, mesh_targets(history)))
    url, process = start_backfilled_prometheus(workdir, source)
    return MeshPrometheus(history, url, process, workdir)


ROLLOUTS = {
    "istio": "provider: {name: istio}",
    "istio-ambient": "provider: {name: istio}\n  analysis:\n    policies: [{name: istio-ambient}]",
    "linkerd": "provider: {name: linkerd}",
    "gateway-api-envoy": (
        "provider:\n    name: gateway-api\n    gatewayApi:\n      parentRefs: [{name: public}]"
    ),
}


def rollout_file(workdir: Path, policy: str, target: str = "podinfo") -> Path:
    path = workdir / f"rollout-{policy}-{target}.yaml"
    path.write_text(
        "apiVersion: canary.dev/v1alpha1\nkind: Rollout\n"
        f"metadata: {{name: {target}, namespace: {NAMESPACE}}}\n"
        f"spec:\n  targetRef: {{name: {target}}}\n  service: {{port: 9898}}\n"
        f"  {ROLLOUTS[policy]}\n"
    )
    return path


def backtest(
    mesh: MeshPrometheus, policy: str, start: int, end: int, look: int, target: str = "podinfo"
) -> dict[str, Any]:
    """`canary backtest ... -o json` over history seconds (start, end]."""
    args = [
        "backtest",
        str(rollout_file(mesh.workdir, policy, target)),
        "--prometheus",
        mesh.url,
        "--from",
        str(mesh.at(start)),
        "--to",
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(mesh.at(end))),
        "--look-interval",
        f"{look}s",
        "-o",
        "json",
    ]
    run = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert run.exit_code == 0, run.output
    data: dict[str, Any] = json.loads(run.stdout)  # stderr may hold another thread's noise
    return data


def holders(mesh: MeshPrometheus, policy: str, side: str) -> list[Holder]:
    """Where the policy's counters for ``side`` live: the side's pods (sidecars), the
    namespace's waypoint, or the gateway's Envoys."""
    history = mesh.history
    pods = history.side(side).pods

    def of_pods(a: int, b: int, callers: slice = slice(None)) -> Totals:
        total = Totals()
        for pod in pods:
            total = total + Totals.of(history.served[pod.name][a : b + 1, callers])
        return total

    if policy in ("istio", "linkerd"):
        return history.pod_holders(side, policy)
    if policy == "istio-ambient":
        waypoint = Pod(f"waypoint-5d4f8b-{NAMESPACE}", "waypoint", NAMESPACE, 0)
        return [Holder(waypoint, f"waypoint/{NAMESPACE}", of_pods)]
    return [
        Holder(gateway, f"envoy/{gateway.name}", lambda a, b, g=g: of_pods(a, b, slice(g, g + 1)))
        for g, gateway in enumerate(GATEWAYS)
    ]
