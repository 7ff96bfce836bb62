"""The kinds of resource the server serves: the built-in ones and those CRDs declare."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from canary.testing.errors import ApiError, cause, invalid

Json = dict[str, Any]

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
SUB_VERBS = ("get", "patch", "update")


@dataclass(frozen=True)
class ScaleSpec:
    """Where a resource keeps the replicas its `scale` subresource reads and writes."""

    spec_replicas: str = ".spec.replicas"
    status_replicas: str = ".status.replicas"
    label_selector: str | None = None


@dataclass(frozen=True)
class ResourceType:
    """One served group/version/resource, with what discovery and the handlers need."""

    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    status: bool = False  # has the status subresource
    scale: ScaleSpec | None = None
    has_generation: bool = True
    schema: Json | None = field(default=None, compare=False, hash=False)
    columns: tuple[Json, ...] = field(default=(), compare=False, hash=False)
    custom: bool = False  # served because a CRD declares it

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple[str, str]:
        """Objects are stored per group and plural, whatever version they are read at."""
        return (self.group, self.plural)

    def discovery(self) -> list[Json]:
        """The APIResourceList entries: the resource, then its subresources."""
        entry: Json = {
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(ALL_VERBS),
        }
        if self.short_names:
            entry["shortNames"] = list(self.short_names)
        if self.categories:
            entry["categories"] = list(self.categories)
        entries = [entry]
        if self.status:
            entries.append(self._sub("status", self.kind))
        if self.scale is not None:
            entries.append(self._sub("scale", "Scale", "autoscaling", "v1"))
        return entries

    def _sub(self, name: str, kind: str, group: str = "", version: str = "") -> Json:
        sub: Json = {
            "name": f"{self.plural}/{name}",
            "singularName": "",
            "namespaced": self.namespaced,
            "kind": kind,
            "verbs": list(SUB_VERBS),
        }
        if group:
            sub["group"], sub["version"] = group, version
        return sub


def _core(plural: str, kind: str, **kw: Any) -> ResourceType:
    return ResourceType("", "v1", plural, kind.lower(), kind, **kw)


_AGE: Json = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
_DEPLOYMENT_COLUMNS: tuple[Json, ...] = (
    {"name": "Ready", "type": "string", "jsonPath": "@ready"},
    {"name": "Up-to-date", "type": "integer", "jsonPath": ".status.updatedReplicas"},
    {"name": "Available", "type": "integer", "jsonPath": ".status.availableReplicas"},
    _AGE,
)

BUILTINS: tuple[ResourceType, ...] = (
    _core(
        "namespaces",
        "Namespace",
        namespaced=False,
        short_names=("ns",),
        status=True,
        has_generation=False,
    ),
    _core(
        "pods", "Pod", short_names=("po",), status=True, has_generation=False, categories=("all",)
    ),
    _core(
        "services",
        "Service",
        short_names=("svc",),
        status=True,
        has_generation=False,
        categories=("all",),
    ),
    _core("configmaps", "ConfigMap", short_names=("cm",), has_generation=False),
    _core("secrets", "Secret", has_generation=False),
    _core("events", "Event", short_names=("ev",), has_generation=False),
    _core("serviceaccounts", "ServiceAccount", short_names=("sa",), has_generation=False),
    ResourceType(
        "events.k8s.io", "v1", "events", "event", "Event", short_names=("ev",), has_generation=False
    ),
    ResourceType(
        "apps",
        "v1",
        "deployments",
        "deployment",
        "Deployment",
        short_names=("deploy",),
        status=True,
        scale=ScaleSpec(),
        categories=("all",),
        columns=_DEPLOYMENT_COLUMNS,
    ),
    ResourceType(
        "apps",
        "v1",
        "replicasets",
        "replicaset",
        "ReplicaSet",
        short_names=("rs",),
        status=True,
        scale=ScaleSpec(),
        categories=("all",),
    ),
    ResourceType("coordination.k8s.io", "v1", "leases", "lease", "Lease", has_generation=False),
    # Stored only: no autoscaling happens; a test sets status as the HPA controller would.
    ResourceType(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        "HorizontalPodAutoscaler",
        short_names=("hpa",),
        status=True,
        categories=("all",),
    ),
    ResourceType(
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        "networkpolicy",
        "NetworkPolicy",
        short_names=("netpol",),
    ),
    # Stored only (no authorization, no eviction): what the Helm chart installs.
    ResourceType(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "poddisruptionbudget",
        "PodDisruptionBudget",
        short_names=("pdb",),
        status=True,
    ),
    *(
        ResourceType(
            "rbac.authorization.k8s.io",
            "v1",
            plural,
            kind.lower(),
            kind,
            namespaced=namespaced,
            has_generation=False,
        )
        for plural, kind, namespaced in (
            ("clusterroles", "ClusterRole", False),
            ("clusterrolebindings", "ClusterRoleBinding", False),
            ("roles", "Role", True),
            ("rolebindings", "RoleBinding", True),
        )
    ),
    ResourceType(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "customresourcedefinition",
        "CustomResourceDefinition",
        namespaced=False,
        short_names=("crd", "crds"),
        status=True,
    ),
)

CRD_KEY = ("apiextensions.k8s.io", "customresourcedefinitions")
NAMESPACE_KEY = ("", "namespaces")


def types_from_crd(crd: Json) -> list[ResourceType]:
    """The resource each served version of a CRD declares; 422 when the CRD is unusable."""
    meta, spec = crd.get("metadata", {}), crd.get("spec") or {}
    names, group = spec.get("names") or {}, spec.get("group", "")
    name = meta.get("name", "")
    problems = [
        cause(f"spec.{f}", "Required value", "FieldValueRequired")
        for f, v in (
            ("group", group),
            ("names.plural", names.get("plural")),
            ("names.kind", names.get("kind")),
            ("versions", spec.get("versions")),
        )
        if not v
    ]
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        problems.append(
            cause(
                "spec.scope", f'Unsupported value: "{spec.get("scope")}"', "FieldValueNotSupported"
            )
        )
    if not problems and name != f"{names['plural']}.{group}":
        problems.append(
            cause(
                "metadata.name",
                f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group',
            )
        )
    if problems:
        raise invalid("CustomResourceDefinition", "apiextensions.k8s.io", name, problems)
    found = []
    for version in spec["versions"]:
        if not version.get("served", True):
            continue
        subs = version.get("subresources") or {}
        scale = subs.get("scale")
        found.append(
            ResourceType(
                group=group,
                version=version["name"],
                plural=names["plural"],
                singular=names.get("singular") or names["kind"].lower(),
                kind=names["kind"],
                namespaced=spec["scope"] == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                status="status" in subs,
                scale=ScaleSpec(
                    scale["specReplicasPath"],
                    scale["statusReplicasPath"],
                    scale.get("labelSelectorPath"),
                )
                if scale
                else None,
                schema=(version.get("schema") or {}).get("openAPIV3Schema"),
                columns=tuple(version.get("additionalPrinterColumns") or (_AGE,)),
                custom=True,
            )
        )
    return found


class Registry:
    """Every served resource type, looked up by group/version and plural (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        self._by_crd: dict[str, list[ResourceType]] = {}
        for rt in BUILTINS:
            self._types[(rt.group, rt.version, rt.plural)] = rt

    def lookup(self, group: str, version: str, plural: str) -> ResourceType:
        with self._lock:
            rt = self._types.get((group, version, plural))
        if rt is None:
            where = f"{group}/{version}" if group else version
            raise ApiError(404, f"the server could not find the requested resource ({where})")
        return rt

    def find_kind(self, api_version: str, kind: str) -> ResourceType:
        group, _, version = api_version.rpartition("/")
        for rt in self.all():
            if (rt.group, rt.version, rt.kind) == (group, version, kind):
                return rt
        raise ApiError(404, f'no resource of kind "{kind}" is served at "{api_version}"')

    def all(self) -> list[ResourceType]:
        with self._lock:
            return list(self._types.values())

    def group_versions(self) -> dict[str, list[str]]:
        """Each group's served versions, the preferred (storage-first) one first."""
        found: dict[str, list[str]] = {}
        for rt in self.all():
            versions = found.setdefault(rt.group, [])
            if rt.version not in versions:
                versions.append(rt.version)
        return found

    def set_crd(self, name: str, types: Iterable[ResourceType]) -> None:
        with self._lock:
            for old in self._by_crd.pop(name, []):
                self._types.pop((old.group, old.version, old.plural), None)
            kept = list(types)
            for rt in kept:
                self._types[(rt.group, rt.version, rt.plural)] = rt
            if kept:
                self._by_crd[name] = kept

    def remove_crd(self, name: str) -> list[ResourceType]:
        with self._lock:
            gone = self._by_crd.pop(name, [])
            for old in gone:
                self._types.pop((old.group, old.version, old.plural), None)
        return gone
