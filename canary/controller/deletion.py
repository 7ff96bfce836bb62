"""Deleting a Rollout: with the finalizer, give the target back before the objects go.

Everything canary creates is owned by the Rollout, so the cluster's garbage collector removes
it all once the Rollout is gone; that is what happens without the finalizer (the default).
With ``restore_target`` (``canary controller --restore-on-delete``) the controller puts
``canary.dev/finalizer`` on each Rollout and, when one is deleted, follows
`canary.workload.cleanup`'s plan first: scale the target back up and wait until it is ready
(at most the Rollout's ``progressDeadlineSeconds``), write the ``<target>`` Service back
selecting the target's pods (no longer owned, so it stays), delete the mesh's route objects
(traffic then follows the Service), delete ``<hpa>-primary`` (with ``spec.autoscalerRef``),
the primary, the other Services and the configuration copies, and remove the finalizer.
"""

from __future__ import annotations

import logging
from datetime import datetime

from pydantic import ValidationError

from canary.controller.kinds import CONFIGMAP, DEPLOYMENT, ROLLOUT, SECRET, SERVICE, kind_of
from canary.controller.kube import Json, Kube
from canary.controller.workloads import namespace_of, upsert
from canary.engine.clock import seconds_since
from canary.engine.routes import STABLE
from canary.model.rollout import Rollout
from canary.traffic.mesh import desired_objects
from canary.traffic.objects import RenderError
from canary.workload import FINALIZER, canary_ready, cleanup, finalizer_patch
from canary.workload.names import ROLLOUT_LABEL

log = logging.getLogger("canary.controller.deletion")

WAIT_SECONDS = 2.0
"""How soon a deletion that waits for the target to be ready looks again."""


def ensure_finalizer(kube: Kube, obj: Json, present: bool) -> Json:
    """``obj`` with canary's finalizer added (``present``) or removed, as stored."""
    patch = finalizer_patch(obj, present)
    if patch is None:
        return obj
    meta = obj["metadata"]
    return kube.patch(ROLLOUT, str(meta["namespace"]), str(meta["name"]), patch)


def finalize_deleted(kube: Kube, obj: Json, *, restore_target: bool, now: datetime) -> float | None:
    """`finalize` the deleted Rollout ``obj`` when it holds canary's finalizer (else None: the
    garbage collector's job); even one the model refuses."""
    if FINALIZER not in ((obj.get("metadata") or {}).get("finalizers") or []):
        return None
    try:
        rollout: Rollout | None = Rollout.model_validate(obj)
    except ValidationError:
        rollout = None
    return finalize(kube, obj, rollout, restore_target=restore_target, now=now)


def finalize(
    kube: Kube, obj: Json, rollout: Rollout | None, *, restore_target: bool, now: datetime
) -> float | None:
    """Run the cleanup of a deleted Rollout; seconds until it should be looked at again, or
    None when done (the finalizer removed). A Rollout the model refuses only loses the
    finalizer: the garbage collector removes what it owns."""
    if rollout is None:
        ensure_finalizer(kube, obj, False)
        return None
    namespace = namespace_of(rollout)
    name = rollout.spec.target_ref.name
    target = kube.get(DEPLOYMENT, namespace, name)
    primary = kube.get(DEPLOYMENT, namespace, f"{name}-primary")
    selector = f"{ROLLOUT_LABEL}={rollout.metadata.name}"
    copies = [
        *kube.list(CONFIGMAP, namespace, selector).items,
        *kube.list(SECRET, namespace, selector).items,
    ]
    plan = cleanup(
        rollout,
        target,
        primary,
        service=kube.get(SERVICE, namespace, name),
        config_copies=copies,
        restore_target=restore_target,
    )
    if plan.scale_target is not None and target is not None:
        replicas = int((target.get("spec") or {}).get("replicas", 1) or 0)
        if replicas != plan.scale_target:
            kube.scale(DEPLOYMENT, namespace, name, plan.scale_target)
            return WAIT_SECONDS
        deleted_at = _deleted_at(obj)
        waited = seconds_since(deleted_at, now) if deleted_at is not None else 0.0
        if not canary_ready(target) and waited < rollout.spec.progress_deadline_seconds:
            log.info("%s: waiting for Deployment %s to be ready before cleanup", rollout.key, name)
            return WAIT_SECONDS
    if plan.service is not None:
        upsert(kube, plan.service, exact_annotations=True)
    try:
        routes = desired_objects(rollout, STABLE)
    except RenderError:
        routes = []
    for route in routes:
        meta = route["metadata"]
        kube.delete(kind_of(route["apiVersion"], route["kind"]), meta["namespace"], meta["name"])
    for ref in plan.delete:
        kube.delete(kind_of(ref.api_version, ref.kind), ref.namespace, ref.name)
    ensure_finalizer(kube, obj, False)
    log.info("%s: cleaned up%s", rollout.key, " (target restored)" if restore_target else "")
    return None


def _deleted_at(obj: Json) -> datetime | None:
    stamp = (obj.get("metadata") or {}).get("deletionTimestamp")
    if not stamp:
        return None
    return datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
