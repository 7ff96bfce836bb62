"""Why each tick runs and what it changed, and the wakes that no longer make a tick of their own.

The controller counts early wakes by reason and fate (``canary_wakes_total``: ticks, coalesced,
echo) and ticks by why they ran and their effect (``canary_ticks_total``: changed, idle,
skipped, ...). Each cut is checked by counting the ticks of a real scheduler:

- wakes that come while a tick is already asked for are one tick;
- the watch's echo of a Deployment write that comes before the tick that made the write has
  recorded its answer (the watch was faster than the answer) makes no second tick, while
  someone else's change arriving the same way does.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from controller_support import (
    CANARY_CRDS,
    Cluster,
    FakeKubelet,
    deployment,
    mesh_crds,
    rollout,
    wait_for,
)
from tick_support import Ticker, set_spec, start

from canary.controller.kinds import DEPLOYMENT, ROLLOUT
from canary.controller.kube import Json, Kube
from canary.controller.metrics import ControllerMetrics
from canary.controller.requeue import IDLE_WAIT, READINESS_WAIT, Waits
from canary.controller.scheduling import SCHEDULED, TickScheduler, current_wake
from canary.engine.tick import FAST_REQUEUE_SECONDS
from canary.testing import ApiServer


def sample(metrics: ControllerMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return value or 0.0


class Ticks:
    """A tick function that records why each tick ran (`current_wake`) and can hold one."""

    def __init__(self, during: Any = None) -> None:
        self.reasons: list[str] = []
        self.during = during
        self.hold = threading.Event()
        self.hold.set()
        self.started = threading.Event()

    def __call__(self, key: str, early: bool) -> float:
        self.reasons.append(current_wake())
        self.started.set()
        self.hold.wait(10)
        if self.during is not None and len(self.reasons) == 1:
            self.during()
        return 3600.0


def test_wakes_while_a_tick_is_asked_for_are_one_tick() -> None:
    metrics = ControllerMetrics()
    ticks = Ticks()
    scheduler = TickScheduler(ticks, workers=2, on_wake=metrics.woken)
    scheduler.start()
    try:
        ticks.hold.clear()
        scheduler.ensure("ns/a")
        wait_for("the first tick", ticks.started.is_set)
        # three wakes while it runs: one tick after it, not three
        for reason in ("deployment", "command", "deployment"):
            scheduler.trigger("ns/a", reason)
        ticks.hold.set()
        wait_for("the tick after", lambda: len(ticks.reasons) == 2)
        wait_for("it to end", lambda: scheduler.busy == 0)
    finally:
        scheduler.shutdown()
    assert ticks.reasons == [SCHEDULED, "command+deployment"]
    assert sample(metrics, "canary_wakes_total", reason="deployment", fate="ticks") == 1
    assert sample(metrics, "canary_wakes_total", reason="deployment", fate="coalesced") == 1
    assert sample(metrics, "canary_wakes_total", reason="command", fate="coalesced") == 1


@pytest.mark.parametrize("echo", [True, False], ids=["own-write", "someone-else"])
def test_a_wake_during_a_tick_is_dropped_only_when_it_was_the_echo_of_that_ticks_write(
    echo: bool,
) -> None:
    metrics = ControllerMetrics()
    scheduler: TickScheduler

    def wake() -> None:
        scheduler.trigger("ns/a", "deployment", echo=lambda: echo)

    ticks = Ticks(during=wake)
    scheduler = TickScheduler(ticks, workers=2, on_wake=metrics.woken)
    scheduler.start()
    try:
        scheduler.ensure("ns/a")
        wait_for("the first tick", lambda: ticks.reasons)
        wait_for("it to end", lambda: scheduler.busy == 0)
        if not echo:
            wait_for("the tick the change asks for", lambda: len(ticks.reasons) == 2)
    finally:
        scheduler.shutdown()
    assert ticks.reasons == ([SCHEDULED] if echo else [SCHEDULED, "deployment"])
    fate = "echo" if echo else "ticks"
    assert sample(metrics, "canary_wakes_total", reason="deployment", fate=fate) == 1


def test_the_echo_of_a_scale_seen_before_its_answer_makes_no_second_tick(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The watch may deliver the event of the tick's own write before the tick has read the
    API server's answer (and so before it knows the write's resourceVersion). Reproduced
    exactly: the Deployments' cache gets the event between the answer and its recording."""
    ns = cluster.namespace
    controller = cluster.controller(start=False, lease=None)
    controller._lead()
    rollouts, deployments = controller.caches[ROLLOUT.kind], controller.caches[DEPLOYMENT.kind]
    rollouts.apply("ADDED", rollout("web", ns))
    deployments.apply("ADDED", cluster.api.create(deployment("web", ns)))
    scale = Kube.scale

    def answered_after_the_watch(self: Kube, *args: Any) -> Json:
        stored = scale(self, *args)
        deployments.apply("MODIFIED", cluster.deployment("web"))  # the watch was faster
        return stored

    monkeypatch.setattr(Kube, "scale", answered_after_the_watch)
    ticks = Ticks(during=lambda: controller.reads.scale(DEPLOYMENT, ns, "web", 5))
    scheduler = TickScheduler(ticks, workers=2, on_wake=controller.metrics.woken)
    controller.scheduler = scheduler
    scheduler.start()
    try:
        scheduler.ensure(f"{ns}/web")
        wait_for("the tick", lambda: ticks.reasons)
        wait_for("it to end", lambda: scheduler.busy == 0)
        assert ticks.reasons == [SCHEDULED], "the echo of its own scale woke it again"
        echo = {"reason": "deployment", "fate": "echo"}
        assert sample(controller.metrics, "canary_wakes_total", **echo) == 1

        # the same race with someone else's change: it wakes the Rollout
        ticks.reasons.clear()
        ticks.during = None

        def someone_else() -> None:
            ticks.reasons.append("marker")
            live = cluster.deployment("web")
            cluster.api.apply(dict(live, spec={**live["spec"], "replicas": 7}))
            deployments.apply("MODIFIED", cluster.deployment("web"))

        ticks.during = someone_else
        scheduler.trigger(f"{ns}/web", "command")
        wait_for("two ticks", lambda: len(ticks.reasons) >= 3)
    finally:
        scheduler.shutdown()
    assert ticks.reasons == ["command", "marker", "deployment"]


