"""`canary run --api-listen`: the local runner serves the API itself while it rolls out (a real
HAProxy in front of two servers); `canary get`, `abort` and `wait` talk to it, and the abort
reaches the runner's next tick."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import yaml
from click.testing import CliRunner
from haproxy_support import running_haproxy

from canary.cli.main import cli
from canary.model import Rollout

TOKEN = "ci-token-0123456789abcdef"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def quick(ro: Rollout) -> dict[str, object]:
    """A tick a second, and no end of its own within the test: only the abort ends it."""
    data = ro.to_wire()
    data["spec"]["strategy"] = {"canary": {"weights": [10, 50]}}
    data["spec"]["analysis"] = {
        "interval": "1s",
        "judge": "threshold",
        "failureLimit": 50,
        "inconclusiveDeadline": "10m",
    }
    return {"apiVersion": "canary.dev/v1alpha1", "kind": "Rollout", **data}


def canary(url: str, *args: str) -> tuple[int, str]:
    env = {"CANARY_API": url, "CANARY_TOKEN": TOKEN, "CANARY_NAMESPACE": "", "COLUMNS": "200"}
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.output


def test_the_runner_serves_the_api_and_takes_an_abort_from_it(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"ci operate {TOKEN}\n")
    with running_haproxy(tmp_path) as haproxy:
        rollout_file = tmp_path / "rollout.yaml"
        rollout_file.write_text(yaml.safe_dump(quick(haproxy.rollout)))
        command = [sys.executable, "-m", "canary.cli.main", "run", str(rollout_file)]
        command += ["--revision", "v2", "--state", str(tmp_path / "state" / "app.state.json")]
        command += ["--map-dir", str(haproxy.map_dir)]
        command += ["--prometheus", f"http://127.0.0.1:{closed_port()}"]  # no data: never ends
        command += ["--api-listen", "127.0.0.1:0", "--api-tokens", str(tokens)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("CANARY_")}
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, cwd=tmp_path, env=env)  # fmt: skip
        seen: list[str] = []
        try:
            assert process.stdout is not None
            for line in process.stdout:
                seen.append(line)
                if line.startswith("canary API on "):
                    url = line.split()[3]
                    break
            else:
                raise AssertionError("no API announced:\n" + "".join(seen))
            for line in process.stdout:  # the first tick is written once it is printed
                seen.append(line)
                if "Progressing" in line:
                    break
            code, output = canary(url, "get", "app")
            assert code == 0, output
            assert "default/app  Progressing  weight " in output
            code, output = canary(url, "abort", "app")
            assert (code, "abort queued for default/app" in output) == (0, True), output
            code, output = canary(url, "wait", "app", "--timeout", "1m", "-q")
            assert code == 1, output
            assert "default/app: failed: RollingBack: rolling back revision v2: aborted by ci" in (
                output
            )
            rest, _ = process.communicate(timeout=60)
        finally:
            process.kill()
        assert process.returncode == 1, "".join(seen) + rest
        assert "Failed" in rest
        assert set(haproxy.send(10)) == {"primary"}
    audit = (tmp_path / "state" / "audit.jsonl").read_text()
    assert '"by":"ci"' in audit
