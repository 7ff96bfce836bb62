"""The Helm chart (charts/canary), tested by what runs here: `helm` cannot be installed on these
machines, so the chart is rendered by chart_render.py (a stand-in for `helm template`), its
values checked against values.schema.json, its RBAC against docs/controller.md, its policies
and CRDs against the repository's, its manifests applied with `kubectl apply --dry-run=server`
to the test API server, and the controller run with the arguments and RBAC it renders."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from chart_render import Rendered, TemplateFailError, merge_values, render
from chart_support import (
    CHART,
    CRDS,
    DOCS,
    MESH_CRDS,
    NAMESPACE,
    POLICIES,
    ROOT,
    Kubectl,
    Request,
    default_values,
    documented_rbac,
    kubectl_path,
    missing_required,
    rbac_allows,
    request_of,
    schema,
    schema_errors,
    service_monitor_crd,
    unknown_fields,
)

from canary.cli.crds import crd_files
from canary.testing import ApiServer

Json = dict[str, Any]
T = TypeVar("T")

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
}


def values_of(variant: str) -> Json:
    merged: Json = merge_values(default_values(), VARIANTS[variant])
    return merged


def rendered(variant: str = "defaults") -> Rendered:
    return render(CHART, VARIANTS[variant])


def container(result: Rendered) -> Json:
    spec: Json = result.one("Deployment")["spec"]["template"]["spec"]
    first: Json = spec["containers"][0]
    return first


# --- values.yaml and values.schema.json -------------------------------------------------------


def test_the_schema_is_draft_07_and_accepts_values_yaml() -> None:
    assert schema()["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema_errors(default_values()) == []


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_schema_accepts_each_variant_the_tests_render(variant: str) -> None:
    assert schema_errors(values_of(variant)) == []


BAD_VALUES = [
    pytest.param(
        {"replicaCount": "two"}, "replicaCount: 'two' is not of type 'integer'", id="type"
    ),
    pytest.param(
        {"replicas": 2},
        "(root): Additional properties are not allowed ('replicas' was unexpected)",
        id="unknown-key",
    ),
    pytest.param(
        {"image": {"tag": "1.0", "digest": "sha256:00"}},
        "image: Additional properties are not allowed ('digest' was unexpected)",
        id="unknown-nested-key",
    ),
    pytest.param(
        {"leaderElection": {"enabled": False}},
        "replicaCount: 2 is greater than the maximum of 1",
        id="two-replicas-without-election",
    ),
    pytest.param(
        {"api": {"enabled": True}},
        "api.tokens.existingSecret: '' should be non-empty",
        id="api-without-tokens",
    ),
    pytest.param(
        {"api": {"tokens": {"entries": {"ci": "admin abcdefabcdefabcdef"}}}},
        "api.tokens.entries.ci: 'admin abcdefabcdefabcdef' does not match",
        id="token-scope",
    ),
    pytest.param(
        {"watchNamespaces": ["Shop"]}, "watchNamespaces.0: 'Shop' does not match", id="namespace"
    ),
    pytest.param(
        {"leaderElection": {"leaseDuration": "15"}},
        "leaderElection.leaseDuration: '15' does not match",
        id="duration",
    ),
    pytest.param({"logLevel": "trace"}, "logLevel: 'trace' is not one of", id="enum"),
    pytest.param(
        {"prometheus": {"url": "prometheus:9090"}},
        "prometheus.url: 'prometheus:9090' does not match",
        id="url",
    ),
]


@pytest.mark.parametrize(("change", "message"), BAD_VALUES)
def test_the_schema_rejects_a_bad_value_with_a_clear_message(change: Json, message: str) -> None:
    values = default_values()
    for key, value in change.items():
        values[key] = {**values[key], **value} if isinstance(value, dict) else value
    errors = schema_errors(values)
    assert any(e.startswith(message) for e in errors), errors


def _leaf_paths(node: Json, prefix: str = "") -> list[str]:
    """Paths of the schema's values: a property with properties of its own is a group."""
    paths = []
    for name, sub in node.get("properties", {}).items():
        if "properties" in sub:
            paths += _leaf_paths(sub, f"{prefix}{name}.")
        else:
            paths.append(prefix + name)
    return paths