def test_each_tick_is_counted_by_why_it_ran_and_whether_it_changed_anything(
    ticker: Ticker,
) -> None:
    """Driven by hand (no scheduler): an early tick is ``early``, a regular one
    ``scheduled``; an Initialized Rollout ticked again changes nothing (idle)."""
    start(ticker)
    metrics = ticker.reconciler.metrics
    key = f"{ticker.cluster.namespace}/web"
    before = sample(metrics, "canary_ticks_total", reason="scheduled", effect="changed")
    assert before >= 1, "Initializing and Initialized are changes"
    ticker.settle()
    ticker.reconciler.tick(key)
    ticker.reconciler.tick(key, early=True)
    assert sample(metrics, "canary_ticks_total", reason="scheduled", effect="idle") == 1
    assert sample(metrics, "canary_ticks_total", reason="early", effect="idle") == 1
    assert ticker.cluster.status("web")["phase"] == "Initialized"


@pytest.fixture
def held(api: ApiServer, namespace: str, tmp_path: Path) -> Iterator[tuple[Cluster, FakeKubelet]]:
    """A cluster whose fake kubelet the test holds (its ``paused`` Deployments stay unready)."""
    api.create_namespace(namespace)
    api.apply_file(*sorted(CANARY_CRDS.glob("*.yaml")))
    api.apply_file(*mesh_crds())
    made = Cluster(api, namespace, api.kubeconfig(tmp_path / "kubeconfig", namespace=namespace))
    with FakeKubelet(api, namespace) as kubelet:
        yield made, kubelet
        made.close()


