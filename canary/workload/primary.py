"""The primary: ``<target>-primary``, a copy of the target that serves the stable traffic.

Label scheme: every label of the target's ``spec.selector.matchLabels`` gets ``-primary``
appended to its value on the primary's selector and pod template (``app: podinfo`` becomes
``app: podinfo-primary``), so neither Deployment's selector matches the other's pods. Other
pod labels and annotations are copied as they are; the target's own metadata is not copied.

Configuration: the ConfigMaps and Secrets the template references are copied to
``<name>-primary-<revision>`` and the primary's template references the copies. A revision's
copies never change, so a promotion switches the template and its configuration in one write,
running pods keep reading the configuration they started with, and a restore finds the stable
revision's copies where they were.

The stable template: on promotion the primary's previous pod template is kept in its own
annotations (``canary.dev/stable-template``, JSON, and ``canary.dev/stable-revision``), written
in the same update as the new template. It survives a controller restart, needs no second
write, and is what ``restore`` puts back when a promotion fails.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from canary.workload.names import (
    COPY_OF_ANNOTATION,
    REVISION_ANNOTATION,
    REVISION_LABEL,
    ROLLOUT_LABEL,
    STABLE_REVISION_ANNOTATION,
    STABLE_TEMPLATE_ANNOTATION,
    Json,
    ObjectRef,
    Owner,
    WorkloadError,
    annotation,
    copy_name,
    meta,
    name_of,
    primary_label_value,
    primary_name,
)
from canary.workload.refs import CONFIGMAP, SECRET, config_refs, rename_refs, template_of
from canary.workload.revision import config_payload, found_configs

COPIED_SPEC_FIELDS = (
    "minReadySeconds",
    "strategy",
    "revisionHistoryLimit",
    "progressDeadlineSeconds",
)
"""Deployment settings the primary takes from the target at creation and at each promotion."""

MAX_ANNOTATIONS_BYTES = 256 * 1024
"""The API server's limit on an object's annotations, all together."""


def selector_labels(deployment: Json) -> dict[str, str]:
    """The Deployment's ``spec.selector.matchLabels`` (canary needs at least one)."""
    selector = (deployment.get("spec") or {}).get("selector") or {}
    labels = selector.get("matchLabels") or {}
    if not labels:
        raise WorkloadError(
            f"Deployment '{name_of(deployment)}' has no spec.selector.matchLabels: canary "
            "rewrites them to tell the primary's pods from the canary's"
        )
    return {str(k): str(v) for k, v in labels.items()}


def primary_labels(target: Json) -> dict[str, str]:
    """The primary's selector: the target's matchLabels with ``-primary`` on each value."""
    return {k: primary_label_value(v, k) for k, v in selector_labels(target).items()}


def primary_template(target: Json, revision: str) -> Json:
    """The target's pod template as the primary runs it at ``revision``: selector labels
    rewritten, config references pointing at the revision's copies, the revision annotated."""
    template = copy.deepcopy(template_of(target))
    metadata = template.setdefault("metadata", {})
    metadata.pop("creationTimestamp", None)
    labels = metadata.setdefault("labels", {})
    for key, value in selector_labels(target).items():
        if labels.get(key) != value:
            raise WorkloadError(
                f"the pod template of Deployment '{name_of(target)}' lacks its selector "
                f"label {key}={value}"
            )
    labels.update(primary_labels(target))
    metadata.setdefault("annotations", {})[REVISION_ANNOTATION] = revision
    rename_refs(template, lambda _kind, name: copy_name(name, revision))
    return template


@dataclass(frozen=True)
class PrimaryConfigs:
    """The copies to create for a revision, and the primary's template referencing them."""

    configmaps: list[Json]
    secrets: list[Json]
    template: Json


