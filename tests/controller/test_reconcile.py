"""The tick driven by hand (no scheduler, no watches): early ticks never judge the canary
ahead of its interval (but act on an abort at once); a Deployment change wakes a Rollout whose
next tick is far away."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from controller_support import Cluster, deployment, rollout, wait_for

from canary.analysis.samples import SideSample, WindowSample
from canary.controller.commands import KubeRolloutStore
from canary.controller.kube import Kube
from canary.controller.metrics import ControllerMetrics
from canary.controller.reconcile import Reconciler
from canary.engine.observations import Command, CommandKind
from canary.gates.webhooks import WebhookCaller
from canary.model.analysis import CheckSpec


class Healthy:
    """Every check sees a healthy canary; counts the queries."""

    def __init__(self) -> None:
        self.queries = 0

    def window(self, check: CheckSpec, variables: Mapping[str, str], at: datetime) -> WindowSample:
        self.queries += 1
        return WindowSample(
            canary=SideSample(requests=500, failures=0, value=20.0),
            primary=SideSample(requests=2000, failures=0, value=20.0),
        )


def test_an_early_tick_does_not_judge_ahead_of_the_interval(cluster: Cluster) -> None:
    cluster.api.apply(deployment("web", cluster.namespace))
    analysis = {"interval": "10m", "judge": "threshold"}
    cluster.api.apply(rollout("web", cluster.namespace, analysis=analysis))
    metrics = ControllerMetrics()
    provider = Healthy()
    kube = Kube(cluster.api_client())
    store = KubeRolloutStore(kube)
    with WebhookCaller.create() as webhooks:
        reconciler = Reconciler(kube, provider, webhooks, metrics)
        key = f"{cluster.namespace}/web"

        def tick_until(phase: str, weight: int | None = None) -> None:
            def reached() -> bool:
                reconciler.tick(key)
                status = cluster.status("web")
                return status.get("phase") == phase and (
                    weight is None or status.get("canaryWeight") == weight
                )

            wait_for(f"{phase} at {weight}", reached, every=0.1)

        tick_until("Initialized")
        cluster.set_image("web", "podinfo:7.0.0")
        tick_until("Progressing", 20)
        assert provider.queries == 0
        before = cluster.status("web")
        requeue = reconciler.tick(key, early=True)
        assert provider.queries == 0, "an early tick does not query the metrics"
        assert cluster.status("web") == before, "nor does it write anything"
        assert 590 < requeue <= 600, "the regular tick stands"
        assert reconciler.tick(key) == 600
        assert provider.queries == 2, "a regular tick judges both checks"
        assert cluster.status("web")["canaryWeight"] == 50, cluster.status("web")["message"]
        cluster.set_image("web", "podinfo:8.0.0")
        reconciler.tick(key, early=True)
        assert cluster.status("web")["canaryWeight"] == 0, "a new revision restarts at once"
        tick_until("Progressing", 20)
        queries = provider.queries
        store.post_command(cluster.namespace, "web", Command(kind=CommandKind.ABORT, by="eve"))
        reconciler.tick(key, early=True)
        assert cluster.phase("web") == "Failed", (
            "an abort is not kept waiting (rolled back in the same tick)"
        )
        assert provider.queries == queries
    outcomes = {
        s.labels["outcome"]: s.value
        for family in metrics.registry.collect()
        for s in family.samples
        if s.name == "canary_reconcile_duration_seconds_count"
    }
    assert outcomes["skipped"] == 1


def test_a_deployment_change_wakes_a_rollout_whose_next_tick_is_far(cluster: Cluster) -> None:
    cluster.api.apply(deployment("web", cluster.namespace))
    cluster.api.apply(rollout("web", cluster.namespace, analysis={"interval": "10m"}))
    cluster.controller()
    cluster.wait_phase("web", "Initialized")
    cluster.set_image("web", "podinfo:7.0.0")  # the next regular tick is 10 minutes away
    cluster.wait_phase("web", "Progressing")
    # and the canary's readiness (its Deployment's status) wakes it again: traffic moves
    wait_for("the first step", lambda: cluster.status("web").get("canaryWeight") == 20)
