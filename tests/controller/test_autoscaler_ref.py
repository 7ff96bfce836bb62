"""``spec.autoscalerRef``: canary keeps ``<hpa>-primary`` (a copy of the target's HPA scaling
the primary, taken again at promotion), leaves the primary's replicas to it, starts the canary
at the HPA's minReplicas; a Rollout naming a missing HPA is reported and the others go on."""

from __future__ import annotations

import copy

from controller_support import ROLLOUTS, Cluster, Json, deployment, rollout, wait_for

from canary.controller.commands import KubeRolloutStore
from canary.controller.kinds import DEPLOYMENT
from canary.controller.kube import Kube
from canary.engine.observations import Command, CommandKind
from canary.model.gates import ApprovalPoint

HPA = ("autoscaling/v2", "HorizontalPodAutoscaler")
FIELD = "spec.autoscalerRef"


def hpa(name: str, namespace: str, target: str, minimum: int, maximum: int) -> Json:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "minReplicas": minimum,
            "maxReplicas": maximum,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 80},
                    },
                }
            ],
        },
    }


def scaled_rollout(name: str, namespace: str, autoscaler: str, **spec: object) -> Json:
    return rollout(name, namespace, skipAnalysis=True, autoscalerRef={"name": autoscaler}, **spec)


def valid_condition(cluster: Cluster, name: str) -> Json | None:
    conditions = cluster.status(name).get("conditions") or []
    return next((c for c in conditions if c["type"] == "Valid"), None)


def test_the_primary_is_scaled_by_a_copy_of_the_hpa_taken_again_at_promotion(
    cluster: Cluster,
) -> None:
    ns = cluster.namespace
    cluster.api.apply(deployment("web", ns, replicas=2))
    cluster.api.apply(hpa("web-hpa", ns, "web", 3, 6))
    gates = {"approvals": ["promotion"]}
    cluster.api.apply(scaled_rollout("web", ns, "web-hpa", gates=gates))
    cluster.controller()
    cluster.wait_phase("web", "Initialized")

    copied = cluster.get(*HPA, "web-hpa-primary")
    assert copied is not None
    wanted = copy.deepcopy(cluster.get(*HPA, "web-hpa") or {})["spec"]
    wanted["scaleTargetRef"] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "web-primary",
    }
    assert copied["spec"] == wanted
    (owner,) = copied["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"]) == ("Rollout", "web")
    assert owner["uid"] == cluster.rollout("web")["metadata"]["uid"]

    # the primary's HPA scales it to 5, as Kubernetes' HPA controller would
    Kube(cluster.api_client()).scale(DEPLOYMENT, ns, "web-primary", 5)
    wait_for(
        "the target scaled to zero", lambda: cluster.deployment("web")["spec"]["replicas"] == 0
    )
    raised = copy.deepcopy(cluster.get(*HPA, "web-hpa") or {})
    raised["spec"]["maxReplicas"] = 9
    raised["metadata"].pop("resourceVersion")
    cluster.api.apply(raised)
    cluster.set_image("web", "podinfo:7.0.0")

    status = cluster.wait_phase("web", "Paused")
    assert status["waitingFor"] == "promotion"
    assert cluster.deployment("web")["spec"]["replicas"] == 3, "the canary at minReplicas"
    assert cluster.deployment("web-primary")["spec"]["replicas"] == 5
    before = cluster.get(*HPA, "web-hpa-primary")
    assert before is not None
    assert before["spec"]["maxReplicas"] == 6, "new bounds ship with the version"

    store = KubeRolloutStore(Kube(cluster.api_client()), (ns,))
    approval = Command(kind=CommandKind.APPROVE, point=ApprovalPoint.PROMOTION, by="erin")
    store.post_command(ns, "web", approval)
    cluster.wait_phase("web", "Succeeded")
    promoted = cluster.get(*HPA, "web-hpa-primary")
    assert promoted is not None
    assert (promoted["spec"]["minReplicas"], promoted["spec"]["maxReplicas"]) == (3, 9)
    assert promoted["spec"]["scaleTargetRef"]["name"] == "web-primary"
    assert cluster.image_of("web-primary") == "podinfo:7.0.0"
    assert cluster.deployment("web-primary")["spec"]["replicas"] == 5, "left to its HPA"
    wait_for(
        "the target scaled to zero", lambda: cluster.deployment("web")["spec"]["replicas"] == 0
    )
    assert not [e for e in cluster.events() if e["type"] == "Warning"]

    cluster.api.delete(ROLLOUTS, "Rollout", "web", ns)  # no finalizer: the owner goes
    assert cluster.get(*HPA, "web-hpa-primary") is None
    assert cluster.get(*HPA, "web-hpa") is not None, "the team's HPA stays"


def test_a_missing_hpa_is_reported_and_the_others_go_on(cluster: Cluster) -> None:
    ns = cluster.namespace
    cluster.api.apply(deployment("broken", ns))
    cluster.api.apply(scaled_rollout("broken", ns, "broken-hpa"))
    cluster.api.apply(deployment("fine", ns))
    cluster.api.apply(rollout("fine", ns, skipAnalysis=True))
    cluster.controller()

    condition = wait_for("the Valid condition", lambda: valid_condition(cluster, "broken"))
    assert condition["status"] == "False"
    assert condition["reason"] == "InvalidSpec"
    assert condition["message"].startswith(f"{FIELD} names HorizontalPodAutoscaler 'broken-hpa'")
    assert "does not exist" in condition["message"]
    event = cluster.wait_events("InvalidSpec")[0]
    assert event["type"] == "Warning"
    assert FIELD in event["message"]
    assert event["involvedObject"]["name"] == "broken"
    assert cluster.get("apps/v1", "Deployment", "broken-primary") is None

    cluster.wait_phase("fine", "Initialized")
    cluster.set_image("fine", "podinfo:7.0.0")
    cluster.wait_phase("fine", "Succeeded")
    assert cluster.get("apps/v1", "Deployment", "broken-primary") is None
    assert len(cluster.events("InvalidSpec")) == 1, "one Event per problem, not one per look"

    # creating the HPA is noticed at the next look (HPAs are not watched)
    cluster.api.apply(hpa("broken-hpa", ns, "broken", 1, 4))
    cluster.wait_phase("broken", "Initialized", timeout=15)
    condition = valid_condition(cluster, "broken")
    assert condition is not None
    assert condition["status"] == "True"
    assert cluster.get(*HPA, "broken-hpa-primary") is not None