def _values_yaml_keys() -> dict[str, bool]:
    """Each key path of values.yaml -> whether a comment stands right above it."""
    found, stack = {}, []
    previous = ""
    for line in (CHART / "values.yaml").read_text(encoding="utf-8").splitlines():
        m = re.match(r"^( *)([A-Za-z][\w]*):", line)
        if m:
            depth = len(m.group(1)) // 2
            stack = [*stack[:depth], m.group(2)]
            found[".".join(stack)] = previous.strip().startswith("#")
        if line.strip():
            previous = line
    return found


def test_every_value_is_in_the_schema_commented_and_in_the_docs() -> None:
    leaves = set(_leaf_paths(schema())) - {"global"}
    keys = _values_yaml_keys()
    in_values = {k for k in keys if k in leaves}
    assert in_values == leaves, f"in the schema only: {leaves - in_values}"
    groups = {k for k in keys if not any(k.startswith(leaf + ".") for leaf in leaves)} - leaves
    assert all(any(leaf.startswith(g + ".") for leaf in leaves) for g in groups), groups
    assert not [k for k in in_values if not keys[k]], "values without a comment above them"
    docs = (DOCS / "helm.md").read_text(encoding="utf-8")
    table = set(re.findall(r"^\| `([\w.]+)` \|", docs, re.MULTILINE))
    assert table == leaves | {"global"}, (
        f"docs/helm.md lacks {sorted(leaves - table)}, has extra {sorted(table - leaves)}"
    )


def test_every_schema_property_has_a_description() -> None:
    def walk(node: Json, path: str) -> list[str]:
        missing = [] if "description" in node or not path else [path]
        for name, sub in node.get("properties", {}).items():
            missing += walk(sub, f"{path}.{name}".lstrip("."))
        return missing

    assert walk(schema(), "") == []


def test_the_chart_runs_the_version_of_canary_in_pyproject() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "canary"
    assert re.fullmatch(r"\d+\.\d+\.\d+", chart["version"])
    assert chart["appVersion"] == project["version"]
    assert project["scripts"]["canary"], "the image runs the `canary` command"


# --- what renders ------------------------------------------------------------------------


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_manifests_parse_and_name_themselves(variant: str) -> None:
    result = rendered(variant)
    seen = set()
    for template, obj in result.documents():
        assert isinstance(obj, dict), template
        assert obj.get("apiVersion"), template
        assert obj.get("kind"), template
        meta = obj["metadata"]
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", meta["name"]), meta
        key = (obj["kind"], meta.get("namespace"), meta["name"])
        assert key not in seen, f"{key} rendered twice"
        seen.add(key)
        cluster_scoped = obj["kind"] in ("ClusterRole", "ClusterRoleBinding")
        cluster_scoped |= obj["kind"] == "ClusterAnalysisPolicy"
        if cluster_scoped:
            assert "namespace" not in meta, key
        elif obj["kind"] != "RoleBinding" or meta["name"].endswith("leader-election"):
            assert meta["namespace"] == NAMESPACE, key
        if obj["kind"] != "ClusterAnalysisPolicy":  # the shipped files, as they are
            assert meta["labels"]["app.kubernetes.io/managed-by"] == "Helm", key


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_built_in_objects_have_only_fields_kubernetes_knows(variant: str) -> None:
    for obj in rendered(variant).objects():
        label = f"{obj['kind']}/{obj['metadata']['name']}"
        assert unknown_fields(obj) == [], label
        assert missing_required(obj) is None, label


def test_the_default_objects() -> None:
    kinds = sorted(f"{o['kind']}/{o['metadata']['name']}" for o in rendered().objects())
    assert kinds == [
        "ClusterAnalysisPolicy/gateway-api-envoy",
        "ClusterAnalysisPolicy/haproxy",
        "ClusterAnalysisPolicy/istio",
        "ClusterAnalysisPolicy/istio-ambient",
        "ClusterAnalysisPolicy/linkerd",
        "ClusterRole/canary",
        "ClusterRoleBinding/canary",
        "Deployment/canary",
        "PodDisruptionBudget/canary",
        "Role/canary-leader-election",
        "RoleBinding/canary-leader-election",
        "Service/canary",
        "ServiceAccount/canary",
    ]


