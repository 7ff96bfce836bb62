"""The chart's manifests on the test API server (canary.testing.ApiServer): `kubectl apply
--dry-run=server` of what helm renders for every documented set of values (and refusals of
broken copies), and `canary controller` run with exactly the rendered command, arguments and
environment, every request it makes checked against the rendered RBAC."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from chart_controller import (
    controller_from_chart,
    deployment,
    http,
    kubelet,
    phase_of,
    rollout,
    wait_for,
)
from chart_kinds import stand_in_crds
from chart_rbac import Request, Verdict, judge, rbac_allows, request_of
from chart_support import (
    CRDS,
    MESH_CRDS,
    NAMESPACE,
    TOKEN,
    VARIANTS,
    Kubectl,
    container,
    kubectl_path,
    render,
    rendered,
)

from canary.testing import ApiServer

Json = dict[str, Any]
T = TypeVar("T")

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
    """What `helm install` does before the templates: apply crds/ (for real), and the
    stand-in CRDs of the kinds the test API server does not serve (chart_support)."""
    kubectl.run("apply", "-f", str(CRDS))
    stand_ins = tmp_path / "stand-in-crds.yaml"
    stand_ins.write_text(yaml.safe_dump_all(stand_in_crds()), encoding="utf-8")
    kubectl.run("apply", "-f", str(stand_ins))


@pytest.mark.parametrize("variant", sorted(VARIANTS))
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
    if variant == "monitoring":
        for kind in ("prometheusrule.monitoring.coreos.com", "networkpolicy.networking.k8s.io"):
            assert f"{kind}/canary created (server dry run)" in lines


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
        pytest.param(
            "PrometheusRule",
            lambda o: o["spec"]["groups"][0]["rules"][0].update(fro="5m"),
            'unknown field "spec.groups[0].rules[0].fro"',
            id="prometheus-rule-field",
        ),
        pytest.param(
            "NetworkPolicy",
            lambda o: o["spec"].update(podSelektor={}),
            'unknown field "spec.podSelektor"',
            id="network-policy-field",
        ),
        pytest.param(
            "ValidatingAdmissionPolicy",
            lambda o: o["spec"]["validations"][0].update(expresion="true"),
            'unknown field "spec.validations[0].expresion"',
            id="admission-policy-field",
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
    objects = rendered("monitoring").objects()
    breakage(next(o for o in objects if o["kind"] == kind))
    manifest = tmp_path / "broken.yaml"
    manifest.write_text(yaml.safe_dump_all(objects), encoding="utf-8")
    result = kubectl.run("apply", "--dry-run=server", "-f", str(manifest), check=False)
    assert result.returncode != 0
    assert refusal in result.stderr, result.stderr


# --- the controller, run with what the chart renders ------------------------------------------


def _meta(name: str) -> Json:
    return {"metadata": {"name": name, "namespace": "shop"}}


@pytest.mark.parametrize(
    "variant",
    [
        pytest.param({"api": VARIANTS["monitored-with-api"]["api"]}, id="all-namespaces-with-api"),
        pytest.param(
            {
                **VARIANTS["namespaced"],
                "webhookAllow": VARIANTS["monitoring"]["webhookAllow"],
                "forbidInlineQueries": True,
            },
            id="namespaced-with-webhook-allow-and-forbid-inline-queries",
        ),
        pytest.param(VARIANTS["sharded"], id="sharded"),
    ],
)
def test_the_controller_runs_with_the_charts_arguments_within_its_rbac(
    variant: Json, api: ApiServer, kubectl: Kubectl, tmp_path: Path
) -> None:
    """A rollout from start to promotion and deletion, by `canary controller` run with the
    rendered command, args and env; then every request it made is one the rendered RBAC
    grants its ServiceAccount, in that namespace (or cluster-wide), and every ConfigMap and
    Secret it wrote (the copies of the target's) is one the rendered copy guard admits."""
    mesh = sorted(MESH_CRDS.glob("*.yaml"))
    assert mesh, f"the meshes' CRDs are missing: expected them in {MESH_CRDS}"
    api.apply_file(*sorted(CRDS.glob("*.yaml")), *mesh)
    result = render({**variant, "prometheus": {"url": "http://127.0.0.1:9"}})
    api.apply({"apiVersion": "v1", "kind": "ConfigMap", **_meta("web-config"), "data": {"A": "1"}})
    api.apply({"apiVersion": "v1", "kind": "Secret", **_meta("web-keys"), "data": {"K": "eA=="}})
    refs = [{"configMapRef": {"name": "web-config"}}, {"secretRef": {"name": "web-keys"}}]
    api.apply(deployment("web", "shop", "podinfo:6.7.0", refs))
    api.apply(rollout("web", "shop"))
    with controller_from_chart(result, kubectl.kubeconfig, tmp_path) as running:
        metrics = running.address(r"metrics, healthz and readyz on (http://\S+)")
        main = container(result)
        for probe in ("livenessProbe", "readinessProbe"):
            assert main[probe]["httpGet"]["port"] == "metrics"
            path = main[probe]["httpGet"]["path"]
            wait_for(f"{probe} {path}", lambda p=path: http(metrics + p)[0] == 200)

        def reached(phase: str) -> bool:
            kubelet(api, "shop")
            return phase_of(api, "shop") == phase

        wait_for("the Rollout Initialized", lambda: reached("Initialized"))
        target = api.get("apps/v1", "Deployment", "web", "shop")
        target["spec"]["template"]["spec"]["containers"][0]["image"] = "podinfo:6.7.1"
        api.apply(target)
        wait_for("the Rollout Succeeded", lambda: reached("Succeeded"))
        copies = [
            obj
            for kind in ("ConfigMap", "Secret")
            for obj in api.list("v1", kind, "shop")
            if "canary.dev/rollout" in (obj["metadata"].get("labels") or {})
        ]
        assert len(copies) >= 4, copies  # both objects, for the first primary and the promoted
        guard = result.one("ValidatingAdmissionPolicy", "canary-config-copies")
        for copy in copies:
            assert judge(guard, "CREATE", copy, None) == Verdict(True, ()), copy["metadata"]
            assert judge(guard, "DELETE", None, copy) == Verdict(True, ()), copy["metadata"]
        if "api" in variant:
            base = running.address(r"the API on (http://\S+)")
            token = TOKEN.split()[1]
            assert http(f"{base}/api/v1/rollouts")[0] == 401
            code, body = http(f"{base}/api/v1/rollouts", token)
            assert code == 200, body
            assert "web" in body
        api.delete("canary.dev/v1alpha1", "Rollout", "web", "shop")
        wait_for("the Rollout gone", lambda: phase_of(api, "shop") is None)
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
    shards = int(variant.get("shards", 1))
    leases = [f"canary-controller-shard-{i}" for i in range(shards)] if shards > 1 else []
    for name in leases or ["canary-controller"]:
        lease = api.get("coordination.k8s.io/v1", "Lease", name, NAMESPACE)
        assert lease["spec"].get("holderIdentity") in (None, ""), f"{name} was not given up"
    made = set(wait_for("the watches logged", requests))
    subject = (NAMESPACE, "canary")
    refused = sorted(str(r) for r in made if not rbac_allows(result.objects(), subject, r))
    assert refused == []
    namespaced = "watchNamespaces" in variant
    assert Request("watch", "canary.dev", "rollouts", "shop" if namespaced else None) in made
    assert Request("update", "coordination.k8s.io", "leases", NAMESPACE) in made
    if leases:  # the group's Leases, listed by label (and dead members' deleted)
        assert Request("list", "coordination.k8s.io", "leases", NAMESPACE) in made
    assert Request("patch", "apps", "deployments/scale", "shop") in made
    assert Request("update", "canary.dev", "rollouts/status", "shop") in made
    assert not [r for r in made if r.namespace not in (None, NAMESPACE, "shop", "payments")]


def test_the_crd_upgrade_path_of_the_docs(api: ApiServer, kubectl: Kubectl, tmp_path: Path) -> None:
    """docs/helm.md's upgrade step over CRDs created as `helm install` creates crds/: a newer
    CRD (here: one more printer column) is applied with server-side apply, and the Rollouts
    stored under the old one are still there."""
    kubectl.run("create", "-f", str(CRDS))
    api.apply(rollout("web", "shop"))
    newer = tmp_path / "crds"
    newer.mkdir()
    for path in sorted(CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text(encoding="utf-8"))
        if crd["metadata"]["name"] == "rollouts.canary.dev":
            for version in crd["spec"]["versions"]:
                column = {"name": "Upgraded", "type": "string", "jsonPath": ".spec.suspend"}
                version.setdefault("additionalPrinterColumns", []).append(column)
        (newer / path.name).write_text(yaml.safe_dump(crd), encoding="utf-8")
    out = kubectl.run("apply", "--server-side", "--force-conflicts", "-f", str(newer)).stdout
    assert (
        "customresourcedefinition.apiextensions.k8s.io/rollouts.canary.dev serverside-applied"
        in out
    )
    crd = api.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", "rollouts.canary.dev")
    columns = [c["name"] for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]]
    assert "Upgraded" in columns
    assert [r["metadata"]["name"] for r in api.list("canary.dev/v1alpha1", "Rollout", "shop")] == [
        "web"
    ]
