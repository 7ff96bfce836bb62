"""`canary demo --api-listen --approve`: the demo is followed with `canary get --watch` and
approved with `canary approve`, from other processes, through the API it serves (real
HAProxy, Prometheus, services and load, as in test_demo.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

WAIT = 240.0  # seconds any one stage may take at most on a loaded machine (a bound, not a figure)


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANARY_")}
    return {**env, "COLUMNS": "200", **(extra or {})}


def _canary(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "canary.cli.main", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=WAIT)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    command = [sys.executable, "-m", "canary.cli.main", "demo", "--scenario", "healthy"]
    command += ["--interval", "3s", "--workdir", str(tmp_path / "work")]
    command += ["--plot", str(tmp_path / "demo.png"), "--api-listen", "127.0.0.1:0"]
    command += ["--approve", "promotion"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, cwd=tmp_path, env=_env())  # fmt: skip
    try:
        yield process, []
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=60)


def _announced(process: subprocess.Popen[str], seen: list[str]) -> dict[str, str]:
    """CANARY_API and CANARY_TOKEN, from the `export` line the demo prints."""
    assert process.stdout is not None
    for line in process.stdout:
        seen.append(line)
        if line.strip().startswith("export CANARY_API="):
            return dict(word.split("=", 1) for word in line.split()[1:])
    raise AssertionError("the demo printed no export line:\n" + "".join(seen))


def _status_when(env: dict[str, str], done: object) -> dict[str, object]:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        got = _canary("get", "demo", "-n", "local", "-o", "json", env=env)
        if got.returncode == 0:
            status: dict[str, object] = json.loads(got.stdout)["status"]
            if done(status):  # type: ignore[operator]
                return status
        time.sleep(1)
    raise AssertionError(f"the demo never reached the state looked for within {WAIT:g}s")


def test_the_demo_is_followed_and_approved_through_its_api(
    demo: tuple[subprocess.Popen[str], list[str]], tmp_path: Path
) -> None:
    process, seen = demo
    env = _env(_announced(process, seen))
    assert env["CANARY_API"].startswith("http://127.0.0.1:")
    assert (tmp_path / "work" / "tokens.txt").read_text().split()[2] == env["CANARY_TOKEN"]

    # The API answers before the demo's stack is up and its rollout published; a watch of a
    # rollout that does not exist yet ends at once with 404, as `kubectl get -w` would.
    _status_when(env, lambda s: True)
    watch = subprocess.Popen(
        [sys.executable, "-m", "canary.cli.main", "get", "demo", "-n", "local", "--watch"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    try:
        status = _status_when(env, lambda s: s.get("waitingFor") == "promotion")
        assert status["phase"] == "Paused"
        approve = _canary("approve", "demo", "-n", "local", "--point", "promotion", env=env)
        assert approve.returncode == 0, approve.stdout + approve.stderr
        watched, _ = watch.communicate(timeout=WAIT)
    finally:
        if watch.poll() is None:
            watch.kill()
    rest, _ = process.communicate(timeout=WAIT)
    output = "".join(seen) + rest
    assert process.returncode == 0, output
    assert "Succeeded" in output
    assert watch.returncode == 0, watched
    assert "demo" in watched
    assert "Paused" in watched, "the watch saw the rollout wait for the approval"
    assert "Succeeded" in watched, "and its end"
    assert (tmp_path / "work" / "demo.state.json").exists()


def test_approve_without_the_api_is_refused(tmp_path: Path) -> None:
    done = _canary("demo", "--approve", "promotion", "--workdir", str(tmp_path), env=_env())
    assert done.returncode == 1
    assert "--approve needs --api-listen" in done.stdout + done.stderr
