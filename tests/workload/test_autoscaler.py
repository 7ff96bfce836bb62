"""The target's HorizontalPodAutoscaler: checked against the target, copied for the primary,
and its minReplicas as the canary's starting size."""

from __future__ import annotations

import copy

import pytest
from workload_support import ROLLOUT, Json

from canary.model.rollout import Rollout
from canary.workload import (
    AutoscalerError,
    Owner,
    autoscaler_min_replicas,
    checked_autoscaler,
    primary_autoscaler,
)

HPA: Json = {
    "apiVersion": "autoscaling/v2",
    "kind": "HorizontalPodAutoscaler",
    "metadata": {"name": "podinfo", "namespace": "test", "resourceVersion": "7"},
    "spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
        "minReplicas": 2,
        "maxReplicas": 10,
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
    "status": {"currentReplicas": 4, "desiredReplicas": 4},
}


def rollout(autoscaler: str | None = "podinfo") -> Rollout:
    body = copy.deepcopy(ROLLOUT)
    if autoscaler is not None:
        body["spec"]["autoscalerRef"] = {"name": autoscaler}
    return Rollout.model_validate(body)


def test_a_rollout_without_autoscaler_ref_needs_no_hpa() -> None:
    assert checked_autoscaler(rollout(None), None) is None


def test_the_named_hpa_must_exist() -> None:
    with pytest.raises(AutoscalerError, match=r"spec.autoscalerRef .*'podinfo'.* does not exist"):
        checked_autoscaler(rollout(), None)


def test_the_hpa_must_scale_the_target() -> None:
    other = copy.deepcopy(HPA)
    other["spec"]["scaleTargetRef"]["name"] = "frontend"
    with pytest.raises(AutoscalerError, match="scales Deployment 'frontend', not the target"):
        checked_autoscaler(rollout(), other)


def test_the_primary_copy_scales_the_primary_with_the_same_bounds_and_metrics() -> None:
    owner = Owner.of(rollout())
    copied = primary_autoscaler(HPA, None, owner=owner, target="podinfo")
    assert copied["metadata"]["name"] == "podinfo-primary"
    assert copied["metadata"]["ownerReferences"] == [owner.reference()]
    assert "resourceVersion" not in copied["metadata"]
    assert "status" not in copied
    assert copied["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "podinfo-primary",
    }
    assert copied["spec"]["metrics"] == HPA["spec"]["metrics"]
    assert (copied["spec"]["minReplicas"], copied["spec"]["maxReplicas"]) == (2, 10)
    assert HPA["spec"]["scaleTargetRef"]["name"] == "podinfo", "the source is left alone"


def test_an_update_keeps_the_existing_copys_resource_version() -> None:
    owner = Owner.of(rollout())
    existing = primary_autoscaler(HPA, None, owner=owner, target="podinfo")
    existing["metadata"]["resourceVersion"] = "12"
    raised = copy.deepcopy(HPA)
    raised["spec"]["maxReplicas"] = 20
    updated = primary_autoscaler(raised, existing, owner=owner, target="podinfo")
    assert updated["metadata"]["resourceVersion"] == "12"
    assert updated["spec"]["maxReplicas"] == 20


@pytest.mark.parametrize(("min_replicas", "expected"), [(None, 1), (0, 1), (1, 1), (3, 3)])
def test_the_canary_starts_at_the_hpas_min_replicas(
    min_replicas: int | None, expected: int
) -> None:
    hpa = copy.deepcopy(HPA)
    if min_replicas is None:
        del hpa["spec"]["minReplicas"]
    else:
        hpa["spec"]["minReplicas"] = min_replicas
    assert autoscaler_min_replicas(hpa) == expected
