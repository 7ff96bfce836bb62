"""What canary calls the objects it creates, the labels and annotations it writes, its owner.

For a Rollout targeting Deployment ``app``: Deployment ``app-primary``, Services ``app``,
``app-primary`` and ``app-canary``, and per revision ``R`` copies ``<config>-primary-R`` of the
ConfigMaps and Secrets the pod template references. docs/workload.md describes the scheme.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from canary.model.rollout import API_VERSION, Rollout

Json = dict[str, Any]
"""A Kubernetes object (or part of one) as the API returns it."""

PRIMARY_SUFFIX = "-primary"
CANARY_SUFFIX = "-canary"

MANAGED_BY = "app.kubernetes.io/managed-by"
ROLLOUT_LABEL = "canary.dev/rollout"
"""On everything canary creates: the Rollout's name (for listing and cleanup)."""
REVISION_LABEL = "canary.dev/revision"
"""On config copies: the revision they belong to."""

REVISION_ANNOTATION = "canary.dev/revision"
"""On the primary and its pod template: the revision (of the target) it runs."""
STABLE_REVISION_ANNOTATION = "canary.dev/stable-revision"
STABLE_TEMPLATE_ANNOTATION = "canary.dev/stable-template"
"""On the primary: the pod template it ran before the last promotion (JSON), for a restore."""
COPY_OF_ANNOTATION = "canary.dev/copy-of"
"""On config copies: the name of the ConfigMap or Secret copied."""
MANAGED_ANNOTATIONS = "canary.dev/managed-annotations"
"""On Service ``<target>``: the annotations canary wrote there (the provider's, e.g. Linkerd's
failure accrual), comma-separated, so it can drop them again without touching anyone else's."""

FINALIZER = "canary.dev/finalizer"

MAX_NAME = 253
MAX_LABEL_VALUE = 63


class WorkloadError(Exception):
    """The target cannot be turned into a primary as it is; the message says what to fix."""


class MissingConfigError(WorkloadError):
    """A ConfigMap or Secret the pod template needs (not marked optional) does not exist."""

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(
            f"the pod template references {kind} '{name}', which does not exist (mark the "
            "reference optional: true if the pods may start without it)"
        )
        self.kind = kind
        self.name = name


class Owner(BaseModel):
    """The Rollout that owns what canary creates: deleting it lets the cluster collect them."""

    model_config = ConfigDict(frozen=True)

    name: str
    uid: str
    namespace: str = "default"

    @classmethod
    def of(cls, rollout: Rollout) -> Owner:
        if not rollout.metadata.uid:
            raise WorkloadError(
                f"Rollout '{rollout.metadata.name}' has no uid yet: read it from the cluster "
                "before creating what it owns"
            )
        return cls(
            name=rollout.metadata.name,
            uid=rollout.metadata.uid,
            namespace=rollout.metadata.namespace or "default",
        )

    def reference(self) -> Json:
        return {
            "apiVersion": API_VERSION,
            "kind": "Rollout",
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }

    def labels(self) -> dict[str, str]:
        return {MANAGED_BY: "canary", ROLLOUT_LABEL: self.name}

    def metadata(self, name: str, **extra: Any) -> Json:
        """Name, namespace, canary's labels and the owner reference."""
        return {
            "name": name,
            "namespace": self.namespace,
            "labels": self.labels(),
            "ownerReferences": [self.reference()],
            **extra,
        }


class ObjectRef(BaseModel):
    """An object to act on (delete), by API version, kind, namespace and name."""

    model_config = ConfigDict(frozen=True)

    api_version: str
    kind: str
    namespace: str
    name: str


def primary_name(target: str) -> str:
    return _checked(target + PRIMARY_SUFFIX, "the primary Deployment's")


def canary_service_name(target: str) -> str:
    return _checked(target + CANARY_SUFFIX, "the canary Service's")


def copy_name(name: str, revision: str) -> str:
    """The primary's copy of ConfigMap or Secret ``name`` at ``revision``."""
    return _checked(f"{name}{PRIMARY_SUFFIX}-{revision}", f"the copy of '{name}'")


def primary_label_value(value: str, key: str) -> str:
    """A selector label's value on the primary's pods: the target's with ``-primary``."""
    out = value + PRIMARY_SUFFIX
    if len(out) > MAX_LABEL_VALUE:
        raise WorkloadError(
            f"selector label {key}={value} is too long for the primary's {key}={out} "
            f"(label values have at most {MAX_LABEL_VALUE} characters): shorten it"
        )
    return out


def _checked(name: str, what: str) -> str:
    if len(name) > MAX_NAME:
        raise WorkloadError(f"{what} name '{name}' is longer than {MAX_NAME} characters")
    return name


def meta(obj: Json) -> Json:
    """``obj["metadata"]``, empty when absent."""
    value = obj.get("metadata")
    return value if isinstance(value, dict) else {}


def name_of(obj: Json) -> str:
    return str(meta(obj).get("name", ""))


def annotation(obj: Json, key: str) -> str | None:
    annotations = meta(obj).get("annotations") or {}
    value = annotations.get(key)
    return None if value is None else str(value)