def test_the_deployment_runs_two_electing_replicas_safely() -> None:
    result = rendered()
    deployment = result.one("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    main = container(result)
    assert deployment["spec"]["replicas"] == 2
    assert main["command"] == ["canary", "controller"]
    assert main["args"] == [
        "--prometheus=http://prometheus:9090",
        "--metrics-addr=:8080",
        "--leader-elect",
        "--lease-name=canary-controller",
        "--lease-namespace=$(POD_NAMESPACE)",
        "--lease-duration=15s",
        "--renew-deadline=10s",
        "--retry-period=2s",
        "--notifications",
        "--no-restore-on-delete",
        "--workers=8",
        "--log-level=info",
    ]
    downward = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in main["env"][:2]}
    assert downward == {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}
    assert main["ports"] == [{"name": "metrics", "containerPort": 8080, "protocol": "TCP"}]
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert main["securityContext"]["readOnlyRootFilesystem"] is True
    assert main["securityContext"]["allowPrivilegeEscalation"] is False
    assert main["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert {"name": "tmp", "mountPath": "/tmp"} in main["volumeMounts"]
    assert main["resources"]["requests"] == {"cpu": "100m", "memory": "256Mi"}
    assert main["image"] == "canary:0.1.0"
    assert pod["serviceAccountName"] == "canary"
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert deployment["spec"]["template"]["metadata"]["labels"] == selector
    assert result.one("Service")["spec"]["selector"] == selector
    assert result.one("PodDisruptionBudget")["spec"] == {
        "maxUnavailable": 1,
        "selector": {"matchLabels": selector},
    }
    affinity = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert affinity[0]["podAffinityTerm"]["labelSelector"]["matchLabels"] == selector


def test_the_api_the_service_monitor_and_the_prometheus_token() -> None:
    result = rendered("monitored-with-api")
    main = container(result)
    assert "--prometheus=http://prometheus.istio-system:9090" in main["args"]
    assert "--prometheus-bearer-token-file=/etc/canary/prometheus/token" in main["args"]
    assert main["args"][-4:] == [
        "--api-listen=:8088",
        "--api-tokens=/etc/canary/api-tokens",
        "--api-url=https://canary.example.com",
        "--api-url=https://canary.example.com/ui",  # extraArgs come last: the last one wins
    ]
    assert {"name": "api", "containerPort": 8088, "protocol": "TCP"} in main["ports"]
    secret = result.one("Secret", "canary-api-tokens")
    assert secret["stringData"] == VARIANTS["monitored-with-api"]["api"]["tokens"]["entries"]
    volumes = result.one("Deployment")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "api-tokens", "secret": {"secretName": "canary-api-tokens"}} in volumes
    assert {"name": "prometheus-token", "secret": {"secretName": "prometheus-token"}} in volumes
    ports = result.one("Service")["spec"]["ports"]
    assert [(p["name"], p["port"], p["targetPort"]) for p in ports] == [
        ("metrics", 8080, "metrics"),
        ("api", 8088, "api"),
    ]
    monitor = result.one("ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus"
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "30s"}
    ]
    chosen = monitor["spec"]["selector"]["matchLabels"].items()
    assert chosen <= result.one("Service")["metadata"]["labels"].items()
    assert "TZ" in [e["name"] for e in main["env"]]


def test_an_existing_tokens_secret_is_mounted_not_made() -> None:
    result = render(CHART, {"api": {"enabled": True, "tokens": {"existingSecret": "mine"}}})
    assert result.find("Secret") == []
    volumes = result.one("Deployment")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "api-tokens", "secret": {"secretName": "mine"}} in volumes


def test_the_minimal_variant_leaves_out_everything_optional() -> None:
    result = rendered("minimal")
    kinds = sorted(f"{o['kind']}/{o['metadata']['name']}" for o in result.objects())
    assert kinds == ["Deployment/cd", "Service/cd"]
    main = container(result)
    assert "--no-leader-elect" in main["args"]
    assert "--no-notifications" in main["args"]
    assert "--restore-on-delete" in main["args"]
    assert not [a for a in main["args"] if a.startswith("--lease")]
    assert result.one("Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "existing"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"api": {"enabled": True}},
            "api.enabled needs api.tokens.existingSecret or api.tokens.entries",
        ),
        (
            {"serviceAccount": {"create": False}},
            "serviceAccount.name is required when serviceAccount.create is false",
        ),
    ],
)
def test_values_helm_cannot_render_fail_with_a_message(values: Json, message: str) -> None:
    with pytest.raises(TemplateFailError, match=re.escape(message)):
        render(CHART, values)