def primary_configs(
    target: Json,
    configmaps: Iterable[Json],
    secrets: Iterable[Json],
    *,
    owner: Owner,
    revision: str,
) -> PrimaryConfigs:
    """Copies ``<name>-primary-<revision>`` of the ConfigMaps and Secrets the target references
    (an optional one that is missing is not copied; a required one is a MissingConfigError)."""
    found = found_configs(config_refs(template_of(target)), configmaps, secrets)
    copies: dict[str, list[Json]] = {CONFIGMAP: [], SECRET: []}
    for kind, objects in found.items():
        for name, obj in objects.items():
            if obj is None:
                continue
            metadata = owner.metadata(
                copy_name(name, revision), annotations={COPY_OF_ANNOTATION: name}
            )
            metadata["labels"][REVISION_LABEL] = revision
            body = {k: v for k, v in config_payload(kind, obj).items() if v}
            copies[kind].append({"apiVersion": "v1", "kind": kind, "metadata": metadata, **body})
    return PrimaryConfigs(copies[CONFIGMAP], copies[SECRET], primary_template(target, revision))


def _replicas(deployment: Json | None) -> int | None:
    if deployment is None:
        return None
    value = (deployment.get("spec") or {}).get("replicas", 1)
    return int(value) if value is not None else 1


def primary_deployment(
    target: Json,
    existing_primary: Json | None = None,
    *,
    owner: Owner,
    revision: str,
    hpa_managed: bool = False,
) -> Json:
    """``<target>-primary`` running the target's pod template at ``revision`` (the target's
    revision, from revision_of). With ``existing_primary`` the result is that object updated
    (its resourceVersion kept, for an update that fails on a conflict; its previous stable
    template dropped: initialising adopts the target without judgement).

    Replicas: the existing primary's when an HPA manages them or the target is scaled to zero
    (canary scales it down between rollouts); else the target's; else 1.
    """
    replicas = _replicas(target) or 0
    kept = _replicas(existing_primary)
    if kept is not None and (hpa_managed or replicas == 0):
        replicas = kept
    replicas = replicas or 1
    name = primary_name(name_of(target))
    selector = {"matchLabels": primary_labels(target)}
    expressions = ((target.get("spec") or {}).get("selector") or {}).get("matchExpressions")
    if expressions:
        selector["matchExpressions"] = copy.deepcopy(expressions)
    if existing_primary is not None:
        primary = copy.deepcopy(existing_primary)
        primary.pop("status", None)
        metadata = primary.setdefault("metadata", {})
        annotations = metadata.setdefault("annotations", {})
        annotations.pop(STABLE_TEMPLATE_ANNOTATION, None)
        annotations.pop(STABLE_REVISION_ANNOTATION, None)
        metadata.setdefault("labels", {}).update(owner.labels())
        if owner.reference() not in (metadata.get("ownerReferences") or []):
            metadata["ownerReferences"] = [owner.reference()]
        spec = primary.setdefault("spec", {})
        selector = spec.get("selector") or selector
    else:
        metadata = owner.metadata(name, annotations={})
        primary = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata}
        spec = primary["spec"] = {}
    metadata["annotations"][REVISION_ANNOTATION] = revision
    spec["replicas"] = replicas
    spec["selector"] = selector
    _take_pod_spec(primary, target, revision)
    return primary


def _take_pod_spec(primary: Json, target: Json, revision: str) -> None:
    template = primary_template(target, revision)
    spec = primary["spec"]
    labels = template["metadata"]["labels"]
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    wrong = {k: v for k, v in selector.items() if labels.get(k) != v}
    if wrong:
        raise WorkloadError(
            f"the primary's selector {wrong} no longer matches the target's labels (selectors "
            f"cannot change): delete Deployment '{name_of(primary)}' to have it recreated"
        )
    spec["template"] = template
    target_spec = target.get("spec") or {}
    for field in COPIED_SPEC_FIELDS:
        if field in target_spec:
            spec[field] = copy.deepcopy(target_spec[field])
        else:
            spec.pop(field, None)


