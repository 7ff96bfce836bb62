"""kubectl against the test API server: discovery, apply, get, patch, watch, dry runs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from apiserver_support import CANARY_CRDS, ROOT, Kubectl, deployment

from canary.testing import ApiServer

EXAMPLE = ROOT / "examples" / "podinfo-istio.yaml"


@pytest.fixture
def with_crds(kubectl: Kubectl) -> Kubectl:
    out = kubectl.run("apply", "-f", str(CANARY_CRDS)).stdout
    assert "customresourcedefinition.apiextensions.k8s.io/rollouts.canary.dev created" in out
    return kubectl


def test_discovery_and_get(api: ApiServer, kubectl: Kubectl) -> None:
    assert "Server Version: v1.32" in kubectl.run("version").stdout
    resources = kubectl.run("api-resources", "--no-headers").stdout
    assert any(line.split()[:2] == ["deployments", "deploy"] for line in resources.splitlines())
    names = kubectl.run("get", "namespaces", "-o", "name").stdout.split()
    assert names == [
        f"namespace/{n}"
        for n in ("default", "kube-node-lease", "kube-public", "kube-system", "test")
    ]
    api.apply(deployment())
    table = kubectl.run("get", "deploy").stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert table[1].split()[:4] == ["web", "0/2", "0", "0"]
    assert "deployment.apps/web" in kubectl.run("get", "all").stdout
    image = kubectl.run(
        "get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}"
    )
    assert image.stdout == "app:1"
    assert (
        yaml.safe_load(kubectl.run("get", "deploy", "web", "-o", "yaml").stdout)["kind"]
        == "Deployment"
    )


def test_apply_crds_then_an_example_rollout(api: ApiServer, with_crds: Kubectl) -> None:
    kubectl = with_crds
    kubectl.run("wait", "--for=condition=Established", "crd/rollouts.canary.dev", "--timeout=5s")
    assert "rollouts" in kubectl.run("api-resources", "--api-group=canary.dev", "-o", "name").stdout
    out = kubectl.run("apply", "-f", str(EXAMPLE)).stdout
    assert out.split("\n")[:2] == [
        "deployment.apps/podinfo created",
        "rollout.canary.dev/podinfo created",
    ]
    assert "unchanged" in kubectl.run("apply", "-f", str(EXAMPLE)).stdout
    ro = json.loads(kubectl.run("get", "cro", "podinfo", "-o", "json").stdout)
    # the category lists every canary kind, fully qualified
    assert "rollout.canary.dev/podinfo" in kubectl.run("get", "canary", "-o", "name").stdout
    assert ro["spec"]["strategy"]["canary"]["weights"] == [5, 10, 20, 50]
    assert "kubectl.kubernetes.io/last-applied-configuration" in ro["metadata"]["annotations"]
    header = kubectl.run("get", "rollouts").stdout.splitlines()[0].split()
    assert header == ["NAME", "PHASE", "WEIGHT", "REVISION", "AGE"]
    api.update_status(
        "canary.dev/v1alpha1",
        "Rollout",
        "podinfo",
        {"phase": "Progressing", "canaryWeight": 20},
        "test",
    )
    row = kubectl.run("get", "rollouts", "--no-headers").stdout.split()
    assert row[:3] == ["podinfo", "Progressing", "20"]


def test_apply_changes_and_removes_fields(
    api: ApiServer, with_crds: Kubectl, tmp_path: Path
) -> None:
    kubectl = with_crds
    docs = list(yaml.safe_load_all(EXAMPLE.read_text()))
    kubectl.run("apply", "-f", str(EXAMPLE))
    docs[0]["spec"]["template"]["spec"]["containers"][0]["image"] = (
        "ghcr.io/stefanprodan/podinfo:6.8.0"
    )
    del docs[1]["spec"]["service"]["route"]["retries"]
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump_all(docs))
    assert kubectl.run("apply", "-f", str(changed)).stdout.count("configured") == 2
    dep = api.get("apps/v1", "Deployment", "podinfo", "test")
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].endswith(":6.8.0")
    assert container["readinessProbe"]["httpGet"]["port"] == 9898  # merged, not replaced
    assert dep["metadata"]["generation"] == 2
    ro = api.get("canary.dev/v1alpha1", "Rollout", "podinfo", "test")
    assert "retries" not in ro["spec"]["service"]["route"]
    assert ro["spec"]["service"]["route"]["timeout"] == "10s"


def test_server_side_dry_run_stores_nothing(api: ApiServer, with_crds: Kubectl) -> None:
    out = with_crds.run("apply", "--dry-run=server", "-f", str(EXAMPLE)).stdout
    assert "rollout.canary.dev/podinfo created (server dry run)" in out
    assert api.list("canary.dev/v1alpha1", "Rollout") == []
    assert api.list("apps/v1", "Deployment") == []


def test_server_side_dry_run_reports_schema_errors(with_crds: Kubectl, tmp_path: Path) -> None:
    docs = list(yaml.safe_load_all(EXAMPLE.read_text()))
    docs[1]["spec"]["service"]["port"] = "http"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(docs[1]))
    result = with_crds.run("apply", "--dry-run=server", "-f", str(bad), check=False)
    assert result.returncode != 0
    # kubectl words a 422 from its causes: 'The Rollout "podinfo" is invalid: spec...'
    assert 'Rollout "podinfo" is invalid: spec.service.port: Invalid value' in result.stderr
    assert "must be of type integer" in result.stderr


def test_unknown_fields_are_rejected_by_kubectl_strict_validation(
    with_crds: Kubectl, tmp_path: Path
) -> None:
    docs = list(yaml.safe_load_all(EXAMPLE.read_text()))
    docs[1]["spec"]["surprise"] = 1
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(docs[1]))
    result = with_crds.run("apply", "-f", str(bad), check=False)
    assert result.returncode != 0
    assert 'unknown field "spec.surprise"' in result.stderr
    warned = with_crds.run("apply", "--validate=warn", "-f", str(bad))
    assert 'Warning: unknown field "spec.surprise"' in warned.stderr
    assert "rollout.canary.dev/podinfo created" in warned.stdout


def test_patch_merge_json_and_strategic(api: ApiServer, with_crds: Kubectl) -> None:
    kubectl = with_crds
    kubectl.run("apply", "-f", str(EXAMPLE))
    kubectl.run(
        "patch",
        "rollout",
        "podinfo",
        "--type",
        "merge",
        "-p",
        '{"spec":{"analysis":{"interval":"2m"}}}',
    )
    kubectl.run(
        "patch",
        "rollout",
        "podinfo",
        "--type",
        "json",
        "-p",
        '[{"op":"replace","path":"/spec/strategy/canary/weights/0","value":1}]',
    )
    ro = api.get("canary.dev/v1alpha1", "Rollout", "podinfo", "test")
    assert ro["spec"]["analysis"]["interval"] == "2m"
    assert ro["spec"]["strategy"]["canary"]["weights"][0] == 1
    # custom resources take no strategic merge patch, as on a real server
    refused = kubectl.run("patch", "rollout", "podinfo", "-p", '{"spec":{}}', check=False)
    assert refused.returncode != 0
    assert "application/strategic-merge-patch+json is not supported" in refused.stderr
    kubectl.run(
        "patch",
        "deploy",
        "podinfo",
        "-p",
        '{"spec":{"template":{"spec":{"containers":[{"name":"podinfo","image":"x:2"}]}}}}',
    )
    container = api.get("apps/v1", "Deployment", "podinfo", "test")["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert (container["image"], container["ports"][0]["containerPort"]) == ("x:2", 9898)
    kubectl.run(
        "patch",
        "rollout",
        "podinfo",
        "--subresource=status",
        "--type",
        "merge",
        "-p",
        '{"status":{"phase":"Paused"}}',
    )
    assert (
        api.get("canary.dev/v1alpha1", "Rollout", "podinfo", "test")["status"]["phase"] == "Paused"
    )


def test_scale_and_delete(api: ApiServer, kubectl: Kubectl) -> None:
    api.apply(deployment())
    kubectl.run("scale", "deploy", "web", "--replicas=5")
    assert api.get("apps/v1", "Deployment", "web", "test")["spec"]["replicas"] == 5
    assert 'deployment.apps "web" deleted' in kubectl.run("delete", "deploy", "web").stdout
    assert api.list("apps/v1", "Deployment") == []


def test_server_side_apply_creates_and_updates(api: ApiServer, with_crds: Kubectl) -> None:
    out = with_crds.run("apply", "--server-side", "-f", str(EXAMPLE)).stdout
    assert "rollout.canary.dev/podinfo serverside-applied" in out
    assert (
        api.get("canary.dev/v1alpha1", "Rollout", "podinfo", "test")["spec"]["targetRef"]["name"]
        == "podinfo"
    )


def test_get_watch_for_a_short_while(api: ApiServer, with_crds: Kubectl) -> None:
    kubectl = with_crds
    kubectl.run("apply", "-f", str(EXAMPLE))
    proc = kubectl.popen("get", "rollouts", "-w", "--request-timeout=2s", "-o", "name")
    time.sleep(0.7)
    api.update_status("canary.dev/v1alpha1", "Rollout", "podinfo", {"phase": "Progressing"}, "test")
    api.delete("canary.dev/v1alpha1", "Rollout", "podinfo", "test")
    out, err = proc.communicate(timeout=15)
    lines = out.split()
    assert lines[0] == "rollout.canary.dev/podinfo"
    assert len(lines) >= 3, (out, err)


def test_get_watch_prints_table_rows(api: ApiServer, kubectl: Kubectl) -> None:
    proc = kubectl.popen("get", "deploy", "-w", "--request-timeout=1500ms")
    time.sleep(0.6)
    api.apply(deployment())
    api.set_deployment_ready("test", "web")
    out, _ = proc.communicate(timeout=15)
    rows = [line.split()[:2] for line in out.splitlines()]
    assert ["web", "0/2"] in rows
    assert ["web", "2/2"] in rows


def test_mesh_crds_apply(api: ApiServer, kubectl: Kubectl) -> None:
    crds = ROOT / "tests" / "data" / "mesh-crds"
    files = ("istio-networking.yaml", "gateway-api-httproutes.yaml", "smi-trafficsplit.yaml")
    kubectl.run("apply", "--server-side", *(f"--filename={crds / name}" for name in files))
    kinds = kubectl.run("api-resources", "-o", "name").stdout.split()
    for plural in (
        "virtualservices.networking.istio.io",
        "destinationrules.networking.istio.io",
        "httproutes.gateway.networking.k8s.io",
        "trafficsplits.split.smi-spec.io",
    ):
        assert plural in kinds
    assert kubectl.run("get", "vs").stdout == ""
