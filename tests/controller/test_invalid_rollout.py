"""A Rollout the model refuses gets the condition Valid=False and a Warning Event naming the
field; the Rollouts next to it go on; fixing it makes it valid and run."""

from __future__ import annotations

import copy

from controller_support import Cluster, deployment, rollout, wait_for

CORS = "spec.service.route.cors"


def valid_condition(cluster: Cluster, name: str) -> dict[str, str] | None:
    conditions = cluster.status(name).get("conditions") or []
    return next((c for c in conditions if c["type"] == "Valid"), None)


def test_an_invalid_rollout_is_reported_and_the_others_go_on(cluster: Cluster) -> None:
    bad = rollout("broken", cluster.namespace, "linkerd", skipAnalysis=True)
    # the API server accepts it (the CRD cannot say what Linkerd supports); the model refuses
    bad["spec"]["service"]["route"] = {"cors": {"allowOrigins": ["https://example.com"]}}
    cluster.api.apply(deployment("broken", cluster.namespace))
    cluster.api.apply(bad)
    cluster.api.apply(deployment("fine", cluster.namespace))
    cluster.api.apply(rollout("fine", cluster.namespace, skipAnalysis=True))
    cluster.controller()

    condition = wait_for("the Valid condition", lambda: valid_condition(cluster, "broken"))
    assert condition["status"] == "False"
    assert condition["reason"] == "InvalidSpec"
    assert condition["message"].startswith(f"{CORS}: provider 'linkerd' cannot honour cors")
    event = cluster.wait_events("InvalidSpec")[0]
    assert event["type"] == "Warning"
    assert CORS in event["message"]
    assert event["involvedObject"]["name"] == "broken"
    assert cluster.get("apps/v1", "Deployment", "broken-primary") is None

    cluster.wait_phase("fine", "Initialized")
    cluster.set_image("fine", "podinfo:7.0.0")
    cluster.wait_phase("fine", "Succeeded")
    assert valid_condition(cluster, "fine") is not None
    assert len(cluster.events("InvalidSpec")) == 1, "one Event per problem, not one per tick"

    fixed = copy.deepcopy(cluster.rollout("broken"))
    del fixed["spec"]["service"]["route"]
    fixed["metadata"].pop("resourceVersion")
    cluster.api.apply(fixed)
    cluster.wait_phase("broken", "Initialized")
    condition = valid_condition(cluster, "broken")
    assert condition is not None
    assert condition["status"] == "True"


def test_an_unknown_policy_is_named(cluster: Cluster) -> None:
    cluster.api.apply(deployment("web", cluster.namespace))
    cluster.api.apply(
        rollout("web", cluster.namespace, analysis={"policies": [{"name": "no-such-policy"}]})
    )
    cluster.controller()
    condition = wait_for("the Valid condition", lambda: valid_condition(cluster, "web"))
    assert condition["status"] == "False"
    assert condition["message"].startswith("spec.analysis.policies[0].name: ")
    assert "no-such-policy" in condition["message"]