def revision_on(deployment: Json) -> str | None:
    """The revision a primary runs (its ``canary.dev/revision`` annotation)."""
    return annotation(deployment, REVISION_ANNOTATION)


def promote(primary: Json, canary_target: Json, revision: str) -> Json:
    """The primary running the canary's pod template at ``revision`` (references rewritten to
    the revision's copies, which primary_configs gives), its previous template kept as the
    stable one. Promoting to the revision the primary already runs changes nothing of the
    stable record, so applying a promotion twice is applying it once."""
    current = revision_on(primary)
    promoted = copy.deepcopy(primary)
    promoted.pop("status", None)
    annotations = promoted.setdefault("metadata", {}).setdefault("annotations", {})
    if current is not None and current != revision:
        annotations[STABLE_REVISION_ANNOTATION] = current
        annotations[STABLE_TEMPLATE_ANNOTATION] = json.dumps(
            template_of(primary), sort_keys=True, separators=(",", ":")
        )
        size = sum(len(k) + len(str(v).encode()) for k, v in annotations.items())
        if size > MAX_ANNOTATIONS_BYTES:
            raise WorkloadError(
                f"the primary's annotations with its stable template would take {size} bytes, "
                f"over the API server's {MAX_ANNOTATIONS_BYTES}: the pod template is too large"
            )
    annotations[REVISION_ANNOTATION] = revision
    _take_pod_spec(promoted, canary_target, revision)
    return promoted


class Stable(BaseModel):
    """The revision a primary ran before its last promotion, and that pod template."""

    model_config = ConfigDict(frozen=True)

    revision: str
    template: Json


def stable_of(primary: Json) -> Stable | None:
    """What the primary ran before its last promotion; None before the first one."""
    revision = annotation(primary, STABLE_REVISION_ANNOTATION)
    text = annotation(primary, STABLE_TEMPLATE_ANNOTATION)
    if revision is None or text is None:
        return None
    try:
        template = json.loads(text)
    except ValueError:
        raise WorkloadError(
            f"annotation {STABLE_TEMPLATE_ANNOTATION} of '{name_of(primary)}' is not JSON"
        ) from None
    if not isinstance(template, dict):
        raise WorkloadError(f"annotation {STABLE_TEMPLATE_ANNOTATION} is not a pod template")
    return Stable(revision=revision, template=template)


def restore(primary: Json, stable_template: Json, revision: str) -> Json:
    """The primary put back on ``stable_template`` (from stable_of) at ``revision``
    (RestorePrimary). Only the pod template goes back: the Deployment's own settings
    (strategy, minReadySeconds, ...) stay as promoted, and govern the restore's own rollout.
    The stable record stays, so restoring twice is restoring once."""
    restored = copy.deepcopy(primary)
    restored.pop("status", None)
    template = copy.deepcopy(stable_template)
    metadata = template.setdefault("metadata", {})
    metadata.setdefault("annotations", {})[REVISION_ANNOTATION] = revision
    restored.setdefault("spec", {})["template"] = template
    restored.setdefault("metadata", {}).setdefault("annotations", {})[REVISION_ANNOTATION] = (
        revision
    )
    return restored


def stale_configs(primary: Json, copies: Iterable[Json]) -> list[ObjectRef]:
    """Config copies neither the primary's revision nor its stable one uses: to delete.
    ``copies`` are the ConfigMaps and Secrets labelled with the rollout (others are ignored)."""
    keep = {revision_on(primary), annotation(primary, STABLE_REVISION_ANNOTATION)} - {None}
    stale = []
    for obj in copies:
        labels = meta(obj).get("labels") or {}
        revision = labels.get(REVISION_LABEL)
        if revision is None or ROLLOUT_LABEL not in labels or revision in keep:
            continue
        stale.append(
            ObjectRef(
                api_version="v1",
                kind=str(obj.get("kind", "")),
                namespace=str(meta(obj).get("namespace", "")),
                name=name_of(obj),
            )
        )
    return stale
