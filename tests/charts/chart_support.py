"""What the chart's tests share: paths, the values schema, the documented RBAC, an RBAC
evaluator, a field check of built-in kinds, the stand-in ServiceMonitor CRD and kubectl."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator
from kubernetes import client

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "canary"
CRDS = CHART / "crds"
POLICIES = ROOT / "policies"
DOCS = ROOT / "docs"
MESH_CRDS = ROOT / "tests" / "data" / "mesh-crds"
RELEASE, NAMESPACE = "canary", "canary-system"

Json = dict[str, Any]
Rule = dict[str, list[str]]


# --- values ----------------------------------------------------------------------------------


def schema() -> Json:
    loaded: Json = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    return loaded


def default_values() -> Json:
    loaded: Json = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    return loaded


def schema_errors(values: Json) -> list[str]:
    """What `helm install` would refuse in these values: `path: message`, sorted."""
    validator = Draft7Validator(schema())
    found = []
    for error in validator.iter_errors(values):
        # an `if`/`then` failure reports the inner error; report the deepest ones
        for leaf in _leaves(error):
            path = ".".join(str(p) for p in leaf.absolute_path) or "(root)"
            found.append(f"{path}: {leaf.message}")
    return sorted(found)


def _leaves(error: Any) -> list[Any]:
    return [e for sub in error.context for e in _leaves(sub)] if error.context else [error]


# --- RBAC ----------------------------------------------------------------------------------


def documented_rbac() -> tuple[list[Rule], list[Rule]]:
    """docs/controller.md's RBAC: (the ClusterRole's rules, the Lease Role's rules). The same
    block tests/controller/test_operations.py checks against the controller's requests."""
    text = (DOCS / "controller.md").read_text(encoding="utf-8")
    block = text.split("## RBAC", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    cluster_part, _, role_part = block.partition("# Role in the Lease's namespace")
    return yaml.safe_load(cluster_part), yaml.safe_load(role_part)


@dataclass(frozen=True)
class Request:
    """One API request as RBAC sees it."""

    verb: str
    group: str
    resource: str  # plural, or plural/subresource
    namespace: str | None  # None: cluster-scoped, or across all namespaces

    def __str__(self) -> str:
        where = f" in {self.namespace}" if self.namespace else " cluster-wide"
        return f"{self.verb} {self.group or 'core'}/{self.resource}{where}"


def request_of(method: str, target: str) -> Request | None:
    """The RBAC request of an HTTP request to the API server (None: not a resource path)."""
    path, _, query = target.partition("?")
    parts = path.strip("/").split("/")
    if parts[0] == "api" and len(parts) >= 3:
        group, rest = "", parts[2:]
    elif parts[0] == "apis" and len(parts) >= 4:
        group, rest = parts[1], parts[3:]
    else:
        return None
    namespace = None
    if rest[0] == "namespaces" and len(rest) > 2:
        namespace, rest = rest[1], rest[2:]
    resource = rest[0] + (f"/{rest[2]}" if len(rest) > 2 else "")
    verb = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method)
    if verb is None:
        named = len(rest) > 1
        verb = "get" if named else ("watch" if re.search(r"\bwatch=(1|true)", query) else "list")
    return Request(verb, group, resource, namespace)


def _rule_allows(rule: Json, request: Request) -> bool:
    return (
        (request.verb in rule["verbs"] or "*" in rule["verbs"])
        and request.group in rule["apiGroups"]
        and request.resource in rule["resources"]
        and not rule.get("resourceNames")
    )


def rbac_allows(objects: list[Json], subject: tuple[str, str], request: Request) -> bool:
    """Whether the rendered Roles, ClusterRoles and bindings let the ServiceAccount
    `subject` (namespace, name) make `request`, as the API server's RBAC authorizer decides."""
    roles = {
        (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o.get("rules") or []
        for o in objects
        if o["kind"] in ("Role", "ClusterRole")
    }
    for binding in objects:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        subjects = {
            (s.get("namespace"), s["name"])
            for s in binding.get("subjects") or []
            if s["kind"] == "ServiceAccount"
        }
        if subject not in subjects:
            continue
        bound_in = binding["metadata"].get("namespace")
        if binding["kind"] == "RoleBinding" and request.namespace != bound_in:
            continue
        ref = binding["roleRef"]
        role_ns = bound_in if ref["kind"] == "Role" else None
        rules = roles.get((ref["kind"], role_ns, ref["name"]))
        if rules is None:
            raise AssertionError(f"{binding['metadata']['name']}: no {ref['kind']} {ref['name']}")
        if any(_rule_allows(rule, request) for rule in rules):
            return True
    return False


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


# --- kubectl -------------------------------------------------------------------------------


def kubectl_path() -> str:
    found = shutil.which("kubectl")
    if found is None:
        pytest.fail(
            "kubectl is not installed: the chart's manifests are checked with "
            "`kubectl apply --dry-run=server` against the test API server. Install kubectl "
            "1.25 or later and put it on PATH (the development machines have it as "
            "/usr/bin/kubectl, from the Debian package `kubectl`)."
        )
    return found


@dataclass
class Kubectl:
    """kubectl against the test API server, with a discovery cache of its own."""

    kubeconfig: Path
    cache: Path

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [kubectl_path(), "--cache-dir", str(self.cache), *args],
            env={**os.environ, "KUBECONFIG": str(self.kubeconfig)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result
