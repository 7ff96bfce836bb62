"""CustomResourceDefinitions generated from the models, in the structural form Kubernetes needs.

Pydantic writes JSON Schema 2020-12 with ``$defs``; the API server takes OpenAPI v3.0 in which
every node is typed and nothing is referenced ("structural"). `openapi_schema` converts one into
the other, adding the models' cross-field rules that Kubernetes can check cheaply (CEL and list
types, keyed by path); `structural_problems` checks a schema as the API server would.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.alias_generators import to_camel

from canary.model.command import RolloutCommand
from canary.model.notification import NotificationChannel
from canary.model.policy import AnalysisPolicy, ClusterAnalysisPolicy
from canary.model.provider import ProviderName
from canary.model.rollout import GROUP, VERSION, Rollout

Schema = dict[str, Any]

# Keywords Kubernetes understands as pydantic writes them, in the order they are written out.
_ORDER = (  # noqa: SIM905 (one line per keyword would triple this)
    "description type format enum pattern minLength maxLength minimum exclusiveMinimum maximum "
    "exclusiveMaximum multipleOf minItems maxItems minProperties maxProperties nullable required"
).split()
_KEPT = frozenset(_ORDER)
# Keywords with no effect on validation, or none Kubernetes can express: left out.
# `propertyNames` (the pattern of dict keys) is the one constraint lost this way.
_DROPPED = frozenset(
    "title default discriminator examples propertyNames readOnly writeOnly deprecated "  # noqa: SIM905
    "$schema $id $comment $defs definitions".split()
)
_TYPES = frozenset({"object", "array", "string", "integer", "number", "boolean"})
_PRESERVE = "x-kubernetes-preserve-unknown-fields"
_INT_OR_STRING = "x-kubernetes-int-or-string"


class SchemaConversionError(ValueError):
    """A model uses a JSON-schema construct this generator has no Kubernetes form for."""


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


class _Converter:
    def __init__(self, defs: dict[str, Schema]) -> None:
        self._defs = defs

    def convert(self, node: Schema, path: str) -> Schema:
        if path.count(".") + path.count("[]") > 32:
            raise SchemaConversionError(f"{path}: nested too deeply (a recursive model?)")
        node = self._flatten(node, path)
        out: Schema = {}
        for key, value in node.items():
            if key == "description":
                out[key] = " ".join(str(value).split())
            elif key in _KEPT or key.startswith("x-kubernetes-"):
                out[key] = copy.deepcopy(value)
            elif key == "properties":
                out[key] = {n: self.convert(s, _join(path, n)) for n, s in value.items()}
            elif key == "items":
                if not isinstance(value, dict):
                    raise SchemaConversionError(f"{path}: tuple-style 'items' is not supported")
                out[key] = self.convert(value, f"{path}[]")
            elif key == "additionalProperties":
                if isinstance(value, dict):
                    out[key] = self.convert(value, f"{path}.*")
                elif value is True:
                    out[_PRESERVE] = True  # extra="allow", or a dict of anything
                # False (extra="forbid"): the API server prunes unknown fields instead.
            elif key not in _DROPPED:
                raise SchemaConversionError(f"{path}: no Kubernetes form for {key!r}: {value!r}")
        if out.get("properties") and isinstance(out.get("additionalProperties"), dict):
            raise SchemaConversionError(f"{path}: both fixed properties and free keys")
        if not ({"type", _INT_OR_STRING} & out.keys()) and not out.get(_PRESERVE):
            out[_PRESERVE] = True  # `Any`: accepted as it comes
        return out

    def _flatten(self, node: Schema, path: str) -> Schema:
        """One node with $ref, allOf, anyOf/oneOf, const and 2020-12 bounds resolved."""
        node = dict(node)
        while "$ref" in node:
            node = {**self._lookup(node.pop("$ref"), path), **node}
        for part in node.pop("allOf", []):
            node = {**self._flatten(part, path), **node}
        for junctor in ("anyOf", "oneOf"):
            if junctor in node:
                branches = [self._flatten(b, path) for b in node.pop(junctor)]
                kept = [b for b in branches if b.get("type") != "null"]
                node = {**_union(kept), **node}
        if isinstance(node.get("type"), list):
            types = [t for t in node["type"] if t != "null"]
            node["type"] = types[0] if len(types) == 1 else None
            if node["type"] is None:
                del node["type"]
                node[_PRESERVE] = True
        if "const" in node:
            node["enum"] = [node.pop("const")]
        if "patternProperties" in node:
            values = list(node.pop("patternProperties").values())
            if len(values) != 1 or "properties" in node:
                raise SchemaConversionError(f"{path}: several key patterns in one object")
            node["additionalProperties"] = values[0]
        for bound, exclusive, stricter in (
            ("minimum", "exclusiveMinimum", float.__gt__),
            ("maximum", "exclusiveMaximum", float.__lt__),
        ):
            limit = node.get(exclusive)
            if limit is None or isinstance(limit, bool):
                continue
            del node[exclusive]
            inclusive = node.get(bound)
            if inclusive is None or not stricter(float(inclusive), float(limit)):
                node[bound] = limit
                node[exclusive] = True
        return node

    def _lookup(self, ref: str, path: str) -> Schema:
        prefix = "#/$defs/"
        if not ref.startswith(prefix) or ref[len(prefix) :] not in self._defs:
            raise SchemaConversionError(f"{path}: cannot resolve $ref {ref!r}")
        return self._defs[ref[len(prefix) :]]


def _union(branches: list[Schema]) -> Schema:
    """One schema accepting what any of ``branches`` accepts, as Kubernetes can say it."""
    if len(branches) == 1:
        return branches[0]
    types = {b.get("type") for b in branches}
    if types == {"integer", "string"}:
        return {_INT_OR_STRING: True}
    if types == {"object"}:
        merged: Schema = {"type": "object", "properties": {}}
        for branch in branches:
            merged["properties"].update(branch.get("properties", {}))
        common = set.intersection(*(set(b.get("required", [])) for b in branches))
        if common:
            merged["required"] = sorted(common)
        return merged
    if len(types) == 1 and None not in types:
        return {"type": types.pop()}
    if types == {"integer", "number"}:
        return {"type": "number"}
    return {_PRESERVE: True}


# --- Cross-field rules, keyed by the path of the node they sit on --------------------------


def _rules(*pairs: tuple[str, str]) -> Schema:
    """CEL rules (rule, message) as the API server reads them."""
    return {"x-kubernetes-validations": [{"rule": r, "message": m} for r, m in pairs]}


# Each provider's settings block is named after it: gateway-api -> gatewayApi.
_PROVIDER_BLOCKS = {p.value: to_camel(p.value.replace("-", "_")) for p in ProviderName}
_NAMED_LIST = {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]}
_POLICY_EXTRAS: dict[str, Schema] = {"spec.checks": _NAMED_LIST}
_ROLLOUT_EXTRAS: dict[str, Schema] = {
    # The Services and files named after a Rollout must fit a DNS label (canary.model.limits).
    "": _rules(
        (
            "self.metadata.name.size() <= 63",
            "a Rollout's name is at most 63 characters: the objects and files named after it "
            "must fit a DNS label",
        )
    ),
    "spec.provider": _rules(
        *(
            (
                f"!has(self.{block}) || self.name == '{name}'",
                f"settings '{block}' belong to provider '{name}': remove them or change 'name'",
            )
            for name, block in _PROVIDER_BLOCKS.items()
        ),
        (
            "self.name != 'gateway-api' || has(self.gatewayApi)",
            "provider 'gateway-api' needs 'gatewayApi.parentRefs'",
        ),
    ),
    "spec.strategy": _rules(
        (
            "(has(self.canary) ? 1 : 0) + (has(self.abTest) ? 1 : 0) + "
            "(has(self.blueGreen) ? 1 : 0) <= 1",
            "choose one strategy: canary, abTest or blueGreen",
        ),
        ("!has(self.mirror) || has(self.blueGreen)", "'mirror' works with blueGreen only"),
    ),
    "spec.strategy.canary": _rules(
        (
            "!has(self.weights) || (!has(self.stepWeight) && !has(self.maxWeight))",
            "give either 'weights' or 'stepWeight'/'maxWeight', not both",
        ),
        (
            "!has(self.stepWeight) || !has(self.maxWeight) || self.stepWeight <= self.maxWeight",
            "stepWeight must not be above maxWeight",
        ),
    ),
    # Strictly rising weights in 1..100 are at most 100: the bound keeps the CEL cost small.
    "spec.strategy.canary.weights": {
        "maxItems": 100,
        **_rules(
            (
                "self.isSorted() && self.all(w, self.exists_one(v, v == w))",
                "weights must rise: list each step's weight in increasing order",
            )
        ),
    },
    "spec.analysis.checks": _NAMED_LIST,
    "spec.gates.webhooks": _NAMED_LIST,
    "spec.gates.approvals": {"x-kubernetes-list-type": "set"},
}
_CHANNEL_EXTRAS: dict[str, Schema] = {
    "spec": _rules(
        (
            "has(self.slack) != has(self.webhook)",
            "a channel is either 'slack' or 'webhook': give exactly one",
        )
    ),
    "spec.slack": _rules(
        (
            "has(self.tokenSecretRef) != has(self.webhookUrlSecretRef)",
            "choose one Slack mode: tokenSecretRef (with channel) or webhookUrlSecretRef",
        ),
        (
            "!has(self.tokenSecretRef) || (has(self.channel) && self.channel != '')",
            "bot-token mode needs 'channel', e.g. '#deploys'",
        ),
    ),
}


_COMMAND_EXTRAS: dict[str, Schema] = {
    "spec": _rules(("self == oldSelf", "a command cannot be changed: create another one")),
}


def _add_extras(schema: Schema, extras: dict[str, Schema]) -> None:
    for path, additions in extras.items():
        node = schema
        for name in path.split(".") if path else ():
            props = node.get("properties", {})
            if name not in props:
                raise SchemaConversionError(f"extra rules for {path}: no such field in the model")
            node = props[name]
        for key, value in additions.items():
            node[key] = copy.deepcopy(value)


# --- The CRDs --------------------------------------------------------------------------------


def openapi_schema(model: type[BaseModel], extras: dict[str, Schema] | None = None) -> Schema:
    """The structural openAPIV3Schema of a top-level resource model."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    schema = _Converter(raw.pop("$defs", {})).convert(raw, "")
    props = schema.setdefault("properties", {})
    props["apiVersion"] = {"type": "string", "description": "The versioned schema of the object."}
    props["kind"] = {"type": "string", "description": "The REST resource this object represents."}
    props["metadata"] = {"type": "object"}
    required = [
        r for r in schema.pop("required", []) if r not in ("apiVersion", "kind", "metadata")
    ]
    if required:
        schema["required"] = required
    _add_extras(schema, extras or {})
    return _tidy(schema)


