"""What the chart's tests share: paths, the real helm (render, NOTES, lint), the values
schema, the documented RBAC, an RBAC evaluator, a field check of built-in kinds, stand-in CRDs
for the kinds the test API server does not serve, and kubectl."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import celpy
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


# --- helm ------------------------------------------------------------------------------------


def helm_path() -> str:
    found = shutil.which("helm")
    if found is None:
        pytest.fail(
            "helm is not installed: the chart is rendered and linted with the real helm. "
            "scripts/bootstrap.sh (make .venv/.installed) puts helm and kubectl into the venv's "
            "bin (scripts/install_kube_tools.py)."
        )
    return found


class HelmError(Exception):
    """helm refused: its stderr (a `fail` or `required` message, a schema error...)."""


def helm(*args: str) -> str:
    """Runs helm offline (no kubeconfig: it must not reach any cluster); its stdout."""
    with tempfile.TemporaryDirectory(prefix="helm-") as home:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": home,
            "KUBECONFIG": os.path.join(home, "no-cluster"),
            "HELM_CACHE_HOME": os.path.join(home, "cache"),
            "HELM_CONFIG_HOME": os.path.join(home, "config"),
            "HELM_DATA_HOME": os.path.join(home, "data"),
        }
        result = subprocess.run(
            [helm_path(), *args], env=env, capture_output=True, text=True, timeout=120, check=False
        )
    if result.returncode != 0:
        raise HelmError(f"{result.stdout}\n{result.stderr}".strip())
    return result.stdout


@dataclass
class Rendered:
    """What `helm template` printed: each document with the template it came from."""

    texts: list[tuple[str, str]]
    notes: str = ""
    _parsed: list[tuple[str, Json]] = field(default_factory=list)

    def documents(self) -> list[tuple[str, Json]]:
        if not self._parsed:
            for template, text in self.texts:
                obj = yaml.safe_load(text)
                if obj is not None:
                    self._parsed.append((template, obj))
        return self._parsed

    def objects(self) -> list[Json]:
        return [obj for _, obj in self.documents()]

    def find(self, kind: str) -> list[Json]:
        return [o for o in self.objects() if o["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> Json:
        found = [o for o in self.find(kind) if name is None or o["metadata"]["name"] == name]
        assert len(found) == 1, f"{len(found)} {kind} {name or ''} rendered"
        return found[0]

    def manifest(self) -> str:
        return "".join(f"---\n{text}\n" for _, text in self.texts)


_SOURCE = re.compile(r"^# Source: [^/]+/(\S+)$", re.MULTILINE)


def _split(output: str) -> list[tuple[str, str]]:
    """helm's output, one (template, text) per document."""
    documents = []
    for chunk in re.split(r"^---\s*$", output, flags=re.MULTILINE):
        m = _SOURCE.search(chunk)
        if m is None:
            if chunk.strip():
                raise AssertionError(f"a document without its source:\n{chunk[:300]}")
            continue
        documents.append((m.group(1), chunk[m.end() :].strip("\n")))
    return documents


@functools.cache
def _rendered(values_json: str, release: str, extra: tuple[str, ...]) -> Rendered:
    with tempfile.TemporaryDirectory(prefix="values-") as tmp:
        values = Path(tmp) / "values.yaml"
        values.write_text(yaml.safe_dump(json.loads(values_json)), encoding="utf-8")
        common = [release, str(CHART), "--namespace", NAMESPACE, "--values", str(values)]
        texts = _split(helm("template", *common, *extra))
        release_json = json.loads(helm("install", *common, "--dry-run=client", "--output=json"))
    return Rendered(texts, notes=release_json["info"].get("notes", ""))


def render(values: Json | None = None, release: str = RELEASE, *extra: str) -> Rendered:
    """The chart as `helm template` renders it with these values (over values.yaml), and the
    NOTES of `helm install --dry-run=client`. HelmError when helm refuses. ``extra``: more
    flags of `helm template` (e.g. --kube-version)."""
    cached = _rendered(json.dumps(values or {}, sort_keys=True), release, extra)
    return Rendered(list(cached.texts), cached.notes)


def lint(values: Json | None = None) -> str:
    """`helm lint --strict` with these values; its output (HelmError when it fails)."""
    with tempfile.TemporaryDirectory(prefix="values-") as tmp:
        path = Path(tmp) / "values.yaml"
        path.write_text(yaml.safe_dump(values or {}), encoding="utf-8")
        return helm("lint", "--strict", str(CHART), "--namespace", NAMESPACE, "-f", str(path))


# --- the values the tests render (docs/helm.md lists them) ----------------------------------

