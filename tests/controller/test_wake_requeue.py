"""`canary.controller.requeue`: which of the engine's requeues the controller stretches, and
which it leaves alone (every case where no watch would wake the Rollout)."""

from __future__ import annotations

import pytest

from canary.controller.requeue import IDLE_WAIT, READINESS_WAIT, Waits, watched_requeue
from canary.engine.observations import WorkloadState
from canary.model.status import Phase, RolloutStatus

READY = WorkloadState(
    target_revision="b", canary_ready=True, primary_ready=True, primary_revision="a"
)
NOT_READY = READY.model_copy(update={"canary_ready": False, "primary_ready": False})


def requeue(
    engine: float,
    before: Phase,
    after: Phase,
    workload: WorkloadState = READY,
    interval: float = 60.0,
    waits: Waits | None = None,
) -> float:
    return watched_requeue(
        engine,
        interval=interval,
        before=RolloutStatus(phase=before),
        status=RolloutStatus(phase=after, canary_revision="b"),
        workload=workload,
        waits=waits or Waits(),
        resync=300.0,
    )


@pytest.mark.parametrize("phase", [Phase.INITIALIZED, Phase.SUCCEEDED, Phase.FAILED])
def test_an_idle_rollout_waits_the_idle_wait_never_less_than_the_engine_asked(phase: Phase) -> None:
    assert requeue(60.0, phase, phase) == IDLE_WAIT
    assert requeue(600.0, phase, phase, interval=600.0) == 600.0, "a longer interval stands"
    assert requeue(5.0, phase, phase) == 5.0, "a quick requeue the engine asked for stands"
    assert requeue(60.0, phase, phase, waits=Waits(idle=0)) == 60.0


def test_the_tick_that_enters_an_idle_phase_keeps_the_engines_requeue() -> None:
    assert requeue(60.0, Phase.PROMOTING, Phase.SUCCEEDED) == 60.0
    assert requeue(60.0, Phase.INITIALIZING, Phase.INITIALIZED) == 60.0


def test_waiting_for_pods_waits_the_readiness_wait_at_most_the_interval() -> None:
    assert requeue(5.0, Phase.INITIALIZED, Phase.PROGRESSING, NOT_READY) == READINESS_WAIT
    assert requeue(5.0, Phase.PROGRESSING, Phase.PROGRESSING, NOT_READY, interval=10.0) == 10.0
    assert requeue(5.0, Phase.PROMOTING, Phase.PROMOTING, READY) == READINESS_WAIT, (
        "the primary runs the old revision: not done"
    )
    assert requeue(5.0, Phase.INITIALIZING, Phase.INITIALIZING, NOT_READY) == READINESS_WAIT
    assert (
        requeue(5.0, Phase.PROGRESSING, Phase.PROGRESSING, NOT_READY, waits=Waits(readiness=0))
        == 5.0
    )


def test_nothing_else_is_stretched() -> None:
    # the canary ready and judged: the look interval stands; not ready while judged, too
    assert requeue(10.0, Phase.PROGRESSING, Phase.PROGRESSING, READY) == 10.0
    assert requeue(20.0, Phase.PROGRESSING, Phase.PROGRESSING, NOT_READY) == 20.0
    promoted = READY.model_copy(update={"primary_revision": "b"})
    assert requeue(5.0, Phase.PROMOTING, Phase.PROMOTING, promoted) == 5.0
    for phase in (Phase.WAITING, Phase.PAUSED, Phase.FINALISING, Phase.ROLLING_BACK):
        assert requeue(5.0, phase, phase, NOT_READY) == 5.0, phase
