"""The long-poll: it answers when the rollout ends, or when its timeout passes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from api_support import OPERATE, ROLLOUT, TOKENS, Served, Workspace, progressing
from engine_harness import PASS, World, rollout
from fastapi.testclient import TestClient

from canary.engine import Command, CommandKind
from canary.gates.api.app import ApiSettings, create_app
from canary.gates.api.auth import TokenSet
from canary.gates.api.models import WaitOutcome, WaitResult
from canary.gates.api.rules import ended
from canary.model.status import Phase


def finish(workspace: Workspace, world: World, *, delay: float = 0.2) -> None:
    """Later, in another thread: tick with passing checks until the rollout has ended."""

    def run() -> None:
        time.sleep(delay)
        for _ in range(20):
            workspace.tick(world, checks=PASS)
            if world.phase in {Phase.SUCCEEDED, Phase.FAILED}:
                return
            time.sleep(0.01)

    threading.Thread(target=run, daemon=True).start()


def _wait(served: Served, query: str) -> WaitResult:
    response = served.client.get(f"{ROLLOUT}/wait?{query}")
    assert response.status_code == 200, response.text
    return WaitResult.model_validate(response.json())


def test_wait_answers_when_the_rollout_succeeds(served: Served) -> None:
    world = progressing(served.workspace)
    finish(served.workspace, world)
    started = time.monotonic()
    result = _wait(served, "timeout=20")
    assert result.outcome is WaitOutcome.SUCCEEDED
    assert result.done
    assert result.revision == "rev-2"
    assert result.reason == "Succeeded: revision rev-2 promoted"
    assert result.rollout.status.phase is Phase.SUCCEEDED
    assert 0.15 < time.monotonic() - started < 5
    assert result.waited_seconds >= 0.15


def test_wait_answers_failed_as_soon_as_the_rollout_rolls_back(served: Served) -> None:
    world = progressing(served.workspace)
    served.workspace.store.post_command("test", "podinfo", Command(kind=CommandKind.ABORT))

    def tick_later() -> None:
        time.sleep(0.2)
        served.workspace.tick(world)

    threading.Thread(target=tick_later, daemon=True).start()
    result = _wait(served, "timeout=20")
    assert result.outcome is WaitOutcome.FAILED
    assert result.rollout.status.phase is Phase.ROLLING_BACK
    assert result.reason.startswith("RollingBack: rolling back revision rev-2: aborted by")


def test_wait_times_out_with_where_the_rollout_stands(served: Served) -> None:
    progressing(served.workspace)
    started = time.monotonic()
    result = _wait(served, "timeout=0.3")
    assert result.outcome is WaitOutcome.TIMEOUT
    assert not result.done
    assert 0.25 < time.monotonic() - started < 3
    assert result.reason.startswith("not ended after 300ms: Progressing at 10%")


class FakeClock:
    """Virtual time: sleeping moves the clock, so a 10-minute wait takes no time at all."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def virtual(workspace: Workspace) -> Iterator[tuple[TestClient, FakeClock]]:
    clock = FakeClock()
    settings = ApiSettings(poll_interval=5.0, clock=clock, sleep=clock.sleep)
    app = create_app(workspace.store, TokenSet.of(*TOKENS), settings)
    with TestClient(app) as client:
        yield client, clock


def test_poll_interval_and_clock_are_injectable(
    virtual: tuple[TestClient, FakeClock], workspace: Workspace
) -> None:
    client, clock = virtual
    progressing(workspace)
    started = time.monotonic()
    response = client.get(f"{ROLLOUT}/wait?timeout=600", headers=OPERATE)
    assert time.monotonic() - started < 2
    result = WaitResult.model_validate(response.json())
    assert result.outcome is WaitOutcome.TIMEOUT
    assert result.waited_seconds == 600
    assert result.reason.startswith("not ended after 10m: Progressing at 10%")
    assert len(clock.sleeps) == 120
    assert set(clock.sleeps) == {5.0}


def test_wait_for_a_revision_ignores_the_previous_rollouts_end(
    virtual: tuple[TestClient, FakeClock], workspace: Workspace
) -> None:
    client, _ = virtual
    world = progressing(workspace)
    for _ in range(10):
        workspace.tick(world, checks=PASS)
    assert world.phase is Phase.SUCCEEDED
    url = f"{ROLLOUT}/wait?timeout=20"
    assert client.get(url, headers=OPERATE).json()["outcome"] == "succeeded"
    body = client.get(url + "&revision=rev-3", headers=OPERATE).json()
    assert body["outcome"] == "timeout"
    assert "(revision rev-3 not picked up yet)" in body["reason"]


def test_ended_reads_the_phase_for_the_revision_waited_for(workspace: Workspace) -> None:
    world = World(ro=rollout()).initialized()
    workspace.save(world, publish=False)
    view = workspace.store.get("test", "podinfo")
    assert ended(view) == (
        None,
        "Initialized at 0%: 'podinfo-primary' serves revision rev-1; new revisions will be "
        "rolled out progressively",
    )
    assert ended(view, "rev-1") == (
        WaitOutcome.SUCCEEDED,
        "Initialized: revision rev-1 serves as primary",
    )
    world.target = "rev-2"
    world.tick()
    world.tick()
    workspace.save(world)
    outcome, reason = ended(workspace.store.get("test", "podinfo"))
    assert outcome is None
    assert reason.startswith("Progressing at 5%")
