"""Kinds as a real API server knows them, for the chart's tests: a field check of built-in
kinds by the official client's models, and stand-in CRDs for the kinds the test API server
does not serve (the prometheus-operator's ServiceMonitor and PrometheusRule, NetworkPolicy,
ValidatingAdmissionPolicy and its binding)."""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client

Json = dict[str, Any]


# --- built-in kinds: only fields the Kubernetes API knows ---------------------------------

_MODELS = client.models


def unknown_fields(obj: Json) -> list[str]:
    """Fields of a built-in object that its Kubernetes type does not have, and values of the
    wrong primitive type, by the official client's models (generated from Kubernetes'
    OpenAPI). The test API server stores built-in kinds without such a check, so this stands
    in for a real API server's strict field validation. [] for kinds the client lacks."""
    version = obj["apiVersion"].rpartition("/")[2]
    model = getattr(_MODELS, version[:1].upper() + version[1:] + obj["kind"], None)
    if model is None:
        return []
    return _check(obj, model.__name__, obj["kind"])


def _check(value: Any, type_name: str, path: str) -> list[str]:
    if type_name.startswith("List["):
        if not isinstance(value, list):
            return [f"{path}: a list expected, got {value!r}"]
        inner = type_name[5:-1]
        return [p for i, item in enumerate(value) for p in _check(item, inner, f"{path}[{i}]")]
    if type_name.startswith("Dict["):
        if not isinstance(value, dict):
            return [f"{path}: a map expected, got {value!r}"]
        inner = type_name[5:-1].split(", ", 1)[1]
        return [p for k, item in value.items() for p in _check(item, inner, f"{path}.{k}")]
    primitive = {"str": str, "int": int, "bool": bool, "float": (int, float), "bytes": str}
    if type_name in primitive:
        expected = primitive[type_name]
        wrong = not isinstance(value, expected) or (type_name == "int" and isinstance(value, bool))
        return [f"{path}: {type_name} expected, got {value!r}"] if wrong else []
    if type_name in ("object", "datetime"):
        return []
    model = getattr(_MODELS, type_name)
    if not isinstance(value, dict):
        return [f"{path}: an object ({type_name}) expected, got {value!r}"]
    by_key = {key: attr for attr, key in model.attribute_map.items()}
    problems = []
    for key, item in value.items():
        if key not in by_key:
            problems.append(f'{path}: unknown field "{key}"')
        else:
            problems += _check(item, model.openapi_types[by_key[key]], f"{path}.{key}")
    return problems


def missing_required(obj: Json) -> str | None:
    """The client models' own check of required fields (e.g. a container without a name):
    their error, or None."""
    version = obj["apiVersion"].rpartition("/")[2]
    name = version[:1].upper() + version[1:] + obj["kind"]
    if getattr(_MODELS, name, None) is None:
        return None
    try:
        client.ApiClient().deserialize(json.dumps(obj), name, "application/json")
    except ValueError as exc:
        return str(exc)
    return None


# --- the prometheus-operator's ServiceMonitor, stood in for --------------------------------


def service_monitor_crd() -> Json:
    """A stand-in for the prometheus-operator's ServiceMonitor CRD (monitoring.coreos.com/v1),
    which is not available here: the same group, version, names and scope, and a schema with
    the ServiceMonitor fields the chart may write (selector, namespaceSelector, endpoints with
    port, path, interval, scrapeTimeout, scheme, honorLabels), written from the operator's
    documented API. It is not the operator's schema: its only job is that the test API server
    serves the kind and refuses a field the chart misspells."""
    string = {"type": "string"}
    label_selector = {
        "type": "object",
        "properties": {
            "matchLabels": {"type": "object", "additionalProperties": string},
            "matchExpressions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["key", "operator"],
                    "properties": {
                        "key": string,
                        "operator": string,
                        "values": {"type": "array", "items": string},
                    },
                },
            },
        },
    }
    endpoint = {
        "type": "object",
        "properties": {
            "port": string,
            "targetPort": {"x-kubernetes-int-or-string": True},
            "path": string,
            "scheme": {"type": "string", "enum": ["http", "https"]},
            "interval": {"type": "string", "pattern": "^(0|(([0-9]+)(ms|s|m|h))+)$"},
            "scrapeTimeout": {"type": "string", "pattern": "^(0|(([0-9]+)(ms|s|m|h))+)$"},
            "honorLabels": {"type": "boolean"},
        },
    }
    spec = {
        "type": "object",
        "required": ["selector", "endpoints"],
        "properties": {
            "selector": label_selector,
            "namespaceSelector": {
                "type": "object",
                "properties": {
                    "any": {"type": "boolean"},
                    "matchNames": {"type": "array", "items": string},
                },
            },
            "endpoints": {"type": "array", "items": endpoint},
            "jobLabel": string,
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "scope": "Namespaced",
            "names": {
                "plural": "servicemonitors",
                "singular": "servicemonitor",
                "kind": "ServiceMonitor",
                "listKind": "ServiceMonitorList",
                "shortNames": ["smon"],
            },
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": string,
                                "kind": string,
                                "metadata": {"type": "object"},
                                "spec": spec,
                            },
                        }
                    },
                }
            ],
        },
    }


