"""What the server does per kind: names, defaults and checks on writes, and what follows them.

Admission (on every create and update): object names and labels, a few defaults and checks of
Deployments and Services, CRDs turned into served resources, custom resources checked against
their schema. After a write: CRDs (un)registered, a deleted namespace's objects deleted,
dependents of a deleted owner garbage-collected (at once, not in the background).
"""

from __future__ import annotations

import contextvars
import random
import re
from typing import TYPE_CHECKING, Any

from canary.testing import validation
from canary.testing.errors import ApiError, bad_request, cause, invalid
from canary.testing.jsontree import clone
from canary.testing.resources import CRD_KEY, NAMESPACE_KEY, ResourceType, types_from_crd
from canary.testing.selectors import selector, selector_from_match_labels

if TYPE_CHECKING:
    from canary.testing.storage import Store

Json = dict[str, Any]

# The request's `fieldValidation` (Ignore, Warn or Strict), set by the HTTP layer per request.
FIELD_VALIDATION: contextvars.ContextVar[str] = contextvars.ContextVar(
    "field_validation", default="Warn"
)

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS_LABEL_KINDS = {("", "namespaces"), ("", "services")}
_SERVER_META = (
    "uid",
    "creationTimestamp",
    "generation",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "namespace",
    "resourceVersion",
)
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def generate_name(prefix: str) -> str:
    return prefix + "".join(random.choices(_ALPHABET, k=5))


def server_meta(meta: Json) -> Json:
    """The metadata a PUT cannot change, taken from the stored object."""
    return {k: clone(meta[k]) for k in _SERVER_META if k in meta}


def spec_changed(rt: ResourceType, old: Json, new: Json) -> bool:
    """Generation moves on changes outside metadata (and outside status, where it has its own)."""
    skip = {"metadata", "status"} if rt.status else {"metadata"}
    return {k: v for k, v in old.items() if k not in skip} != {
        k: v for k, v in new.items() if k not in skip
    }


def _check_meta(rt: ResourceType, obj: Json) -> list[Json]:
    meta = obj["metadata"]
    name = meta.get("name")
    if not name:
        return [
            cause(
                "metadata.name",
                "Required value: name or generateName is required",
                "FieldValueRequired",
            )
        ]
    problems = []
    if rt.key in _DNS_LABEL_KINDS:
        if not _LABEL.match(name) or len(name) > 63:
            problems.append(
                cause(
                    "metadata.name",
                    f'Invalid value: "{name}": a lowercase RFC '
                    "1123 label must consist of lower case alphanumeric characters "
                    "or '-', and must start and end with an alphanumeric character",
                )
            )
    elif not _SUBDOMAIN.match(name) or len(name) > 253:
        problems.append(
            cause(
                "metadata.name",
                f'Invalid value: "{name}": a lowercase RFC 1123 '
                "subdomain must consist of lower case alphanumeric characters, '-' "
                "or '.', and must start and end with an alphanumeric character",
            )
        )
    size = sum(len(k) + len(str(v)) for k, v in (meta.get("annotations") or {}).items())
    if size > 262144:
        problems.append(
            cause(
                "metadata.annotations",
                "Too long: may not be more than 262144 bytes",
                "FieldValueTooLong",
            )
        )
    for key, value in (meta.get("labels") or {}).items():
        label = key.rpartition("/")[2]
        if not _LABEL_NAME.match(label) or len(label) > 63:
            problems.append(
                cause(
                    "metadata.labels",
                    f'Invalid value: "{key}": name part must '
                    "consist of alphanumeric characters, '-', '_' or '.'",
                )
            )
        if not isinstance(value, str) or not _LABEL_VALUE.match(value) or len(value) > 63:
            problems.append(
                cause(
                    "metadata.labels",
                    f'Invalid value: "{value}": a valid label '
                    "must be an empty string or consist of alphanumeric characters, "
                    "'-', '_' or '.', and must start and end with an alphanumeric "
                    "character",
                )
            )
    return problems


