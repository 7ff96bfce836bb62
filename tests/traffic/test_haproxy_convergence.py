"""The HAProxy router converges both ways, against a real HAProxy: after `apply`, the weights
and A/B maps canary owns hold exactly what the route asks for — entries added by hand are
removed, entries removed by hand put back, the maps of rules gone from the spec emptied — and
what others own in the same HAProxy is left alone. Read back with the runtime API's own
`get weight` and `show map`, and checked with real requests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from haproxy_support import LocalHaproxy, running_haproxy

from canary.engine import Route
from canary.model import Rollout
from canary.traffic.haproxy.router import HaproxyRouter
from canary.traffic.haproxy.runtime import RuntimeApi
from canary.traffic.router import RouterError

INSIDER = {"headers": {"x-canary": {"exact": "insider"}}}
COOKIE = {"cookie": {"name": "canary", "value": "always"}}
TEAM_MAP = "team.map"


@pytest.fixture
def ab(tmp_path: Path) -> Iterator[LocalHaproxy]:
    """HAProxy on a config with two A/B rules, and another team's map in the same frontend."""
    team_map = tmp_path / TEAM_MAP
    team_map.write_text("blue 1\n")
    extra = (f"http-request set-var(txn.team) req.hdr(x-team),map_str({team_map}) if TRUE",)
    with running_haproxy(tmp_path, extra, abTest={"match": [INSIDER, COOKIE]}) as haproxy:
        yield haproxy


def with_rules(ro: Rollout, *rules: dict[str, Any]) -> Rollout:
    """``ro`` with other A/B rules (none: no A/B test), as after an edit of the spec."""
    data = ro.model_dump(mode="json", by_alias=True, exclude_none=True)
    data["spec"].pop("strategy", None)
    if rules:
        data["spec"]["strategy"] = {"abTest": {"match": list(rules)}}
    return Rollout.model_validate(data)


def live_state(runtime: RuntimeApi) -> tuple[dict[str, int], dict[str, list[str]]]:
    """The servers' weights and every loaded map's keys, parsed from HAProxy's raw replies."""
    weights = {
        s: int(runtime.command(f"get weight app/{s}").split()[0]) for s in ("primary", "canary")
    }
    maps = {}
    for row in runtime.command("show map").splitlines()[1:]:
        map_file = row.split("(")[1].split(")")[0]
        rows = runtime.command(f"show map {map_file}").splitlines()
        maps[Path(map_file).name] = sorted(r.split(" ", 1)[1].rsplit(" ", 1)[0] for r in rows)
    return weights, maps


def ours(router: HaproxyRouter, rule: int) -> str:
    return next(Path(c.map_file).name for c in router.conditions if c.rule == rule)


def test_the_ab_route_is_held_exactly_and_released_exactly(ab: LocalHaproxy) -> None:
    router = HaproxyRouter(ab.rollout, ab.map_dir)
    router.apply(Route(match=router.rules))
    weights, maps = live_state(router.runtime)
    assert weights == {"primary": 100, "canary": 0}
    assert maps == {ours(router, 0): ["insider"], ours(router, 1): ["always"], TEAM_MAP: ["blue"]}
    assert router.drift(Route(match=router.rules)) == []
    router.apply(Route())
    assert live_state(router.runtime)[1] == {
        ours(router, 0): [],
        ours(router, 1): [],
        TEAM_MAP: ["blue"],
    }
    assert router.drift(Route()) == []


def test_an_entry_added_by_hand_is_seen_and_removed(ab: LocalHaproxy) -> None:
    router = HaproxyRouter(ab.rollout, ab.map_dir)
    router.apply(Route())
    insider_map = router.conditions[0].map_file
    router.runtime.command(f"add map {insider_map} sneaky 1")
    assert set(ab.send(5, {"x-canary": "sneaky"})) == {"canary"}  # the entry is live
    drift = router.drift(Route())
    assert drift == [f"map {Path(insider_map).name} holds 'sneaky'='1', not nothing"]
    router.apply(Route())
    assert router.drift(Route()) == []
    assert live_state(router.runtime)[1][ours(router, 0)] == []
    assert set(ab.send(5, {"x-canary": "sneaky"})) == {"primary"}


