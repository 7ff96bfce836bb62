"""Deleting a Rollout: the finalizer, what is deleted, what is given back."""

from __future__ import annotations

from workload_support import Json, configmap

from canary.model.rollout import AutoscalerRef, Rollout
from canary.workload import (
    FINALIZER,
    ObjectRef,
    Owner,
    cleanup,
    finalizer_patch,
    is_deleting,
    primary_deployment,
    services,
)


def test_the_finalizer_is_added_and_removed_by_conditional_merge_patches() -> None:
    rollout = {"metadata": {"name": "r", "resourceVersion": "8", "finalizers": ["other"]}}
    assert finalizer_patch(rollout, present=True) == {
        "metadata": {"finalizers": ["other", FINALIZER], "resourceVersion": "8"}
    }
    assert finalizer_patch(rollout, present=False) is None
    rollout["metadata"]["finalizers"] = ["other", FINALIZER]
    assert finalizer_patch(rollout, present=True) is None
    assert finalizer_patch(rollout, present=False) == {
        "metadata": {"finalizers": ["other"], "resourceVersion": "8"}
    }
    assert not is_deleting(rollout)
    rollout["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    assert is_deleting(rollout)


def names(refs: list[ObjectRef]) -> list[tuple[str, str]]:
    return [(r.kind, r.name) for r in refs]


def copies() -> list[Json]:
    mine = configmap("podinfo-env-primary-r1")
    mine["metadata"]["labels"] = {"canary.dev/rollout": "podinfo", "canary.dev/revision": "r1"}
    theirs = configmap("other-primary-r1")
    theirs["metadata"]["labels"] = {"canary.dev/rollout": "other", "canary.dev/revision": "r1"}
    return [mine, theirs]


def test_without_restoring_everything_canary_made_is_deleted(
    rollout: Rollout, target: Json, owner: Owner
) -> None:
    primary = primary_deployment(target, owner=owner, revision="r1")
    plan = cleanup(rollout, target, primary, config_copies=copies())
    assert plan.scale_target is None
    assert plan.service is None
    assert names(plan.delete) == [
        ("Deployment", "podinfo-primary"),
        ("Service", "podinfo-primary"),
        ("Service", "podinfo-canary"),
        ("Service", "podinfo"),
        ("ConfigMap", "podinfo-env-primary-r1"),
    ]
    assert {r.namespace for r in plan.delete} == {"test"}


def test_restoring_scales_the_target_up_and_gives_its_service_back(
    rollout: Rollout, target: Json, owner: Owner
) -> None:
    primary = primary_deployment(target, owner=owner, revision="r1")
    primary["spec"]["replicas"] = 5
    apex = services(rollout, target)[0]
    apex["metadata"]["labels"]["team"] = "a"
    apex["metadata"]["ownerReferences"].append({"kind": "Application", "name": "x", "uid": "u"})
    apex["spec"]["clusterIP"] = "10.0.0.9"
    plan = cleanup(rollout, target, primary, service=apex, restore_target=True)
    assert plan.scale_target == 5
    assert plan.service is not None
    assert plan.service["spec"]["selector"] == {"app": "podinfo", "tier": "web"}
    assert plan.service["spec"]["clusterIP"] == "10.0.0.9"
    assert plan.service["metadata"]["labels"] == {"team": "a"}
    assert plan.service["metadata"]["ownerReferences"] == [
        {"kind": "Application", "name": "x", "uid": "u"}
    ]
    assert ("Service", "podinfo") not in names(plan.delete)
    assert ("Deployment", "podinfo-primary") in names(plan.delete)


def test_restoring_when_the_service_is_gone_creates_an_unowned_one(
    rollout: Rollout, target: Json
) -> None:
    plan = cleanup(rollout, target, None, restore_target=True)
    assert plan.scale_target == 1
    assert plan.service is not None
    assert plan.service["metadata"] == {"name": "podinfo", "namespace": "test"}
    assert plan.service["spec"]["selector"] == {"app": "podinfo", "tier": "web"}


def test_without_a_target_there_is_nothing_to_restore(rollout: Rollout) -> None:
    plan = cleanup(rollout, None, None, restore_target=True)
    assert plan.scale_target is None
    assert ("Service", "podinfo") in names(plan.delete)


def test_the_primary_hpa_is_deleted_before_the_primary_it_scales(
    rollout: Rollout, target: Json, owner: Owner
) -> None:
    scaled = rollout.model_copy(
        update={
            "spec": rollout.spec.model_copy(
                update={"autoscaler_ref": AutoscalerRef(name="podinfo-hpa")}
            )
        }
    )
    primary = primary_deployment(target, owner=owner, revision="r1", hpa_managed=True)
    for restore_target in (False, True):
        plan = cleanup(scaled, target, primary, restore_target=restore_target)
        assert names(plan.delete)[:2] == [
            ("HorizontalPodAutoscaler", "podinfo-hpa-primary"),
            ("Deployment", "podinfo-primary"),
        ]
        assert plan.delete[0].api_version == "autoscaling/v2"
