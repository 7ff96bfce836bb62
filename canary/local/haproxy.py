"""Running HAProxy for local mode: config checked, started in the foreground, waited for."""

from __future__ import annotations

import subprocess
from pathlib import Path

from canary.local.processes import ManagedProcess, ProcessError, find_binary
from canary.traffic.haproxy.runtime import RuntimeApi, RuntimeApiError


def check_config(config: Path, binary: str | None = None) -> None:
    """`haproxy -c`: a config HAProxy rejects is a ProcessError with HAProxy's own words."""
    haproxy = binary or find_binary("haproxy")
    done = subprocess.run(
        [haproxy, "-c", "-q", "-f", str(config)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise ProcessError(f"HAProxy rejects {config}:\n{(done.stdout + done.stderr).strip()}")


def start_haproxy(
    config: Path, runtime_api: str, log_dir: Path, timeout: float = 10.0
) -> ManagedProcess:
    """Start HAProxy on ``config`` and wait until its runtime API answers."""
    haproxy = find_binary("haproxy")
    check_config(config, haproxy)
    process = ManagedProcess(
        "haproxy", [haproxy, "-db", "-f", str(config)], log_dir / "haproxy.log"
    )
    process.start()
    api = RuntimeApi(runtime_api, timeout=1.0)

    def answers() -> bool:
        try:
            info = api.command("show info")
        except RuntimeApiError:
            return False
        return _pid(info) == process.pid  # not another HAProxy that holds the same address

    try:
        process.wait_ready(answers, timeout, f"its runtime API up at {runtime_api}")
    except ProcessError:
        process.stop()
        raise
    return process


def _pid(info: str) -> int | None:
    """The Pid line of `show info`'s reply."""
    for line in info.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "Pid" and value.strip().isdigit():
            return int(value.strip())
    return None
