"""Route objects converge both ways, tick by tick (the reconciler driven by hand, a metrics
double judging the canary): a blue/green rollout with a mirror is rolled back (no mirror left,
the canary scaled down); a setting removed from the spec is gone after one tick; a field edited
by hand is put back; another manager's fields are kept."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from tick_support import DR, PROVIDERS, VS, Json, Ticker, set_spec, start

from canary.cli.main import cli
from canary.controller.kube import FIELD_MANAGER
from canary.testing.fields import fields_of
from canary.testing.telemetry_routes import split_of_objects


def mirror_of(route: Json) -> float:
    return split_of_objects([route], canary="web-canary", primary="web-primary").mirror_percent


BLUE_GREEN_MIRROR = {"blueGreen": {"iterations": 3}, "mirror": {"percentage": 100}}


@pytest.mark.parametrize("ticker", [250], indirect=True)
@pytest.mark.parametrize("provider", ["istio", "gateway-api"])  # (Linkerd cannot mirror)
def test_a_bad_blue_green_canary_with_a_mirror_is_rolled_back(
    ticker: Ticker, provider: str
) -> None:
    start(ticker, provider, strategy=BLUE_GREEN_MIRROR)
    kind = PROVIDERS[provider][1]
    ticker.cluster.set_image("web", "podinfo:7.0.0")
    ticker.until("the mirror", lambda s: mirror_of(ticker.route(kind)) == 100)
    status = ticker.until("Failed", lambda s: s.get("phase") == "Failed")
    route = ticker.route(kind)
    assert mirror_of(route) == 0, f"the mirror is gone: {route['spec']}"
    assert "mirror" not in str(route["spec"]).lower()
    assert status["canaryWeight"] == 0
    assert ticker.cluster.deployment("web")["spec"]["replicas"] == 0, "canary scaled down"
    assert ticker.cluster.image_of("web-primary") == "podinfo:6.7.0"
    assert not ticker.cluster.events("ReconcileError")
    waited = CliRunner().invoke(
        cli,
        ["wait", "web", "--timeout", "10s", "--kubeconfig", str(ticker.cluster.kubeconfig)],
        env={"CANARY_API": "", "CANARY_TOKEN": "", "CANARY_NAMESPACE": "", "COLUMNS": "200"},
        catch_exceptions=False,
    )
    assert waited.exit_code == 1, waited.output  # `canary wait` reports the failure
    assert "failed" in waited.output


def test_a_healthy_blue_green_canary_with_a_mirror_is_promoted(ticker: Ticker) -> None:
    start(ticker, "istio", strategy=BLUE_GREEN_MIRROR)
    ticker.cluster.set_image("web", "podinfo:7.0.0")
    ticker.until("Succeeded", lambda s: s.get("phase") == "Succeeded")
    assert mirror_of(ticker.route()) == 0
    assert ticker.cluster.image_of("web-primary") == "podinfo:7.0.0"


SETTINGS = {
    "timeout": "10s",
    "retries": {"attempts": 2},
    "circuitBreaker": {"outlierDetection": {"consecutiveErrors": 3}},
    "mtlsMode": "ISTIO_MUTUAL",
}


def test_settings_removed_from_the_spec_are_gone_after_one_tick(ticker: Ticker) -> None:
    start(ticker, service={"port": 9898, "route": SETTINGS})
    (http,) = ticker.route()["spec"]["http"]
    assert http["timeout"] == "10s"
    assert http["retries"]["attempts"] == 2
    primary_rule = ticker.route(DR, "web-primary")["spec"]
    assert primary_rule["trafficPolicy"]["tls"] == {"mode": "ISTIO_MUTUAL"}
    assert "outlierDetection" in primary_rule["trafficPolicy"]
    set_spec(ticker.cluster, lambda spec: spec["service"].pop("route"))
    ticker.tick()
    (http,) = ticker.route()["spec"]["http"]
    assert "timeout" not in http
    assert "retries" not in http
    for name in ("web-primary", "web-canary"):
        assert "trafficPolicy" not in ticker.route(DR, name)["spec"], name
    set_spec(ticker.cluster, lambda spec: spec["service"].update(route={"timeout": "5s"}))
    ticker.tick()
    (http,) = ticker.route()["spec"]["http"]
    assert http["timeout"] == "5s", "and a setting added is there after one tick"


def test_a_field_edited_by_hand_is_put_back_and_another_managers_fields_are_kept(
    ticker: Ticker,
) -> None:
    start(ticker)
    applied = ticker.route()
    edited = copy.deepcopy(applied)
    edited["metadata"].pop("resourceVersion")
    edited["metadata"]["labels"]["team"] = "payments"  # another manager's own field
    edited["spec"]["exportTo"] = ["."]  # another manager's own field
    edited["spec"]["http"][0]["timeout"] = "1s"  # inside canary's route list: drift
    edited["spec"]["http"][0]["route"][0]["weight"] = 50
    edited["spec"]["http"][0]["route"][1]["weight"] = 50
    ticker.cluster.api.apply(edited)
    ticker.tick()
    live = ticker.route()
    assert live["spec"]["http"] == applied["spec"]["http"], "canary's route list put back"
    assert live["spec"]["exportTo"] == ["."], "another manager's field kept"
    assert live["metadata"]["labels"]["team"] == "payments"
    owners = {e["manager"]: e for e in live["metadata"]["managedFields"]}
    assert owners[FIELD_MANAGER]["operation"] == "Apply"
    assert "f:exportTo" in owners["test"]["fieldsV1"]["f:spec"]
    version = live["metadata"]["resourceVersion"]
    ticker.tick()
    assert ticker.route()["metadata"]["resourceVersion"] == version, "no write without drift"


def test_live_equals_desired_on_canarys_fields_after_every_tick(ticker: Ticker) -> None:
    """Through a whole rollout, with settings changing: the fields canary owns are exactly
    the fields it applies (nothing it stopped applying lingers)."""
    start(ticker, service={"port": 9898, "route": SETTINGS})
    ticker.cluster.set_image("web", "podinfo:7.0.0")
    seen_weights = set()
    for n in range(12):
        if n == 3:
            set_spec(ticker.cluster, lambda spec: spec["service"].pop("route"))
        ticker.settle()  # each tick sees the pods the previous one asked for ready
        status = ticker.tick()
        seen_weights.add(status.get("canaryWeight"))
        for kind, name in ((VS, "web"), (DR, "web-primary"), (DR, "web-canary")):
            live = ticker.route(kind, name)
            owned = next(
                e for e in live["metadata"]["managedFields"] if e["manager"] == FIELD_MANAGER
            )
            fields = fields_of(live, with_status=False)
            mine = {p for p in fields if _owned(owned["fieldsV1"], p)}
            assert mine == set(_applied_paths(owned["fieldsV1"])), (kind, name, n)
        if status.get("phase") == "Succeeded":
            break
    assert {20, 50} <= seen_weights
    (http,) = ticker.route()["spec"]["http"]
    assert "timeout" not in http


def _applied_paths(tree: Json, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for part, sub in tree.items():
        if sub:
            yield from _applied_paths(sub, (*prefix, part))
        else:
            yield (*prefix, part)


def _owned(tree: Json, path: tuple[str, ...]) -> bool:
    node = tree
    for part in path:
        if part not in node:
            return False
        node = node[part]
    return node == {}
