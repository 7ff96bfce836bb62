"""The operator commands straight to the cluster with a kubeconfig (no canary API): reads from
the Rollout, writes created as RolloutCommand objects in the name of the authenticated user
as who asked and recorded as Events, `wait`'s exit codes, `get --watch`; all against the
project's test API server through the real kubernetes client."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from engine_harness import PASS
from kubeconfig_support import USER, KubeRollout, progressing_in

from canary.cli.main import cli
from canary.model.status import Phase
from canary.testing import ApiServer

NO_API = {"CANARY_API": "", "CANARY_TOKEN": "", "CANARY_NAMESPACE": "", "COLUMNS": "200"}


def canary(
    kubeconfig: Path | None, *args: str, env: dict[str, str] | None = None
) -> tuple[int, str]:
    """`canary ARGS --kubeconfig FILE` in process (no API in the environment)."""
    where = ["--kubeconfig", str(kubeconfig)] if kubeconfig is not None else []
    result = CliRunner().invoke(
        cli, [*args, *where], env={**NO_API, **(env or {})}, catch_exceptions=False
    )
    return result.exit_code, result.output


@pytest.fixture
def podinfo(cluster_api: ApiServer, kubeconfig: Path) -> Iterator[KubeRollout]:
    made = progressing_in(cluster_api, kubeconfig)
    yield made
    made.close()


def finish_later(rollout: KubeRollout, delay: float) -> None:
    """Tick the rollout to Succeeded from another thread, after ``delay`` seconds."""

    def run() -> None:
        time.sleep(delay)
        for _ in range(20):
            rollout.tick(checks=PASS)
            if rollout.world.phase is Phase.SUCCEEDED:
                return

    threading.Thread(target=run, daemon=True).start()


def test_get_reads_the_rollout_with_each_checks_numbers(
    podinfo: KubeRollout, kubeconfig: Path
) -> None:
    code, output = canary(kubeconfig, "get", "podinfo")  # -n: the context's namespace
    assert code == 0, output
    assert "test/podinfo  Progressing  weight 10%" in output
    assert "step 2 of 4 (5% → 10% → 20% → 50%)" in output
    assert "failed ticks: 0 of 2" in output
    assert "1.5 (18/1200)" in output
    assert "0.5 (24/4800)" in output
    assert "412 (7/1200)" in output
    code, output = canary(kubeconfig, "get", "podinfo", "-n", "test", "-o", "json")
    assert json.loads(output)["status"]["canaryWeight"] == 10


def test_list_and_not_found(podinfo: KubeRollout, kubeconfig: Path) -> None:
    code, output = canary(kubeconfig, "list")
    assert code == 0
    assert "podinfo" in output
    assert "Progressing" in output
    assert canary(kubeconfig, "list", "-n", "prod")[1].strip() == "no rollouts"
    code, output = canary(kubeconfig, "get", "podinfo", "-n", "prod")
    assert code == 1
    assert "404 Not Found: no rollout podinfo in namespace prod (found in namespace test" in output


def test_abort_is_a_command_object_with_who_asked_and_recorded_as_an_event(
    podinfo: KubeRollout, kubeconfig: Path
) -> None:
    code, output = canary(kubeconfig, "abort", "podinfo")
    assert code == 0, output
    assert output == (
        f"abort queued for test/podinfo: it takes effect at the next tick (asked by {USER})\n"
    )
    assert podinfo.queued() == [{"rollout": "podinfo", "action": "abort", "user": USER}]
    [event] = [e for e in podinfo.events() if e["reason"] == "CommandAbort"]
    assert event["type"] == "Normal"
    assert event["involvedObject"]["name"] == "podinfo"
    assert event["message"].startswith(f"{USER} asked to abort with the canary CLI (kubeconfig)")
    # the controller's next tick takes it: the engine rolls back, naming who asked
    podinfo.tick()
    assert podinfo.world.phase is Phase.ROLLING_BACK
    assert f"aborted by {USER}" in podinfo.world.status.message  # type: ignore[union-attr]
    assert podinfo.queued() == []


def test_approve_and_promote_queue_in_order(cluster_api: ApiServer, kubeconfig: Path) -> None:
    podinfo = progressing_in(cluster_api, kubeconfig, gates={"approvals": ["promotion"]})
    assert canary(kubeconfig, "approve", "podinfo", "--point", "promotion")[0] == 0
    assert canary(kubeconfig, "promote", "podinfo")[0] == 0
    assert podinfo.queued() == [
        {"rollout": "podinfo", "action": "approve", "point": "promotion", "user": USER},
        {"rollout": "podinfo", "action": "promote", "user": USER},
    ]
    podinfo.tick(checks=PASS)
    assert podinfo.world.phase is Phase.PROMOTING
    podinfo.close()


def test_a_write_that_does_not_apply_is_refused_and_recorded(
    podinfo: KubeRollout, kubeconfig: Path
) -> None:
    code, output = canary(kubeconfig, "retry", "podinfo")
    assert code == 1
    assert "409 Conflict: retry applies to a Failed rollout; rollout test/podinfo is" in output
    assert podinfo.queued() == []
    [event] = [e for e in podinfo.events() if e["reason"] == "CommandRetry"]
    assert event["type"] == "Warning"
    assert "rejected" in event["message"]


def test_wait_exits_0_when_the_rollout_succeeds(podinfo: KubeRollout, kubeconfig: Path) -> None:
    finish_later(podinfo, delay=0.3)
    code, output = canary(
        kubeconfig, "wait", "podinfo", "--timeout", "1m", "--poll-interval", "50ms"
    )
    assert code == 0, output
    assert "test/podinfo: succeeded: Succeeded: revision rev-2 promoted" in output


def test_wait_exits_1_when_the_rollout_is_rolled_back(
    podinfo: KubeRollout, kubeconfig: Path
) -> None:
    assert canary(kubeconfig, "abort", "podinfo")[0] == 0

    def tick_later() -> None:
        time.sleep(0.3)
        podinfo.tick()

    threading.Thread(target=tick_later, daemon=True).start()
    code, output = canary(
        kubeconfig, "wait", "podinfo", "--timeout", "1m", "--poll-interval", "50ms"
    )
    assert code == 1, output
    assert (
        f"test/podinfo: failed: RollingBack: rolling back revision rev-2: aborted by {USER}"
        in output
    )


def test_wait_exits_2_on_timeout_and_3_when_it_cannot_ask(
    podinfo: KubeRollout, kubeconfig: Path
) -> None:
    code, output = canary(
        kubeconfig, "wait", "podinfo", "--timeout", "300ms", "--poll-interval", "50ms"
    )
    assert code == 2, output
    assert "test/podinfo: timed out after 300ms: not ended after" in output
    assert "Progressing at 10%" in output
    code, output = canary(kubeconfig, "wait", "nope", "--timeout", "5s")
    assert code == 3
    assert "404 Not Found: no rollout nope in namespace test" in output


def test_get_watch_follows_the_rollout_to_its_end(podinfo: KubeRollout, kubeconfig: Path) -> None:
    finish_later(podinfo, delay=0.3)
    code, output = canary(kubeconfig, "get", "podinfo", "--watch", "--interval", "50ms")
    assert code == 0, output
    headers = [line for line in output.splitlines() if line.startswith("test/podinfo  ")]
    assert headers[0] == "test/podinfo  Progressing  weight 10%"
    assert headers[-1].startswith("test/podinfo  Succeeded")
    assert output.rstrip().endswith("Succeeded: revision rev-2 promoted")


def test_kubeconfig_from_the_environment_is_the_default_without_an_api(
    podinfo: KubeRollout, kubeconfig: Path
) -> None:
    code, output = canary(None, "get", "podinfo", env={"KUBECONFIG": str(kubeconfig)})
    assert code == 0, output
    assert "test/podinfo  Progressing  weight 10%" in output


def test_api_and_kubeconfig_together_is_a_usage_mistake(kubeconfig: Path) -> None:
    code, output = canary(kubeconfig, "list", "--api", "http://127.0.0.1:1")
    assert code == 1
    assert "--api and --kubeconfig/--context: give one of them" in output
    code, output = canary(kubeconfig, "wait", "podinfo", "--context", "nope")
    assert code == 3
    assert "no context 'nope' (has: canary-test)" in output


def test_an_unreachable_cluster_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dead = ApiServer(port=port)  # never started: only its kubeconfig is used
    kubeconfig = dead.kubeconfig(tmp_path / "kubeconfig", namespace="test")
    code, output = canary(kubeconfig, "get", "podinfo")
    assert code == 1
    assert f"cannot reach the Kubernetes API at http://127.0.0.1:{port}" in output
    code, output = canary(kubeconfig, "wait", "podinfo", "--timeout", "1s")
    assert code == 3
    assert "cannot wait" in output
