"""Deleting a Rollout: the finalizer, and what to delete and give back before it goes.

Everything canary creates is owned by the Rollout, so the cluster's garbage collector would
delete it anyway; the finalizer lets the controller do it in an order that keeps the service
answering, and give the target back first when asked (``restore_target``):

1. scale the target back up to the primary's replicas and wait until it is ready;
2. write the ``<target>`` Service back selecting the target's pods, without canary's owner
   reference, labels and annotations, so it outlives the Rollout;
3. delete ``<hpa>-primary`` (when the Rollout names an HPA), ``<target>-primary``, the
   ``-primary`` and ``-canary`` Services and the config copies (and ``<target>`` itself when
   not restoring: the team then has the target, scaled to zero by canary, and no Service of
   that name);
4. remove the finalizer.

The routers remove their own objects (the mesh routes) before step 3, so traffic follows the
``<target>`` Service to whatever it selects. The target runs its own pod template: after a
failed rollout that is the rejected revision, so fix the Deployment before deleting.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field

from canary.model.rollout import Rollout
from canary.workload.autoscaler import primary_autoscaler_name
from canary.workload.names import (
    FINALIZER,
    MANAGED_BY,
    ROLLOUT_LABEL,
    Json,
    ObjectRef,
    canary_service_name,
    meta,
    name_of,
    primary_name,
)
from canary.workload.primary import selector_labels
from canary.workload.readiness import canary_replicas
from canary.workload.services import service_body, with_annotations


def is_deleting(obj: Json) -> bool:
    """The object has a deletionTimestamp: its finalizers are being run."""
    return bool(meta(obj).get("deletionTimestamp"))


def finalizer_patch(obj: Json, present: bool) -> Json | None:
    """A JSON merge patch adding (``present``) or removing canary's finalizer, conditional on
    the object's resourceVersion (a list is replaced whole by a merge patch); None when the
    object already is as wanted."""
    finalizers = [str(f) for f in meta(obj).get("finalizers") or []]
    if (FINALIZER in finalizers) == present:
        return None
    wanted = [*finalizers, FINALIZER] if present else [f for f in finalizers if f != FINALIZER]
    metadata: Json = {"finalizers": wanted}
    version = meta(obj).get("resourceVersion")
    if version:
        metadata["resourceVersion"] = version
    return {"metadata": metadata}


class Cleanup(BaseModel):
    """What to do, in order, before a Rollout's finalizer is removed."""

    model_config = ConfigDict(frozen=True)

    scale_target: int | None = Field(
        default=None, description="Scale the target to this many replicas, then wait until ready."
    )
    service: Json | None = Field(
        default=None, description="The '<target>' Service to write back, selecting the target."
    )
    delete: list[ObjectRef] = Field(default_factory=list, description="Then delete these.")


def released_service(rollout: Rollout, target: Json, existing: Json | None) -> Json:
    """The ``<target>`` Service selecting the target's pods, no longer canary's: ``existing``
    (as read) changed, or a new one when it is gone."""
    if existing is None:
        metadata = {"name": rollout.spec.target_ref.name, "namespace": _namespace(rollout)}
        return service_body(metadata, rollout, selector_labels(target))
    service = copy.deepcopy(existing)
    service.pop("status", None)
    metadata = service.setdefault("metadata", {})
    metadata["ownerReferences"] = [
        ref
        for ref in metadata.get("ownerReferences") or []
        if not (ref.get("kind") == "Rollout" and ref.get("name") == rollout.metadata.name)
    ]
    labels = dict(metadata.get("labels") or {})
    if labels.get(ROLLOUT_LABEL) == rollout.metadata.name:
        labels.pop(ROLLOUT_LABEL)
        if labels.get(MANAGED_BY) == "canary":
            labels.pop(MANAGED_BY)
    metadata["labels"] = labels
    service.setdefault("spec", {})["selector"] = selector_labels(target)
    return with_annotations(service, {})  # the provider's annotations canary wrote go too


def _namespace(rollout: Rollout) -> str:
    return rollout.metadata.namespace or "default"


def cleanup(
    rollout: Rollout,
    target: Json | None,
    primary: Json | None,
    *,
    service: Json | None = None,
    config_copies: Iterable[Json] = (),
    restore_target: bool = False,
) -> Cleanup:
    """The plan for a deleted Rollout. ``target``, ``primary`` and ``service`` (the
    ``<target>`` Service) as read, None when missing; ``config_copies``: the ConfigMaps and
    Secrets labelled ``canary.dev/rollout=<name>``. Restoring needs the target to exist."""
    namespace = _namespace(rollout)
    name = rollout.spec.target_ref.name
    restoring = restore_target and target is not None

    def ref(api_version: str, kind: str, object_name: str) -> ObjectRef:
        return ObjectRef(api_version=api_version, kind=kind, namespace=namespace, name=object_name)

    delete = []
    autoscaler = rollout.spec.autoscaler_ref
    if autoscaler is not None:  # before the Deployment it scales
        hpa = primary_autoscaler_name(autoscaler.name)
        delete.append(ref("autoscaling/v2", "HorizontalPodAutoscaler", hpa))
    delete += [
        ref("apps/v1", "Deployment", primary_name(name)),
        ref("v1", "Service", primary_name(name)),
        ref("v1", "Service", canary_service_name(name)),
    ]
    if not restoring:
        delete.append(ref("v1", "Service", name))
    for obj in config_copies:
        if (meta(obj).get("labels") or {}).get(ROLLOUT_LABEL) == rollout.metadata.name:
            delete.append(ref("v1", str(obj.get("kind", "")), name_of(obj)))
    if not restoring or target is None:
        return Cleanup(delete=delete)
    return Cleanup(
        scale_target=canary_replicas(primary),
        service=released_service(rollout, target, service),
        delete=delete,
    )
