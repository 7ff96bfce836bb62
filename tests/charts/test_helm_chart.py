"""The Helm chart (charts/canary) as the real helm renders it: `helm lint --strict` and
`helm template` over every documented set of values (VARIANTS, listed in docs/helm.md), the
manifests, the RBAC against docs/controller.md, the policies and CRDs against the repository's,
the NOTES against the values. test_chart_values.py checks the values themselves,
test_chart_on_api_server.py applies the manifests to the test API server and runs the
controller as the chart does."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from chart_kinds import missing_required, unknown_fields
from chart_rbac import Request, documented_rbac, rbac_allows
from chart_support import (
    CHART,
    CRDS,
    NAMESPACE,
    POLICIES,
    ROLLOUT_LINK,
    VARIANTS,
    HelmError,
    container,
    lint,
    render,
    rendered,
)

from canary.cli.crds import crd_files

Json = dict[str, Any]


# --- what renders ------------------------------------------------------------------------


CLUSTER_SCOPED = (
    "ClusterRole",
    "ClusterRoleBinding",
    "ClusterAnalysisPolicy",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_helm_lint_strict_passes(variant: str) -> None:
    out = lint(VARIANTS[variant])
    assert "1 chart(s) linted, 0 chart(s) failed" in out, out
    assert "[ERROR]" not in out
    assert "[WARNING]" not in out


def test_helm_lint_strict_has_teeth() -> None:
    """The same lint refuses values the schema refuses (so a pass above means something)."""
    with pytest.raises(HelmError, match="replicaCount"):
        lint({"replicaCount": "two"})


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
        cluster_scoped = obj["kind"] in CLUSTER_SCOPED
        if cluster_scoped:
            assert "namespace" not in meta, key
        elif meta["name"].endswith("cluster-events"):  # a cluster-scoped object's Events
            assert meta["namespace"] == "default", key
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
        "ValidatingAdmissionPolicy/canary-config-copies",
        "ValidatingAdmissionPolicy/canary-rollout-commands",
        "ValidatingAdmissionPolicyBinding/canary-config-copies",
        "ValidatingAdmissionPolicyBinding/canary-rollout-commands",
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
        "--workers=64",
        "--log-level=info",
    ]
    downward = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in main["env"][:2]}
    assert downward == {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}
    assert main["ports"] == [{"name": "metrics", "containerPort": 8080, "protocol": "TCP"}]
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532  # the image's user (docs/image.md)
    assert pod["securityContext"]["runAsGroup"] == 65532
    assert main["securityContext"]["readOnlyRootFilesystem"] is True
    assert main["securityContext"]["allowPrivilegeEscalation"] is False
    assert main["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert {"name": "tmp", "mountPath": "/tmp"} in main["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {}} in pod["volumes"]
    plain = {e["name"]: e["value"] for e in main["env"] if "value" in e}
    assert plain["HOME"] == "/tmp"
    assert plain["MPLCONFIGDIR"] == "/tmp/matplotlib"
    assert main["resources"]["requests"] == {"cpu": "100m", "memory": "256Mi"}
    assert main["image"] == "ghcr.io/canary-dev/canary:0.1.0"  # the chart's appVersion
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


def test_sharded_replicas_get_the_flag_the_lease_rules_and_the_notes() -> None:
    result = rendered("sharded")
    assert result.one("Deployment")["spec"]["replicas"] == 3
    args = container(result)["args"]
    assert args[args.index("--retry-period=2s") + 1] == "--shards=3"
    assert result.one("Role")["rules"] == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["get", "list", "watch", "create", "update"],
        },
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["delete"],
        },
    ]
    assert "sharing 3 shards of the Rollouts" in result.notes
    assert f"Leases {NAMESPACE}/canary-controller-shard-0..2" in result.notes
    assert "get leases -l canary.dev/lease-group=canary-controller" in result.notes
    assert not [a for a in container(rendered())["args"] if a.startswith("--shards")]


def test_the_api_the_service_monitor_and_the_prometheus_token() -> None:
    result = rendered("monitored-with-api")
    main = container(result)
    assert "--prometheus=http://prometheus.istio-system:9090" in main["args"]
    assert "--prometheus-bearer-token-file=/etc/canary/prometheus/token" in main["args"]
    assert main["args"][-3:] == [
        "--api-listen=:8088",
        "--api-tokens=/etc/canary/api-tokens",
        "--workers=16",  # extraArgs come last: the last one wins
    ]
    assert not [a for a in main["args"] if a.startswith("--api-url")]
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
        {"port": "metrics", "path": "/metrics", "honorLabels": True, "interval": "30s"}
    ]
    chosen = monitor["spec"]["selector"]["matchLabels"].items()
    assert chosen <= result.one("Service")["metadata"]["labels"].items()
    assert "TZ" in [e["name"] for e in main["env"]]


def test_the_rollout_link_is_passed_with_notifications_only() -> None:
    """notifications.rolloutLink becomes --rollout-link, right after --notifications; without
    notifications (the flag would be ignored) or without a link, the flag is left out."""
    args = container(rendered("monitored-with-api"))["args"]
    at = args.index("--notifications")
    assert args[at + 1] == f"--rollout-link={ROLLOUT_LINK}"
    assert not [a for a in container(rendered())["args"] if a.startswith("--rollout-link")]
    quiet = render({"notifications": {"enabled": False, "rolloutLink": ROLLOUT_LINK}})
    assert not [a for a in container(quiet)["args"] if a.startswith("--rollout-link")]


def test_the_retired_api_url_fails_naming_its_successor() -> None:
    with pytest.raises(HelmError) as refused:
        render({"api": {"url": "https://canary.example.com"}})
    assert "api.url is retired" in str(refused.value)
    assert "notifications.rolloutLink" in str(refused.value)


def test_an_existing_tokens_secret_is_mounted_not_made() -> None:
    result = render({"api": {"enabled": True, "tokens": {"existingSecret": "mine"}}})
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
            "at '/api/tokens/existingSecret': minLength: got 0, want 1",
        ),
        (
            {"serviceAccount": {"create": False}},
            "serviceAccount.name is required when serviceAccount.create is false",
        ),
        (
            {"prometheus": {"caBundle": {"configMap": "a", "secret": "b"}}},
            "at '/prometheus/caBundle': 'not' failed",
        ),
        (
            {"image": {"digest": "sha256:abc"}},
            "at '/image/digest': 'sha256:abc' does not match pattern",
        ),
    ],
)
def test_values_helm_cannot_render_fail_with_a_message(values: Json, message: str) -> None:
    with pytest.raises(HelmError, match=re.escape(message)):
        render(values)


def test_names_follow_the_release() -> None:
    assert render(None, "canary").one("Deployment")["metadata"]["name"] == "canary"
    other = render(None, "prod")
    assert other.one("Deployment")["metadata"]["name"] == "prod-canary"
    assert other.one("ClusterRoleBinding")["subjects"] == [
        {"kind": "ServiceAccount", "name": "prod-canary", "namespace": NAMESPACE}
    ]
    long = render(None, "a-very-long-release-name-that-helm-still-takes-53")
    assert len(long.one("Deployment")["metadata"]["name"]) <= 63


def test_notes_say_where_things_are() -> None:
    """NOTES (as `helm install` prints them) follow the values: no Lease command without
    leader election, the API, the dashboard and the alerts only when on, and every kubectl
    hint names canary's Rollouts fully (rollouts.canary.dev: Argo Rollouts has a Rollout too)."""
    notes = rendered("namespaced").notes
    assert "the namespaces shop, payments" in notes
    assert f"Lease {NAMESPACE}/canary-controller" in notes
    assert f"kubectl -n {NAMESPACE} get lease canary-controller" in notes
    assert "kubectl apply --server-side --force-conflicts -f charts/canary/crds" in notes
    assert "kubectl get rollouts.canary.dev -A" in notes
    assert "ValidatingAdmissionPolicy canary-config-copies" in notes
    assert "port 8088" in rendered("monitored-with-api").notes
    assert "all namespaces" in rendered().notes
    minimal = rendered("minimal").notes
    assert "without leader election" in minimal
    assert not re.search(r"\blease\b", minimal, re.IGNORECASE), minimal
    assert "ValidatingAdmissionPolicy" not in minimal  # rbac.create is off
    monitoring = rendered("monitoring").notes
    assert f"ConfigMap {NAMESPACE}/canary-dashboard" in monitoring
    assert f"PrometheusRule {NAMESPACE}/canary" in monitoring
    assert "port 8088" in monitoring
    assert "dashboard" not in rendered().notes
    for text in (notes, minimal, monitoring):
        hints = [line for line in text.splitlines() if line.strip().startswith("kubectl")]
        assert hints
        assert not [h for h in hints if re.search(r"\brollouts?\b(?!\.canary\.dev)", h)], hints
        assert not [h for h in hints if re.search(r"\bro\b", h)], hints


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
            "verbs": ["get", "list", "watch", "create", "update"],
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
    result = render({"rbac": {"providers": {provider: False}}})
    expected = [r for r in cluster_rules if r["apiGroups"] != [groups[provider]]]
    assert len(expected) == len(cluster_rules) - 1
    assert result.one("ClusterRole")["rules"] == expected
    apis = {"istio": "istio", "gatewayApi": "gateway-api", "smi": "smi"}
    watched = [a for a in container(result)["args"] if a.startswith("--route-watch=")]
    assert watched == [f"--route-watch={apis[p]}" for p in apis if p != provider], (
        "the controller watches only the route objects its role may list"
    )


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
        ("default", "canary-cluster-events"),  # a ClusterAnalysisPolicy's Events
    }
    assert [b["roleRef"]["name"] for b in result.find("ClusterRoleBinding")] == [
        "canary-cluster-policies"
    ]
    assert result.one("ClusterRole", "canary-cluster-policies")["rules"] == [
        {
            "apiGroups": ["canary.dev"],
            "resources": ["clusteranalysispolicies"],
            "verbs": ["list", "watch"],
        },
        {
            "apiGroups": ["authentication.k8s.io"],
            "resources": ["selfsubjectreviews"],
            "verbs": ["create"],
        },
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
        Request("create", "", "events", "default"),
    ]
    refused = [
        Request("watch", "canary.dev", "rollouts", None),
        Request("create", "apps", "deployments", "default"),
        Request("create", "", "events", "kube-system"),
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
    by_name = sorted(installed, key=lambda p: str(p["metadata"]["name"]))
    expected = [yaml.safe_load(text) for text in shipped.values()]
    assert by_name == sorted(expected, key=lambda p: str(p["metadata"]["name"]))
    assert rendered("minimal").find("ClusterAnalysisPolicy") == []


def test_the_crds_are_the_generated_ones() -> None:
    """The same check as tests/model/test_crds.py: helm installs crds/ as it finds it."""
    expected = crd_files()
    actual = {p.name: p.read_text(encoding="utf-8") for p in CRDS.glob("*.yaml")}
    assert actual == expected, "charts/canary/crds is out of date with the models: run `make crds`"


# --- what a platform team adds (the monitoring set) -----------------------------------------


def test_the_image_is_pulled_by_digest_when_one_is_given() -> None:
    digest = VARIANTS["monitoring"]["image"]["digest"]
    assert container(rendered("monitoring"))["image"] == f"ghcr.io/canary-dev/canary@{digest}"
    tagged = render({"image": {"repository": "registry.example.com/canary", "tag": "1.2.3"}})
    assert container(tagged)["image"] == "registry.example.com/canary:1.2.3"


def test_the_ca_bundle_and_extra_volumes_are_mounted() -> None:
    result = rendered("monitoring")
    main = container(result)
    pod = result.one("Deployment")["spec"]["template"]["spec"]
    assert "--prometheus=https://prometheus.monitoring:9091" in main["args"]
    assert "--prometheus-ca-file=/etc/canary/prometheus-ca/ca.pem" in main["args"]
    mounts = {m["name"]: m for m in main["volumeMounts"]}
    assert mounts["prometheus-ca"] == {
        "name": "prometheus-ca",
        "mountPath": "/etc/canary/prometheus-ca",
        "readOnly": True,
    }
    assert mounts["webhook-ca"]["mountPath"] == "/etc/webhook-ca"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["prometheus-ca"] == {
        "name": "prometheus-ca",
        "configMap": {"name": "cluster-ca"},
    }
    assert volumes["webhook-ca"] == {"name": "webhook-ca", "secret": {"secretName": "webhook-ca"}}
    secret = render({"prometheus": {"caBundle": {"secret": "prom-ca"}}})
    assert "--prometheus-ca-file=/etc/canary/prometheus-ca/ca.crt" in container(secret)["args"]
    assert not [a for a in container(rendered())["args"] if "ca-file" in a]


def test_the_network_policy_admits_the_metrics_and_api_ports_only() -> None:
    policy = rendered("monitoring").one("NetworkPolicy")["spec"]
    values = VARIANTS["monitoring"]["networkPolicy"]
    assert (
        policy["podSelector"]["matchLabels"]
        == (rendered("monitoring").one("Deployment")["spec"]["selector"]["matchLabels"])
    )
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["ingress"] == [
        {"ports": [{"port": "metrics", "protocol": "TCP"}], "from": values["metricsFrom"]},
        {"ports": [{"port": "api", "protocol": "TCP"}], "from": values["apiFrom"]},
    ]
    assert policy["egress"] == values["egress"]
    open_egress = render({"networkPolicy": {"enabled": True}}).one("NetworkPolicy")["spec"]
    assert open_egress["policyTypes"] == ["Ingress"]
    assert open_egress["ingress"] == [{"ports": [{"port": "metrics", "protocol": "TCP"}]}]
    assert "egress" not in open_egress
    assert rendered().find("NetworkPolicy") == []
