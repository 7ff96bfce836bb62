"""Commands as RolloutCommand objects (and the store over them): authentic (the admission
policy), applied once across failed writes; gating webhooks signed with a key from the
cluster's Secrets."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from controller_support import ROLLOUTS, Cluster, deployment, rollout, wait_for

from canary.controller.commands import KubeRolloutStore
from canary.controller.kinds import ROLLOUT
from canary.controller.kube import Kube
from canary.engine.observations import Command, CommandKind
from canary.gates.api.store import RolloutNotFoundError, RolloutStore
from canary.gates.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from canary.model.command import ROLLOUT_LABEL, admission_policy, new_command
from canary.model.gates import ApprovalPoint
from canary.model.rollout import API_VERSION
from canary.notify import NotifyConfig, verify
from canary.notify.webhook import EVENT_HEADER
from canary.notify.webhook import SIGNATURE_HEADER as NOTIFY_SIGNATURE
from canary.notify.webhook import TIMESTAMP_HEADER as NOTIFY_TIMESTAMP

Json = dict[str, Any]
OLD_ANNOTATION = "canary.dev/commands"


@pytest.fixture
def store(cluster: Cluster) -> KubeRolloutStore:
    return KubeRolloutStore(Kube(cluster.api_client()), (cluster.namespace,), user="alice")


CONTROLLER_USER = "system:serviceaccount:canary-system:canary"


def commands(cluster: Cluster) -> list[Json]:
    return cluster.api.list(API_VERSION, "RolloutCommand", cluster.namespace)


def test_the_store_creates_command_objects(cluster: Cluster, store: KubeRolloutStore) -> None:
    assert isinstance(store, RolloutStore)
    cluster.api.apply(rollout("web", cluster.namespace))
    first = Command(kind=CommandKind.APPROVE, point=ApprovalPoint.PROMOTION, by="alice")
    store.post_command(cluster.namespace, "web", first)
    store.post_command(cluster.namespace, "web", Command(kind=CommandKind.ABORT, by="alice"))
    made = commands(cluster)
    assert sorted((c["spec"]["action"], c["spec"]["user"]) for c in made) == [
        ("abort", "alice"),
        ("approve", "alice"),
    ]
    assert all(c["metadata"]["labels"][ROLLOUT_LABEL] == "web" for c in made)
    view = store.get(cluster.namespace, "web")
    assert [c.kind for c in view.pending_commands] == [CommandKind.APPROVE, CommandKind.ABORT]
    assert view.spec is not None
    assert view.spec.target == "web"
    assert [c.kind for c in store.take_commands(cluster.namespace, "web")] == [
        CommandKind.APPROVE,
        CommandKind.ABORT,
    ]
    assert commands(cluster) == []
    assert store.take_commands(cluster.namespace, "web") == []
    assert [v.name for v in store.list()] == ["web"]
    with pytest.raises(RolloutNotFoundError):
        store.get(cluster.namespace, "nope")


def test_an_approval_sent_as_a_command_starts_the_rollout(
    cluster: Cluster, store: KubeRolloutStore
) -> None:
    cluster.api.apply(deployment("web", cluster.namespace))
    cluster.api.apply(
        rollout("web", cluster.namespace, skipAnalysis=True, gates={"approvals": ["rollout"]})
    )
    cluster.controller()
    cluster.wait_phase("web", "Initialized")
    cluster.set_image("web", "podinfo:7.0.0")
    status = cluster.wait_phase("web", "Waiting")
    assert status["waitingFor"] == "rollout"
    store.post_command(cluster.namespace, "web", Command(kind=CommandKind.APPROVE, by="alice"))
    status = cluster.wait_phase("web", "Succeeded")
    assert len(status["appliedCommands"]) == 1
    wait_for("the applied command deleted", lambda: commands(cluster) == [])
    approved = cluster.wait_events("Approved")
    assert approved[0]["message"] == "alice approved rollout"


def _kubectl_create(cluster: Cluster, tmp_path: Path, user: str, body: Json) -> Any:
    """kubectl create as ``user`` (impersonated: kubectl sends no token over plain HTTP)."""
    kubeconfig = cluster.kubeconfig
    path = tmp_path / "command.yaml"
    path.write_text(json.dumps(body))
    return subprocess.run(
        [
            *("kubectl", "--kubeconfig", str(kubeconfig), "--cache-dir", str(tmp_path)),
            *("--as", user, "create", "-f", str(path)),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_kubectl_create_approves_as_the_authenticated_user_and_a_forgery_is_refused(
    cluster: Cluster, tmp_path: Path
) -> None:
    if shutil.which("kubectl") is None:
        pytest.fail("kubectl is not installed: this test drives the real kubectl")
    cluster.api.install_admission_policies(admission_policy(CONTROLLER_USER))
    dave = "dave@corp"
    cluster.api.apply(deployment("web", cluster.namespace))
    cluster.api.apply(
        rollout("web", cluster.namespace, skipAnalysis=True, gates={"approvals": ["rollout"]})
    )
    cluster.controller()
    cluster.wait_phase("web", "Initialized")
    cluster.set_image("web", "podinfo:7.0.0")
    cluster.wait_phase("web", "Waiting")
    for forged in (
        new_command(cluster.namespace, "web", "approve", "release-manager@corp (CAB-1234)"),
        new_command(cluster.namespace, "web", "approve", "dave@corp", on_behalf_of="cab"),
    ):
        refused = _kubectl_create(cluster, tmp_path, dave, forged)
        assert refused.returncode != 0
        assert "denied request" in refused.stderr
    assert commands(cluster) == []
    honest = new_command(cluster.namespace, "web", "approve", "dave@corp")
    created = _kubectl_create(cluster, tmp_path, dave, honest)
    assert created.returncode == 0, created.stderr
    cluster.wait_phase("web", "Succeeded")
    messages = [e["message"] for e in cluster.events()]
    assert "dave@corp approved rollout" in messages
    assert not [m for m in messages if "release-manager" in m or "cab" in m]


def test_a_command_survives_a_failed_status_write_and_applies_once(cluster: Cluster) -> None:
    cluster.api.apply(deployment("web", cluster.namespace))
    cluster.api.apply(
        rollout("web", cluster.namespace, skipAnalysis=True, gates={"approvals": ["rollout"]})
    )
    cluster.controller()
    cluster.wait_phase("web", "Initialized")
    cluster.set_image("web", "podinfo:7.0.0")
    cluster.wait_phase("web", "Waiting")
    # the tick that takes the approval fails to write its status, and the next one's delete of
    # the applied command fails too: the command is neither lost nor applied twice
    cluster.api.fail(r"/rollouts/web/status$", code=500, times=1, method="PUT")
    cluster.api.fail(r"/rolloutcommands/", code=500, times=1, method="DELETE")
    store = KubeRolloutStore(Kube(cluster.api_client()), (cluster.namespace,), user="erin")
    store.post_command(cluster.namespace, "web", Command(kind=CommandKind.APPROVE, by="erin"))
    status = cluster.wait_phase("web", "Succeeded")
    wait_for("the applied command deleted", lambda: commands(cluster) == [])
    assert len(status["appliedCommands"]) == 1
    assert [e["message"] for e in cluster.events("Approved")] == ["erin approved rollout"]


def test_an_annotation_is_no_command(cluster: Cluster) -> None:
    cluster.api.apply(deployment("web", cluster.namespace))
    cluster.api.apply(
        rollout("web", cluster.namespace, skipAnalysis=True, gates={"approvals": ["rollout"]})
    )
    cluster.controller()
    cluster.wait_phase("web", "Initialized")
    kube = Kube(cluster.api_client())
    forged = '[{"kind": "approve", "by": "release-manager@corp"}]'
    kube.patch(
        ROLLOUT, cluster.namespace, "web", {"metadata": {"annotations": {OLD_ANNOTATION: forged}}}
    )
    cluster.set_image("web", "podinfo:7.0.0")
    cluster.wait_phase("web", "Waiting")
    time.sleep(1.0)  # a few ticks' worth: the annotation must not open the gate
    assert cluster.phase("web") == "Waiting"
    assert not cluster.events("Approved")


class Hook:
    """A confirm-rollout endpoint: records what it is sent, answers with ``answer``."""

    def __init__(self) -> None:
        self.answer = 403
        self.requests: list[tuple[dict[str, str], bytes]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hook.requests.append((dict(self.headers), body))
                self.send_response(hook.answer)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/confirm"


@pytest.fixture
def hook() -> Iterator[Hook]:
    made = Hook()
    yield made
    made.server.shutdown()
    made.server.server_close()


def test_a_confirm_rollout_webhook_signed_with_a_cluster_secret(
    cluster: Cluster, hook: Hook
) -> None:
    key = b"s3cret-signing-key"
    cluster.api.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "hooks", "namespace": cluster.namespace},
            "data": {"confirm": base64.b64encode(key).decode()},
        }
    )
    webhook = {
        "name": "ci",
        "type": "confirm-rollout",
        "url": hook.url,
        "timeout": "2s",
        "retries": 0,
        "secretRef": {"name": "hooks", "key": "confirm"},
    }
    cluster.api.apply(deployment("web", cluster.namespace))
    cluster.api.apply(
        rollout("web", cluster.namespace, skipAnalysis=True, gates={"webhooks": [webhook]})
    )
    cluster.controller(webhook_allow=("127.0.0.0/8",))  # the hook binds 127.0.0.1
    cluster.wait_phase("web", "Initialized")
    cluster.set_image("web", "podinfo:7.0.0")
    status = cluster.wait_phase("web", "Waiting")
    assert "webhook 'ci' (confirm-rollout) said no" in status["message"]
    headers, body = hook.requests[-1]
    assert verify_signature(body, key, headers[SIGNATURE_HEADER], headers[TIMESTAMP_HEADER])
    hook.answer = 200
    cluster.wait_phase("web", "Succeeded")


OPERATOR = "0123456789abcdef0123456789abcdef"


def test_the_api_served_by_the_controller(cluster: Cluster, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"ci operate {OPERATOR}\n")
    cluster.api.apply(deployment("web", cluster.namespace))
    cluster.api.apply(
        rollout("web", cluster.namespace, skipAnalysis=True, gates={"approvals": ["rollout"]})
    )
    # the controller's client is the test server's default user: the policy lets it (only)
    # act for API tokens
    cluster.api.install_admission_policies(admission_policy("kubernetes-admin"))
    controller = cluster.controller(api_address=("127.0.0.1", 0), api_tokens=tokens)
    assert controller.api is not None
    cluster.wait_phase("web", "Initialized")
    cluster.set_image("web", "podinfo:7.0.0")
    cluster.wait_phase("web", "Waiting")
    path = f"{controller.api.url}/api/v1/namespaces/{cluster.namespace}/rollouts/web"
    auth = {"Authorization": f"Bearer {OPERATOR}"}
    with httpx.Client(headers=auth, timeout=10) as http:
        view = http.get(path).raise_for_status().json()
        assert view["status"]["phase"] == "Waiting"
        assert view["spec"]["target"] == "web"
        assert view["targetRevision"] == view["status"]["canaryRevision"]
        http.post(f"{path}/approve", json={}).raise_for_status()
        cluster.wait_phase("web", "Succeeded")
        assert http.get(f"{controller.api.url}/api/v1/rollouts").json()["items"][0]["name"] == "web"
    audit = cluster.wait_events("CommandApprove")[0]
    assert audit["message"].startswith("ci asked to approve through the API: accepted")
    approved = cluster.wait_events("Approved")[0]["message"]
    assert approved == "ci (canary API token, via kubernetes-admin) approved rollout"


def test_notifications_reach_a_channel_of_the_cluster(cluster: Cluster, hook: Hook) -> None:
    hook.answer = 200
    cluster.api.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "notify", "namespace": cluster.namespace},
            "data": {"key": base64.b64encode(b"channel-key").decode()},
        }
    )
    cluster.api.apply(
        {
            "apiVersion": ROLLOUTS,
            "kind": "NotificationChannel",
            "metadata": {"name": "deploys", "namespace": cluster.namespace},
            "spec": {"webhook": {"url": hook.url, "secretRef": {"name": "notify", "key": "key"}}},
        }
    )
    cluster.api.apply(deployment("web", cluster.namespace))
    notifications = {"channels": [{"name": "deploys"}], "events": ["started", "promoted"]}
    cluster.api.apply(
        rollout("web", cluster.namespace, skipAnalysis=True, notifications=notifications)
    )
    cluster.controller(notify=NotifyConfig(idle_poll=0.05, webhook_allow=("127.0.0.0/8",)))
    cluster.wait_phase("web", "Initialized")
    cluster.set_image("web", "podinfo:7.0.0")
    cluster.wait_phase("web", "Succeeded")

    def sent() -> list[str] | None:
        kinds = [headers.get(EVENT_HEADER, "") for headers, _ in hook.requests]
        return kinds if "promoted" in kinds else None

    assert wait_for("the promoted notification", sent) == ["started", "promoted"]
    headers, body = hook.requests[-1]
    assert verify("channel-key", headers[NOTIFY_TIMESTAMP], body, headers[NOTIFY_SIGNATURE])
