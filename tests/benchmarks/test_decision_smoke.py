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


def test_the_guarantee_grid_runs_and_prints_every_cell() -> None:
    done = run_benchmark("decision_guarantees.py", "--seeds", "2", "--rates", "3000", timeout=300)
    rows = [line for line in done.stdout.splitlines() if line.startswith("| calm | 3000 |")]
    assert len(rows) == 3 * 7 * 2  # primary errors x canaries x judges
    assert any("| yes | sequential |" in row for row in rows)  # bad cells are marked


def test_the_pareto_benchmark_runs_and_ends_with_its_headline() -> None:
    done = run_benchmark(
        "decision_pareto.py", "--seeds", "1", "--rates", "3000", "--errors", "1", timeout=300
    )
    assert "Tuned to false rollbacks <= 2%" in done.stdout
    assert done.stdout.count("| 3000 | 1% | flagger |") == 9
    assert done.stdout.count("| 3000 | 1% | sequential |") == 12
