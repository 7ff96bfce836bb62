"""A policy or channel the model refuses is told of where its owner looks: a Warning Event on
the object itself (a cluster-scoped one's in ``default``, without namespace), once per
resourceVersion, in the words of `canary validate`; a Rollout naming it says it is invalid and
why, not "not found". Bounded: one validation and at most one Event per object version."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner
from controller_support import CANARY_CRDS, Cluster, deployment, rollout, wait_for

from canary.cli.main import cli
from canary.controller.kinds import ANALYSIS_POLICY, CLUSTER_ANALYSIS_POLICY
from canary.controller.policy_users import rollouts_using
from canary.controller.refusals import REFUSABLE, Refusals, object_key, refusal_event
from canary.controller.shards import shard_of_key
from canary.controller.watches import Cache
from canary.notify import NotifyConfig

Json = dict[str, Any]
API = "canary.dev/v1alpha1"
CHECK = {
    "name": "errors",
    "kind": "error-rate",
    "max": 1,
    "requestsQuery": "sum(requests_total)",
    "failuresQuery": "sum(failures_total)",
}
PROBLEM = "spec: check names must be unique: errors repeated"


def bad_policy(name: str, namespace: str | None, kind: str = "AnalysisPolicy") -> Json:
    """Accepted by the API server (the CRD cannot say check names are unique), refused by the
    model."""
    metadata: Json = {"name": name} | ({"namespace": namespace} if namespace else {})
    return {
        "apiVersion": API,
        "kind": kind,
        "metadata": metadata,
        "spec": {"checks": [CHECK, dict(CHECK, max=2)]},
    }


def events_about(cluster: Cluster, kind: str, name: str, namespace: str) -> list[Json]:
    found = cluster.api.list("v1", "Event", namespace)
    return [
        e
        for e in found
        if e["involvedObject"]["kind"] == kind and e["involvedObject"]["name"] == name
    ]


def valid_condition(cluster: Cluster, name: str) -> Json | None:
    conditions = cluster.status(name).get("conditions") or []
    return next((c for c in conditions if c["type"] == "Valid"), None)


def test_an_invalid_policy_is_told_on_itself_and_the_rollout_says_it_is_invalid(
    cluster: Cluster, tmp_path: Path
) -> None:
    ns = cluster.namespace
    cluster.api.apply(bad_policy("strict", ns))
    cluster.api.apply(deployment("web", ns))
    ref = {"name": "strict", "kind": "AnalysisPolicy"}
    cluster.api.apply(rollout("web", ns, analysis={"policies": [ref]}))
    cluster.controller()

    event = wait_for(
        "the policy's Event", lambda: events_about(cluster, "AnalysisPolicy", "strict", ns)
    )[0]
    assert event["type"] == "Warning"
    assert event["reason"] == "InvalidSpec"
    assert event["involvedObject"]["namespace"] == ns
    stored = cluster.get(API, "AnalysisPolicy", "strict")
    assert stored is not None
    assert event["involvedObject"]["uid"] == stored["metadata"]["uid"]
    assert PROBLEM in event["message"]

    condition = wait_for("the Rollout's Valid condition", lambda: valid_condition(cluster, "web"))
    assert condition["status"] == "False"
    assert condition["message"].startswith(
        "spec.analysis.policies[0].name: AnalysisPolicy 'strict' is invalid, so it is not used: "
        + PROBLEM
    )
    assert "not found" not in condition["message"]
    assert "no AnalysisPolicy" not in condition["message"]
    rollout_event = cluster.wait_events("InvalidSpec")
    assert any("AnalysisPolicy 'strict' is invalid" in e["message"] for e in rollout_event)

    # `canary validate` says the same of the same object
    path = tmp_path / "strict.yaml"
    path.write_text(yaml.safe_dump(bad_policy("strict", ns)))
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 1
    assert f"{path}: {PROBLEM}" in result.output

    # once per resourceVersion: the controller's later reads and ticks post nothing more...
    cluster.controller("replica-two")  # (a standby: it validates, and posts nothing)
    stored = copy.deepcopy(stored)
    wait_for("a few ticks", lambda: len(cluster.events("InvalidSpec")) >= 1)
    assert len(events_about(cluster, "AnalysisPolicy", "strict", ns)) == 1
    # ...a new version that is still invalid is told of again
    stored["spec"]["description"] = "still two checks named errors"
    stored["metadata"].pop("resourceVersion")
    cluster.api.apply(stored)
    wait_for(
        "the new version's Event",
        lambda: len(events_about(cluster, "AnalysisPolicy", "strict", ns)) == 2,
    )

    # fixing the policy ticks the Rollout at once (not at its next look, a minute later: the
    # wait below gives up sooner than that)
    fixed = copy.deepcopy(cluster.get(API, "AnalysisPolicy", "strict"))
    assert fixed is not None
    fixed["spec"]["checks"] = [CHECK]
    fixed["metadata"].pop("resourceVersion")
    cluster.api.apply(fixed)
    cluster.wait_phase("web", "Initialized")
    condition = valid_condition(cluster, "web")
    assert condition is not None
    assert condition["status"] == "True"


def test_an_invalid_cluster_policy_is_told_in_default_without_namespace(cluster: Cluster) -> None:
    cluster.api.apply(bad_policy("platform-strict", None, "ClusterAnalysisPolicy"))
    cluster.api.apply(deployment("web", cluster.namespace))
    cluster.api.apply(
        rollout(
            "web",
            cluster.namespace,
            analysis={"policies": [{"name": "platform-strict", "kind": "ClusterAnalysisPolicy"}]},
        )
    )
    cluster.controller()
    event = wait_for(
        "the Event in default",
        lambda: events_about(cluster, "ClusterAnalysisPolicy", "platform-strict", "default"),
    )[0]
    assert "namespace" not in event["involvedObject"], "a cluster-scoped object has none"
    assert event["metadata"]["namespace"] == "default"
    assert PROBLEM in event["message"]
    condition = wait_for("the Rollout's Valid condition", lambda: valid_condition(cluster, "web"))
    assert "ClusterAnalysisPolicy 'platform-strict' is invalid" in condition["message"]


def without_rules(node: Any) -> Any:
    """A CRD schema without its CEL rules (an older chart's CRD lacked some)."""
    if isinstance(node, dict):
        return {k: without_rules(v) for k, v in node.items() if k != "x-kubernetes-validations"}
    if isinstance(node, list):
        return [without_rules(v) for v in node]
    return node


def test_an_invalid_channel_is_told_on_itself_and_on_the_rollout(cluster: Cluster) -> None:
    ns = cluster.namespace
    crd = yaml.safe_load((CANARY_CRDS / "notificationchannels.canary.dev.yaml").read_text())
    cluster.api.apply(without_rules(crd))
    channel = {
        "apiVersion": API,
        "kind": "NotificationChannel",
        "metadata": {"name": "deploys", "namespace": ns},
        # both kinds at once: the model asks for exactly one
        "spec": {
            "webhook": {"url": "https://hooks.example.com/x"},
            "slack": {"webhookUrlSecretRef": {"name": "slack", "key": "url"}},
        },
    }
    cluster.api.apply(channel)
    cluster.api.apply(deployment("web", ns))
    cluster.api.apply(
        rollout("web", ns, skipAnalysis=True, notifications={"channels": [{"name": "deploys"}]})
    )
    cluster.controller(notify=NotifyConfig())
    told = wait_for(
        "the channel's Event", lambda: events_about(cluster, "NotificationChannel", "deploys", ns)
    )[0]
    assert "a channel is either 'slack' or 'webhook': give exactly one" in told["message"]
    cluster.wait_phase("web", "Initialized")
    cluster.set_image("web", "podinfo:7.0.0")  # a rollout: its notifications find the channel
    cluster.wait_phase("web", "Succeeded")
    on_rollout = cluster.wait_events("ChannelInvalid")
    assert on_rollout[0]["involvedObject"]["name"] == "web"
    message = on_rollout[0]["message"]
    assert message.startswith(
        "spec.notifications.channels[0].name: NotificationChannel 'deploys' is invalid (spec: "
    )
    assert len(cluster.events("ChannelInvalid")) == 1, "one Event, not one per notification"


def test_thousands_of_invalid_objects_cost_one_reading_and_one_event_each() -> None:
    """A hostile tenant's flood: each version is read once and told of once; a full queue
    drops (and counts) the Event without remembering it, so a later leadership tells it."""
    caches = {kind.kind: Cache(kind) for kind, _ in REFUSABLE}
    cache = caches[ANALYSIS_POLICY.kind]
    sent: list[str] = []
    room = {"left": 1500}
    dropped: list[int] = []

    def send(key: str, bodies: list[Json]) -> bool:
        if room["left"] <= 0:
            return False
        room["left"] -= 1
        sent.extend(b["metadata"]["name"] for b in bodies)
        return True

    refusals = Refusals(
        caches, send, lambda key: True, identity="a", dropped=lambda: dropped.append(1)
    )
    refusals.listen()
    for i in range(2000):
        obj = bad_policy(f"p{i}", "tenant")
        obj["metadata"] |= {"uid": f"uid-{i}", "resourceVersion": "1"}
        cache.apply("ADDED", obj)
    assert len(sent) == 1500
    assert len(dropped) == 500
    room["left"] = 10_000
    assert refusals.tell_everything() == 500, "the dropped ones, and only those"
    assert refusals.tell_everything() == 0
    assert len(set(sent)) == 2000, "one Event per object version"
    assert len(refusals._verdicts) == 2000, "a verdict per object, however many"

    listed = refusals.policies()
    assert len(listed) == 2000
    assert refusals.policies() is listed, "built once per change, not at every tick"
    cache.apply("DELETED", obj)
    assert len(refusals._verdicts) == 1999, "a deleted object's verdict goes with it"
    assert len(refusals.policies()) == 1999


def test_the_event_of_a_version_has_one_name_whoever_posts_it() -> None:
    obj = bad_policy("p", "tenant")
    obj["metadata"] |= {"uid": "u1", "resourceVersion": "7"}
    now = datetime(2026, 12, 6, tzinfo=UTC)
    one = refusal_event(ANALYSIS_POLICY, obj, "x", now, "replica-a")
    two = refusal_event(ANALYSIS_POLICY, obj, "x", now.replace(hour=5), "replica-b")
    assert one["metadata"]["name"] == two["metadata"]["name"], "a second post is a 409"
    obj["metadata"]["resourceVersion"] = "8"
    three = refusal_event(ANALYSIS_POLICY, obj, "x", now, "replica-a")
    assert three["metadata"]["name"] != one["metadata"]["name"]


def test_the_rollouts_using_a_policy() -> None:
    def made(name: str, namespace: str, **spec: Any) -> Json:
        return {"metadata": {"name": name, "namespace": namespace}, "spec": spec}

    rollouts = [
        made("a", "shop", analysis={"policies": [{"name": "strict", "kind": "AnalysisPolicy"}]}),
        made("b", "shop", analysis={"policies": [{"name": "strict"}]}),  # the cluster one
        made("c", "other", analysis={"policies": [{"name": "strict", "kind": "AnalysisPolicy"}]}),
        made("d", "shop", provider={"name": "istio"}),  # the default policy: istio
        made("e", "shop", provider={"name": "linkerd"}),
    ]
    namespaced = bad_policy("strict", "shop")
    assert rollouts_using(ANALYSIS_POLICY, namespaced, rollouts) == ["shop/a"]
    cluster_wide = bad_policy("strict", None, "ClusterAnalysisPolicy")
    assert rollouts_using(CLUSTER_ANALYSIS_POLICY, cluster_wide, rollouts) == ["shop/b"]
    istio = bad_policy("istio", None, "ClusterAnalysisPolicy")
    assert rollouts_using(CLUSTER_ANALYSIS_POLICY, istio, rollouts) == ["shop/d"]


def test_sharded_each_refusal_is_told_once_by_the_holder_of_its_shard(cluster: Cluster) -> None:
    ns = cluster.namespace
    one = cluster.controller("replica-one", shards=2)
    wait_for("one to hold both shards", lambda: len(one.shards.owned()) == 2 if one.shards else 0)
    two = cluster.controller("replica-two", shards=2)
    replicas = (one, two)
    wait_for(
        "the shards balanced",
        lambda: all(r.shards is not None and len(r.shards.owned()) == 1 for r in replicas),
    )
    names = [f"p{i}" for i in range(12)]
    for name in names:
        cluster.api.apply(bad_policy(name, ns))

    def told() -> list[Json] | None:
        found = [e for e in cluster.events("InvalidSpec") if e["involvedObject"]["name"] in names]
        return found if len(found) >= len(names) else None

    events = wait_for("an Event on each policy", told)
    assert sorted(e["involvedObject"]["name"] for e in events) == sorted(names), "one each"
    holder = {
        shard: r.settings.identity for r in replicas if r.shards for shard in r.shards.owned()
    }
    for event in events:
        stored = cluster.get(API, "AnalysisPolicy", event["involvedObject"]["name"])
        assert stored is not None
        shard = shard_of_key(object_key(ANALYSIS_POLICY, stored), 2)
        assert event["reportingInstance"] == holder[shard]
    assert {e["reportingInstance"] for e in events} == {"replica-one", "replica-two"}