def _tidy(node: Schema) -> Schema:
    """``node`` with its keywords in one fixed order, so the files read (and diff) well."""
    rank = {k: i for i, k in enumerate((*_ORDER, "properties", "items", "additionalProperties"))}
    out = {k: node[k] for k in sorted(node, key=lambda k: (rank.get(k, len(rank)), k))}
    if "properties" in out:
        out["properties"] = {n: _tidy(s) for n, s in out["properties"].items()}
    for key in ("items", "additionalProperties"):
        if isinstance(out.get(key), dict):
            out[key] = _tidy(out[key])
    return out


def _column(name: str, path: str, kind: str = "string", priority: int = 0) -> Schema:
    column: Schema = {"name": name, "type": kind, "jsonPath": path}
    if priority:
        column["priority"] = priority
    return column


@dataclass(frozen=True)
class CrdKind:
    """How one model is served: names, scope, subresources, columns and extra rules."""

    model: type[BaseModel]
    plural: str
    short_names: tuple[str, ...]
    scope: str = "Namespaced"
    status: bool = False
    columns: tuple[Schema, ...] = ()
    extras: dict[str, Schema] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return str(self.model.model_fields["kind"].default)

    @property
    def name(self) -> str:
        return f"{self.plural}.{GROUP}"


# Short names are checked against the projects teams run beside canary: Argo Rollouts takes `ro`
# (Rollout), `ar`, `at`, `cat` and `exp`; Flagger's kinds have none. kubectl resolves a short name
# to one resource only, so a clash would hide one project's objects behind the other's.
CRD_KINDS: tuple[CrdKind, ...] = (
    CrdKind(
        Rollout,
        "rollouts",
        ("cro",),
        status=True,
        columns=(
            _column("Phase", ".status.phase"),
            _column("Weight", ".status.canaryWeight", "integer"),
            _column("Revision", ".status.canaryRevision"),
            _column("Message", ".status.message", priority=1),
            _column("Age", ".metadata.creationTimestamp", "date"),
        ),
        extras=_ROLLOUT_EXTRAS,
    ),
    CrdKind(AnalysisPolicy, "analysispolicies", ("ap",), extras=_POLICY_EXTRAS),
    CrdKind(
        ClusterAnalysisPolicy, "clusteranalysispolicies", ("cap",), "Cluster", extras=_POLICY_EXTRAS
    ),
    CrdKind(NotificationChannel, "notificationchannels", ("nc",), extras=_CHANNEL_EXTRAS),
    CrdKind(
        RolloutCommand,
        "rolloutcommands",
        ("rocmd",),
        columns=(
            _column("Rollout", ".spec.rollout"),
            _column("Action", ".spec.action"),
            _column("User", ".spec.user"),
            _column("Age", ".metadata.creationTimestamp", "date"),
        ),
        extras=_COMMAND_EXTRAS,
    ),
)


