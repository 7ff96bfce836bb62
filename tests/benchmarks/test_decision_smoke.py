"""Smoke test of the decision benchmark: it runs end to end and prints its report's shape.

No figure is asserted (a handful of seeds says nothing); the benchmark's numbers live in
docs/benchmarks.md, rewritten by `make bench-decision`.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "decision.py"
HEADLINE = re.compile(
    r"^blast-radius threshold/sequential: (?:\d+(?:\.\d+)?x|n/a); "
    r"worst sequential false rollbacks: \d+(?:\.\d+)?%$"
)


def test_quick_mode_runs_and_ends_with_the_headline() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--no-write", "--seeds", "3", "--rates", "100"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert HEADLINE.match(lines[-1]), lines[-1]
    for judge in ("threshold", "mann-whitney", "sequential"):
        assert f"false rollbacks: {judge}" in done.stdout
        assert f"detected: {judge}" in done.stdout
    for table in ("Targets", "Healthy canaries (A/A)", "Worse canaries", "oracle SPRT"):
        assert table in done.stdout
