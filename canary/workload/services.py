"""The three Services of a rollout, on ``spec.service``'s port.

- ``<target>``: the name clients call. It selects the primary's pods, so without a mesh all
  traffic goes to the primary; the mesh's route (VirtualService, HTTPRoute, TrafficSplit) on
  this name splits it between the two below. An existing Service of that name is taken over
  (its selector switched to the primary); ``cleanup`` gives it back.
- ``<target>-primary``: the primary's pods.
- ``<target>-canary``: the target's own pods (the canary).

Service ``<target>`` may also carry annotations the traffic provider reads from it (Linkerd's
failure accrual: `canary.traffic.linkerd.service_annotations`). canary records the keys it
wrote in ``canary.dev/managed-annotations``, so it updates and removes its own and never
touches the annotations someone else put on the Service (`with_annotations`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

from canary.model.rollout import Rollout
from canary.workload.names import (
    MANAGED_ANNOTATIONS,
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


def managed_keys(obj: Json) -> list[str]:
    """The annotations canary wrote on ``obj``, as its record lists them."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    record = str(annotations.get(MANAGED_ANNOTATIONS) or "")
    return [key for key in (k.strip() for k in record.split(",")) if key]


def managed_annotations(obj: Json) -> dict[str, str]:
    """The annotations canary wrote on ``obj`` (those its record lists), with their values."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return {key: str(annotations[key]) for key in managed_keys(obj) if key in annotations}


def with_annotations(obj: Json, wanted: Mapping[str, str]) -> Json:
    """A copy of ``obj`` carrying ``wanted`` as canary's annotations: they are set (over any
    value already there), the ones canary wrote before and no longer wants are removed, the
    record lists ``wanted``'s keys (and is gone when there are none); every other annotation
    stays as it is."""
    out = copy.deepcopy(obj)
    metadata = out.setdefault("metadata", {})
    annotations = dict(metadata.get("annotations") or {})
    for key in managed_keys(obj):
        if key not in wanted:
            annotations.pop(key, None)
    annotations.pop(MANAGED_ANNOTATIONS, None)
    annotations.update({key: str(value) for key, value in wanted.items()})
    if wanted:
        annotations[MANAGED_ANNOTATIONS] = ",".join(sorted(wanted))
    if annotations:
        metadata["annotations"] = annotations
    else:
        metadata.pop("annotations", None)
    return out


def services(
    rollout: Rollout, target: Json, annotations: Mapping[str, str] | None = None
) -> list[Json]:
    """Services ``<target>`` and ``<target>-primary`` (selecting the primary) and
    ``<target>-canary`` (selecting the target), owned by the Rollout. ``annotations``: the
    provider's, on ``<target>`` (recorded as canary's, see `with_annotations`)."""
    owner = Owner.of(rollout)
    name = name_of(target) or rollout.spec.target_ref.name
    primary = primary_labels(target)
    apex = service_body(owner.metadata(name), rollout, primary)
    return [
        with_annotations(apex, annotations or {}),
        service_body(owner.metadata(primary_name(name)), rollout, primary),
        service_body(owner.metadata(canary_service_name(name)), rollout, selector_labels(target)),
    ]


def service_update(existing: Json, desired: Json) -> Json:
    """``existing`` (as read, with its resourceVersion and clusterIP) changed to ``desired``'s
    labels, owner, selector, ports and canary's annotations (the others kept): what to write
    back when the Service already exists. A Service another controller owns is a
    WorkloadError, never taken."""
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
    return with_annotations(updated, managed_annotations(desired))