def test_a_canary_that_is_not_ready_is_not_polled_and_still_starts_when_it_is_ready(
    held: tuple[Cluster, FakeKubelet],
) -> None:
    """The engine asks for its next tick 5 s on while it waits for the canary's pods; the
    controller waits at most ``READINESS_WAIT`` (at most the interval) instead, since the
    Deployment's readiness wakes the Rollout: a tick that finds them not ready changes nothing."""
    cluster, kubelet = held
    ns = cluster.namespace
    cluster.api.apply(deployment("web", ns))
    cluster.api.apply(rollout("web", ns, analysis={"interval": "10m", "judge": "threshold"}))
    controller = cluster.controller()
    cluster.wait_phase("web", "Initialized")
    kubelet.paused.add("web")
    cluster.set_image("web", "podinfo:6.7.1")
    cluster.wait_phase("web", "Progressing")
    key = f"{ns}/web"

    def waiting() -> float | None:
        due = controller.scheduler.due_in(key)
        return due if due is not None and due > FAST_REQUEUE_SECONDS else None

    due = wait_for("the tick after the start", waiting)
    assert due <= READINESS_WAIT
    assert cluster.status("web").get("canaryWeight", 0) == 0, "no traffic on unready pods"
    woken = {"reason": "deployment", "effect": "changed"}
    before = sample(controller.metrics, "canary_ticks_total", **woken)
    scheduled = sample(controller.metrics, "canary_ticks_total", reason=SCHEDULED, effect="changed")
    kubelet.paused.discard("web")
    # the wake of its readiness, not the fallback READINESS_WAIT seconds later
    wait_for("traffic on the canary", lambda: cluster.status("web").get("canaryWeight", 0) > 0)
    wait_for(
        "the tick its readiness woke",
        lambda: sample(controller.metrics, "canary_ticks_total", **woken) == before + 1,
    )
    assert (
        sample(controller.metrics, "canary_ticks_total", reason=SCHEDULED, effect="changed")
        == scheduled
    )


def test_an_idle_rollout_is_not_polled_every_interval_and_a_new_image_still_starts_it(
    cluster: Cluster,
) -> None:
    """Idle (Initialized), the engine would tick every interval (2 s here) to find nothing new;
    what would start a rollout wakes it, so it ticks every ``IDLE_WAIT`` (the resyncs')."""
    ns = cluster.namespace
    cluster.api.apply(deployment("web", ns))
    cluster.api.apply(rollout("web", ns))
    controller = cluster.controller()
    cluster.wait_phase("web", "Initialized")
    key = f"{ns}/web"

    def idle() -> float | None:
        due = controller.scheduler.due_in(key)
        return due if due is not None and due > 2 else None

    assert wait_for("the idle tick's requeue", idle) <= IDLE_WAIT
    woken = {"reason": "deployment", "effect": "changed"}
    before = sample(controller.metrics, "canary_ticks_total", **woken)
    cluster.set_image("web", "podinfo:6.7.1")
    cluster.wait_phase("web", "Progressing")  # (counted once the tick has ended)
    wait_for(
        "the tick the new image woke",
        lambda: sample(controller.metrics, "canary_ticks_total", **woken) > before,
    )


def test_the_engines_requeue_stands_where_no_watch_wakes_the_rollout(ticker: Ticker) -> None:
    """Driven by hand: idle, the next tick is ``IDLE_WAIT`` away (the interval of this
    Rollout, 10 minutes, is longer: it stands); with ``Waits(idle=0)`` the engine's requeue."""
    start(ticker)
    key = f"{ticker.cluster.namespace}/web"
    assert ticker.reconciler.tick(key) == 600.0, "the interval, longer than IDLE_WAIT"
    short = ticker.reconciler
    set_spec(ticker.cluster, lambda spec: spec["analysis"].update(interval="10s"))
    assert short.tick(key) == IDLE_WAIT
    short.waits = Waits(idle=0)
    assert short.tick(key) == 10.0


