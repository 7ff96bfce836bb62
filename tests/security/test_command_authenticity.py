"""Who asked is who the cluster says: `canary abort` with a kubeconfig records the user the
token authenticates as (not the kubeconfig's own name for it), and a command object naming
anyone else is refused by the shipped admission policy. Against the test API server, which
evaluates the policy's CEL with cel-python, through the real kubernetes client."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from kubernetes import client, config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))

from kubeconfig_support import NAMESPACE, crd_files, progressing_in

from canary.cli.main import cli
from canary.model.command import admission_policy, new_command
from canary.testing import ApiServer

CONTROLLER = "system:serviceaccount:canary-system:canary"
NO_API = {"CANARY_API": "", "CANARY_TOKEN": "", "CANARY_NAMESPACE": "", "COLUMNS": "200"}


@pytest.fixture
def api() -> Iterator[ApiServer]:
    with ApiServer() as server:
        server.apply_file(*crd_files())
        server.create_namespace(NAMESPACE)
        server.install_admission_policies(admission_policy(CONTROLLER))
        yield server


def test_the_cli_asks_as_the_authenticated_user(api: ApiServer, tmp_path: Path) -> None:
    # the kubeconfig calls its user "canary-test"; the cluster knows the token as alice@corp
    kubeconfig = api.kubeconfig(tmp_path / "kc", NAMESPACE, api.add_user("alice@corp"))
    podinfo = progressing_in(api, kubeconfig)
    result = CliRunner().invoke(
        cli, ["abort", "podinfo", "--kubeconfig", str(kubeconfig)], env=NO_API
    )
    assert result.exit_code == 0, result.output
    assert "(asked by alice@corp)" in result.output
    assert podinfo.queued() == [{"rollout": "podinfo", "action": "abort", "user": "alice@corp"}]
    podinfo.tick()
    assert "aborted by alice@corp" in (podinfo.world.status.message if podinfo.world.status else "")
    podinfo.close()


@pytest.mark.parametrize(
    ("user", "on_behalf_of", "why"),
    [
        ("release-manager@corp (CAB-1234)", None, "spec.user must be the user"),
        ("mallory", "ci", "spec.onBehalfOf is set by the canary API only"),
    ],
)
def test_a_forged_command_is_refused(
    api: ApiServer, tmp_path: Path, user: str, on_behalf_of: str | None, why: str
) -> None:
    kubeconfig = api.kubeconfig(tmp_path / "kc", NAMESPACE, api.add_user("mallory"))
    api_client = config.new_client_from_config(config_file=str(kubeconfig))
    objects = client.CustomObjectsApi(api_client)
    body = new_command(NAMESPACE, "podinfo", "approve", user, on_behalf_of=on_behalf_of)
    with pytest.raises(client.ApiException) as refused:
        objects.create_namespaced_custom_object(
            "canary.dev", "v1alpha1", NAMESPACE, "rolloutcommands", body
        )
    assert refused.value.status == 403
    assert why in str(refused.value.body)
    assert api.list("canary.dev/v1alpha1", "RolloutCommand", NAMESPACE) == []
    api_client.close()


def test_the_controllers_account_may_act_for_an_api_token(api: ApiServer, tmp_path: Path) -> None:
    kubeconfig = api.kubeconfig(tmp_path / "kc", NAMESPACE, api.add_user(CONTROLLER))
    api_client = config.new_client_from_config(config_file=str(kubeconfig))
    body = new_command(NAMESPACE, "podinfo", "approve", CONTROLLER, on_behalf_of="ci")
    made = client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        "canary.dev", "v1alpha1", NAMESPACE, "rolloutcommands", body
    )
    assert made["spec"]["onBehalfOf"] == "ci"
    api_client.close()
