"""Running the controller: route drift repaired, /metrics, /healthz and /readyz, and
`canary controller` as a process of its own."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import yaml
from controller_support import ROLLOUTS, Cluster, deployment, rollout, wait_for

from canary.controller.metrics import ControllerMetrics
from canary.local.processes import free_port
from canary.model.status import CheckResult, Phase, Verdict

VS = ("networking.istio.io/v1", "VirtualService", "web")
HPA = ("autoscaling/v2", "HorizontalPodAutoscaler")


def autoscaler(name: str, namespace: str, maximum: int) -> dict[str, object]:
    target = {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
    spec = {"scaleTargetRef": target, "minReplicas": 1, "maxReplicas": maximum}
    metadata = {"name": name, "namespace": namespace}
    return {"apiVersion": HPA[0], "kind": HPA[1], "metadata": metadata, "spec": spec}


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def weights(cluster: Cluster) -> list[int]:
    found = cluster.get(*VS)
    assert found is not None
    return [r["weight"] for r in found["spec"]["http"][-1]["route"]]


def test_a_route_changed_by_hand_is_put_back(cluster: Cluster) -> None:
    cluster.api.apply(deployment("web", cluster.namespace))
    spec = {"service": {"port": 9898, "route": {"timeout": "5s"}}}
    cluster.api.apply(rollout("web", cluster.namespace, **spec))
    # the resync is 5 minutes: the route watch wakes the Rollout, whose tick puts it back
    cluster.controller(route_resync=300.0)
    cluster.wait_phase("web", "Initialized")
    edited = copy.deepcopy(cluster.get(*VS))
    assert edited is not None
    route = edited["spec"]["http"][-1]
    route["route"][0]["weight"], route["route"][1]["weight"] = 50, 50
    del route["timeout"]
    edited["metadata"].pop("resourceVersion")
    cluster.api.apply(edited)
    wait_for("the route repaired", lambda: weights(cluster) == [100, 0])
    repaired = cluster.get(*VS)
    assert repaired is not None
    assert repaired["spec"]["http"][-1]["timeout"] == "5s"


def test_metrics_health_and_readiness(cluster: Cluster) -> None:
    cluster.api.apply(deployment("web", cluster.namespace))
    cluster.api.apply(rollout("web", cluster.namespace))
    controller = cluster.controller(namespaces=())  # all namespaces
    assert controller.health is not None
    base = f"http://{controller.health.address}"
    cluster.wait_phase("web", "Initialized")
    assert get(f"{base}/healthz") == (200, "ok\n")
    assert get(f"{base}/readyz") == (200, "leader\n")

    def scraped() -> str | None:
        code, text = get(f"{base}/metrics")
        return text if code == 200 and 'canary_rollouts{phase="Initialized"} 1.0' in text else None

    text = wait_for("the phase in /metrics", scraped)
    assert "canary_leader 1.0" in text
    ns = cluster.namespace
    assert f'canary_rollout_canary_weight{{name="web",namespace="{ns}"}} 0.0' in text
    assert 'canary_reconcile_duration_seconds_count{outcome="ok"}' in text
    assert 'canary_tick_lateness_seconds_count{kind="scheduled"}' in text
    assert "canary_workers_busy " in text
    assert get(f"{base}/nope")[0] == 404


def test_the_controller_command_runs_until_terminated(cluster: Cluster) -> None:
    cluster.api.apply(deployment("web", cluster.namespace))
    cluster.api.apply(rollout("web", cluster.namespace))
    port = free_port()
    argv = [
        *(sys.executable, "-m", "canary.cli.main", "controller"),
        *("--kubeconfig", str(cluster.kubeconfig)),
        *("--namespace", cluster.namespace),
        *("--metrics-addr", f"127.0.0.1:{port}"),
        *("--lease-namespace", cluster.namespace, "--lease-name", "canary"),
        *("--lease-duration", "3s", "--renew-deadline", "2s", "--retry-period", "500ms"),
        *("--identity", "from-the-cli", "--prometheus", "http://127.0.0.1:1"),
        "--no-notifications",
    ]
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ)
    )
    try:
        wait_for("/readyz", lambda: get(f"http://127.0.0.1:{port}/readyz")[0] == 200, 20)
        cluster.wait_phase("web", "Initialized", timeout=20)
        lease = cluster.get("coordination.k8s.io/v1", "Lease", "canary")
        assert lease is not None
        assert lease["spec"]["holderIdentity"] == "from-the-cli"
        wait_for("the Events (delivered after the status write)", cluster.events)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert "from-the-cli released the Lease" in output
    assert {e["reportingInstance"] for e in cluster.events()} == {"from-the-cli"}


def test_the_controller_command_refuses_bad_flags() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "canary.cli.main", "controller", "--lease-duration", "soon"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "'soon' is not a duration" in result.stderr


def test_deleting_a_rollout_gives_the_target_back(cluster: Cluster) -> None:
    cluster.api.apply(deployment("web", cluster.namespace, replicas=3))
    cluster.api.apply(rollout("web", cluster.namespace))
    controller = cluster.controller(restore_on_delete=True)
    cluster.wait_phase("web", "Initialized")
    wait_for("the target scaled down", lambda: cluster.deployment("web")["spec"]["replicas"] == 0)
    assert cluster.rollout("web")["metadata"]["finalizers"] == ["canary.dev/finalizer"]
    cluster.api.delete(ROLLOUTS, "Rollout", "web", cluster.namespace)
    wait_for(
        "the Rollout gone", lambda: cluster.get("canary.dev/v1alpha1", "Rollout", "web") is None
    )
    assert cluster.deployment("web")["spec"]["replicas"] == 3
    service = cluster.get("v1", "Service", "web")
    assert service is not None
    assert service["spec"]["selector"] == {"app": "web"}
    assert not service["metadata"].get("ownerReferences")
    for gone in [
        ("apps/v1", "Deployment", "web-primary"),
        ("v1", "Service", "web-primary"),
        ("v1", "Service", "web-canary"),
        VS,
    ]:
        assert cluster.get(*gone) is None, gone
    wait_for("the job removed", lambda: controller.scheduler.keys() == [])


def test_without_the_finalizer_the_garbage_collector_cleans_up(cluster: Cluster) -> None:
    cluster.api.apply(deployment("web", cluster.namespace))
    cluster.api.apply(rollout("web", cluster.namespace))
    controller = cluster.controller()
    cluster.wait_phase("web", "Initialized")
    assert not cluster.rollout("web")["metadata"].get("finalizers")
    cluster.api.delete(ROLLOUTS, "Rollout", "web", cluster.namespace)
    for gone in [("apps/v1", "Deployment", "web-primary"), ("v1", "Service", "web"), VS]:
        assert cluster.get(*gone) is None, gone
    wait_for("the job removed", lambda: controller.scheduler.keys() == [])


def documented_rbac() -> list[dict[str, list[str]]]:
    text = (Path(__file__).resolve().parents[2] / "docs" / "controller.md").read_text()
    section = text.split("## RBAC", 1)[1]
    block = section.split("```yaml", 1)[1].split("```", 1)[0]
    rules: list[dict[str, list[str]]] = yaml.safe_load(block)
    return rules


def request_of(method: str, target: str) -> tuple[str, str, str]:
    """(verb, API group, resource[/subresource]) of a request, as RBAC sees it."""
    path, _, query = target.partition("?")
    parts = path.strip("/").split("/")
    group, rest = ("", parts[2:]) if parts[0] == "api" else (parts[1], parts[3:])
    if rest and rest[0] == "namespaces" and len(rest) > 2:
        rest = rest[2:]
    resource = rest[0] + (f"/{rest[2]}" if len(rest) > 2 else "")
    named = len(rest) > 1
    verb = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method)
    if verb is None:
        verb = "get" if named else ("watch" if "watch=" in query else "list")
    return verb, group, resource


def test_the_documented_rbac_allows_every_request(cluster: Cluster) -> None:
    rules = documented_rbac()
    config = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"LEVEL": "info"}}
    config["metadata"] = {"name": "web-env", "namespace": cluster.namespace}
    cluster.api.apply(config)
    target = deployment("web", cluster.namespace)
    container = target["spec"]["template"]["spec"]["containers"][0]
    container["envFrom"] = [{"configMapRef": {"name": "web-env"}}]
    cluster.api.apply(target)
    cluster.api.apply(autoscaler("web", cluster.namespace, maximum=4))
    cluster.api.apply(
        rollout("web", cluster.namespace, skipAnalysis=True, autoscalerRef={"name": "web"})
    )
    cluster.controller(restore_on_delete=True, namespaces=())
    cluster.wait_phase("web", "Initialized")
    cluster.api.apply(autoscaler("web", cluster.namespace, maximum=8))  # copied at promotion
    cluster.set_image("web", "podinfo:7.0.0")
    cluster.wait_phase("web", "Succeeded")
    cluster.api.delete(ROLLOUTS, "Rollout", "web", cluster.namespace)
    wait_for("the Rollout gone", lambda: cluster.get(ROLLOUTS, "Rollout", "web") is None)
    assert cluster.get(*HPA, "web-primary") is None
    cluster.api.stop_watches()  # the watches end: their requests are logged once answered

    def made_requests() -> set[tuple[str, str, str]] | None:
        made = {request_of(method, target) for method, target, _ in list(cluster.api.requests)}
        watched = {resource for verb, _, resource in made if verb == "watch"}
        return made if {"rollouts", "deployments"} <= watched else None

    made = wait_for("the watches logged", made_requests)
    refused = {
        (verb, group, resource)
        for verb, group, resource in made
        if not any(
            verb in rule["verbs"] and group in rule["apiGroups"] and resource in rule["resources"]
            for rule in rules
        )
    }
    assert not refused
    assert ("update", "canary.dev", "rollouts/status") in made
    assert ("patch", "apps", "deployments/scale") in made
    assert ("watch", "canary.dev", "rollouts") in made
    assert ("create", "", "configmaps") in made
    for verb in ("get", "create", "update", "delete"):
        assert (verb, "autoscaling", "horizontalpodautoscalers") in made


def test_a_deleted_rollouts_series_are_dropped() -> None:
    metrics = ControllerMetrics()
    at = datetime(2025, 1, 1, tzinfo=UTC)
    for name in ("gone", "kept"):
        metrics.rollout("shop", name, Phase.PROGRESSING, 20)
        metrics.check_results(
            "shop", name, [CheckResult(name="latency", verdict=Verdict.PASS, time=at)]
        )
        metrics.reconcile_error("shop", name, "KubeError")
    metrics.forget("shop", "gone")
    text = metrics.exposition().decode()
    assert 'name="gone"' not in text
    for series in (
        'canary_check_results_total{check="latency",name="kept",namespace="shop",verdict="pass"}',
        'canary_reconcile_errors_total{name="kept",namespace="shop",reason="KubeError"}',
        'canary_rollout_canary_weight{name="kept",namespace="shop"} 20.0',
    ):
        assert series in text
    metrics.forget("shop", "never-seen")  # nothing to drop: no error