def test_over_seeded_orders_no_change_by_someone_else_is_dropped_as_an_echo() -> None:
    """The guarantee of the echo rule, over 300 seeded orders of a tick's own writes (each
    echo delivered before the tick records the write's answer), other writers' changes, and
    the recordings: a change by someone else during a tick always gets one more tick (one,
    however many came); a tick whose only wake was the echo of its last write gets none. (An
    echo of an earlier write of the same object is not recognised: a needless tick, allowed.)"""
    recorded: dict[str, str] = {}
    plans: dict[str, list[tuple[str, str]]] = {}
    runs: dict[str, int] = {}
    scheduler: TickScheduler

    def tick(key: str, early: bool) -> float:
        runs[key] = runs.get(key, 0) + 1
        if runs[key] > 1:
            return 3600.0
        for what, version in plans[key]:
            if what == "record":
                recorded[key] = version
            else:
                scheduler.trigger(key, what, echo=lambda k=key, v=version: recorded.get(k) == v)
        return 3600.0

    expected: dict[str, tuple[int, int]] = {}
    for seed in range(300):
        rng = random.Random(seed)
        key = f"ns/k{seed}"
        own = [f"own-{seed}-{i}" for i in range(rng.randint(0, 2))]
        others = [f"other-{seed}-{i}" for i in range(rng.randint(0, 2))]
        steps: list[tuple[str, str]] = []
        for version in own:  # each own write: its echo, then (later) its answer recorded
            steps.append(("deployment", version))
        steps += [("route", v) for v in others]
        rng.shuffle(steps)
        for version in own:  # the answer recorded after its echo came
            at = max(i for i, (_, v) in enumerate(steps) if v == version) + 1
            steps.insert(rng.randint(at, len(steps)), ("record", version))
        plans[key] = steps
        last_recorded = [v for what, v in steps if what == "record"][-1:] or [None]
        needless = any(v != last_recorded[0] for what, v in steps if what == "deployment")
        expected[key] = (1 if others else 0, 1 if others or needless else 0)
    scheduler = TickScheduler(tick, workers=4)
    scheduler.start()
    try:
        for key in plans:
            scheduler.ensure(key)
        wait_for("every tick and its follow-up", lambda: _settled(scheduler, runs, expected))
    finally:
        scheduler.shutdown()
    for key, (at_least, at_most) in expected.items():
        assert at_least <= runs[key] - 1 <= at_most, (key, plans[key], runs[key])


def _settled(
    scheduler: TickScheduler, runs: dict[str, int], expected: dict[str, tuple[int, int]]
) -> bool:
    """Every key ticked as often as it must, and none has a tick due soon (a follow-up still
    to come would be missed by the count)."""
    due = [scheduler.due_in(key) for key in expected]
    return (
        all(runs.get(key, 0) >= 1 + least for key, (least, _) in expected.items())
        and scheduler.busy == 0
        and all(d is not None and d > 60 for d in due)
    )


def test_a_requeue_due_while_the_previous_run_returns_runs_at_once_not_at_the_fallback() -> None:
    """The tick asks to run again after 0 s, and settling the wakes that came while it ran
    takes 0.5 s (a wake came while the first was settled, and its echo check is slow): the next
    run comes due while the previous one is still returning. It must run as soon as that run
    has returned (APScheduler, which the scheduler used before, skipped such a run and left it
    to its 30-s fallback)."""
    metrics = ControllerMetrics()
    scheduler: TickScheduler
    started: list[float] = []

    def late_echo() -> bool:
        time.sleep(0.5)
        return True  # the tick's own write: no tick of its own

    def first_echo() -> bool:
        scheduler.trigger("ns/a", "deployment", echo=late_echo)  # settled after the reschedule
        return True

    def tick(key: str, early: bool) -> float:
        started.append(time.monotonic())
        if len(started) == 1:
            scheduler.trigger(key, "deployment", echo=first_echo)
            return 0.0
        return 3600.0

    scheduler = TickScheduler(tick, workers=2, on_wake=metrics.woken)
    scheduler.start()
    try:
        scheduler.ensure("ns/a")
        wait_for("the requeued tick", lambda: len(started) == 2, timeout=15)
    finally:
        scheduler.shutdown()
    assert sample(metrics, "canary_wakes_total", reason="deployment", fate="echo") == 2