def test_names_follow_the_release() -> None:
    assert render(CHART, release="canary").one("Deployment")["metadata"]["name"] == "canary"
    other = render(CHART, release="prod")
    assert other.one("Deployment")["metadata"]["name"] == "prod-canary"
    assert other.one("ClusterRoleBinding")["subjects"] == [
        {"kind": "ServiceAccount", "name": "prod-canary", "namespace": NAMESPACE}
    ]
    long = render(CHART, release="a-very-long-release-name-" * 3)
    assert len(long.one("Deployment")["metadata"]["name"]) <= 63


def test_notes_say_where_things_are() -> None:
    notes = rendered("namespaced").notes
    assert "the namespaces shop, payments" in notes
    assert f"Lease {NAMESPACE}/canary-controller" in notes
    assert "kubectl apply -f charts/canary/crds" in notes
    assert "port 8088" in rendered("monitored-with-api").notes
    assert "all namespaces" in rendered().notes


# --- RBAC: the documented rules, least privilege ---------------------------------------------


def test_the_cluster_role_is_the_documented_rbac() -> None:
    cluster_rules, lease_rules = documented_rbac()
    result = rendered()
    assert result.one("ClusterRole")["rules"] == cluster_rules
    assert result.one("Role")["rules"] == lease_rules
    assert lease_rules == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["get", "create", "update"],
        }
    ]


@pytest.mark.parametrize("provider", ["istio", "gatewayApi", "smi"])
def test_a_provider_left_out_drops_only_its_rule(provider: str) -> None:
    groups = {
        "istio": "networking.istio.io",
        "gatewayApi": "gateway.networking.k8s.io",
        "smi": "split.smi-spec.io",
    }
    cluster_rules, _ = documented_rbac()
    result = render(CHART, {"rbac": {"providers": {provider: False}}})
    expected = [r for r in cluster_rules if r["apiGroups"] != [groups[provider]]]
    assert len(expected) == len(cluster_rules) - 1
    assert result.one("ClusterRole")["rules"] == expected


def test_namespaced_mode_binds_the_role_in_each_namespace_only() -> None:
    result = rendered("namespaced")
    subject = (NAMESPACE, "canary")
    objects = result.objects()
    bindings = {
        (b["metadata"].get("namespace"), b["roleRef"]["name"])
        for b in objects
        if b["kind"] == "RoleBinding"
    }
    assert bindings == {
        ("shop", "canary"),
        ("payments", "canary"),
        (NAMESPACE, "canary-leader-election"),
    }
    assert [b["roleRef"]["name"] for b in result.find("ClusterRoleBinding")] == [
        "canary-cluster-policies"
    ]
    assert result.one("ClusterRole", "canary-cluster-policies")["rules"] == [
        {
            "apiGroups": ["canary.dev"],
            "resources": ["clusteranalysispolicies"],
            "verbs": ["list", "watch"],
        }
    ]
    args = container(result)["args"]
    assert [a for a in args if a.startswith("--namespace")] == [
        "--namespace=shop",
        "--namespace=payments",
    ]
    allowed = [
        Request("watch", "canary.dev", "rollouts", "shop"),
        Request("create", "apps", "deployments", "payments"),
        Request("list", "canary.dev", "clusteranalysispolicies", None),
        Request("update", "coordination.k8s.io", "leases", NAMESPACE),
    ]
    refused = [
        Request("watch", "canary.dev", "rollouts", None),
        Request("create", "apps", "deployments", "default"),
        Request("get", "", "secrets", "kube-system"),
        Request("update", "coordination.k8s.io", "leases", "shop"),
        Request("get", "split.smi-spec.io", "trafficsplits", "shop"),
    ]
    assert [r for r in allowed if not rbac_allows(objects, subject, r)] == []
    assert [r for r in refused if rbac_allows(objects, subject, r)] == []


# --- the policies and the CRDs --------------------------------------------------------------


