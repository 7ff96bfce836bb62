"""`canary get --watch` against a served API while the rollout changes: in a log (stdout not a
terminal) it prints a frame each time the rollout changed, returns when the rollout ends, and
stops on Ctrl-C. The rollout is ticked in lockstep with the frames read, so no change can be
missed whatever the machine's speed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from api_support import CI_TOKEN, Served, progressing
from engine_harness import PASS, World

from canary.model.status import Phase

HEADER = "test/podinfo  "


def watch(served: Served) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "canary.cli.main", "get", "podinfo", "-n", "test"]
    command += ["--watch", "--interval", "50ms"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANARY_")}
    env.update(CANARY_API=served.url, CANARY_TOKEN=CI_TOKEN, COLUMNS="200")
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, bufsize=1)  # fmt: skip


def next_header(process: subprocess.Popen[str], seen: list[str]) -> str:
    """The header line of the next frame (every line read is kept in ``seen``)."""
    assert process.stdout is not None
    for line in process.stdout:
        seen.append(line)
        if line.startswith(HEADER):
            return line.rstrip()
    raise AssertionError("the watch ended before its next frame:\n" + "".join(seen))


def test_a_frame_per_change_until_the_rollout_ends(served: Served) -> None:
    world: World = progressing(served.workspace)
    process = watch(served)
    seen: list[str] = []
    try:
        headers = [next_header(process, seen)]
        for _ in range(3):  # 10% -> 20% -> 50% -> promoting
            served.workspace.tick(world, checks=PASS)
            headers.append(next_header(process, seen))
        while world.phase is not Phase.SUCCEEDED:
            served.workspace.tick(world, checks=PASS)
        output, _ = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, "".join(seen) + output
    assert headers == [
        "test/podinfo  Progressing  weight 10%",
        "test/podinfo  Progressing  weight 20%",
        "test/podinfo  Progressing  weight 50%",
        "test/podinfo  Promoting  weight 50%",
    ]
    frames = [line for line in (seen + output.splitlines(True)) if line.startswith(HEADER)]
    assert frames[-1].startswith("test/podinfo  Succeeded")
    assert output.rstrip().endswith("Succeeded: revision rev-2 promoted")


def test_ctrl_c_stops_a_watch_of_a_rollout_that_does_not_end(served: Served) -> None:
    world: World = progressing(served.workspace)
    process = watch(served)
    seen: list[str] = []
    try:
        next_header(process, seen)
        served.workspace.tick(world, checks=PASS)
        assert next_header(process, seen) == "test/podinfo  Progressing  weight 20%"
        assert process.poll() is None, "still watching: the rollout has not ended"
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130
