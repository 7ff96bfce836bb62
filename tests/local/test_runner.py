"""The local runner end to end with a real HAProxy in front of two real HTTP servers.

Metrics come from a scripted provider here (the verdicts are the point, not the queries);
tests/local/test_demo.py runs the whole thing with the real Prometheus.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from haproxy_support import LocalHaproxy, running_haproxy

from canary.analysis.samples import SideSample, WindowSample
from canary.engine import Route
from canary.local.runner import LocalRunner
from canary.local.state import LocalRunError, LocalState, load_state
from canary.local.workload import FixedBackends
from canary.model import CheckSpec, Phase, Rollout
from canary.traffic.haproxy.router import HaproxyRouter

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Scripted:
    """Every check sees the same window: a healthy or a failing canary."""

    def __init__(self, canary_errors: int) -> None:
        self.canary_errors = canary_errors

    def window(self, check: CheckSpec, variables: Mapping[str, str], at: datetime) -> WindowSample:
        return WindowSample(
            canary=SideSample(requests=400, failures=self.canary_errors, value=100.0),
            primary=SideSample(requests=4000, failures=4, value=100.0),
        )


class FakeTime:
    def __init__(self) -> None:
        self.now = T0

    def clock(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def with_analysis(ro: Rollout, **analysis: object) -> Rollout:
    data = ro.model_dump(mode="json", by_alias=True, exclude_none=True)
    data["spec"]["analysis"].update({"interval": "10s", "judge": "threshold", **analysis})
    data["spec"]["strategy"] = {"canary": {"weights": [10, 50]}}
    return Rollout.model_validate(data)


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[LocalHaproxy]:
    with running_haproxy(tmp_path) as running:
        yield running


class Recording(Scripted):
    """Scripted, remembering the window each query covered."""

    def __init__(self, canary_errors: int) -> None:
        super().__init__(canary_errors)
        self.windows: list[str] = []

    def window(self, check: CheckSpec, variables: Mapping[str, str], at: datetime) -> WindowSample:
        self.windows.append(variables["interval"])
        return super().window(check, variables, at)


def runner_for(
    haproxy: LocalHaproxy,
    state_path: Path,
    canary_errors: int,
    time: FakeTime,
    provider: Scripted | None = None,
    **analysis: object,
) -> LocalRunner:
    ro = with_analysis(haproxy.rollout, **analysis)
    router = HaproxyRouter(ro, haproxy.map_dir)
    state = load_state(state_path, ro, stable="v1")
    settings = ro.spec.provider.haproxy
    assert settings is not None
    workload = FixedBackends(settings, router.runtime, "v2", state.workload)
    return LocalRunner(
        ro,
        state_path,
        state,
        router,
        workload,
        provider or Scripted(canary_errors),
        clock=time.clock,
        sleep=time.sleep,
        log=lambda _: None,
    )


def test_a_healthy_canary_ends_serving_all_traffic(haproxy: LocalHaproxy, tmp_path: Path) -> None:
    runner = runner_for(haproxy, tmp_path / "state.json", canary_errors=0, time=FakeTime())
    state = runner.run(max_ticks=50)
    assert state.status.phase is Phase.SUCCEEDED
    assert state.status.stable_revision == "v2"
    assert set(haproxy.send(20)) == {"canary"}  # the primary server now points at v2
    assert runner.router.current() == Route()


def test_the_sequential_judge_is_looked_at_every_look_interval(
    haproxy: LocalHaproxy, tmp_path: Path
) -> None:
    time = FakeTime()
    provider = Recording(canary_errors=0)
    runner = runner_for(
        haproxy, tmp_path / "state.json", 0, time, provider, interval="1m", judge="sequential"
    )
    assert runner.look_interval == 20.0
    waits = []
    while True:
        result = runner.tick()
        if result.status.phase is not Phase.PROGRESSING or result.status.canary_weight == 50:
            break
        waits.append(result.requeue_after)
        time.sleep(result.requeue_after)
    assert waits[-1] == 20.0  # analysis: a look every 20 s, not every minute
    assert provider.windows
    assert set(provider.windows) == {"20s"}  # each look queries the time since the last


def test_a_bad_canary_is_rolled_back_to_the_primary(haproxy: LocalHaproxy, tmp_path: Path) -> None:
    runner = runner_for(haproxy, tmp_path / "state.json", canary_errors=40, time=FakeTime())
    state = runner.run(max_ticks=50)
    assert state.status.phase is Phase.FAILED
    assert set(haproxy.send(20)) == {"primary"}
    assert runner.router.current() == Route()


def test_an_interrupted_run_resumes_from_the_state_file(
    haproxy: LocalHaproxy, tmp_path: Path
) -> None:
    state_path = tmp_path / "state.json"
    time = FakeTime()
    first = runner_for(haproxy, state_path, canary_errors=0, time=time)
    first.run(max_ticks=2)
    saved = LocalState.model_validate_json(state_path.read_text())
    assert saved.status.phase is Phase.PROGRESSING
    assert saved.status.canary_weight == 10
    resumed = runner_for(haproxy, state_path, canary_errors=0, time=time)
    assert resumed.state.status == saved.status
    result = resumed.tick()
    assert result.status.canary_weight == 50  # went on from where it stopped
    assert resumed.run(max_ticks=50).status.phase is Phase.SUCCEEDED


def test_ctrl_c_leaves_all_traffic_on_the_primary(haproxy: LocalHaproxy, tmp_path: Path) -> None:
    time = FakeTime()
    runner = runner_for(haproxy, tmp_path / "state.json", canary_errors=0, time=time)
    calls = 0

    def interrupt_on_third(seconds: float) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise KeyboardInterrupt
        time.sleep(seconds)

    runner.sleep = interrupt_on_third
    with pytest.raises(KeyboardInterrupt):
        runner.run(max_ticks=50)
    assert runner.router.current() == Route()
    assert set(haproxy.send(10)) == {"primary"}


def test_drift_in_haproxy_is_repaired_at_the_next_tick(
    haproxy: LocalHaproxy, tmp_path: Path
) -> None:
    runner = runner_for(haproxy, tmp_path / "state.json", canary_errors=0, time=FakeTime())
    runner.run(max_ticks=3)
    runner.router.runtime.set_weight("app", "canary", 90)
    runner.tick()
    assert runner.router.current().canary_weight in (10, 50)


def test_state_of_another_rollout_is_refused(haproxy: LocalHaproxy, tmp_path: Path) -> None:
    state_path = tmp_path / "state.json"
    runner_for(haproxy, state_path, canary_errors=0, time=FakeTime()).run(max_ticks=1)
    other = haproxy.rollout.model_copy(
        update={"metadata": haproxy.rollout.metadata.model_copy(update={"name": "other"})}
    )
    with pytest.raises(LocalRunError, match="belongs to Rollout default/app"):
        load_state(state_path, other, stable="v1")


def test_an_abort_posted_through_the_api_inbox_rolls_back(
    haproxy: LocalHaproxy, tmp_path: Path
) -> None:
    from canary.engine import Command, CommandKind
    from canary.gates.api.filestore import CommandInbox

    state_path = tmp_path / "state.json"
    runner = runner_for(haproxy, state_path, canary_errors=0, time=FakeTime())
    runner.run(max_ticks=2)
    CommandInbox.beside(state_path).post(Command(kind=CommandKind.ABORT, by="alice"))
    result = runner.tick()
    assert result.status.phase is Phase.ROLLING_BACK
    assert "aborted by alice" in result.status.message
    assert CommandInbox.beside(state_path).pending() == []
    assert set(haproxy.send(10)) == {"primary"}
