"""The three Services, readiness from status, the scale subresource."""

from __future__ import annotations

import copy

import pytest
from workload_support import Json

from canary.model.rollout import Rollout
from canary.workload import (
    WorkloadError,
    canary_ready,
    canary_replicas,
    primary_ready,
    scale,
    service_update,
    services,
    why_not_ready,
)


def test_three_services_on_the_rollouts_port(rollout: Rollout, target: Json) -> None:
    apex, primary, canary = services(rollout, target)
    assert [s["metadata"]["name"] for s in (apex, primary, canary)] == [
        "podinfo",
        "podinfo-primary",
        "podinfo-canary",
    ]
    assert apex["spec"]["selector"] == {"app": "podinfo-primary", "tier": "web-primary"}
    assert primary["spec"]["selector"] == apex["spec"]["selector"]
    assert canary["spec"]["selector"] == {"app": "podinfo", "tier": "web"}
    for service in (apex, primary, canary):
        assert service["metadata"]["namespace"] == "test"
        assert service["metadata"]["ownerReferences"][0]["uid"] == "rollout-uid"
        assert service["metadata"]["labels"]["canary.dev/rollout"] == "podinfo"
        assert service["spec"]["ports"] == [
            {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 9898}
        ]


def test_the_target_port_defaults_to_the_port(rollout: Rollout, target: Json) -> None:
    rollout.spec.service.target_port = None
    rollout.spec.service.port_name = "web"
    port = services(rollout, target)[0]["spec"]["ports"][0]
    assert (port["name"], port["port"], port["targetPort"]) == ("web", 80, 80)


def test_a_rollout_not_read_from_the_cluster_cannot_own_anything(
    rollout: Rollout, target: Json
) -> None:
    rollout.metadata.uid = None
    with pytest.raises(WorkloadError, match="no uid"):
        services(rollout, target)


def test_an_existing_service_is_taken_over_keeping_its_identity(
    rollout: Rollout, target: Json
) -> None:
    existing: Json = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "podinfo",
            "namespace": "test",
            "resourceVersion": "5",
            "labels": {"team": "a"},
            "ownerReferences": [{"kind": "Application", "name": "x", "uid": "u"}],
        },
        "spec": {"clusterIP": "10.0.0.7", "selector": {"app": "podinfo"}, "ports": []},
        "status": {"loadBalancer": {}},
    }
    desired = services(rollout, target)[0]
    updated = service_update(existing, desired)
    assert updated["metadata"]["resourceVersion"] == "5"
    assert updated["spec"]["clusterIP"] == "10.0.0.7"
    assert updated["spec"]["selector"] == desired["spec"]["selector"]
    assert updated["spec"]["ports"] == desired["spec"]["ports"]
    assert updated["metadata"]["labels"]["team"] == "a"
    assert updated["metadata"]["labels"]["canary.dev/rollout"] == "podinfo"
    assert [r["uid"] for r in updated["metadata"]["ownerReferences"]] == ["u", "rollout-uid"]
    assert "status" not in updated
    assert existing["spec"]["selector"] == {"app": "podinfo"}
    assert service_update(updated, desired) == updated


def test_a_service_another_controller_owns_is_not_taken(rollout: Rollout, target: Json) -> None:
    existing = {
        "metadata": {
            "name": "podinfo",
            "ownerReferences": [{"kind": "Other", "name": "x", "uid": "u", "controller": True}],
        },
        "spec": {},
    }
    with pytest.raises(WorkloadError, match="controlled by Other 'x'"):
        service_update(existing, services(rollout, target)[0])


READY: Json = {
    "metadata": {"name": "podinfo", "generation": 4},
    "spec": {"replicas": 3},
    "status": {
        "observedGeneration": 4,
        "replicas": 3,
        "updatedReplicas": 3,
        "readyReplicas": 3,
        "availableReplicas": 3,
    },
}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"observedGeneration": 3}, "has not seen generation 4"),
        ({"updatedReplicas": 1}, "1 of 3 replicas updated"),
        ({"replicas": 4}, "1 old replicas pending termination"),
        ({"availableReplicas": 2}, "2 of 3 updated replicas available"),
        (
            {
                "availableReplicas": 0,
                "conditions": [{"type": "Progressing", "reason": "ProgressDeadlineExceeded"}],
            },
            "0 of 3 updated replicas available (its progress deadline was exceeded)",
        ),
    ],
)
def test_not_ready_until_the_rollout_of_the_spec_is_complete(change: Json, reason: str) -> None:
    deployment = copy.deepcopy(READY)
    assert why_not_ready(deployment) is None
    assert canary_ready(deployment)
    deployment["status"].update(change)
    why = why_not_ready(deployment)
    assert why is not None
    assert reason in why
    assert not canary_ready(deployment)


def test_a_deployment_without_status_or_scaled_to_zero_is_not_ready() -> None:
    assert not canary_ready({"metadata": {"name": "x", "generation": 1}, "spec": {}})
    zero = copy.deepcopy(READY)
    zero["spec"]["replicas"] = 0
    zero["status"] = {"observedGeneration": 4}
    assert why_not_ready(zero) == "'podinfo' is scaled to zero"


def test_the_primary_must_also_run_the_revision() -> None:
    primary = copy.deepcopy(READY)
    assert not primary_ready(primary, "r1")
    assert primary_ready(primary, None)
    primary["metadata"]["annotations"] = {"canary.dev/revision": "r1"}
    assert primary_ready(primary, "r1")
    assert not primary_ready(primary, "r2")


def test_the_scale_body_and_the_canarys_replicas(target: Json) -> None:
    assert scale(target, 0) == {
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {"name": "podinfo", "namespace": "test"},
        "spec": {"replicas": 0},
    }
    with pytest.raises(ValueError, match=">= 0"):
        scale(target, -1)
    assert canary_replicas(target) == 3
    assert canary_replicas(None) == 1
    assert canary_replicas({"spec": {"replicas": 0}}) == 1
