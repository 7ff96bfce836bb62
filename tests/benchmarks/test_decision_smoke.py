"""Smoke test of the decision benchmark: it runs end to end and prints its report's shape.

No figure is asserted (a handful of seeds says nothing); the benchmark's numbers live in
docs/benchmarks.md, rewritten by `make bench-decision`.
"""

from __future__ import annotations

import re

from benchmark_support import run_benchmark

HEADLINE = re.compile(
    r"^blast-radius threshold/sequential: (?:\d+(?:\.\d+)?x|n/a); "
    r"worst sequential false rollbacks: \d+(?:\.\d+)?%$"
)


def test_quick_mode_runs_and_ends_with_the_headline() -> None:
    done = run_benchmark(
        "decision.py", "--quick", "--no-write", "--seeds", "3", "--rates", "100", timeout=120
    )
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert HEADLINE.match(lines[-1]), lines[-1]
    for judge in ("threshold", "mann-whitney", "sequential"):
        assert f"false rollbacks: {judge}" in done.stdout
        assert f"detected: {judge}" in done.stdout
    for table in ("Targets", "Healthy canaries (A/A)", "Worse canaries", "oracle SPRT"):
        assert table in done.stdout