def custom_resource_definition(kind: CrdKind) -> Schema:
    """The apiextensions.k8s.io/v1 CustomResourceDefinition of one kind."""
    version: Schema = {
        "name": VERSION,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": openapi_schema(kind.model, kind.extras)},
    }
    if kind.status:
        version["subresources"] = {"status": {}}
    if kind.columns:
        version["additionalPrinterColumns"] = [dict(c) for c in kind.columns]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": kind.name},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.kind.lower(),
                "shortNames": list(kind.short_names),
                "categories": ["canary"],
            },
            "scope": kind.scope,
            "versions": [version],
        },
    }


def all_crds() -> list[Schema]:
    """Every CRD canary serves, in a stable order."""
    return [custom_resource_definition(k) for k in CRD_KINDS]


# --- The structural check ----------------------------------------------------------------------

_ALLOWED = _KEPT | {"items", "properties", "additionalProperties", "allOf", "anyOf", "oneOf"}
_ALLOWED |= {"not", "example", "externalDocs", "uniqueItems"}
_HINTS = {
    "$ref": "inline the definition",
    "$defs": "inline the definitions",
    "const": "write enum: [value]",
    "patternProperties": "use additionalProperties",
    "discriminator": "drop it; each branch must be described by the one schema",
}
_JUNCTORS = ("allOf", "anyOf", "oneOf", "not")
# Inside allOf/anyOf/oneOf/not only value validations may stand, never structure.
_NOT_IN_JUNCTORS = ("type", "description", "default", "nullable", "additionalProperties", _PRESERVE)


