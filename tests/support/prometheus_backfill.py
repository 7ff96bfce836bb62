"""A real Prometheus (Debian package `prometheus`) over series backfilled with promtool.

The series are OpenMetrics text with their own timestamps, written into TSDB blocks by
`promtool tsdb create-blocks-from openmetrics` before Prometheus starts: nothing is scraped and
nothing waits for time to pass.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from canary.local.processes import ManagedProcess, ProcessError, find_binary, free_port
from canary.local.prometheus import start_prometheus

INSTALL_HINT = (
    "the Prometheus tests need the Debian package `prometheus` (prometheus and promtool): "
    "install it with `apt-get install -y prometheus`, or run `make test`, whose "
    "scripts/bootstrap.sh installs it"
)


def history_start(now: float | None = None) -> int:
    """Whole 2-hour blocks, a few hours back: inside the 1-day retention, clear of the head."""
    return int((now or time.time()) // 7200 * 7200 - 4 * 3600)


def start_backfilled_prometheus(workdir: Path, source: Path) -> tuple[str, ManagedProcess]:
    """Backfill the OpenMetrics file ``source`` (samples with timestamps) with promtool, then
    start Prometheus on a free port over it; returns its URL. Fails the test with the reason."""
    promtool = _binary("promtool")
    _binary("prometheus")
    data = workdir / "data"
    backfill = subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(source), str(data)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if backfill.returncode != 0:
        pytest.fail(f"promtool could not backfill the test series:\n{backfill.stderr[-2000:]}")
    problem = ""
    for _ in range(3):  # the free port may be taken before Prometheus binds it: try another
        listen = f"127.0.0.1:{free_port()}"
        try:
            process = start_prometheus("scrape_configs: []\n", listen, workdir, timeout=60)
        except ProcessError as exc:
            problem = str(exc)
            continue
        return f"http://{listen}", process
    pytest.fail(f"Prometheus did not start: {problem}", pytrace=False)


def _binary(name: str) -> str:
    try:
        return find_binary(name, "prometheus")
    except ProcessError:
        pass
    pytest.fail(INSTALL_HINT, pytrace=False)
