"""`kubectl canary ...`: the real kubectl finds the installed ``kubectl-canary`` console script
on the PATH as a plugin, and runs it — help, a read and `wait`'s exit codes through kubectl,
straight to the (test) cluster with a kubeconfig."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from kubeconfig_support import ROOT, KubeRollout, progressing_in

from canary.cli.main import cli
from canary.testing import ApiServer


def _kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        pytest.fail("kubectl is not installed: these tests drive the real kubectl's plugin support")
    return found


def _installed_script() -> Path:
    script = Path(sys.executable).parent / "kubectl-canary"
    if not script.is_file():
        pytest.fail(
            f"{script} is missing: install the project (pip install -e .) so its console "
            "scripts, canary and kubectl-canary, are generated"
        )
    return script


@pytest.fixture
def plugin_env(tmp_path: Path) -> dict[str, str]:
    """An environment whose PATH holds, in a folder of their own, kubectl and kubectl-canary
    (kubectl's own folder may be the venv's bin, which holds kubectl-canary too)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl-canary").symlink_to(_installed_script())
    (bin_dir / "kubectl").symlink_to(_kubectl())
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CANARY_", "KUBECONFIG"))}
    env.update(PATH=os.pathsep.join([str(bin_dir), "/usr/bin", "/bin"]))
    env.update(HOME=str(home), COLUMNS="200")
    return env


def kubectl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def podinfo(cluster_api: ApiServer, kubeconfig: Path) -> Iterator[KubeRollout]:
    made = progressing_in(cluster_api, kubeconfig)
    yield made
    made.close()


def test_the_console_script_is_declared_for_kubectl() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["kubectl-canary"] == scripts["canary"] == "canary.cli.main:main"
    installed = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert installed["kubectl-canary"] == "canary.cli.main:main"
    for command in ("get", "list", "approve", "promote", "abort", "retry", "wait"):
        assert command in cli.commands


def test_kubectl_plugin_list_finds_it(plugin_env: dict[str, str]) -> None:
    listed = kubectl(plugin_env, "plugin", "list")
    assert listed.returncode == 0, listed.stderr
    bin_dir = plugin_env["PATH"].split(os.pathsep)[0]
    assert f"{bin_dir}/kubectl-canary" in listed.stdout
    assert "warning" not in listed.stderr.lower(), listed.stderr


def test_kubectl_canary_help_runs(plugin_env: dict[str, str]) -> None:
    helped = kubectl(plugin_env, "canary", "--help")
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith("Usage: kubectl canary [OPTIONS] COMMAND [ARGS]...")
    for command in ("get", "list", "approve", "promote", "abort", "retry", "wait"):
        assert f"\n  {command} " in helped.stdout
    helped = kubectl(plugin_env, "canary", "wait", "--help")
    assert helped.returncode == 0
    assert "Usage: kubectl canary wait [OPTIONS] NAME" in helped.stdout
    assert "--kubeconfig" in helped.stdout


def test_kubectl_canary_reads_and_waits_on_the_cluster(
    plugin_env: dict[str, str], podinfo: KubeRollout, kubeconfig: Path
) -> None:
    env = {**plugin_env, "KUBECONFIG": str(kubeconfig)}  # as kubectl itself would find it
    got = kubectl(env, "canary", "get", "podinfo")
    assert got.returncode == 0, got.stdout + got.stderr
    assert "test/podinfo  Progressing  weight 10%" in got.stdout
    waited = kubectl(env, "canary", "wait", "podinfo", "--timeout", "1s", "--poll-interval", "0.2s")
    assert waited.returncode == 2, waited.stdout + waited.stderr
    assert "test/podinfo: timed out after 1s: not ended after" in waited.stdout
    missing = kubectl(env, "canary", "wait", "nope", "--timeout", "1s")
    assert missing.returncode == 3
    assert "404 Not Found: no rollout nope in namespace test" in missing.stdout + missing.stderr