TOKEN = "operate 3f9a0c1e5b7d2f4a6c8e0b1d3f5a7c9e"
VARIANTS: dict[str, Json] = {
    "defaults": {},
    # the ServiceMonitor and the API on, and most other values away from their defaults
    "monitored-with-api": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus"}},
        "api": {
            "enabled": True,
            "url": "https://canary.example.com",
            "tokens": {"entries": {"ci": TOKEN, "dashboard": "read 0b8e2f4a6c1d3e5f7a9b0c2d"}},
        },
        "prometheus": {
            "url": "http://prometheus.istio-system:9090",
            "bearerTokenSecret": {"name": "prometheus-token"},
        },
        "podAnnotations": {"example.com/team": "platform"},
        "podLabels": {"team": "platform"},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "infra"}],
        "imagePullSecrets": [{"name": "regcred"}],
        "priorityClassName": "system-cluster-critical",
        "extraArgs": ["--api-url=https://canary.example.com/ui"],
        "extraEnv": [{"name": "TZ", "value": "UTC"}],
        "service": {"annotations": {"example.com/scrape": "no"}},
        "serviceAccount": {"annotations": {"iam.example.com/role": "canary"}},
    },
    # the Rollouts of two namespaces only, without SMI
    "namespaced": {"watchNamespaces": ["shop", "payments"], "rbac": {"providers": {"smi": False}}},
    # one replica without election, an existing ServiceAccount, nothing optional
    "minimal": {
        "replicaCount": 1,
        "leaderElection": {"enabled": False},
        "podDisruptionBudget": {"enabled": False},
        "policies": {"install": False},
        "serviceAccount": {"create": False, "name": "existing"},
        "rbac": {"create": False},
        "notifications": {"enabled": False},
        "restoreOnDelete": True,
        "fullnameOverride": "cd",
    },
    # everything a platform team adds: monitoring, a NetworkPolicy, a TLS Prometheus, volumes
    "monitoring": {
        "image": {"digest": "sha256:" + "ab" * 32},
        "serviceMonitor": {"enabled": True},
        "prometheusRule": {
            "enabled": True,
            "labels": {"release": "kube-prometheus"},
            "stuckAfter": "30m",
        },
        "grafanaDashboard": {"enabled": True, "annotations": {"grafana_folder": "Delivery"}},
        "networkPolicy": {
            "enabled": True,
            "metricsFrom": [
                {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}
                    }
                }
            ],
            "apiFrom": [{"podSelector": {"matchLabels": {"app": "ci"}}}],
            "egress": [
                {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]},
                {"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]},
            ],
        },
        "api": {"enabled": True, "tokens": {"entries": {"ci": TOKEN}}},
        "prometheus": {
            "url": "https://prometheus.monitoring:9091",
            "caBundle": {"configMap": "cluster-ca", "key": "ca.pem"},
        },
        "extraVolumes": [{"name": "webhook-ca", "secret": {"secretName": "webhook-ca"}}],
        "extraVolumeMounts": [
            {"name": "webhook-ca", "mountPath": "/etc/webhook-ca", "readOnly": True}
        ],
        "rbac": {"copyGuard": {"protectedNamespaces": ["kube-system", "canary-system"]}},
    },
}


def values_of(variant: str) -> Json:
    merged: Json = merge_values(default_values(), VARIANTS[variant])
    return merged


def rendered(variant: str = "defaults") -> Rendered:
    return render(VARIANTS[variant])


def container(result: Rendered) -> Json:
    spec: Json = result.one("Deployment")["spec"]["template"]["spec"]
    first: Json = spec["containers"][0]
    return first


# --- values ----------------------------------------------------------------------------------


def schema() -> Json:
    loaded: Json = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    return loaded


def default_values() -> Json:
    loaded: Json = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    return loaded


def merge_values(base: Any, override: Any) -> Any:
    """Helm's coalescing of `--values` over values.yaml: maps merge, the rest replaces, a
    null deletes the key (for checking a variant's merged values against the schema)."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = merge_values(base.get(key), value)
        return merged
    return override


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


# --- the copy guard (templates/admission-policy.yaml), evaluated ------------------------------

CONTROLLER_USER = f"system:serviceaccount:{NAMESPACE}:canary"


def _program(expression: str) -> Any:
    env = celpy.Environment()
    return env.program(env.compile(expression))


@dataclass(frozen=True)
class Verdict:
    applies: bool  # the matchConditions held: the policy judges this request
    refusals: tuple[str, ...]  # the messages of the validations that failed

    @property
    def admitted(self) -> bool:
        return not self.refusals


def judge(
    policy: Json, operation: str, obj: Json | None, old: Json | None, user: str | None = None
) -> Verdict:
    """The policy's verdict on one admission request, as the API server evaluates it."""
    subject = obj if obj is not None else old
    assert subject is not None
    resource = {"ConfigMap": "configmaps", "Secret": "secrets"}[subject["kind"]]
    rules = policy["spec"]["matchConstraints"]["resourceRules"]
    if not any(resource in r["resources"] and operation in r["operations"] for r in rules):
        return Verdict(False, ())
    request = {
        "operation": operation,
        "namespace": subject["metadata"]["namespace"],
        "name": subject["metadata"]["name"],
        "userInfo": {"username": user or CONTROLLER_USER},
        "resource": {"group": "", "version": "v1", "resource": resource},
    }
    activation = {
        "request": celpy.json_to_cel(request),
        "object": celpy.json_to_cel(obj),
        "oldObject": celpy.json_to_cel(old),
    }
    for condition in policy["spec"]["matchConditions"]:
        if not bool(_program(condition["expression"]).evaluate(activation)):
            return Verdict(False, ())
    refusals = []
    for validation in policy["spec"]["validations"]:
        result = _program(validation["expression"]).evaluate(activation)
        assert isinstance(result, celpy.celtypes.BoolType), (validation, result)
        if not bool(result):
            refusals.append(validation["message"])
    return Verdict(True, tuple(refusals))


# --- kubectl -------------------------------------------------------------------------------


def kubectl_path() -> str:
    found = shutil.which("kubectl")
    if found is None:
        pytest.fail(
            "kubectl is not installed: the chart's manifests are checked with "
            "`kubectl apply --dry-run=server` against the test API server. "
            "scripts/bootstrap.sh (make .venv/.installed) puts kubectl and helm into the "
            "venv's bin (scripts/install_kube_tools.py)."
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
