"""The HAProxy router against a real HAProxy (Debian package `haproxy`) and real HTTP."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from haproxy_support import LocalHaproxy, running_haproxy

from canary.engine import Route
from canary.local.haproxy import check_config
from canary.local.processes import ProcessError
from canary.traffic.haproxy import config
from canary.traffic.haproxy.router import HaproxyRouter
from canary.traffic.haproxy.runtime import RuntimeApi, RuntimeApiError
from canary.traffic.router import RouterError

AB = {
    "match": [
        {"headers": {"x-canary": {"exact": "insider"}}},
        {"cookie": {"name": "canary", "value": "always"}},
    ]
}


@pytest.fixture
def weighted(tmp_path: Path) -> Iterator[LocalHaproxy]:
    with running_haproxy(tmp_path) as haproxy:
        yield haproxy


@pytest.fixture
def ab(tmp_path: Path) -> Iterator[LocalHaproxy]:
    with running_haproxy(tmp_path, abTest=AB) as haproxy:
        yield haproxy


def test_config_starts_with_all_traffic_on_the_primary(weighted: LocalHaproxy) -> None:
    assert set(weighted.send(20)) == {"primary"}
    router = HaproxyRouter(weighted.rollout, weighted.map_dir)
    assert router.current() == Route()


def test_weights_split_real_requests(weighted: LocalHaproxy) -> None:
    router = HaproxyRouter(weighted.rollout, weighted.map_dir)
    router.apply(Route(canary_weight=20))
    counts = Counter(weighted.send(100))
    assert 12 <= counts["canary"] <= 28, counts
    assert router.current() == Route(canary_weight=20)
    router.apply(Route(canary_weight=100))
    assert set(weighted.send(20)) == {"canary"}
    router.apply(Route())
    assert set(weighted.send(20)) == {"primary"}


def test_applying_twice_is_applying_once(weighted: LocalHaproxy) -> None:
    router = HaproxyRouter(weighted.rollout, weighted.map_dir)
    router.apply(Route(canary_weight=30))
    router.apply(Route(canary_weight=30))
    assert router.current() == Route(canary_weight=30)


def test_drift_is_visible_and_repaired(weighted: LocalHaproxy) -> None:
    router = HaproxyRouter(weighted.rollout, weighted.map_dir)
    router.apply(Route(canary_weight=10))
    router.runtime.set_weight("app", "canary", 90)  # someone changed it by hand
    assert router.current() != Route(canary_weight=10)
    router.apply(Route(canary_weight=10))
    assert router.current() == Route(canary_weight=10)


def test_ab_routes_only_matching_requests_to_the_canary(ab: LocalHaproxy) -> None:
    router = HaproxyRouter(ab.rollout, ab.map_dir)
    rules = tuple(ab.rollout.spec.strategy.ab_test.match)  # type: ignore[union-attr]
    router.apply(Route(match=rules))
    assert set(ab.send(10, {"x-canary": "insider"})) == {"canary"}
    assert set(ab.send(10, {"Cookie": "canary=always; other=1"})) == {"canary"}
    assert set(ab.send(10, {"x-canary": "outsider"})) == {"primary"}
    assert set(ab.send(10)) == {"primary"}
    assert router.current() == Route(match=rules)
    router.apply(Route())
    assert set(ab.send(10, {"x-canary": "insider"})) == {"primary"}
    assert router.current() == Route()


def test_route_with_other_rules_than_configured_is_refused(weighted: LocalHaproxy) -> None:
    router = HaproxyRouter(weighted.rollout, weighted.map_dir)
    from canary.model.strategy import MatchRule

    other = MatchRule.model_validate({"headers": {"x-other": {"exact": "1"}}})
    with pytest.raises(RouterError, match="A/B rules differ"):
        router.apply(Route(match=(other,)))


def test_runtime_api_errors_are_specific(weighted: LocalHaproxy) -> None:
    runtime = HaproxyRouter(weighted.rollout, weighted.map_dir).runtime
    with pytest.raises(RuntimeApiError, match="No such server"):
        runtime.set_weight("app", "nope", 10)
    with pytest.raises(RuntimeApiError, match=r"0\.\.256"):
        runtime.set_weight("app", "canary", 300)


def test_unreachable_runtime_api_says_where_it_looked() -> None:
    with pytest.raises(RuntimeApiError, match=r"127\.0\.0\.1:1 did not answer"):
        RuntimeApi("127.0.0.1:1", timeout=0.5).command("show info")


def test_every_route_setting_renders_a_config_haproxy_accepts(tmp_path: Path) -> None:
    from haproxy_support import haproxy_rollout

    ro = haproxy_rollout("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", abTest=AB)
    route = {
        "timeout": "15s",
        "retries": {"attempts": 2, "perTryTimeout": "5s", "retryOn": ["5xx", "connect-failure"]},
        "headers": {
            "request": {"set": {"x-env": "local"}, "add": {"x-added": "1"}, "remove": ["x-drop"]},
            "response": {"set": {"x-served-by": "canary-local"}},
        },
        "circuitBreaker": {
            "connectionPool": {
                "maxConnections": 100,
                "http1MaxPendingRequests": 10,
                "connectTimeout": "1s",
            },
            "outlierDetection": {
                "consecutiveErrors": 3,
                "interval": "5s",
                "baseEjectionTime": "30s",
            },
        },
    }
    data = ro.model_dump(mode="json", by_alias=True, exclude_none=True)
    data["spec"]["service"]["route"] = route
    ro = type(ro).model_validate(data)
    layout = config.Layout("127.0.0.1:4", "127.0.0.1:5", tmp_path / "maps")
    cfg = config.write(ro, layout, tmp_path / "haproxy.cfg")
    text = cfg.read_text()
    check_config(cfg)
    for expected in (
        "retries 2",
        "retry-on 500 502 503 504 conn-failure",
        "timeout server 5000ms",
        "timeout connect 1000ms",
        'http-request set-header x-env "local"',
        "http-request del-header x-drop",
        "maxconn 100",
        "error-limit 3 on-error mark-down",
        "use_backend app_canary if",
    ):
        assert expected in text, expected


def test_a_config_haproxy_rejects_is_reported_with_its_words(tmp_path: Path) -> None:
    bad = tmp_path / "bad.cfg"
    bad.write_text("frontend x\n    bind 127.0.0.1:1\n    no-such-keyword\n")
    with pytest.raises(ProcessError, match="HAProxy rejects"):
        check_config(bad)


def test_a_second_haproxy_on_the_same_addresses_fails_instead_of_sharing_them(
    weighted: LocalHaproxy, tmp_path: Path
) -> None:
    """HAProxy binds with SO_REUSEPORT unless told not to: two of them on one port would each
    get some of its connections (a flaky test, or a demo talking to a stranger's HAProxy)."""
    from canary.local.haproxy import start_haproxy

    first = tmp_path / "haproxy.cfg"
    second = tmp_path / "second" / "haproxy.cfg"
    second.parent.mkdir()
    second.write_text(first.read_text())
    settings = weighted.rollout.spec.provider.haproxy
    assert settings is not None
    assert settings.runtime_api is not None
    with pytest.raises(ProcessError, match=r"exited|did not get"):
        start_haproxy(second, settings.runtime_api, second.parent / "logs", timeout=5.0)
    # the first one still answers alone
    assert RuntimeApi(settings.runtime_api).get_weight("app", "primary") >= 0