def prometheus_rule_crd() -> Json:
    """A stand-in for the prometheus-operator's PrometheusRule CRD, as service_monitor_crd
    is for ServiceMonitor: the fields of rule groups and rules from the operator's documented
    API, so that the test API server serves the kind and refuses a misspelled field."""
    string = {"type": "string"}
    duration = {"type": "string", "pattern": "^(0|(([0-9]+)(y|w|d|h|m|s|ms))+)$"}
    rule = {
        "type": "object",
        "required": ["expr"],
        "properties": {
            "alert": string,
            "record": string,
            "expr": {"x-kubernetes-int-or-string": True},
            "for": duration,
            "keep_firing_for": duration,
            "labels": {"type": "object", "additionalProperties": string},
            "annotations": {"type": "object", "additionalProperties": string},
        },
    }
    group = {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "interval": duration,
            "rules": {"type": "array", "items": rule},
        },
    }
    spec = {"type": "object", "properties": {"groups": {"type": "array", "items": group}}}
    return _stand_in_crd("monitoring.coreos.com", "v1", "PrometheusRule", "prometheusrules", spec)


def _stand_in_crd(
    group: str, version: str, kind: str, plural: str, spec: Json, namespaced: bool = True
) -> Json:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced" if namespaced else "Cluster",
            "names": {
                "plural": plural,
                "singular": kind.lower(),
                "kind": kind,
                "listKind": f"{kind}List",
            },
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec,
                            },
                        }
                    },
                }
            ],
        },
    }


_PRIMITIVE_SCHEMAS: dict[str, Json] = {
    "str": {"type": "string"},
    "int": {"type": "integer"},
    "bool": {"type": "boolean"},
    "float": {"type": "number"},
}


def _model_schema(type_name: str, seen: frozenset[str] = frozenset()) -> Json:
    """An OpenAPI schema of a kubernetes client model: its fields, their types, nothing else
    (`object` fields, e.g. int-or-string ports, and recursion accept anything)."""
    if type_name.startswith("List["):
        return {"type": "array", "items": _model_schema(type_name[5:-1], seen)}
    if type_name.startswith("Dict["):
        inner = type_name[5:-1].split(", ", 1)[1]
        return {"type": "object", "additionalProperties": _model_schema(inner, seen)}
    if type_name in _PRIMITIVE_SCHEMAS:
        return dict(_PRIMITIVE_SCHEMAS[type_name])
    model = getattr(_MODELS, type_name, None)
    if model is None or type_name in seen:
        return {"x-kubernetes-preserve-unknown-fields": True}
    properties = {
        model.attribute_map[attr]: _model_schema(kind, seen | {type_name})
        for attr, kind in model.openapi_types.items()
    }
    return {"type": "object", "properties": properties}


def built_in_stand_in_crd(api_version: str, kind: str, plural: str, namespaced: bool) -> Json:
    """A CRD that has the test API server serve a built-in kind it lacks (NetworkPolicy,
    ValidatingAdmissionPolicy...), with the fields of the official client's model of it
    (generated from Kubernetes' OpenAPI): unknown fields and wrong types are refused, as a
    real API server refuses them. It stores; it enforces nothing (no network, no admission)."""
    group, _, version = api_version.rpartition("/")
    model = version[:1].upper() + version[1:] + kind
    spec = _model_schema(getattr(_MODELS, model).openapi_types["spec"])
    return _stand_in_crd(group, version, kind, plural, spec, namespaced)


STAND_IN_KINDS = (
    ("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies", True),
    (
        "admissionregistration.k8s.io/v1",
        "ValidatingAdmissionPolicy",
        "validatingadmissionpolicies",
        False,
    ),
    (
        "admissionregistration.k8s.io/v1",
        "ValidatingAdmissionPolicyBinding",
        "validatingadmissionpolicybindings",
        False,
    ),
)


def stand_in_crds() -> list[Json]:
    """Every kind the chart may render that the test API server does not serve itself."""
    return [
        service_monitor_crd(),
        prometheus_rule_crd(),
        *(built_in_stand_in_crd(*kind) for kind in STAND_IN_KINDS),
    ]
