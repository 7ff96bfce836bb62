"""Every write asked of the API served over a cluster (the controller's `start_api`) is recorded
with who asked: a log line, and a Kubernetes Event on the Rollout — Normal when accepted,
Warning when refused; a read token's write is a warning log line naming the token."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from api_support import OPERATE, READ, TOKENS

from canary.controller.api import start_api
from canary.gates.api.serve import ApiServer as ServedApi
from canary.testing import ApiServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))

from kubeconfig_support import NAMESPACE, KubeRollout, crd_files, progressing_in

PATH = "/api/v1/namespaces/test/rollouts/podinfo"


@pytest.fixture
def podinfo(tmp_path: Path) -> Iterator[KubeRollout]:
    with ApiServer(bookmark_interval=0.2) as cluster:
        cluster.apply_file(*crd_files())
        cluster.create_namespace(NAMESPACE)
        kubeconfig = cluster.kubeconfig(tmp_path / "kubeconfig", namespace=NAMESPACE)
        made = progressing_in(cluster, kubeconfig)
        yield made
        made.close()


@pytest.fixture
def api(podinfo: KubeRollout, tmp_path: Path) -> Iterator[ServedApi]:
    tokens = tmp_path / "tokens"
    tokens.write_text("".join(f"{n} {s} {t}\n" for n, s, t in TOKENS))
    served = start_api(
        podinfo.kube,
        (NAMESPACE,),
        tokens,
        ("127.0.0.1", 0),
        identity="replica-1",
        clock=lambda: datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
    )
    yield served
    served.stop()


def events(podinfo: KubeRollout, reason: str) -> list[dict[str, object]]:
    return [e for e in podinfo.events() if e["reason"] == reason]


def test_writes_are_events_and_log_lines_naming_who_asked(
    podinfo: KubeRollout, api: ServedApi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="canary.api.audit")
    with httpx.Client(base_url=api.url, timeout=10) as http:
        assert http.post(f"{PATH}/abort", headers=OPERATE).status_code == 202
        assert http.post(f"{PATH}/retry", headers=OPERATE).status_code == 409
        assert http.post(f"{PATH}/promote", headers=READ).status_code == 403
        assert http.post(f"{PATH}/promote").status_code == 401

    [accepted] = events(podinfo, "CommandAbort")
    assert accepted["type"] == "Normal"
    assert str(accepted["message"]).startswith("ci asked to abort through the API: accepted")
    involved = accepted["involvedObject"]
    assert isinstance(involved, dict)
    assert (involved["kind"], involved["namespace"], involved["name"]) == (
        "Rollout",
        "test",
        "podinfo",
    )
    [refused] = events(podinfo, "CommandRetry")
    assert refused["type"] == "Warning"
    assert str(refused["message"]).startswith("ci asked to retry through the API: rejected")
    assert events(podinfo, "CommandPromote") == [], "the 401 and 403 queued nothing"

    lines = [r.getMessage() for r in caplog.records if r.name == "canary.api.audit"]
    assert any(line.startswith("audit: ci asked to abort test/podinfo: accepted") for line in lines)
    assert any(line.startswith("audit: ci asked to retry test/podinfo: rejected") for line in lines)
    refusals = [r.getMessage() for r in caplog.records if r.name == "canary.api"]
    assert f"audit: viewer (scope read) refused: POST {PATH}/promote" in refusals

    podinfo.tick()  # the controller's next tick takes the abort
    assert "aborted by ci" in podinfo.world.status.message  # type: ignore[union-attr]


def test_reads_are_not_recorded(podinfo: KubeRollout, api: ServedApi) -> None:
    with httpx.Client(base_url=api.url, headers=READ, timeout=10) as http:
        assert http.get(PATH).json()["status"]["canaryWeight"] == 10
        assert http.get("/api/v1/rollouts").json()["items"][0]["name"] == "podinfo"
    assert [e for e in podinfo.events() if str(e["reason"]).startswith("Command")] == []
