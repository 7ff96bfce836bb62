"""The chart's CA bundle for an https Prometheus, end to end: a real Prometheus serving TLS
with a certificate of a private CA (made here with openssl), `canary controller` run with
what the chart renders for `prometheus.caBundle` (the ConfigMap mounted, --prometheus-ca-file)
and a Rollout under analysis. With the bundle the queries get through (the checks find no
traffic, the Prometheus is empty); without it they fail verification, and the checks say so."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chart_controller import controller_from_chart, deployment, kubelet, rollout, wait_for
from chart_support import CRDS, MESH_CRDS, NAMESPACE, render

from canary.local.processes import free_port
from canary.testing import ApiServer

Json = dict[str, Any]


def _openssl(*args: str, cwd: Path) -> None:
    found = shutil.which("openssl")
    if found is None:
        pytest.fail("openssl is missing: the test makes its CA and certificate with it")
    subprocess.run([found, *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca_and_certificate(folder: Path) -> Path:
    """ca.pem (a private CA) and server.pem/server.key for 127.0.0.1, signed by it."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
             "-out", "ca.pem", "-days", "2", "-subj", "/CN=canary test CA", cwd=folder)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out",
             "server.csr", "-subj", "/CN=127.0.0.1", cwd=folder)  # fmt: skip
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.ext",
             cwd=folder)  # fmt: skip
    return folder / "ca.pem"


@pytest.fixture
def tls_prometheus(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real Prometheus on https://127.0.0.1:PORT (empty); its URL and the CA's bundle."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is missing: scripts/bootstrap.sh installs Debian's package")
    folder = tmp_path / "prometheus"
    folder.mkdir()
    ca = make_ca_and_certificate(folder)
    (folder / "web.yml").write_text(
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n"
    )
    (folder / "prometheus.yml").write_text("scrape_configs: []\n")
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "--config.file=prometheus.yml",
            "--web.config.file=web.yml",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.path=data",
            "--log.level=warn",
        ],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=(folder / "prometheus.log").open("w"),
    )
    url = f"https://127.0.0.1:{port}"
    context = ssl.create_default_context(cafile=str(ca))

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError((folder / "prometheus.log").read_text())
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2, context=context) as answer:
                return int(answer.status) == 200
        except OSError:
            return False

    try:
        wait_for("Prometheus ready over TLS", ready, timeout=60)
        yield url, ca
    finally:
        process.terminate()
        process.wait(20)


def _checks(api: ApiServer) -> list[Json]:
    found = api.list("canary.dev/v1alpha1", "Rollout", "shop")
    status = (found[0].get("status") or {}) if found else {}
    checks: list[Json] = status.get("checks") or []
    return checks


def _run_until_checks(api: ApiServer, values: Json, kubeconfig: Path, tmp_path: Path,
                      ca: Path) -> list[Json]:  # fmt: skip
    """The controller as the chart runs it, a Rollout under analysis; its first check results."""
    result = render(values)
    analysed = rollout("web", "shop")
    del analysed["spec"]["skipAnalysis"]
    api.apply(deployment("web", "shop", "podinfo:6.7.0"))
    api.apply(analysed)
    bundles = {"prometheus-ca": {"ca.pem": ca.read_text()}}
    with controller_from_chart(result, kubeconfig, tmp_path, config_maps=bundles) as running:
        running.address(r"metrics, healthz and readyz on (http://\S+)")

        def initialized() -> bool:
            kubelet(api, "shop")
            found = api.list("canary.dev/v1alpha1", "Rollout", "shop")
            return bool(found) and (found[0].get("status") or {}).get("phase") == "Initialized"

        wait_for("the Rollout Initialized", initialized, timeout=60)
        target = api.get("apps/v1", "Deployment", "web", "shop")
        target["spec"]["template"]["spec"]["containers"][0]["image"] = "podinfo:6.7.1"
        api.apply(target)

        def checked() -> list[Json] | None:
            kubelet(api, "shop")
            return _checks(api) or None

        return wait_for("check results", checked, timeout=90)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[ApiServer, Path]]:
    with ApiServer() as api:
        for namespace in (NAMESPACE, "shop"):
            api.create_namespace(namespace)
        api.apply_file(*sorted(CRDS.glob("*.yaml")), *sorted(MESH_CRDS.glob("*.yaml")))
        yield api, api.kubeconfig(tmp_path / "kubeconfig", namespace=NAMESPACE)


def test_the_charts_ca_bundle_lets_the_controller_query_an_https_prometheus(
    tls_prometheus: tuple[str, Path], cluster: tuple[ApiServer, Path], tmp_path: Path
) -> None:
    url, ca = tls_prometheus
    api, kubeconfig = cluster
    values = {
        "prometheus": {"url": url, "caBundle": {"configMap": "prometheus-ca", "key": "ca.pem"}}
    }
    checks = _run_until_checks(api, values, kubeconfig, tmp_path / "with", ca)
    messages = [c.get("message", "") for c in checks]
    assert not [m for m in messages if "unavailable" in m or "TLS" in m], messages
    # Prometheus answered: the evidence is its (empty) answer, counted as zero requests
    assert all(c["canary"] == {"requests": 0, "failures": 0} for c in checks), checks
    assert all(m == "no canary data in the window" for m in messages), messages


def test_without_the_bundle_the_checks_say_tls_failed(
    tls_prometheus: tuple[str, Path], cluster: tuple[ApiServer, Path], tmp_path: Path
) -> None:
    """The test above has teeth: the same run without the CA bundle cannot verify Prometheus."""
    url, ca = tls_prometheus
    api, kubeconfig = cluster
    checks = _run_until_checks(api, {"prometheus": {"url": url}}, kubeconfig, tmp_path / "no", ca)
    messages = [c.get("message", "") for c in checks]
    assert [m for m in messages if "TLS failed" in m], messages
    assert all(c["verdict"] == "inconclusive" for c in checks)
