"""After every tick of the local runner, the real HAProxy holds exactly the route last applied:
both servers' weights and every A/B map canary owns, read back with `get weight` and
`show map`. Hand edits between ticks (entries added, removed, weights changed) are undone at
the next tick, and a run resumed with a rule removed from the spec empties that rule's map; a
primary server pointed elsewhere by hand is pointed back."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from haproxy_support import LocalHaproxy, running_haproxy

from canary.analysis.samples import SideSample, WindowSample
from canary.engine import Route
from canary.local.runner import LocalRunner
from canary.local.state import load_state
from canary.local.workload import FixedBackends
from canary.model import CheckSpec, Phase, Rollout
from canary.traffic.haproxy.router import HaproxyRouter
from canary.traffic.haproxy.runtime import RuntimeApi

INSIDER = {"headers": {"x-canary": {"exact": "insider"}}}
COOKIE = {"cookie": {"name": "canary", "value": "always"}}


class Healthy:
    def window(self, check: CheckSpec, variables: Mapping[str, str], at: datetime) -> WindowSample:
        return WindowSample(
            canary=SideSample(requests=400, failures=0, value=100.0),
            primary=SideSample(requests=4000, failures=4, value=100.0),
        )


class FakeTime:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def clock(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[LocalHaproxy]:
    with running_haproxy(tmp_path, abTest={"match": [INSIDER, COOKIE]}) as running:
        yield running


def rollout(base: Rollout, strategy: dict[str, Any]) -> Rollout:
    data = base.model_dump(mode="json", by_alias=True, exclude_none=True)
    data["spec"]["analysis"].update({"interval": "10s", "judge": "threshold"})
    data["spec"]["strategy"] = strategy
    return Rollout.model_validate(data)


def runner(haproxy: LocalHaproxy, ro: Rollout, state: Path, time: FakeTime) -> LocalRunner:
    router = HaproxyRouter(ro, haproxy.map_dir)
    saved = load_state(state, ro, stable="v1")
    settings = ro.spec.provider.haproxy
    assert settings is not None
    workload = FixedBackends(settings, router.runtime, "v2", saved.workload)
    return LocalRunner(
        ro, state, saved, router, workload, Healthy(), clock=time.clock, sleep=time.sleep,
        log=lambda _: None,
    )  # fmt: skip


def live(runtime: RuntimeApi) -> tuple[int, int, dict[str, list[str]]]:
    """(canary weight, primary weight, keys of every loaded map) from HAProxy's raw replies."""
    canary, primary = (
        int(runtime.command(f"get weight app/{server}").split()[0])
        for server in ("canary", "primary")
    )
    maps = {}
    for row in runtime.command("show map").splitlines()[1:]:
        map_file = row.split("(")[1].split(")")[0]
        entries = runtime.command(f"show map {map_file}").splitlines()
        maps[Path(map_file).name] = [e.split()[1] for e in entries]
    return canary, primary, maps


def expected(run: LocalRunner, route: Route) -> tuple[int, int, dict[str, list[str]]]:
    """What HAProxy must hold for ``route``: the rules' keys while A/B is on, else nothing."""
    names = {Path(c.map_file).name: c.key for c in run.router.conditions}
    maps = {name: [key] if route.match else [] for name, key in names.items()}
    return route.canary_weight, 100 - route.canary_weight, maps


def test_after_every_tick_haproxy_holds_the_route_even_after_hand_edits(
    haproxy: LocalHaproxy, tmp_path: Path
) -> None:
    time = FakeTime()
    ab = rollout(haproxy.rollout, {"abTest": {"iterations": 8, "match": [INSIDER, COOKIE]}})
    run = runner(haproxy, ab, tmp_path / "state.json", time)
    insider_map, cookie_map = (c.map_file for c in run.router.conditions)
    hand_edits = [
        f"add map {insider_map} sneaky 1",  # an entry nobody asked for
        f"del map {cookie_map} always",  # a rule's entry taken out
        "set weight app/canary 40",  # a weight moved
        f"add map {insider_map} insider 1",  # an entry doubled
    ]
    routes_seen = set()
    after_the_end = 0
    for tick in range(60):
        result = run.tick()
        routes_seen.add(bool(run.state.route.match))
        assert live(run.router.runtime) == expected(run, run.state.route), f"tick {tick}"
        if result.status.phase is Phase.SUCCEEDED:
            after_the_end += 1  # the router's state is held after the rollout too
            if after_the_end > len(hand_edits):
                break
        run.router.runtime.command(hand_edits[tick % len(hand_edits)])
        time.sleep(result.requeue_after)
    assert result.status.phase is Phase.SUCCEEDED
    assert routes_seen == {True, False}  # the A/B route was held, then released
    assert set(haproxy.send(5, {"x-canary": "sneaky"})) == {"canary"}  # v2 is the primary now


def test_a_run_resumed_without_a_rule_empties_its_map(
    haproxy: LocalHaproxy, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    time = FakeTime()
    both = rollout(haproxy.rollout, {"abTest": {"iterations": 8, "match": [INSIDER, COOKIE]}})
    first = runner(haproxy, both, state, time)
    first.run(max_ticks=3)
    assert first.state.route.match  # interrupted (killed) while the A/B route is on
    assert set(haproxy.send(3, {"Cookie": "canary=always"})) == {"canary"}

    one = rollout(haproxy.rollout, {"abTest": {"iterations": 8, "match": [INSIDER]}})
    resumed = runner(haproxy, one, state, time)
    resumed.tick()
    canary, primary, maps = live(resumed.router.runtime)
    assert (canary, primary) == (0, 100)
    insider_map, cookie_map = (Path(c.map_file).name for c in first.router.conditions)
    assert maps == {insider_map: ["insider"], cookie_map: []}
    assert set(haproxy.send(3, {"Cookie": "canary=always"})) == {"primary"}
    assert set(haproxy.send(3, {"x-canary": "insider"})) == {"canary"}
    assert resumed.state.route == Route(match=resumed.router.rules)


def test_a_primary_server_pointed_elsewhere_by_hand_is_put_back(
    haproxy: LocalHaproxy, tmp_path: Path
) -> None:
    time = FakeTime()
    plain = rollout(haproxy.rollout, {"canary": {"weights": [10, 50]}})
    run = runner(haproxy, plain, tmp_path / "state.json", time)
    run.tick()
    primary = run.workload.record.primary_address
    canary = run.workload.settings.canary_address
    assert primary is not None
    assert canary is not None
    host, _, port = canary.rpartition(":")
    run.router.runtime.command(f"set server app/primary addr {host} port {port}")
    assert run.router.runtime.server_address("app", "primary") == canary
    assert set(haproxy.send(5)) == {"canary"}  # v1's share now reaches v2
    run.tick()
    assert run.router.runtime.server_address("app", "primary") == primary
    assert "primary" in haproxy.send(10)  # v1 serves the primary's share again