def test_the_chart_carries_the_shipped_policies_unchanged() -> None:
    shipped = {p.name: p.read_bytes() for p in sorted(POLICIES.glob("*.yaml"))}
    copies = {p.name: p.read_bytes() for p in sorted((CHART / "files" / "policies").glob("*"))}
    assert shipped, "no policies/*.yaml"
    assert copies == shipped, (
        "charts/canary/files/policies differs from policies/: "
        "cp policies/*.yaml charts/canary/files/policies/ (and remove the ones gone)"
    )
    installed = rendered().find("ClusterAnalysisPolicy")
    assert installed == [yaml.safe_load(text) for text in shipped.values()]
    assert rendered("minimal").find("ClusterAnalysisPolicy") == []


def test_the_crds_are_the_generated_ones() -> None:
    """The same check as tests/model/test_crds.py: helm installs crds/ as it finds it."""
    expected = crd_files()
    actual = {p.name: p.read_text(encoding="utf-8") for p in CRDS.glob("*.yaml")}
    assert actual == expected, "charts/canary/crds is out of date with the models: run `make crds`"


# --- kubectl apply --dry-run=server against the test API server -------------------------------


@pytest.fixture
def api() -> Iterator[ApiServer]:
    with ApiServer(bookmark_interval=0.2) as server:
        for namespace in (NAMESPACE, "shop", "payments"):
            server.create_namespace(namespace)
        yield server


@pytest.fixture
def kubectl(api: ApiServer, tmp_path: Path) -> Kubectl:
    kubectl_path()  # fails, saying how to install it, when kubectl is missing
    return Kubectl(api.kubeconfig(tmp_path / "kubeconfig", namespace=NAMESPACE), tmp_path / "c")


def install_crds(api: ApiServer, kubectl: Kubectl, tmp_path: Path) -> None:
    """What `helm install` does before the templates: apply crds/ (for real)."""
    kubectl.run("apply", "-f", str(CRDS))
    monitor = tmp_path / "servicemonitor-crd.yaml"
    monitor.write_text(yaml.safe_dump(service_monitor_crd()), encoding="utf-8")
    kubectl.run("apply", "-f", str(monitor))


@pytest.mark.parametrize("variant", ["defaults", "monitored-with-api", "namespaced"])
def test_kubectl_server_dry_run_accepts_the_manifests(
    variant: str, api: ApiServer, kubectl: Kubectl, tmp_path: Path
) -> None:
    install_crds(api, kubectl, tmp_path)
    result = rendered(variant)
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(result.manifest(), encoding="utf-8")
    out = kubectl.run("apply", "--dry-run=server", "-f", str(manifest)).stdout
    lines = out.strip().splitlines()
    assert len(lines) == len(result.objects()), out
    assert all(line.endswith("created (server dry run)") for line in lines), out
    assert api.list("apps/v1", "Deployment", NAMESPACE) == []  # a dry run stores nothing
    if variant == "monitored-with-api":
        assert "servicemonitor.monitoring.coreos.com/canary created (server dry run)" in lines


@pytest.mark.parametrize(
    ("kind", "breakage", "refusal"),
    [
        pytest.param(
            "ServiceMonitor",
            lambda o: o["spec"]["endpoints"][0].update(intervall="30s"),
            'unknown field "spec.endpoints[0].intervall"',
            id="service-monitor-field",
        ),
        pytest.param(
            "Deployment",
            lambda o: o["spec"]["selector"]["matchLabels"].update(extra="x"),
            "`selector` does not match template `labels`",
            id="deployment-selector",
        ),
        pytest.param(
            "ClusterAnalysisPolicy",
            lambda o: o["spec"]["checks"][0].update(kind="p99"),
            "spec.checks[0].kind: Unsupported value",
            id="policy-schema",
        ),
    ],
)
def test_the_dry_run_refuses_a_broken_manifest(
    kind: str,
    breakage: Callable[[Json], None],
    refusal: str,
    api: ApiServer,
    kubectl: Kubectl,
    tmp_path: Path,
) -> None:
    """The check above has teeth: the same manifests with one field broken are refused."""
    install_crds(api, kubectl, tmp_path)
    objects = rendered("monitored-with-api").objects()
    breakage(next(o for o in objects if o["kind"] == kind))
    manifest = tmp_path / "broken.yaml"
    manifest.write_text(yaml.safe_dump_all(objects), encoding="utf-8")
    result = kubectl.run("apply", "--dry-run=server", "-f", str(manifest), check=False)
    assert result.returncode != 0
    assert refusal in result.stderr, result.stderr


