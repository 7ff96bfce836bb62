"""`canary render`, run as a user runs it: the installed console script in a subprocess."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def _canary() -> str:
    beside_python = Path(sys.executable).parent / "canary"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("canary")
    assert found, "the `canary` console script is not installed"
    return found


def render(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_canary(), "render", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d is not None]


def test_istio_objects_for_a_weight() -> None:
    done = render(EXAMPLES / "podinfo-istio.yaml", "--weight", "20")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("---\n")
    vs, primary, canary = documents(done.stdout)
    assert vs["kind"] == "VirtualService"
    (http,) = vs["spec"]["http"]
    assert [d["weight"] for d in http["route"]] == [80, 20]
    assert http["timeout"] == "10s"
    assert (primary["metadata"]["name"], canary["metadata"]["name"]) == (
        "podinfo-primary",
        "podinfo-canary",
    )


def test_ab_route_with_match() -> None:
    done = render(EXAMPLES / "podinfo-ab-test.yaml", "--match")
    assert done.returncode == 0, done.stderr
    vs = documents(done.stdout)[0]
    ab, default = vs["spec"]["http"]
    assert ab["match"][0]["headers"] == {"x-canary": {"exact": "insider"}}
    assert [d["weight"] for d in default["route"]] == [100, 0]


def test_gateway_api_mirror_and_linkerd_http_route() -> None:
    done = render(EXAMPLES / "podinfo-gateway-api.yaml", "--mirror", "25")
    assert done.returncode == 0, done.stderr
    (route,) = documents(done.stdout)
    (rule,) = route["spec"]["rules"]
    assert rule["filters"][-1]["requestMirror"]["percent"] == 25
    done = render(EXAMPLES / "podinfo-linkerd.yaml", "--weight", "40")
    (route,) = documents(done.stdout)
    assert route["spec"]["parentRefs"][0]["kind"] == "Service"
    assert [b["weight"] for b in route["spec"]["rules"][0]["backendRefs"]] == [60, 40]


LINKERD = """
apiVersion: canary.dev/v1alpha1
kind: Rollout
metadata: {name: web, namespace: shop}
spec:
  targetRef: {name: web}
  service:
    port: 8080
    route:
      retries: {attempts: 2, retryOn: [5xx]}
      circuitBreaker: {outlierDetection: {consecutiveErrors: 4, baseEjectionTime: 30s}}
  provider: {name: linkerd}
"""


def test_linkerd_names_the_service_annotations_it_needs(tmp_path: Path) -> None:
    file = tmp_path / "web.yaml"
    file.write_text(LINKERD)
    done = render(file, "--weight", "5")
    assert done.returncode == 0, done.stderr
    assert "# Linkerd reads the circuit breaker from Service web" in done.stdout
    assert "balancer.linkerd.io/failure-accrual-consecutive-max-failures: '4'" in done.stdout
    (route,) = documents(done.stdout)
    assert route["metadata"]["annotations"]["retry.linkerd.io/limit"] == "2"


def test_haproxy_prints_the_config_and_the_runtime_commands() -> None:
    done = render(EXAMPLES / "podinfo-haproxy.yaml", "--weight", "30")
    assert done.returncode == 0, done.stderr
    assert "backend podinfo\n" in done.stdout
    assert "#   set weight podinfo/primary 70" in done.stdout
    assert "#   set weight podinfo/canary 30" in done.stdout
    done = render(EXAMPLES / "podinfo-haproxy.yaml", "--mirror", "10")
    assert done.returncode == 1
    assert "cannot mirror" in done.stderr


def test_a_bad_file_is_named_with_the_field(tmp_path: Path) -> None:
    text = (EXAMPLES / "podinfo-istio.yaml").read_text().replace("[5, 10, 20, 50]", "[5, 150]")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    done = render(bad, "--weight", "20")
    assert done.returncode == 1
    assert done.stdout == ""
    assert f"{bad}[1]: spec.strategy.canary.weights[1]: " in done.stderr  # document 1
    done = render(tmp_path / "missing.yaml")
    assert done.returncode == 1
    assert f"{tmp_path / 'missing.yaml'}: cannot read" in done.stderr


def test_what_the_state_cannot_be_is_refused() -> None:
    done = render(EXAMPLES / "podinfo-istio.yaml", "--match")
    assert done.returncode == 1
    assert "spec.strategy.abTest: --match needs the A/B strategy" in done.stderr
    done = render(EXAMPLES / "podinfo-istio.yaml", "--weight", "101")
    assert done.returncode != 0
    assert "--weight" in done.stderr
