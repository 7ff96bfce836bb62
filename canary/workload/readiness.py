"""Is a Deployment ready, from its status; scaling through the scale subresource.

Ready means the rollout of its current spec is complete and every replica serves, as
``kubectl rollout status`` sees it: ``status.observedGeneration >= metadata.generation``,
``updatedReplicas``, ``replicas`` and ``availableReplicas`` all equal to ``spec.replicas``
(no old pods left), and at least one replica (a Deployment scaled to zero serves nothing).
The primary must also run the expected revision (its ``canary.dev/revision`` annotation).
"""

from __future__ import annotations

from canary.workload.names import Json, meta, name_of
from canary.workload.primary import revision_on


def _int(value: object, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def why_not_ready(deployment: Json) -> str | None:
    """Why the Deployment is not ready yet, in a sentence; None when it is."""
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    name = name_of(deployment)
    wanted = _int(spec.get("replicas"), 1)
    generation = _int(meta(deployment).get("generation"))
    observed = _int(status.get("observedGeneration"))
    if observed < generation:
        return f"'{name}': the Deployment controller has not seen generation {generation} yet"
    if wanted < 1:
        return f"'{name}' is scaled to zero"
    updated = _int(status.get("updatedReplicas"))
    current = _int(status.get("replicas"))
    available = _int(status.get("availableReplicas"))
    if updated < wanted:
        reason = f"'{name}': {updated} of {wanted} replicas updated"
    elif current > updated:
        reason = f"'{name}': {current - updated} old replicas pending termination"
    elif available < wanted:
        reason = f"'{name}': {available} of {wanted} updated replicas available"
    else:
        return None
    if _deadline_exceeded(status):
        reason += " (its progress deadline was exceeded)"
    return reason


def _deadline_exceeded(status: Json) -> bool:
    return any(
        isinstance(c, dict)
        and c.get("type") == "Progressing"
        and c.get("reason") == "ProgressDeadlineExceeded"
        for c in status.get("conditions") or []
    )


def canary_ready(deployment: Json) -> bool:
    """The target (canary) is scaled up and all its replicas run its current template."""
    return why_not_ready(deployment) is None


def primary_ready(deployment: Json, revision: str | None) -> bool:
    """The primary runs ``revision`` on every replica (``revision=None``: any revision)."""
    if revision is not None and revision_on(deployment) != revision:
        return False
    return why_not_ready(deployment) is None


def scale(target: Json, replicas: int) -> Json:
    """The body of the scale subresource setting ``target`` to ``replicas`` (for
    ``replace_namespaced_deployment_scale``; ``{"spec": {"replicas": n}}`` of it is the merge
    patch for ``patch_namespaced_deployment_scale``)."""
    if replicas < 0:
        raise ValueError(f"replicas must be >= 0, not {replicas}")
    metadata = {"name": name_of(target)}
    namespace = meta(target).get("namespace")
    if namespace:
        metadata["namespace"] = str(namespace)
    return {
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": metadata,
        "spec": {"replicas": replicas},
    }


def canary_replicas(primary: Json | None) -> int:
    """How many replicas ScaleCanaryUp gives the canary: as many as the primary runs, so the
    two are compared at the same load per pod (at least 1)."""
    if primary is None:
        return 1
    return max(1, _int((primary.get("spec") or {}).get("replicas"), 1))