# --- the controller, run with what the chart renders ------------------------------------------


@dataclass
class Running:
    """`canary controller` started with the rendered Deployment's command, args and env."""

    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)

    def address(self, pattern: str, timeout: float = 30) -> str:
        def found() -> str | None:
            for line in list(self.output):
                m = re.search(pattern, line)
                if m:
                    return m.group(1)
            if self.process.poll() is not None:
                raise AssertionError("the controller exited:\n" + "".join(self.output))
            return None

        return wait_for(f"{pattern!r} in the controller's log", found, timeout)


def wait_for(what: str, check: Callable[[], T | None], timeout: float = 30) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def http(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@contextmanager
def controller_from_chart(result: Rendered, kubeconfig: Path, tmp_path: Path) -> Iterator[Running]:
    """A stand-in for the kubelet: the Pod's volumes become folders (the chart's own Secrets
    written in them), `$(POD_NAMESPACE)` and the downward API are filled in, the listening
    addresses move to 127.0.0.1 port 0 (the log says which port), and the in-cluster config
    becomes the test API server's kubeconfig."""
    deployment = result.one("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    main = pod["containers"][0]
    volumes = {v["name"]: v for v in pod["volumes"]}
    folders: dict[str, Path] = {}
    for mount in main["volumeMounts"]:
        folder = tmp_path / "volumes" / mount["name"]
        folder.mkdir(parents=True)
        secret = volumes[mount["name"]].get("secret")
        if secret:
            data = result.one("Secret", secret["secretName"])["stringData"]
            for key, value in data.items():
                (folder / key).write_text(value, encoding="utf-8")
        folders[mount["mountPath"]] = folder
    fields = {"metadata.name": "canary-5f7d8-x2x9q", "metadata.namespace": NAMESPACE}
    env = {
        e["name"]: e["value"] if "value" in e else fields[e["valueFrom"]["fieldRef"]["fieldPath"]]
        for e in main["env"]
    }
    args = []
    for arg in main["args"]:
        flag, _, value = arg.replace("$(POD_NAMESPACE)", env["POD_NAMESPACE"]).partition("=")
        if flag in ("--metrics-addr", "--api-listen"):
            value = "127.0.0.1:0"
        for mount_path, folder in folders.items():
            if value.startswith(mount_path):
                value = str(folder) + value[len(mount_path) :]
        args.append(f"{flag}={value}" if value else flag)
    assert main["command"][0] == "canary"
    argv = [sys.executable, "-m", "canary.cli.main", *main["command"][1:], *args]
    argv += ["--kubeconfig", str(kubeconfig)]
    process = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**_environment(), **env},
    )
    running = Running(process)
    reader = threading.Thread(target=lambda: running.output.extend(process.stdout or []))
    reader.start()
    try:
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        reader.join(5)


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}


def _deployment(name: str, namespace: str, image: str) -> Json:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    }


def _rollout(name: str, namespace: str) -> Json:
    return {
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "targetRef": {"name": name},
            "service": {"port": 9898},
            "provider": {"name": "istio"},
            "skipAnalysis": True,
            "analysis": {"interval": "2s"},
        },
    }


def _phase(api: ApiServer, namespace: str) -> str | None:
    found = api.list("canary.dev/v1alpha1", "Rollout", namespace)
    return (found[0].get("status") or {}).get("phase") if found else None


def _kubelet(api: ApiServer, namespace: str) -> None:
    """The Deployment controller's part: every Deployment's pods ready."""
    for item in api.list("apps/v1", "Deployment", namespace):
        status = item.get("status") or {}
        wanted = item["spec"].get("replicas", 1)
        current = status.get("observedGeneration") == item["metadata"].get("generation")
        if wanted and not (current and status.get("readyReplicas") == wanted):
            api.set_deployment_ready(namespace, item["metadata"]["name"])