def _check_workload(obj: Json, old: Json | None) -> list[Json]:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    if obj["kind"] == "Deployment":
        spec.setdefault(
            "strategy",
            {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
            },
        )
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
    problems = []
    chosen = spec.get("selector")
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if not chosen:
        problems.append(cause("spec.selector", "Required value", "FieldValueRequired"))
    elif not selector_from_match_labels(chosen):
        problems.append(cause("spec.selector", "Invalid value: empty selector is invalid"))
    elif not selector(selector_from_match_labels(chosen), None)({"metadata": {"labels": labels}}):
        problems.append(
            cause(
                "spec.template.metadata.labels",
                f"Invalid value: {labels}: `selector` does not match template `labels`",
            )
        )
    if not ((spec.get("template") or {}).get("spec") or {}).get("containers"):
        problems.append(
            cause("spec.template.spec.containers", "Required value", "FieldValueRequired")
        )
    if old is not None and chosen != (old.get("spec") or {}).get("selector"):
        problems.append(cause("spec.selector", f"Invalid value: {chosen}: field is immutable"))
    return problems


def _check_service(obj: Json, old: Json | None) -> list[Json]:
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    kept = (old or {}).get("spec", {}).get("clusterIP")
    if kept and spec.get("clusterIP") in (None, ""):
        spec["clusterIP"] = kept
    if "clusterIP" not in spec:
        spec["clusterIP"] = f"10.96.{random.randint(0, 255)}.{random.randint(1, 254)}"
    spec.setdefault("clusterIPs", [spec["clusterIP"]])
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        if "port" in port:
            port.setdefault("targetPort", port["port"])
    if not spec.get("ports") and spec["clusterIP"] != "None":
        return [cause("spec.ports", "Required value", "FieldValueRequired")]
    if old is not None and kept and spec["clusterIP"] != kept:
        return [
            cause("spec.clusterIP", f'Invalid value: "{spec["clusterIP"]}": field is immutable')
        ]
    return []


