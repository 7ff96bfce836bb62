"""Everything canary.workload writes survives the official client's apps/v1 and v1 models.

The `kubernetes` package's models are generated from the API server's OpenAPI: an object that
deserializes into them and serializes back unchanged has only fields the API knows, of the
right types, with the required ones present.
"""

from __future__ import annotations

import json
from typing import Any

import kubernetes
from workload_support import Json

from canary.model.rollout import Rollout
from canary.workload import (
    Owner,
    cleanup,
    primary_configs,
    primary_deployment,
    promote,
    revision_of,
    scale,
    services,
)


def round_trip(obj: Json, model: str) -> Any:
    client = kubernetes.client.ApiClient()
    # The data half of ApiClient.deserialize, whose public signature changed across releases.
    typed = client._ApiClient__deserialize(json.loads(json.dumps(obj)), model)
    return client.sanitize_for_serialization(typed)


KINDS = {
    "Deployment": "V1Deployment",
    "Service": "V1Service",
    "ConfigMap": "V1ConfigMap",
    "Secret": "V1Secret",
    "Scale": "V1Scale",
}


def test_every_object_round_trips_through_the_client_models(
    rollout: Rollout, target: Json, owner: Owner, configmaps: list[Json], secrets: list[Json]
) -> None:
    target.pop("status")
    revision = revision_of(target, configmaps, secrets)
    copies = primary_configs(target, configmaps, secrets, owner=owner, revision=revision)
    primary = primary_deployment(target, owner=owner, revision=revision)
    canary = json.loads(json.dumps(target))
    canary["spec"]["template"]["spec"]["containers"][0]["image"] = "podinfo:2"
    promoted = promote(primary, canary, "r2")
    released = cleanup(rollout, target, primary, restore_target=True).service
    assert released is not None
    objects = [
        primary,
        promoted,
        *services(rollout, target),
        *copies.configmaps,
        *copies.secrets,
        scale(target, 2),
        released,
    ]
    for obj in objects:
        assert round_trip(obj, KINDS[obj["kind"]]) == obj, obj["metadata"]["name"]


def test_the_round_trip_would_catch_a_misspelt_field(target: Json) -> None:
    target.pop("status")
    target["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    assert round_trip(target, "V1Deployment") != target
