"""A hostile tenant's objects through the real controller: a policy whose variables would
expand to gigabytes and a Rollout overriding a platform query are reported on their Rollouts
(Valid=False, a Warning Event naming the field; the bomb is told of on itself too) while a
Rollout beside them rolls out."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml
from controller_support import Cluster, deployment, rollout, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "security"))

from hostile_inputs import variable_bomb

ANALYSIS = "canary.dev/v1alpha1"


def valid_condition(cluster: Cluster, name: str) -> dict[str, str] | None:
    conditions = cluster.status(name).get("conditions") or []
    return next((c for c in conditions if c["type"] == "Valid"), None)


def test_hostile_policies_cost_nothing_and_the_others_go_on(cluster: Cluster) -> None:
    bomb = yaml.safe_load(variable_bomb())
    bomb["metadata"]["namespace"] = cluster.namespace
    cluster.api.apply(bomb)
    cluster.api.apply(deployment("bombed", cluster.namespace))
    cluster.api.apply(
        rollout(
            "bombed",
            cluster.namespace,
            analysis={"policies": [{"name": "bomb", "kind": "AnalysisPolicy"}]},
        )
    )
    cluster.api.apply(deployment("rewriter", cluster.namespace))
    cluster.api.apply(
        rollout(
            "rewriter",
            cluster.namespace,
            analysis={"checks": [{"name": "error-rate", "failuresQuery": "0 * sum(up)"}]},
        )
    )
    cluster.api.apply(deployment("fine", cluster.namespace))
    cluster.api.apply(rollout("fine", cluster.namespace, skipAnalysis=True))
    cluster.controller()

    bombed = wait_for("bombed's Valid condition", lambda: valid_condition(cluster, "bombed"))
    assert bombed["status"] == "False"
    # the policy itself is refused (and told of on itself): the Rollout says so, and why
    assert bombed["message"].startswith(
        "spec.analysis.policies[0].name: AnalysisPolicy 'bomb' is invalid, so it is not used: "
        "spec.checks[0].query: "
    )
    assert "more than 8 deep" in bombed["message"]
    rewriter = wait_for("rewriter's condition", lambda: valid_condition(cluster, "rewriter"))
    assert rewriter["status"] == "False"
    assert rewriter["message"].startswith("spec.analysis.checks[0].failuresQuery: the policy")

    def warned() -> set[str] | None:
        names = {e["involvedObject"]["name"] for e in cluster.events("InvalidSpec")}
        return names if {"bombed", "rewriter", "bomb"} <= names else None

    wait_for("an InvalidSpec Event on each", warned)

    cluster.wait_phase("fine", "Initialized")
    cluster.set_image("fine", "podinfo:7.0.0")
    cluster.wait_phase("fine", "Succeeded")
    assert cluster.get("apps/v1", "Deployment", "bombed-primary") is None