def structural_problems(schema: Schema) -> list[str]:
    """What keeps ``schema`` (an openAPIV3Schema) from being structural, each with its path."""
    problems: list[str] = []
    _check(schema, "$", problems, in_junctor=False)
    if schema.get("type") != "object":
        problems.append("$: the root must be of type object")
    metadata = schema.get("properties", {}).get("metadata")
    if metadata is not None and metadata != {"type": "object"}:
        problems.append("$.metadata: must be just {type: object}; the API server defines it")
    return problems


def _check(node: object, path: str, problems: list[str], in_junctor: bool) -> None:
    if not isinstance(node, dict):
        problems.append(f"{path}: a schema must be a mapping, not {type(node).__name__}")
        return
    for key in node:
        if key not in _ALLOWED and not str(key).startswith("x-kubernetes-"):
            hint = _HINTS.get(key, "OpenAPI v3.0 as Kubernetes reads it has no such keyword")
            problems.append(f"{path}: {key!r} is not allowed: {hint}")
    for bound in ("exclusiveMinimum", "exclusiveMaximum"):
        if bound in node and not isinstance(node[bound], bool):
            problems.append(f"{path}: {bound} must be a boolean beside minimum/maximum")
    if node.get("uniqueItems") is True:
        problems.append(f"{path}: uniqueItems is forbidden; use x-kubernetes-list-type: set")
    kind = node.get("type")
    if in_junctor:
        problems.extend(
            f"{path}: {k!r} inside allOf/anyOf/oneOf/not" for k in _NOT_IN_JUNCTORS if k in node
        )
    elif kind is None and not node.get(_INT_OR_STRING) and not node.get(_PRESERVE):
        problems.append(f"{path}: no type")
    elif kind is not None and (not isinstance(kind, str) or kind not in _TYPES):
        problems.append(f"{path}: type must be one of {sorted(_TYPES)}, not {kind!r}")
    extra = node.get("additionalProperties")
    if extra is not None:
        if "properties" in node:
            problems.append(f"{path}: additionalProperties together with properties")
        if isinstance(extra, bool):
            problems.append(f"{path}: boolean additionalProperties; use {_PRESERVE} or drop it")
        else:
            _check(extra, f"{path}.*", problems, in_junctor)
    if node.get("x-kubernetes-list-type") == "map":
        keys = node.get("x-kubernetes-list-map-keys", [])
        required = node.get("items", {}).get("required", [])
        if not keys or not set(keys) <= set(required):
            problems.append(f"{path}: list-type map needs list-map-keys that items require")
    for rule in node.get("x-kubernetes-validations", []):
        if not isinstance(rule, dict) or not isinstance(rule.get("rule"), str):
            problems.append(f"{path}: x-kubernetes-validations entries need a 'rule' string")
    for name, sub in (node.get("properties") or {}).items():
        _check(sub, f"{path}.{name}", problems, in_junctor)
    if "items" in node:
        _check(node["items"], f"{path}[*]", problems, in_junctor)
    for junctor in _JUNCTORS:
        branches = node.get(junctor)
        if branches is None:
            continue
        for i, branch in enumerate(branches if isinstance(branches, list) else [branches]):
            _check(branch, f"{path}.{junctor}[{i}]", problems, in_junctor=True)
            inner = branch.get("properties", {}) if isinstance(branch, dict) else {}
            if set(inner) - set(node.get("properties") or {}):
                problems.append(f"{path}.{junctor}[{i}]: properties not declared outside it")
