"""The client's per-request credential refresh: dropped for a static kubeconfig token (it could
only write back what is there), kept where credentials expire (an exec plugin with an
``expirationTimestamp``) and for the in-cluster configuration (the ServiceAccount token
rotates)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config
from kubernetes.config.incluster_config import InClusterConfigLoader

from canary.controller.kube import drop_static_token_refresh


def kubeconfig(path: Path, user: dict[str, Any]) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": user}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    return path


def exec_plugin(status: dict[str, str]) -> dict[str, Any]:
    credential = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": status,
    }
    return {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": "/bin/sh",
            "args": ["-c", f"echo '{json.dumps(credential)}'"],
        }
    }


def test_a_static_token_needs_no_refresh_before_each_request(tmp_path: Path) -> None:
    made = config.new_client_from_config(
        config_file=str(kubeconfig(tmp_path / "kubeconfig", {"token": "s3cret"}))
    )
    assert made.configuration.refresh_api_key_hook is not None
    assert drop_static_token_refresh(made)
    assert made.configuration.refresh_api_key_hook is None
    assert made.configuration.get_api_key_with_prefix("BearerToken") == "Bearer s3cret"


def test_credentials_that_expire_keep_their_refresh(tmp_path: Path) -> None:
    plugin = exec_plugin({"token": "t1", "expirationTimestamp": "2099-01-01T00:00:00Z"})
    made = config.new_client_from_config(
        config_file=str(kubeconfig(tmp_path / "kubeconfig", plugin))
    )
    assert not drop_static_token_refresh(made)
    assert made.configuration.refresh_api_key_hook is not None


def test_the_in_cluster_token_keeps_its_refresh(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t1")
    (tmp_path / "ca.crt").write_text("ca")
    configuration = client.Configuration()
    environ = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    InClusterConfigLoader(
        str(tmp_path / "token"), str(tmp_path / "ca.crt"), environ=environ
    ).load_and_set(configuration)
    made = client.ApiClient(configuration)
    assert not drop_static_token_refresh(made)
    assert configuration.refresh_api_key_hook is not None


def test_client_certificates_have_no_hook_to_drop(tmp_path: Path) -> None:
    made = config.new_client_from_config(config_file=str(kubeconfig(tmp_path / "kc", {})))
    assert not drop_static_token_refresh(made)
