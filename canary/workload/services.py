"""The three Services of a rollout, on ``spec.service``'s port.

- ``<target>``: the name clients call. It selects the primary's pods, so without a mesh all
  traffic goes to the primary; the mesh's route (VirtualService, HTTPRoute, TrafficSplit) on
  this name splits it between the two below. An existing Service of that name is taken over
  (its selector switched to the primary); ``cleanup`` gives it back.
- ``<target>-primary``: the primary's pods.
- ``<target>-canary``: the target's own pods (the canary).
"""

from __future__ import annotations

from canary.model.rollout import Rollout
from canary.workload.names import (
    Json,
    Owner,
    WorkloadError,
    canary_service_name,
    name_of,
    primary_name,
)
from canary.workload.primary import primary_labels, selector_labels


def service_body(metadata: Json, rollout: Rollout, selector: dict[str, str]) -> Json:
    """A ClusterIP Service on the rollout's port, selecting ``selector``."""
    service = rollout.spec.service
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {
            "type": "ClusterIP",
            "selector": dict(selector),
            "ports": [
                {
                    "name": service.port_name,
                    "protocol": "TCP",
                    "port": service.port,
                    "targetPort": service.target_port or service.port,
                }
            ],
        },
    }


def services(rollout: Rollout, target: Json) -> list[Json]:
    """Services ``<target>`` and ``<target>-primary`` (selecting the primary) and
    ``<target>-canary`` (selecting the target), owned by the Rollout."""
    owner = Owner.of(rollout)
    name = name_of(target) or rollout.spec.target_ref.name
    primary = primary_labels(target)
    return [
        service_body(owner.metadata(name), rollout, primary),
        service_body(owner.metadata(primary_name(name)), rollout, primary),
        service_body(owner.metadata(canary_service_name(name)), rollout, selector_labels(target)),
    ]


def service_update(existing: Json, desired: Json) -> Json:
    """``existing`` (as read, with its resourceVersion and clusterIP) changed to ``desired``'s
    labels, owner, selector and ports: what to write back when the Service already exists.
    A Service another controller owns is a WorkloadError, never taken."""
    updated = {**existing, "spec": dict(existing.get("spec") or {})}
    metadata = dict(existing.get("metadata") or {})
    desired_meta = desired["metadata"]
    metadata["labels"] = {**(metadata.get("labels") or {}), **desired_meta["labels"]}
    references = list(metadata.get("ownerReferences") or [])
    for ref in references:
        if ref.get("controller") and ref.get("uid") != desired_meta["ownerReferences"][0]["uid"]:
            raise WorkloadError(
                f"Service '{name_of(existing)}' is controlled by {ref.get('kind')} "
                f"'{ref.get('name')}': canary cannot take it over"
            )
    for ref in desired_meta["ownerReferences"]:
        if ref not in references:
            references.append(ref)
    metadata["ownerReferences"] = references
    updated["metadata"] = metadata
    updated["spec"]["selector"] = dict(desired["spec"]["selector"])
    updated["spec"]["ports"] = [dict(port) for port in desired["spec"]["ports"]]
    updated.pop("status", None)
    return updated
