"""The provider's annotations on Service ``<target>`` (Linkerd's failure accrual): set, changed
and removed by canary, recorded, and never at the cost of the annotations others put there."""

from __future__ import annotations

import copy

from workload_support import ROLLOUT, Json

from canary.model.rollout import Rollout
from canary.traffic import linkerd
from canary.workload import (
    cleanup,
    managed_annotations,
    service_update,
    services,
    with_annotations,
)

RECORD = "canary.dev/managed-annotations"
ACCRUAL = {
    "balancer.linkerd.io/failure-accrual": "consecutive",
    "balancer.linkerd.io/failure-accrual-consecutive-max-failures": "5",
}


def annotations(obj: Json) -> dict[str, str]:
    return dict(obj["metadata"].get("annotations") or {})


def linkerd_rollout(**breaker: object) -> Rollout:
    body = copy.deepcopy(ROLLOUT)
    body["spec"]["provider"] = {"name": "linkerd"}
    if breaker:
        route = {"circuitBreaker": {"outlierDetection": breaker}}
        body["spec"]["service"] = {**body["spec"]["service"], "route": route}
    return Rollout.model_validate(body)


def users_service(extra: dict[str, str] | None = None) -> Json:
    """Service 'podinfo' as the team made it, annotated by them."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "podinfo",
            "namespace": "test",
            "resourceVersion": "12",
            "annotations": {"team.example.com/owner": "payments", **(extra or {})},
        },
        "spec": {"clusterIP": "10.0.0.9", "selector": {"app": "podinfo"}, "ports": []},
    }


def test_only_the_apex_service_carries_the_annotations_and_their_record(
    rollout: Rollout, target: Json
) -> None:
    apex, primary, canary = services(rollout, target, ACCRUAL)
    assert annotations(apex) == {**ACCRUAL, RECORD: ",".join(sorted(ACCRUAL))}
    assert managed_annotations(apex) == ACCRUAL
    assert "annotations" not in primary["metadata"]
    assert "annotations" not in canary["metadata"]
    plain = services(rollout, target)[0]
    assert "annotations" not in plain["metadata"], "no annotations, no record"


def test_taking_a_service_over_keeps_the_teams_annotations(rollout: Rollout, target: Json) -> None:
    taken = service_update(users_service(), services(rollout, target, ACCRUAL)[0])
    assert annotations(taken) == {
        "team.example.com/owner": "payments",
        **ACCRUAL,
        RECORD: ",".join(sorted(ACCRUAL)),
    }


def test_a_changed_or_removed_breaker_changes_only_canarys_annotations(
    rollout: Rollout, target: Json
) -> None:
    live = service_update(users_service(), services(rollout, target, ACCRUAL)[0])
    fewer = {"balancer.linkerd.io/failure-accrual": "consecutive"}
    changed = service_update(live, services(rollout, target, fewer)[0])
    assert annotations(changed) == {
        "team.example.com/owner": "payments",
        "balancer.linkerd.io/failure-accrual": "consecutive",
        RECORD: "balancer.linkerd.io/failure-accrual",
    }
    removed = service_update(changed, services(rollout, target)[0])
    assert annotations(removed) == {"team.example.com/owner": "payments"}


def test_an_annotation_canary_did_not_write_is_never_removed() -> None:
    # The team set failure accrual themselves; the Rollout has no circuit breaker.
    theirs = users_service({"balancer.linkerd.io/failure-accrual": "consecutive"})
    assert with_annotations(theirs, {}) == theirs
    # With a breaker, the Rollout's value wins; without one again, the key goes (canary
    # wrote it last).
    ours = with_annotations(theirs, {"balancer.linkerd.io/failure-accrual": "consecutive"})
    assert annotations(ours)[RECORD] == "balancer.linkerd.io/failure-accrual"
    assert annotations(with_annotations(ours, {})) == {"team.example.com/owner": "payments"}
    unannotated = {"metadata": {"name": "x"}}
    assert with_annotations(unannotated, {}) == unannotated


def test_linkerds_circuit_breaker_is_what_goes_on_the_apex_service(target: Json) -> None:
    rollout = linkerd_rollout(consecutiveErrors=7, baseEjectionTime="30s")
    wanted = linkerd.service_annotations(rollout)
    assert wanted["balancer.linkerd.io/failure-accrual-consecutive-max-failures"] == "7"
    apex = services(rollout, target, wanted)[0]
    assert managed_annotations(apex) == wanted


def test_a_released_service_loses_canarys_annotations_only(rollout: Rollout, target: Json) -> None:
    live = service_update(users_service(), services(rollout, target, ACCRUAL)[0])
    plan = cleanup(rollout, target, None, service=live, restore_target=True)
    assert plan.service is not None
    assert annotations(plan.service) == {"team.example.com/owner": "payments"}
