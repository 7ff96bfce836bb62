"""A/B tests and blue/green switches."""

from __future__ import annotations

from engine_harness import PASS, World, rollout

from canary.engine import PromoteCanary, SetRoute
from canary.model import Phase

AB = {
    "abTest": {
        "iterations": 3,
        "match": [{"headers": {"x-canary": {"exact": "insider"}}}],
    }
}


def test_ab_test_routes_matching_requests_only_for_its_iterations() -> None:
    w = World(ro=rollout(strategy=AB)).initialized().progressing()
    assert w.route.canary_weight == 0
    assert len(w.route.match) == 1
    assert w.route.match[0].headers["x-canary"].exact == "insider"
    w.tick(checks=PASS)
    w.tick(checks=PASS)
    assert w.status is not None
    assert w.status.iteration == 2
    assert w.phase is Phase.PROGRESSING
    result = w.tick(checks=PASS)
    assert result.status.phase is Phase.PROMOTING
    assert result.status.iteration == 3
    w.tick()
    assert w.route.match == ()
    assert w.route.canary_weight == 0


def test_blue_green_judges_without_live_traffic_then_switches() -> None:
    ro = rollout(strategy={"blueGreen": {"iterations": 2}, "mirror": {"percentage": 50}})
    w = World(ro=ro).initialized().progressing()
    assert w.route.canary_weight == 0
    assert w.route.mirror_percentage == 50
    w.tick(checks=PASS)
    result = w.tick(checks=PASS)
    assert result.status.phase is Phase.PROMOTING
    routes = [a.route.canary_weight for a in result.actions if isinstance(a, SetRoute)]
    assert routes == [100]
    assert any(isinstance(a, PromoteCanary) for a in result.actions)
    result = w.tick()
    assert result.status.phase is Phase.FINALISING
    assert w.route.canary_weight == 0
    assert w.tick().status.phase is Phase.SUCCEEDED


def test_default_strategy_steps_by_ten_to_fifty() -> None:
    ro = rollout(strategy={})
    w = World(ro=ro).initialized().progressing()
    seen = [w.route.canary_weight]
    while w.phase is Phase.PROGRESSING:
        w.tick(checks=PASS)
        seen.append(w.route.canary_weight)
    assert seen == [10, 20, 30, 40, 50, 50]
