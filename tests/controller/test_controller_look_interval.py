"""The look interval in the controller: a Rollout judged by the sequential judge is looked at
every ``lookInterval`` (each look querying the time since the previous one), one judged by
threshold keeps ``interval``; an early tick waits for the next look, not the next interval.

The tick is driven by hand on a clock the test moves (no scheduler, no watches, no waiting
on wall time), and the metrics provider records what each look asked for."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from controller_support import Cluster, deployment, rollout, wait_for

from canary.analysis.samples import SideSample, WindowSample
from canary.controller.kube import Kube
from canary.controller.metrics import ControllerMetrics
from canary.controller.reconcile import Reconciler
from canary.gates.webhooks import WebhookCaller
from canary.model.analysis import CheckSpec

T0 = datetime(2030, 1, 1, tzinfo=UTC)


class Recording:
    """A healthy canary; remembers the window each query covered, by the time it was asked."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.looks: list[tuple[float, str]] = []

    def window(self, check: CheckSpec, variables: Mapping[str, str], at: datetime) -> WindowSample:
        self.looks.append((self.clock.seconds, variables["interval"]))
        return WindowSample(
            canary=SideSample(requests=50, failures=0, value=20.0),
            primary=SideSample(requests=200, failures=0, value=20.0),
        )

    def times(self) -> list[float]:
        """When the checks were looked at (each look queries every check)."""
        return sorted({t for t, _ in self.looks})


@dataclass
class Clock:
    seconds: float = 0.0

    def now(self) -> datetime:
        return T0 + timedelta(seconds=self.seconds)


@dataclass
class Judged:
    """What ticking a Rollout on the test's clock saw while its canary was judged."""

    requeues: list[float]
    looks: list[float]
    windows: set[str]
    early_requeue: float
    queries_by_early_tick: int


def judge_for(cluster: Cluster, name: str, analysis: dict[str, object], span: float) -> Judged:
    """Roll ``name`` out to its first step, then tick it for ``span`` seconds of the test's
    clock, each tick when the previous one asked; and try an early tick a second after a
    look."""
    cluster.api.apply(deployment(name, cluster.namespace))
    # many steps, so the canary is still judged at the end of the span
    strategy = {"canary": {"weights": [5, 10, 15, 20, 25, 30, 35, 40, 45, 50]}}
    cluster.api.apply(rollout(name, cluster.namespace, analysis=analysis, strategy=strategy))
    clock = Clock()
    provider = Recording(clock)
    key = f"{cluster.namespace}/{name}"
    with WebhookCaller.create() as webhooks:
        reconciler = Reconciler(
            Kube(cluster.api_client()), provider, webhooks, ControllerMetrics(), clock=clock.now
        )

        requeue = 0.0

        def tick_until(phase: str, weight: int) -> None:
            def reached() -> bool:
                nonlocal requeue
                clock.seconds += 0.5
                requeue = reconciler.tick(key)
                status = cluster.status(name)
                return status.get("phase") == phase and status.get("canaryWeight") == weight

            wait_for(f"{name} {phase} at {weight}%", reached, every=0.1)

        tick_until("Initialized", 0)
        cluster.set_image(name, "podinfo:7.0.0")
        tick_until("Progressing", 5)  # the canary takes traffic: it is judged from now on
        assert not provider.looks
        clock.seconds += requeue
        start = clock.seconds
        requeues: list[float] = []
        while clock.seconds - start < span:
            requeue = reconciler.tick(key)
            assert cluster.phase(name) == "Progressing", cluster.status(name).get("message")
            requeues.append(requeue)
            clock.seconds += requeue
        looks = provider.times()
        windows = {w for _, w in provider.looks}
        # an early tick (a Deployment changed) a second after the last look
        queries = len(provider.looks)
        clock.seconds = looks[-1] + 1.0
        early = reconciler.tick(key, early=True)
    return Judged(
        requeues=requeues,
        looks=[t - start for t in looks],
        windows=windows,
        early_requeue=early,
        queries_by_early_tick=len(provider.looks) - queries,
    )


@pytest.mark.parametrize(
    ("analysis", "look", "span"),
    [
        ({"interval": "6s", "lookInterval": "2s", "judge": "sequential"}, 2.0, 12.0),
        ({"interval": "6s", "judge": "threshold"}, 6.0, 12.0),
        # no lookInterval: the default of sequential count checks, min(interval, 20s)
        ({"interval": "1m", "judge": "sequential"}, 20.0, 120.0),
    ],
    ids=["sequential-looks-every-2s", "threshold-keeps-6s", "sequential-default-20s"],
)
def test_a_judged_canary_is_looked_at_every_look_interval(
    cluster: Cluster, analysis: dict[str, object], look: float, span: float
) -> None:
    seen = judge_for(cluster, "web", analysis, span)
    assert set(seen.requeues) == {look}, "the next tick is a look interval away"
    assert seen.looks == [look * i for i in range(round(span / look))]
    assert seen.windows == {f"{look:g}s"}, "each look queries the time since the previous one"
    assert seen.queries_by_early_tick == 0, "an early tick never looks ahead of the next look"
    assert seen.early_requeue == pytest.approx(look - 1.0), "the next look stands"
