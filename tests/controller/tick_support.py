"""Driving one Rollout's ticks by hand (no scheduler, no watches) with a metrics double that
judges every check the same way, and a clock that moves an analysis interval a tick."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from controller_support import Cluster, deployment, rollout, wait_for

from canary.analysis.samples import SideSample, WindowSample
from canary.controller.kube import Kube
from canary.controller.metrics import ControllerMetrics
from canary.controller.reconcile import Reconciler
from canary.gates.webhooks import WebhookCaller
from canary.model.analysis import CheckSpec

Json = dict[str, Any]
INTERVAL = timedelta(minutes=10)
VS = ("networking.istio.io/v1", "VirtualService")
DR = ("networking.istio.io/v1", "DestinationRule")
HTTPROUTE = ("gateway.networking.k8s.io/v1", "HTTPRoute")
GATEWAY = {"name": "gateway-api", "gatewayApi": {"parentRefs": [{"name": "eg"}]}}
PROVIDERS: dict[str, tuple[Json, tuple[str, str]]] = {
    "istio": ({"name": "istio"}, VS),
    "gateway-api": (GATEWAY, HTTPROUTE),
    "linkerd": ({"name": "linkerd"}, HTTPROUTE),
}


@dataclass
class Judged:
    """Every check sees the canary ``failures`` of 500 requests fail."""

    failures: int

    def window(self, check: CheckSpec, variables: Mapping[str, str], at: datetime) -> WindowSample:
        return WindowSample(
            canary=SideSample(requests=500, failures=self.failures, value=20.0),
            primary=SideSample(requests=2000, failures=0, value=20.0),
        )


class Clock:
    """The reconciler's time: each tick comes an analysis interval after the previous one."""

    def __init__(self) -> None:
        self.at = datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self.at


@dataclass
class Ticker:
    cluster: Cluster
    reconciler: Reconciler
    clock: Clock
    name: str = "web"

    def tick(self) -> Json:
        self.clock.at += INTERVAL
        self.reconciler.tick(f"{self.cluster.namespace}/{self.name}")
        return self.cluster.status(self.name)

    def settle(self) -> None:
        """The fake kubelet has caught up with the rollout's Deployments (their pods ready)."""

        def ready() -> bool:
            for name in (self.name, f"{self.name}-primary"):
                found = self.cluster.get("apps/v1", "Deployment", name)
                wanted = (found or {}).get("spec", {}).get("replicas", 1)
                status = (found or {}).get("status") or {}
                current = status.get("observedGeneration") == (found or {}).get("metadata", {}).get(
                    "generation"
                )
                if (
                    found is not None
                    and wanted
                    and not (current and status.get("readyReplicas") == wanted)
                ):
                    return False
            return True

        wait_for("the kubelet to catch up", ready, every=0.02)

    def until(self, what: str, done: Callable[[Json], bool]) -> Json:
        """Ticks until ``done``; before each tick the fake kubelet catches up, so the test's
        clock (an interval a tick) never runs ahead of pods a loaded machine is slow to make
        ready (a progress deadline passed on the clock alone)."""

        def settled_tick() -> Json | None:
            self.settle()
            status = self.tick()
            return status if done(status) else None

        return wait_for(what, settled_tick, every=0.05)

    def route(self, kind: tuple[str, str] = VS, name: str | None = None) -> Json:
        found = self.cluster.get(*kind, name or self.name)
        assert found is not None, f"{kind[1]} {name or self.name} is missing"
        return found


def make_ticker(cluster: Cluster, webhooks: WebhookCaller, failures: int = 0) -> Ticker:
    clock = Clock()
    kube = Kube(cluster.api_client())
    reconciler = Reconciler(kube, Judged(failures), webhooks, ControllerMetrics(), clock=clock.now)
    return Ticker(cluster, reconciler, clock)


def start(ticker: Ticker, provider: str = "istio", **spec: Any) -> None:
    cluster = ticker.cluster
    cluster.api.apply(deployment("web", cluster.namespace))
    body = rollout("web", cluster.namespace, **spec)
    body["spec"]["provider"] = copy.deepcopy(PROVIDERS[provider][0])
    body["spec"]["analysis"] = {"interval": "10m", "judge": "threshold", "failureLimit": 1}
    cluster.api.apply(body)
    ticker.until("Initialized", lambda s: s.get("phase") == "Initialized")


def set_spec(cluster: Cluster, change: Callable[[Json], None]) -> None:
    body = copy.deepcopy(cluster.rollout("web"))
    change(body["spec"])
    body["metadata"].pop("resourceVersion", None)
    cluster.api.apply(body)
