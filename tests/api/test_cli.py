"""The operator's CLI against a really served API: `wait`'s exit codes (as a CI job runs it,
in a subprocess), `get` with the checks' numbers, `list`, and the four writes."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from api_support import CI_TOKEN, Served, progressing
from click.testing import CliRunner
from engine_harness import PASS, World

from canary.cli.client import NO_API
from canary.cli.main import cli
from canary.engine import CommandKind
from canary.model.status import Phase


def _env(served: Served) -> dict[str, str]:
    return {"CANARY_API": served.url, "CANARY_TOKEN": CI_TOKEN, "CANARY_NAMESPACE": "test"}


def canary(served: Served, *args: str) -> tuple[int, str]:
    """`canary ARGS` in process, with the API and token from the environment."""
    result = CliRunner().invoke(cli, list(args), env=_env(served), catch_exceptions=False)
    return result.exit_code, result.output


def wait_process(served: Served, *args: str) -> subprocess.Popen[str]:
    """`canary wait podinfo ARGS` as a CI job runs it: its own process, the token in a file."""
    token_file = served.workspace.tokens_file.with_name("ci-token")
    token_file.write_text(CI_TOKEN + "\n")
    command = [sys.executable, "-m", "canary.cli.main", "wait", "podinfo", "-n", "test"]
    command += ["--api", served.url, "--token-file", str(token_file), *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANARY_")}
    env["COLUMNS"] = "200"
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)  # fmt: skip


def finish_later(served: Served, world: World, delay: float) -> None:
    def run() -> None:
        time.sleep(delay)
        for _ in range(20):
            served.workspace.tick(world, checks=PASS)
            if world.phase is Phase.SUCCEEDED:
                return

    threading.Thread(target=run, daemon=True).start()


def test_wait_exits_0_when_the_rollout_succeeds(served: Served) -> None:
    world = progressing(served.workspace)
    process = wait_process(served, "--timeout", "1m")
    finish_later(served, world, delay=1.0)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert "test/podinfo: succeeded: Succeeded: revision rev-2 promoted" in output


def test_wait_exits_1_when_the_rollout_is_rolled_back(served: Served) -> None:
    world = progressing(served.workspace)
    process = wait_process(served, "--timeout", "1m")
    assert canary(served, "abort", "podinfo") == (
        0,
        "abort queued for test/podinfo: it takes effect at the next tick (asked by ci)\n",
    )
    served.workspace.tick(world)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 1, output
    assert "test/podinfo: failed: RollingBack: rolling back revision rev-2: aborted by ci" in output


def test_wait_exits_2_on_timeout_saying_where_the_rollout_stands(served: Served) -> None:
    progressing(served.workspace)
    process = wait_process(served, "--timeout", "1s")
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 2, output
    # how long it waited is measured, so a loaded machine may say 1.1s
    said = r"test/podinfo: timed out after 1s: not ended after 1(\.\d)?s: Progressing at 10%"
    assert re.search(said, output), output


NOWHERE = {"CANARY_API": "", "KUBECONFIG": "/nonexistent/kubeconfig"}
"""No API and no kubeconfig, whatever the machine running the tests has."""


def test_wait_exits_3_when_the_api_cannot_be_asked(served: Served) -> None:
    progressing(served.workspace)
    result = CliRunner().invoke(cli, ["wait", "podinfo"], env=NOWHERE)
    assert result.exit_code == 3
    assert NO_API in result.output
    assert "or --kubeconfig to talk to the cluster directly" in result.output
    code, output = canary(served, "wait", "nope", "--timeout", "5s")
    assert code == 3
    assert "404 Not Found: no rollout nope in namespace test" in output
    assert canary(served, "wait", "podinfo", "--timeout", "soon")[0] == 3
    assert canary(served, "wait", "podinfo", "--no-such-option")[0] == 3


def test_get_shows_phase_weight_step_and_each_checks_numbers(served: Served) -> None:
    progressing(served.workspace)
    code, output = canary(served, "get", "podinfo")
    assert code == 0, output
    assert "test/podinfo  Progressing  weight 10%" in output
    assert "step 2 of 4 (5% → 10% → 20% → 50%)" in output
    assert "revision: canary rev-2, stable rev-1" in output
    assert "failed ticks: 0 of 2" in output
    rows = [line.split(maxsplit=2) for line in output.splitlines()]
    lines = {
        row[1]: row[2] for row in rows if len(row) == 3 and row[1] in {"error-rate", "latency"}
    }
    assert "1.5 (18/1200)" in lines["error-rate"]
    assert "0.5 (24/4800)" in lines["error-rate"]
    assert "3.25" in lines["error-rate"]
    assert "412 (7/1200)" in lines["latency"]
    assert "398 (30/4800)" in lines["latency"]


def test_get_json_and_list(served: Served) -> None:
    progressing(served.workspace)
    code, output = canary(served, "get", "podinfo", "-o", "json")
    assert code == 0
    assert '"canaryWeight": 10' in output
    code, output = canary(served, "list")
    assert code == 0
    assert "podinfo" in output
    assert "Progressing" in output
    assert "10%" in output
    assert canary(served, "list", "-n", "prod")[1].strip() == "no rollouts"


def test_get_watch_refreshes_until_the_rollout_ends(served: Served) -> None:
    world = progressing(served.workspace)
    finish_later(served, world, delay=0.3)
    code, output = canary(served, "get", "podinfo", "--watch", "--interval", "100ms")
    assert code == 0, output
    assert "Succeeded" in output
    assert output.rstrip().endswith("Succeeded: revision rev-2 promoted")


def test_writes_queue_commands_and_refusals_exit_1(served: Served) -> None:
    progressing(served.workspace, gates={"approvals": ["promotion"]})
    assert canary(served, "approve", "podinfo", "--point", "promotion")[0] == 0
    assert canary(served, "promote", "podinfo")[0] == 0
    taken = served.workspace.store.take_commands("test", "podinfo")
    assert [(c.kind, c.point, c.by) for c in taken] == [
        (CommandKind.APPROVE, "promotion", "ci"),
        (CommandKind.PROMOTE, None, "ci"),
    ]
    code, output = canary(served, "retry", "podinfo")
    assert code == 1
    assert "409 Conflict: retry applies to a Failed rollout" in output
    code, output = canary(served, "abort", "podinfo", "-n", "default")
    assert (code, "404 Not Found" in output) == (1, True)


@pytest.mark.parametrize("command", ["get", "approve", "promote", "abort", "retry", "list"])
def test_missing_api_is_a_clear_error(command: str) -> None:
    args = [command] if command == "list" else [command, "podinfo"]
    result = CliRunner().invoke(cli, args, env={**NOWHERE, "CANARY_TOKEN": "x"})
    assert result.exit_code == 1
    assert NO_API in result.output


def test_a_token_is_required_before_asking(served: Served) -> None:
    result = CliRunner().invoke(cli, ["list", "--api", served.url], env={"CANARY_TOKEN": ""})
    assert result.exit_code == 1
    assert "set --token-file or CANARY_TOKEN" in result.output
    result = CliRunner().invoke(
        cli, ["list", "--api", served.url], env={"CANARY_TOKEN": "wrong-token-000000"}
    )
    assert "401 Unauthorized: the bearer token is not known" in result.output


def test_a_token_on_the_command_line_is_refused(served: Served) -> None:
    result = CliRunner().invoke(
        cli, ["list", "--api", served.url, "--token", "ci-token-0123456789"]
    )
    assert result.exit_code == 1
    assert "--token would show the token" in result.output
    assert "--token-file" in result.output


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_canary_api_serves_the_state_folder(served: Served) -> None:
    progressing(served.workspace)
    listen = f"127.0.0.1:{_free_port()}"
    workspace = served.workspace
    command = [sys.executable, "-m", "canary.cli.main", "api", "--state-dir"]
    command += [str(workspace.state_dir), "--tokens", str(workspace.tokens_file)]
    command += ["--listen", listen, "--poll-interval", "100ms"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        headers = {"Authorization": f"Bearer {CI_TOKEN}"}
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://{listen}/api/v1/rollouts", headers=headers)
                break
            except httpx.TransportError:
                assert process.poll() is None
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert response.json()["items"][0]["name"] == "podinfo"
        response = httpx.post(f"http://{listen}/api/v1/namespaces/test/rollouts/podinfo/abort",
                              headers=headers)  # fmt: skip
        assert response.status_code == 202
        assert httpx.get(f"http://{listen}/openapi.json").json()["info"]["title"] == "canary API"
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert "audit: ci asked to abort test/podinfo: accepted" in output
    assert '"by":"ci"' in workspace.audit_path.read_text()


def test_canary_api_refuses_bad_tokens(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("ci operate short\n")
    result = CliRunner().invoke(cli, ["api", "--state-dir", str(tmp_path), "--tokens", str(tokens)])
    assert result.exit_code == 1
    assert "token ci is shorter than 16 characters" in result.output