def test_entries_removed_changed_or_doubled_by_hand_are_put_back(ab: LocalHaproxy) -> None:
    router = HaproxyRouter(ab.rollout, ab.map_dir)
    route = Route(match=router.rules)
    router.apply(route)
    insider_map, cookie_map = (c.map_file for c in router.conditions)
    router.runtime.command(f"del map {insider_map} insider")
    router.runtime.command(f"set map {cookie_map} always 2")
    router.runtime.command(f"add map {cookie_map} always 1")
    assert len(router.drift(route)) == 2
    router.apply(route)
    assert router.drift(route) == []
    assert router.runtime.map_entries(insider_map) == [("insider", "1")]
    assert router.runtime.map_entries(cookie_map) == [("always", "1")]
    assert set(ab.send(5, {"x-canary": "insider"})) == {"canary"}


def test_weights_are_compared_exactly_not_as_a_share(ab: LocalHaproxy) -> None:
    router = HaproxyRouter(ab.rollout, ab.map_dir)
    router.apply(Route(canary_weight=50))
    router.runtime.set_weight("app", "canary", 10)
    router.runtime.set_weight("app", "primary", 10)  # the same 50% split, other weights
    assert router.current() == Route(canary_weight=50)
    assert router.drift(Route(canary_weight=50)) == [
        "weight of app/canary is 10, not 50",
        "weight of app/primary is 10, not 50",
    ]
    router.apply(Route(canary_weight=50))
    assert live_state(router.runtime)[0] == {"primary": 50, "canary": 50}


def test_the_map_of_a_rule_removed_from_the_spec_is_emptied(ab: LocalHaproxy) -> None:
    before = HaproxyRouter(ab.rollout, ab.map_dir)
    before.apply(Route(match=before.rules))
    cookie_map = ours(before, 1)
    after = HaproxyRouter(with_rules(ab.rollout, INSIDER), ab.map_dir)
    drift = after.drift(Route(match=after.rules))
    assert drift == [f"map {cookie_map} holds 'always'='1', not nothing"]
    after.apply(Route(match=after.rules))
    assert live_state(after.runtime)[1] == {
        ours(before, 0): ["insider"],
        cookie_map: [],
        TEAM_MAP: ["blue"],
    }
    assert set(ab.send(5, {"Cookie": "canary=always"})) == {"primary"}
    assert set(ab.send(5, {"x-canary": "insider"})) == {"canary"}


def test_an_ab_test_removed_from_the_spec_leaves_no_entry(ab: LocalHaproxy) -> None:
    before = HaproxyRouter(ab.rollout, ab.map_dir)
    before.apply(Route(match=before.rules))
    plain = HaproxyRouter(with_rules(ab.rollout), ab.map_dir)
    assert len(plain.drift(Route(canary_weight=10))) == 4  # two weights, two maps
    plain.apply(Route(canary_weight=10))
    assert plain.drift(Route(canary_weight=10)) == []
    assert live_state(plain.runtime)[1] == {
        ours(before, 0): [],
        ours(before, 1): [],
        TEAM_MAP: ["blue"],
    }


def test_a_changed_value_of_the_same_shape_converges_at_run_time(ab: LocalHaproxy) -> None:
    before = HaproxyRouter(ab.rollout, ab.map_dir)
    before.apply(Route(match=before.rules))
    beta = {"headers": {"x-canary": {"exact": "beta tester;eu"}}}  # a space and a ';'
    after = HaproxyRouter(with_rules(ab.rollout, beta, COOKIE), ab.map_dir)
    after.apply(Route(match=after.rules))
    assert after.drift(Route(match=after.rules)) == []
    assert live_state(after.runtime)[1][ours(before, 0)] == ["beta tester;eu"]
    assert set(ab.send(5, {"x-canary": "beta tester;eu"})) == {"canary"}
    assert set(ab.send(5, {"x-canary": "insider"})) == {"primary"}


def test_a_rule_of_another_shape_needs_the_config_rendered_again(ab: LocalHaproxy) -> None:
    other = {"headers": {"x-group": {"prefix": "beta"}}}
    router = HaproxyRouter(with_rules(ab.rollout, other), ab.map_dir)
    with pytest.raises(RouterError, match=r"abTest\.match\[0\].*canary haproxy-config"):
        router.apply(Route(match=router.rules))
    router.apply(Route())  # all traffic to the primary needs no map: it still works
    assert router.drift(Route()) == []


def test_another_teams_map_is_left_alone(ab: LocalHaproxy) -> None:
    router = HaproxyRouter(ab.rollout, ab.map_dir)
    team_map = str(ab.map_dir.parent / TEAM_MAP)
    router.runtime.command(f"add map {team_map} green 1")
    router.apply(Route(match=router.rules))
    router.apply(Route())
    assert router.drift(Route()) == []
    assert sorted(router.runtime.show_map(team_map)) == ["blue", "green"]