def _check_crd(obj: Json) -> list[Json]:
    types = types_from_crd(obj)  # raises 422 for an unusable CRD
    names = obj["spec"]["names"]
    storage = [v["name"] for v in obj["spec"]["versions"] if v.get("storage")]
    accepted = {
        k: names[k]
        for k in ("plural", "singular", "kind", "listKind", "shortNames", "categories")
        if k in names
    }
    accepted.setdefault("singular", types[0].singular if types else names["kind"].lower())
    accepted.setdefault("listKind", names["kind"] + "List")
    conditions = [
        {"type": t, "status": "True", "reason": r, "message": m, "lastTransitionTime": None}
        for t, r, m in (
            ("NamesAccepted", "NoConflicts", "no conflicts found"),
            ("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        )
    ]
    obj["status"] = {"conditions": conditions, "acceptedNames": accepted, "storedVersions": storage}
    return []


def admit(store: Store, rt: ResourceType, obj: Json, old: Json | None) -> tuple[Json, list[str]]:
    """Defaults and checks for a create (`old` None) or an update; 422 Invalid when it fails."""
    problems = _check_meta(rt, obj)
    warnings: list[str] = []
    if rt.key in (("apps", "deployments"), ("apps", "replicasets")):
        problems += _check_workload(obj, old)
    elif rt.key == ("", "services"):
        problems += _check_service(obj, old)
    elif rt.key == NAMESPACE_KEY:
        obj.setdefault("status", {})["phase"] = (
            "Terminating" if "deletionTimestamp" in obj["metadata"] else "Active"
        )
    elif rt.key == CRD_KEY and not problems:
        problems += _check_crd(obj)
        for condition in obj["status"]["conditions"]:
            before = (old or {}).get("status", {}).get("conditions") or [{}]
            condition["lastTransitionTime"] = (
                before[0].get("lastTransitionTime") or (obj["metadata"]["creationTimestamp"])
            )
    elif rt.custom and rt.schema is not None:
        obj, found, unknown = validation.check(rt.schema, obj, old)
        problems += found
        mode = FIELD_VALIDATION.get()
        if unknown and mode == "Strict":
            raise bad_request(
                "strict decoding error: " + ", ".join(f'unknown field "{u}"' for u in unknown)
            )
        if mode == "Warn":
            warnings += [f'unknown field "{u}"' for u in unknown]
    if problems:
        raise invalid(rt.kind, rt.group, obj["metadata"].get("name", ""), problems)
    return obj, warnings


def after_commit(store: Store, rt: ResourceType, event: str, obj: Json, old: Json | None) -> None:
    """What follows a write: CRDs served or withdrawn, namespaces emptied, dependents collected."""
    if rt.key == CRD_KEY:
        name = obj["metadata"]["name"]
        if event == "DELETED":
            for gone in store.registry.remove_crd(name)[:1]:
                for o in store.objects(gone.key):
                    store.remove(gone, o)
        else:
            store.registry.set_crd(name, types_from_crd(obj))
    if (rt.key == NAMESPACE_KEY and "deletionTimestamp" in obj["metadata"]) or (
        rt.key == NAMESPACE_KEY and event == "DELETED"
    ):
        _empty_namespace(store, obj["metadata"]["name"])
    if event == "DELETED":
        _collect_dependents(store, obj["metadata"]["uid"])


def _served(store: Store, key: tuple[str, str]) -> ResourceType | None:
    return next((rt for rt in store.registry.all() if rt.key == key), None)


def _empty_namespace(store: Store, namespace: str) -> None:
    for key, obj in store.iter_all():
        rt = _served(store, key)
        meta = obj["metadata"]
        if (
            rt is not None
            and meta.get("namespace") == namespace
            and "deletionTimestamp" not in meta
        ):
            store.remove(rt, obj)
    ns = store.find(NAMESPACE_KEY, "", namespace)
    if ns is not None and ns["metadata"].get("finalizers"):
        new = clone(ns)
        new["metadata"]["finalizers"] = []
        store.replace_object(_served(store, NAMESPACE_KEY), ns, new, False)  # type: ignore[arg-type]


def _collect_dependents(store: Store, uid: str) -> None:
    for key, obj in store.iter_all():
        owners = obj["metadata"].get("ownerReferences") or []
        if not any(o.get("uid") == uid for o in owners):
            continue
        rt = _served(store, key)
        if rt is None or "deletionTimestamp" in obj["metadata"]:
            continue
        alive = [o for o in owners if o.get("uid") != uid and _exists(store, o["uid"])]
        if alive:
            new = clone(obj)
            new["metadata"]["ownerReferences"] = [o for o in owners if o.get("uid") != uid]
            store.replace_object(rt, obj, new, False)
        else:
            store.remove(rt, obj)


def _exists(store: Store, uid: str) -> bool:
    return any(o["metadata"].get("uid") == uid for _, o in store.iter_all())


def orphan_dependents(store: Store, uid: str) -> None:
    for key, obj in store.iter_all():
        owners = obj["metadata"].get("ownerReferences") or []
        rt = _served(store, key)
        if rt is not None and any(o.get("uid") == uid for o in owners):
            new = clone(obj)
            new["metadata"]["ownerReferences"] = [o for o in owners if o.get("uid") != uid]
            store.replace_object(rt, obj, new, False)


def _path(obj: Json, path: str) -> Any:
    node: Any = obj
    for part in path.strip(".").split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def scale_of(rt: ResourceType, obj: Json) -> Json:
    """The autoscaling/v1 Scale of a Deployment, ReplicaSet or scalable custom resource."""
    assert rt.scale is not None
    meta = obj["metadata"]
    status: Json = {"replicas": _path(obj, rt.scale.status_replicas) or 0}
    if rt.scale.label_selector:
        status["selector"] = _path(obj, rt.scale.label_selector) or ""
    else:
        status["selector"] = selector_from_match_labels((obj.get("spec") or {}).get("selector"))
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": _path(obj, rt.scale.spec_replicas) or 0},
        "status": status,
    }


def with_replicas(rt: ResourceType, obj: Json, replicas: Any) -> Json:
    if not isinstance(replicas, int) or replicas < 0:
        raise invalid(
            "Scale",
            "autoscaling",
            obj["metadata"]["name"],
            [
                cause(
                    "spec.replicas",
                    f"Invalid value: {replicas}: must be greater than or equal to 0",
                )
            ],
        )
    assert rt.scale is not None
    new = clone(obj)
    node = new
    *parents, last = rt.scale.spec_replicas.strip(".").split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = replicas
    return new


def check_scale_version(obj: Json, wanted: str | None) -> None:
    if wanted and wanted != obj["metadata"]["resourceVersion"]:
        raise ApiError(
            409,
            "the object has been modified; please apply your changes to the "
            "latest version and try again",
            reason="Conflict",
        )
