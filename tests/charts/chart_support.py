"""What the chart's tests share: paths, the real helm (render, NOTES, lint), the sets of
values the tests render, the values schema, and kubectl. RBAC and the copy guard are in
chart_rbac.py, kinds and stand-in CRDs in chart_kinds.py, the controller run in
chart_controller.py."""

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

import pytest
import yaml
from jsonschema import Draft7Validator

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "canary"
CRDS = CHART / "crds"
POLICIES = ROOT / "policies"
DOCS = ROOT / "docs"
MESH_CRDS = ROOT / "tests" / "data" / "mesh-crds"
RELEASE, NAMESPACE = "canary", "canary-system"

Json = dict[str, Any]


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
ROLLOUT_LINK = (
    "https://grafana.example.com/d/canary-rollouts?var-namespace={namespace}&var-rollout={name}"
)
VARIANTS: dict[str, Json] = {
    "defaults": {},
    # the ServiceMonitor and the API on, and most other values away from their defaults
    "monitored-with-api": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus"}},
        "api": {
            "enabled": True,
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
        "notifications": {"enabled": True, "rolloutLink": ROLLOUT_LINK},
        "extraArgs": ["--workers=16"],
        "extraEnv": [{"name": "TZ", "value": "UTC"}],
        "service": {"annotations": {"example.com/scrape": "no"}},
        "serviceAccount": {"annotations": {"iam.example.com/role": "canary"}},
    },
    # three active replicas sharing three shards of the Rollouts
    "sharded": {"replicaCount": 3, "shards": 3},
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
        "commands": {"admissionPolicy": {"enabled": False}},
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
        "commands": {"approverRole": {"create": True, "aggregateTo": ["edit", "admin"]}},
        "webhookAllow": ["10.20.0.0/16", "fd00::/8"],
        "forbidInlineQueries": True,
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
