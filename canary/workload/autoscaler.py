"""The target's HorizontalPodAutoscaler, in Flagger's model.

A Rollout may name the HPA that scales its target (``spec.autoscalerRef``). canary then keeps
``<hpa>-primary``, a copy of it scaling ``<target>-primary`` (created with the primary, its
spec taken again at every promotion, so a change of bounds or metrics ships with the version
that asked for it), never touches the primary's replica count itself, and starts the canary at
the HPA's ``minReplicas``. The HPA on the target keeps scaling the canary while it serves
traffic; between rollouts the target is scaled to zero, where an HPA does not act.
"""

from __future__ import annotations

import copy

from canary.model.rollout import Rollout
from canary.workload.names import (
    PRIMARY_SUFFIX,
    Json,
    Owner,
    WorkloadError,
    _checked,
    meta,
    name_of,
    primary_name,
)

DEPLOYMENT_API_VERSION = "apps/v1"


class AutoscalerError(WorkloadError):
    """The HPA named by ``spec.autoscalerRef`` is missing or does not scale the target."""


def primary_autoscaler_name(hpa_name: str) -> str:
    return _checked(hpa_name + PRIMARY_SUFFIX, "the primary HorizontalPodAutoscaler's")


def checked_autoscaler(rollout: Rollout, hpa: Json | None) -> Json | None:
    """The target's HPA when the Rollout names one (None when it names none). Raises
    AutoscalerError, saying what to fix, when it is missing or scales something else."""
    ref = rollout.spec.autoscaler_ref
    if ref is None:
        return None
    target = rollout.spec.target_ref.name
    if hpa is None:
        raise AutoscalerError(
            f"spec.autoscalerRef names HorizontalPodAutoscaler '{ref.name}', which does not "
            "exist: create it, or remove autoscalerRef"
        )
    scaled = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
    if scaled.get("kind") != "Deployment" or scaled.get("name") != target:
        found = f"{scaled.get('kind', '?')} '{scaled.get('name', '?')}'"
        raise AutoscalerError(
            f"spec.autoscalerRef: HorizontalPodAutoscaler '{ref.name}' scales {found}, not "
            f"the target Deployment '{target}': point its scaleTargetRef at '{target}'"
        )
    return hpa


def primary_autoscaler(hpa: Json, existing: Json | None, *, owner: Owner, target: str) -> Json:
    """``<hpa>-primary``: the HPA's spec scaling ``<target>-primary``. With ``existing`` its
    resourceVersion is kept, so the update fails on a conflict rather than overwriting."""
    spec = copy.deepcopy(hpa.get("spec") or {})
    spec["scaleTargetRef"] = {
        "apiVersion": DEPLOYMENT_API_VERSION,
        "kind": "Deployment",
        "name": primary_name(target),
    }
    metadata = owner.metadata(primary_autoscaler_name(name_of(hpa)))
    version = meta(existing or {}).get("resourceVersion")
    if version:
        metadata["resourceVersion"] = version
    return {
        "apiVersion": hpa.get("apiVersion", "autoscaling/v2"),
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata,
        "spec": spec,
    }


def autoscaler_min_replicas(hpa: Json) -> int:
    """The canary's starting size under an HPA: its minReplicas (Kubernetes' default 1)."""
    value = (hpa.get("spec") or {}).get("minReplicas")
    return max(1, int(value)) if isinstance(value, int) else 1