@pytest.mark.parametrize(
    "variant",
    [
        pytest.param({"api": VARIANTS["monitored-with-api"]["api"]}, id="all-namespaces-with-api"),
        pytest.param(VARIANTS["namespaced"], id="namespaced"),
    ],
)
def test_the_controller_runs_with_the_charts_arguments_within_its_rbac(
    variant: Json, api: ApiServer, kubectl: Kubectl, tmp_path: Path
) -> None:
    """A rollout from start to promotion and deletion, by `canary controller` run with the
    rendered command, args and env; then every request it made is one the rendered RBAC
    grants its ServiceAccount, in that namespace (or cluster-wide)."""
    mesh = sorted(MESH_CRDS.glob("*.yaml"))
    if not mesh:
        pytest.fail(f"the meshes' CRDs are missing: expected them in {MESH_CRDS}")
    api.apply_file(*sorted(CRDS.glob("*.yaml")), *mesh)
    result = render(CHART, {**variant, "prometheus": {"url": "http://127.0.0.1:9"}})
    api.apply(_deployment("web", "shop", "podinfo:6.7.0"))
    api.apply(_rollout("web", "shop"))
    with controller_from_chart(result, kubectl.kubeconfig, tmp_path) as running:
        metrics = running.address(r"metrics, healthz and readyz on (http://\S+)")
        main = container(result)
        for probe in ("livenessProbe", "readinessProbe"):
            assert main[probe]["httpGet"]["port"] == "metrics"
            path = main[probe]["httpGet"]["path"]
            wait_for(f"{probe} {path}", lambda p=path: http(metrics + p)[0] == 200)

        def reached(phase: str) -> bool:
            _kubelet(api, "shop")
            return _phase(api, "shop") == phase

        wait_for("the Rollout Initialized", lambda: reached("Initialized"))
        target = api.get("apps/v1", "Deployment", "web", "shop")
        target["spec"]["template"]["spec"]["containers"][0]["image"] = "podinfo:6.7.1"
        api.apply(target)
        wait_for("the Rollout Succeeded", lambda: reached("Succeeded"))
        if "api" in variant:
            base = running.address(r"the API on (http://\S+)")
            token = TOKEN.split()[1]
            assert http(f"{base}/api/v1/rollouts")[0] == 401
            code, body = http(f"{base}/api/v1/rollouts", token)
            assert code == 200, body
            assert "web" in body
        api.delete("canary.dev/v1alpha1", "Rollout", "web", "shop")
        wait_for("the Rollout gone", lambda: _phase(api, "shop") is None)
        api.stop_watches()  # the watches end: their requests are logged once answered

        def requests() -> list[Request] | None:
            made = [request_of(m, t) for m, t, _ in list(api.requests)]
            watched = {r.resource for r in made if r is not None and r.verb == "watch"}
            if not {"rollouts", "deployments"} <= watched:
                return None
            return [r for r in made if r is not None]

        wait_for("the watches logged", requests)
        running.process.send_signal(signal.SIGTERM)
        assert running.process.wait(20) == 0, "".join(running.output)
    lease = api.get("coordination.k8s.io/v1", "Lease", "canary-controller", NAMESPACE)
    assert lease["spec"].get("holderIdentity") in (None, ""), "the Lease was not given up"
    made = set(wait_for("the watches logged", requests))
    subject = (NAMESPACE, "canary")
    refused = sorted(str(r) for r in made if not rbac_allows(result.objects(), subject, r))
    assert refused == []
    namespaced = "watchNamespaces" in variant
    assert Request("watch", "canary.dev", "rollouts", "shop" if namespaced else None) in made
    assert Request("update", "coordination.k8s.io", "leases", NAMESPACE) in made
    assert Request("patch", "apps", "deployments/scale", "shop") in made
    assert Request("update", "canary.dev", "rollouts/status", "shop") in made
    assert not [r for r in made if r.namespace not in (None, NAMESPACE, "shop", "payments")]


def test_the_docs_say_what_was_not_run() -> None:
    docs = (DOCS / "helm.md").read_text(encoding="utf-8")
    for command in ("helm lint", "helm template", "helm install"):
        assert command in docs
    assert "chart_render.py" in docs
    assert "kubectl apply -f charts/canary/crds" in docs
    assert "helm.md" in (DOCS / "controller.md").read_text(encoding="utf-8")
