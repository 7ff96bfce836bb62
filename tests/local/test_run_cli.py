"""`canary haproxy-config` and `canary run` from the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from canary.local.haproxy import check_config

ROOT = Path(__file__).resolve().parents[2]
CANARY = [sys.executable, "-m", "canary.cli.main"]


def canary(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CANARY, *map(str, args)], capture_output=True, text=True, cwd=cwd, check=False, timeout=60
    )


def test_haproxy_config_writes_a_config_haproxy_accepts(tmp_path: Path) -> None:
    out = tmp_path / "haproxy.cfg"
    done = canary(
        "haproxy-config",
        ROOT / "examples/podinfo-haproxy.yaml",
        "--map-dir",
        tmp_path / "maps",
        "-o",
        out,
    )
    assert done.returncode == 0, done.stderr
    check_config(out)
    assert "server primary 127.0.0.1:9901 weight 100" in out.read_text()


def test_run_needs_a_haproxy_rollout(tmp_path: Path) -> None:
    done = canary("run", ROOT / "examples/podinfo-istio.yaml", "--revision", "v2")
    assert done.returncode == 1
    assert "spec.provider.name: local mode needs provider 'haproxy'" in done.stderr
    assert "Traceback" not in done.stderr


def test_run_without_haproxy_says_where_it_looked(tmp_path: Path) -> None:
    rollout = (ROOT / "examples/podinfo-haproxy.yaml").read_text()
    done = canary(
        "run",
        ROOT / "examples/podinfo-haproxy.yaml",
        "--revision",
        "v2",
        "--state",
        tmp_path / "state.json",
        cwd=tmp_path,
    )
    assert rollout
    assert done.returncode == 1
    assert "did not answer" in done.stderr
    assert "Traceback" not in done.stderr
