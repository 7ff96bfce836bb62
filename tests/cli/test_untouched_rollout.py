"""A Rollout no controller has picked up has no status: `canary list` and `canary get` show no
phase for it (kubectl's PHASE column shows none either), and say why, instead of the model's
default phase. Then the first status written shows as usual."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from engine_harness import rollout
from kubeconfig_support import NAMESPACE, ROLLOUTS

from canary.cli.main import cli
from canary.cli.show import UNTOUCHED
from canary.testing import ApiServer

NO_API = {"CANARY_API": "", "CANARY_TOKEN": "", "CANARY_NAMESPACE": "", "COLUMNS": "200"}


def canary(kubeconfig: Path, *args: str) -> str:
    result = CliRunner().invoke(
        cli, [*args, "--kubeconfig", str(kubeconfig)], env=NO_API, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def fresh(cluster_api: ApiServer) -> None:
    """test/podinfo as a person applies it: no status at all."""
    cluster_api.apply({"apiVersion": ROLLOUTS, "kind": "Rollout", **rollout().to_wire()})
    stored = cluster_api.get(ROLLOUTS, "Rollout", "podinfo", NAMESPACE)
    assert not stored.get("status")


@pytest.mark.usefixtures("fresh")
def test_list_shows_no_phase_for_a_rollout_no_controller_touched(kubeconfig: Path) -> None:
    output = canary(kubeconfig, "list")
    [row] = [line for line in output.splitlines() if "podinfo" in line]
    assert "Initializing" not in row
    assert UNTOUCHED in row
    assert row.split("│")[3].strip() == "-", "the phase column"


@pytest.mark.usefixtures("fresh")
def test_get_says_the_rollout_has_no_status_yet(kubeconfig: Path) -> None:
    output = canary(kubeconfig, "get", "podinfo")
    assert output.splitlines()[0].split() == ["test/podinfo", "-"]
    assert UNTOUCHED in output
    assert "step 1" not in output
    assert "Initializing" not in output


def test_the_first_status_shows_as_usual(cluster_api: ApiServer, kubeconfig: Path) -> None:
    cluster_api.apply({"apiVersion": ROLLOUTS, "kind": "Rollout", **rollout().to_wire()})
    status = {"phase": "Initialized", "stableRevision": "rev-1", "message": "primary ready"}
    cluster_api.update_status(ROLLOUTS, "Rollout", "podinfo", status, NAMESPACE)
    output = canary(kubeconfig, "list")
    assert "Initialized" in output
    assert UNTOUCHED not in output
